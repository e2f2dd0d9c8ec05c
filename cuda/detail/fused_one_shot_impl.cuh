// Body of fused_one_shot (see cuda/fused.cuh for the contract): ONESHOT's protocol unchanged, then each row
// of the all-reduce goes through the residual add and the RMSNorm in one block (cuda/detail/norm_row.cuh).
#pragma once

#include "cuda/detail/norm_row_registers.cuh"
#include "cuda/detail/one_shot_steps.cuh"

namespace ar::cuda::detail {

template <DType T, bool kFtz, bool kExact, bool kCluster, QuantRows kRows, int kPacks>
__global__ void __launch_bounds__(kFusedBlockThreads, 1) fused_one_shot(const __grid_constant__ FusedParams fp) {
  const AllReduceParams& p = fp.all_reduce;
  // Phases 0 and 1: wait for the previous launch, read this rank's flags and arrive (see begin_rank_launch).
  uint4 v[kUnroll];
  const RankLaunch my = begin_rank_launch<T>(p, v, kFusedStoreChunk);
  const std::uint64_t stage =
      ::ar::stage_offset_bytes(static_cast<int>(my.f.current), 0, /*stages=*/1, my.f.buffer_bytes);
  const WaitContext waits{&p, &my.f, my.slot.rank, WaitSite::kOneShotSlot, /*stage=*/0};
  const NormSlot& io = fp.norm[blockIdx.z];
  // kPacks: 0, the rows of any launch tree; 1 or 2, register rows, which stage nothing (fused_row).
  static_assert(kPacks == 0 || !kExact, "register rows: the MUFU's scale");
  uint4* const staged = kPacks > 0 ? nullptr : staged_row(my.row_packs);
  RowCursor rows = begin_fused_rows<kPacks, kCluster, kRows>(fp);

  for (std::uint32_t round = 0; round < my.rounds; ++round) {
    const RoundRange in = my.round_range(round);
    // Phase 2 (st) and 3 (clear), as the plain ONESHOT kernel.
    one_shot_store_round<T>(my, round, in, v, stage);
    for (int s = 0; s < 4; ++s) clear_dirty_share(my.own_base(), my.f, s, round, my.rounds, my.tid, my.threads);

    // Phase 4 (ld, r, norm): a row per block; each pack of it folded from its W slots, as the plain kernel.
    const auto prefetch = [&](std::uint32_t t) {  // token t's residual and its W slots (contiguous)
      if (t < in.t1)
        prefetch_row(io, t, my.row_packs, my.own_base() + stage + std::uint64_t(t) * my.world * my.row_packs * 16,
                     my.world * my.row_packs * 16);
    };
    for (std::uint32_t t = in.t0 + rows.cluster; t < in.t1; t += rows.clusters) {
      prefetch(t + rows.clusters);  // the block's next row (prefetch_row)
      // No polls made ahead (fused_row's `load`): a pack's W slots would hold registers that two packs a
      // thread do not have (their kernels spilled 128-192 bytes).
      const bool done = fused_row<kPacks, T, kFtz, kCluster, kRows>(
          fp.tree, io, my.slot.output, t, rows, my.row_packs, staged,
          [&](int pack, uint4& sum, const NoPollsAhead*) {
            return one_shot_fold_pack<T, kFtz, kExact, kFusedOneGroupMax>(my, stage, t,
                                                                          static_cast<std::uint32_t>(pack), waits, sum);
          },
          [](int) { return NoPollsAhead{}; });
      if (!done) return;  // timed out (recorded) or another wait did: end the launch
    }
  }

  // Phase 5: the last block of the rank to arrive advances the flags.
  my.finish();
}

}  // namespace ar::cuda::detail
