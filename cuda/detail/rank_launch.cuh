// One rank's slice of a launch (the blocks of grid slice blockIdx.z) as both kernels begin it, walk its input
// and end it: docs/kernels.md "Algorithms" phases 0 and 1, the rounds, the input stores' loop and the last phase. The
// kernels keep only what differs: where the packs go and how the slots are read back.
//
// Internal to cuda/: included by cuda/detail/one_shot_impl.cuh and cuda/detail/two_shot_impl.cuh only.
#pragma once

#include <cstdint>

#include "cuda/detail/lamport.cuh"

namespace ar::cuda::detail {

/// One round's tokens [t0, t1) and their packs [first, last) (pack indices into the rank's [N, D] shard).
struct RoundRange {
  std::uint32_t t0, t1;
  std::uint32_t first, last;
};

/// A rank's slice of the launch as this thread sees it, from begin_rank_launch(). Indices: pack and token
/// indices are 32-bit (the host refuses N*D*W past 2^31 elements, reference check_fits_workspace).
struct RankLaunch {
  const AllReduceParams& p;
  const RankSlot& slot;  ///< the rank of this block (blockIdx.z)
  std::uint32_t world, rank;
  std::uint32_t tid, threads;  ///< this thread among the rank's blocks, and their thread count
  std::uint32_t row_packs, tokens;
  std::uint32_t per_round, rounds;  ///< tokens per round (the same on every rank), and the round count
  std::uint64_t slot_stride;        ///< bytes between two source ranks' slots of a row
  const LaunchFlags& f;             ///< the rank's flags as this launch found them (read-only)
  Arrival arrival;

  /// This rank's Lamport buffers (its own mapping, where it polls).
  __device__ __forceinline__ std::uint8_t* own_base() const {
    return reinterpret_cast<std::uint8_t*>(p.peers.base[rank]);
  }

  __device__ __forceinline__ RoundRange round_range(std::uint32_t round) const {
    const std::uint32_t t0 = round * per_round;
    const std::uint32_t t1 = tokens - t0 > per_round ? t0 + per_round : tokens;
    return RoundRange{t0, t1, t0 * row_packs, t1 * row_packs};
  }

  /// The loop of the stores: calls store(t, c, pack) for each of this thread's sanitised input packs of the
  /// round (token t, pack c of the row), kUnroll loads in flight per step. `v` holds the batch; the first
  /// batch of round 0 is the one begin_rank_launch() loaded.
  template <DType T, class Store>
  __device__ __forceinline__ void for_each_input_pack(std::uint32_t round, const RoundRange& r, uint4 (&v)[kUnroll],
                                                      Store&& store) const {
    for (std::uint32_t base = r.first + tid; base < r.last; base += kUnroll * threads) {
      if (round != 0 || base != r.first + tid) load_input_batch<T>(slot.input, base, threads, r.last, v);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const std::uint32_t i = base + u * threads;
        if (i >= r.last) break;
        const std::uint32_t t = i / row_packs, c = i - t * row_packs;
        store(t, c, v[u]);
      }
    }
  }

  /// The last phase of both kernels: the last block of the rank to arrive advances the flags.
  __device__ __forceinline__ void finish() const { arrival.finish(slot.flags, f, p); }
};

/// Phases 0 and 1 of both kernels, with the index set-up between them and the first batch of input packs
/// loaded into `v` before the flags are read. The rank's threads are numbered in chunks of `chunk` (a
/// multiple of 32 that divides blockDim.x): chunk k of every block before chunk k + 1 of any, so that the
/// packs of a small call spread over all blocks even when blocks are wide (the fused kernels); with
/// chunk = blockDim.x this is blockIdx.x * blockDim.x + threadIdx.x. `preload` false: `v` is left alone (the
/// direct path walks its input in another order).
template <DType T>
__device__ __forceinline__ RankLaunch begin_rank_launch(const AllReduceParams& p, uint4 (&v)[kUnroll],
                                                        std::uint32_t chunk = 0, bool preload = true) {
  // Phase 0: with PDL, wait until the previous launch has completed and its memory is visible.
  ptx::griddepcontrol_wait();

  const RankSlot& slot = p.slots[blockIdx.z];
  const std::uint32_t world = static_cast<std::uint32_t>(p.world_size);
  const std::uint32_t rank = static_cast<std::uint32_t>(slot.rank);
  if (chunk == 0 || blockDim.x % chunk != 0) chunk = blockDim.x;
  const std::uint32_t tid =
      (threadIdx.x / chunk) * (gridDim.x * chunk) + blockIdx.x * chunk + threadIdx.x % chunk;
  const std::uint32_t threads = gridDim.x * blockDim.x;
  const std::uint32_t row_packs = static_cast<std::uint32_t>(p.row_packs);
  const std::uint32_t tokens = static_cast<std::uint32_t>(p.tokens);
  const std::uint32_t per_round = static_cast<std::uint32_t>(p.tokens_per_round);
  const std::uint32_t rounds = (tokens + per_round - 1) / per_round;
  const std::uint64_t slot_stride = std::uint64_t(row_packs) * 16;

  // The first input packs do not depend on the flags: their loads overlap the flag read below.
  if (preload) load_input_batch<T>(slot.input, tid, threads, (tokens < per_round ? tokens : per_round) * row_packs, v);

  // Phase 1: read this rank's flags and arrive (the last block to arrive advances them, see Arrival).
  // A PDL dependent may start launching now: it waits for this grid's completion before it reads anything.
  const LaunchFlags& f = read_flags(slot.flags);
  ptx::griddepcontrol_launch_dependents();
  return RankLaunch{.p = p,
                    .slot = slot,
                    .world = world,
                    .rank = rank,
                    .tid = tid,
                    .threads = threads,
                    .row_packs = row_packs,
                    .tokens = tokens,
                    .per_round = per_round,
                    .rounds = rounds,
                    .slot_stride = slot_stride,
                    .f = f,
                    .arrival = Arrival(slot.flags, f, p)};
}

}  // namespace ar::cuda::detail
