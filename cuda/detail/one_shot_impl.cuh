// Body of one_shot_st_ld_r (see cuda/one_shot.cuh for the contract, docs/kernels.md "Algorithms" for the phases).
//
// Indices: pack and token indices are 32-bit (the host refuses N*D*W past 2^31 elements, reference
// check_fits_workspace); byte offsets are 64-bit (a Lamport buffer may reach 4 GiB).
#pragma once

#include "cuda/detail/one_shot_steps.cuh"

namespace ar::cuda::detail {

template <DType T, bool kFtz, bool kExact>
__global__ void __launch_bounds__(kBlockThreads, kExact ? kMinBlocksPerSmExact : kMinBlocksPerSm)
    one_shot_st_ld_r(const __grid_constant__ AllReduceParams p) {
  // Phases 0 and 1: wait for the previous launch, read this rank's flags and arrive (see begin_rank_launch).
  uint4 v[kUnroll];  // a batch of input packs in flight (begin_rank_launch loads the first)
  const RankLaunch my = begin_rank_launch<T>(p, v);
  const std::uint64_t stage =
      ::ar::stage_offset_bytes(static_cast<int>(my.f.current), 0, /*stages=*/1, my.f.buffer_bytes);
  const WaitContext waits{&p, &my.f, my.slot.rank, WaitSite::kOneShotSlot, /*stage=*/0};

  for (std::uint32_t round = 0; round < my.rounds; ++round) {
    const RoundRange in = my.round_range(round);

    // Phase 2 (st): store my sanitised packs into slot [t][rank] of every rank's buffer `current`, mine
    // included: W unicast stores where FlashInfer issues one multicast store.
    one_shot_store_round<T>(my, round, in, v, stage);

    // Phase 3 (clear): this round's share of every stage the previous launch used, in that launch's layout.
    // Nothing in this launch touches the dirty buffer, and every store into it was read before the previous
    // launch ended, so the clear may come anywhere; here it fills the wait for the peers' stores, when the
    // memory system has room (at the end it would be a phase of its own).
    for (int s = 0; s < 4; ++s) clear_dirty_share(my.own_base(), my.f, s, round, my.rounds, my.tid, my.threads);

    // Phase 4 (ld, r): poll the W slots of each of my packs in my own buffer and fold them in rank order.
    for (std::uint32_t i = in.first + my.tid; i < in.last; i += my.threads) {
      const std::uint32_t t = i / my.row_packs, c = i - t * my.row_packs;
      uint4 sum;
      if (!one_shot_fold_pack<T, kFtz, kExact, kOneShotOneGroupMax>(my, stage, t, c, waits, sum))
        return;  // timed out (recorded) or another wait did: end the launch
      store_output(my.slot.output, i, sum);
    }
  }

  // Phase 5: the last block of the rank to arrive advances the flags.
  my.finish();
}

}  // namespace ar::cuda::detail
