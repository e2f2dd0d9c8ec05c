// Body of two_shot_rs_st_ag (see cuda/two_shot.cuh for the contract, README "Algorithms" for the phases).
//
// Indices: pack and token indices are 32-bit (the host refuses N*D*W past 2^31 elements, reference
// check_fits_workspace); byte offsets are 64-bit (a Lamport buffer may reach 4 GiB).
#pragma once

#include "cuda/detail/lamport.cuh"

namespace ar::cuda::detail {

template <DType T, bool kFtz>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerSm)
    two_shot_rs_st_ag(const __grid_constant__ AllReduceParams p) {
  // Phase 0: with PDL, wait until the previous launch has completed and its memory is visible.
  ptx::griddepcontrol_wait();

  const RankSlot& slot = p.slots[blockIdx.z];
  const std::uint32_t world = static_cast<std::uint32_t>(p.world_size);
  const std::uint32_t rank = static_cast<std::uint32_t>(slot.rank);
  const std::uint32_t tid = blockIdx.x * blockDim.x + threadIdx.x;
  const std::uint32_t threads = gridDim.x * blockDim.x;
  const std::uint32_t row_packs = static_cast<std::uint32_t>(p.row_packs);
  const std::uint32_t tokens = static_cast<std::uint32_t>(p.tokens);
  const std::uint32_t per_round = static_cast<std::uint32_t>(p.tokens_per_round);  // a multiple of W
  const std::uint32_t rounds = (tokens + per_round - 1) / per_round;
  const std::uint64_t slot_stride = std::uint64_t(row_packs) * 16;

  // The first input packs do not depend on the flags: their loads overlap the flag read below.
  uint4 v[kUnroll];
  load_input_batch<T>(slot.input, tid, threads, (tokens < per_round ? tokens : per_round) * row_packs, v);

  // Phase 1: read this rank's flags and arrive (the last block to arrive advances them, see Arrival).
  // A PDL dependent may start launching now: it waits for this grid's completion before it reads anything.
  const LaunchFlags& f = read_flags(slot.flags);
  ptx::griddepcontrol_launch_dependents();
  const Arrival arrival(slot.flags, f, p);
  const std::uint64_t scatter = ::ar::stage_offset_bytes(static_cast<int>(f.current), 0, /*stages=*/2, f.buffer_bytes);
  const std::uint64_t broadcast =
      ::ar::stage_offset_bytes(static_cast<int>(f.current), 1, /*stages=*/2, f.buffer_bytes);
  std::uint8_t* const own = reinterpret_cast<std::uint8_t*>(p.peers.base[rank]);

  for (std::uint32_t round = 0; round < rounds; ++round) {
    const std::uint32_t t0 = round * per_round;  // t0 % W == 0
    const std::uint32_t t1 = tokens - t0 > per_round ? t0 + per_round : tokens;
    const std::uint32_t first = t0 * row_packs, last = t1 * row_packs;

    // Phase 2 (rs: st): store each of my packs of token t into SCATTER slot [t / W][rank] of its owner,
    // rank t % W (a unicast store; local when I own t).
    for (std::uint32_t base = first + tid; base < last; base += kUnroll * threads) {
      if (round != 0 || base != first + tid) load_input_batch<T>(slot.input, base, threads, last, v);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const std::uint32_t i = base + u * threads;
        if (i >= last) break;
        const std::uint32_t t = i / row_packs, c = i - t * row_packs;
        const std::uint32_t row = t / world, owner = t - row * world;
        ptx::st_v4(reinterpret_cast<std::uint8_t*>(p.peers.base[owner]) + scatter +
                       (std::uint64_t(row * world + rank) * row_packs + c) * 16,
                   v[u]);  // weak store: the owner polls every word
      }
    }

    // Phase 3 (clear): this round's share of the previous launch's stages 0 and 1, in that launch's layout.
    // Nothing in this launch touches the dirty buffer, and every store into it was read before the previous
    // launch ended, so the clear may come anywhere; here it fills the wait for the peers' SCATTER stores.
    clear_dirty_share(own, f, 0, round, rounds, tid, threads);
    clear_dirty_share(own, f, 1, round, rounds, tid, threads);

    // Phase 4 (rs: ld, r; then st): for each token I own (t % W == rank) poll its W SCATTER slots, fold
    // them in rank order, narrow, map -0 to +0, and store the row into BROADCAST[t] of every other rank and
    // into my output (my own tokens need no round trip through my BROADCAST stage, which stays empty).
    const std::uint32_t owned = t1 - t0 > rank ? (t1 - t0 - rank + world - 1) / world : 0;
    {
      const WaitContext waits{&p, &f, slot.rank, WaitSite::kScatterSlot, /*stage=*/0};
      const std::uint32_t owned_last = owned * row_packs;
      for (std::uint32_t i = tid; i < owned_last; i += threads) {
        const std::uint32_t j = i / row_packs, c = i - j * row_packs;
        const std::uint32_t t = t0 + rank + j * world;
        float acc[Pack<T>::kElements];
        if (!fold_slots<T, kFtz>(own + scatter + (std::uint64_t(t0 / world + j) * world * row_packs + c) * 16,
                                 slot_stride, static_cast<int>(world), p.chunk, t, c, acc, waits))
          return;  // timed out (recorded) or another wait did: end the launch
        const uint4 sum = narrow_pack<T>(acc, p.sanitize_result != 0);
        const std::uint32_t flat = t * row_packs + c;
        for (std::uint32_t q = 0; q < world; ++q)
          if (q != rank)
            ptx::st_v4(reinterpret_cast<std::uint8_t*>(p.peers.base[q]) + broadcast + std::uint64_t(flat) * 16,
                       sum);  // weak store
        store_output(slot.output, flat, sum);
      }
    }

    // Phase 5 (ag: ld): poll BROADCAST[t] of my own buffer for every token another rank owns, in token
    // order, and copy it to the output; kUnroll polls in flight per thread.
    {
      const WaitContext waits{&p, &f, slot.rank, WaitSite::kBroadcastSlot, /*stage=*/1};
      const std::uint32_t others_last = (t1 - t0 - owned) * row_packs;
      for (std::uint32_t base = tid; base < others_last; base += kUnroll * threads) {
        uint4 got[kUnroll];
        std::uint32_t at[kUnroll];  // flat pack index of each poll
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const std::uint32_t j = base + u * threads;
          if (j >= others_last) break;
          at[u] = first + other_token_pack(j, row_packs, world, rank);
          got[u] = ptx::ld_volatile_v4(own + broadcast + std::uint64_t(at[u]) * 16);  // relaxed poll
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          if (base + u * threads >= others_last) break;
          const std::uint32_t i = at[u];
          for (int retry = 0; retry < kInlinePolls && is_empty(got[u]); ++retry)
            got[u] = ptx::ld_volatile_v4(own + broadcast + std::uint64_t(i) * 16);  // relaxed poll
          if (is_empty(got[u])) {
            const std::uint32_t t = i / row_packs;
            got[u] = wait_until_full(own + broadcast + std::uint64_t(i) * 16, got[u], waits,
                                     static_cast<std::int32_t>(t % world), t, i - t * row_packs);
            if (is_empty(got[u])) return;  // timed out (recorded) or another wait did: end the launch
          }
          store_output(slot.output, i, got[u]);
        }
      }
    }
  }

  // Phase 6: the last block of the rank to arrive advances the flags.
  arrival.finish(slot.flags, f, p);
}

}  // namespace ar::cuda::detail
