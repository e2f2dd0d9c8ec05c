// Body of one_shot_st_ld_r (see cuda/one_shot.cuh for the contract, README "Algorithms" for the phases).
//
// Indices: pack and token indices are 32-bit (the host refuses N*D*W past 2^31 elements, reference
// check_fits_workspace); byte offsets are 64-bit (a Lamport buffer may reach 4 GiB).
#pragma once

#include "cuda/detail/lamport.cuh"

namespace ar::cuda::detail {

template <DType T, bool kFtz>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerSm)
    one_shot_st_ld_r(const __grid_constant__ AllReduceParams p) {
  // Phase 0: with PDL, wait until the previous launch has completed and its memory is visible.
  ptx::griddepcontrol_wait();

  const RankSlot& slot = p.slots[blockIdx.z];
  const std::uint32_t world = static_cast<std::uint32_t>(p.world_size);
  const std::uint32_t rank = static_cast<std::uint32_t>(slot.rank);
  const std::uint32_t tid = blockIdx.x * blockDim.x + threadIdx.x;
  const std::uint32_t threads = gridDim.x * blockDim.x;
  const std::uint32_t row_packs = static_cast<std::uint32_t>(p.row_packs);
  const std::uint32_t tokens = static_cast<std::uint32_t>(p.tokens);
  const std::uint32_t per_round = static_cast<std::uint32_t>(p.tokens_per_round);
  const std::uint32_t rounds = (tokens + per_round - 1) / per_round;
  const std::uint64_t slot_stride = std::uint64_t(row_packs) * 16;  // bytes between two source ranks' slots

  // The first input packs do not depend on the flags: their loads overlap the flag read below.
  uint4 v[kUnroll];
  load_input_batch<T>(slot.input, tid, threads, (tokens < per_round ? tokens : per_round) * row_packs, v);

  // Phase 1: read this rank's flags and arrive (the last block to arrive advances them, see Arrival).
  // A PDL dependent may start launching now: it waits for this grid's completion before it reads anything.
  const LaunchFlags& f = read_flags(slot.flags);
  ptx::griddepcontrol_launch_dependents();
  const Arrival arrival(slot.flags, f, p);
  const std::uint64_t stage = ::ar::stage_offset_bytes(static_cast<int>(f.current), 0, /*stages=*/1, f.buffer_bytes);
  std::uint8_t* const own = reinterpret_cast<std::uint8_t*>(p.peers.base[rank]);
  const WaitContext waits{&p, &f, slot.rank, WaitSite::kOneShotSlot, /*stage=*/0};

  for (std::uint32_t round = 0; round < rounds; ++round) {
    const std::uint32_t t0 = round * per_round;
    const std::uint32_t t1 = tokens - t0 > per_round ? t0 + per_round : tokens;
    const std::uint32_t first = t0 * row_packs, last = t1 * row_packs;

    // Phase 2 (st): store my sanitised packs into slot [t][rank] of every rank's buffer `current`, mine
    // included: W unicast stores where FlashInfer issues one multicast store.
    for (std::uint32_t base = first + tid; base < last; base += kUnroll * threads) {
      if (round != 0 || base != first + tid) load_input_batch<T>(slot.input, base, threads, last, v);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const std::uint32_t i = base + u * threads;
        if (i >= last) break;
        const std::uint32_t t = i / row_packs, c = i - t * row_packs;
        const std::uint64_t offset = stage + (std::uint64_t(t * world + rank) * row_packs + c) * 16;
        for (std::uint32_t q = 0; q < world; ++q)
          ptx::st_v4(reinterpret_cast<std::uint8_t*>(p.peers.base[q]) + offset, v[u]);  // weak store: the
                                                                                        // reader polls every word
      }
    }

    // Phase 3 (clear): this round's share of every stage the previous launch used, in that launch's layout.
    // Nothing in this launch touches the dirty buffer, and every store into it was read before the previous
    // launch ended, so the clear may come anywhere; here it fills the wait for the peers' stores, when the
    // memory system has room (at the end it would be a phase of its own).
    for (int s = 0; s < 4; ++s) clear_dirty_share(own, f, s, round, rounds, tid, threads);

    // Phase 4 (ld, r): poll the W slots of each of my packs in my own buffer and fold them in rank order.
    for (std::uint32_t i = first + tid; i < last; i += threads) {
      const std::uint32_t t = i / row_packs, c = i - t * row_packs;
      float acc[Pack<T>::kElements];
      if (!fold_slots<T, kFtz>(own + stage + (std::uint64_t(t) * world * row_packs + c) * 16, slot_stride,
                               static_cast<int>(world), p.chunk, t, c, acc, waits))
        return;  // timed out (recorded) or another wait did: end the launch
      store_output(slot.output, i, narrow_pack<T>(acc, p.sanitize_result != 0));
    }
  }

  // Phase 5: the last block of the rank to arrive advances the flags.
  arrival.finish(slot.flags, f, p);
}

}  // namespace ar::cuda::detail
