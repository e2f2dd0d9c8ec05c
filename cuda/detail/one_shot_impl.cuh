// Body of one_shot_st_ld_r (see cuda/one_shot.cuh for the contract, README "Algorithms" for the phases).
//
// Indices: pack and token indices are 32-bit (the host refuses N*D*W past 2^31 elements, reference
// check_fits_workspace); byte offsets are 64-bit (a Lamport buffer may reach 4 GiB).
#pragma once

#include "cuda/detail/lamport.cuh"
#include "cuda/detail/rank_launch.cuh"

namespace ar::cuda::detail {

template <DType T, bool kFtz>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerSm)
    one_shot_st_ld_r(const __grid_constant__ AllReduceParams p) {
  // Phases 0 and 1: wait for the previous launch, read this rank's flags and arrive (see begin_rank_launch).
  uint4 v[kUnroll];  // a batch of input packs in flight (begin_rank_launch loads the first)
  const RankLaunch my = begin_rank_launch<T>(p, v);
  const std::uint64_t stage =
      ::ar::stage_offset_bytes(static_cast<int>(my.f.current), 0, /*stages=*/1, my.f.buffer_bytes);
  std::uint8_t* const own = my.own_base();
  const WaitContext waits{&p, &my.f, my.slot.rank, WaitSite::kOneShotSlot, /*stage=*/0};

  for (std::uint32_t round = 0; round < my.rounds; ++round) {
    const RoundRange in = my.round_range(round);

    // Phase 2 (st): store my sanitised packs into slot [t][rank] of every rank's buffer `current`, mine
    // included: W unicast stores where FlashInfer issues one multicast store.
    my.for_each_input_pack<T>(round, in, v, [&](std::uint32_t t, std::uint32_t c, const uint4& pack) {
      const std::uint64_t offset = stage + (std::uint64_t(t * my.world + my.rank) * my.row_packs + c) * 16;
      for (std::uint32_t q = 0; q < my.world; ++q)  // weak stores: the reader polls every word
        ptx::st_v4(reinterpret_cast<std::uint8_t*>(p.peers.base[q]) + offset, pack);
    });

    // Phase 3 (clear): this round's share of every stage the previous launch used, in that launch's layout.
    // Nothing in this launch touches the dirty buffer, and every store into it was read before the previous
    // launch ended, so the clear may come anywhere; here it fills the wait for the peers' stores, when the
    // memory system has room (at the end it would be a phase of its own).
    for (int s = 0; s < 4; ++s) clear_dirty_share(own, my.f, s, round, my.rounds, my.tid, my.threads);

    // Phase 4 (ld, r): poll the W slots of each of my packs in my own buffer and fold them in rank order.
    for (std::uint32_t i = in.first + my.tid; i < in.last; i += my.threads) {
      const std::uint32_t t = i / my.row_packs, c = i - t * my.row_packs;
      float acc[Pack<T>::kElements];
      if (!fold_slots<T, kFtz>(own + stage + (std::uint64_t(t) * my.world * my.row_packs + c) * 16, my.slot_stride,
                               static_cast<int>(my.world), p.chunk, t, c, acc, waits))
        return;  // timed out (recorded) or another wait did: end the launch
      store_output(my.slot.output, i, narrow_pack<T>(acc, p.sanitize_result != 0));
    }
  }

  // Phase 5: the last block of the rank to arrive advances the flags.
  my.finish();
}

}  // namespace ar::cuda::detail
