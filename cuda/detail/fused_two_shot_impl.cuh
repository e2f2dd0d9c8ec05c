// Body of fused_two_shot (see cuda/fused.cuh for the contract): TWOSHOT's protocol, except that the owner of
// a token stores its reduced row into the BROADCAST stage of every rank, its own included, and every rank
// then polls BROADCAST for all its rows and puts each through the residual add and the RMSNorm in one block
// (cuda/detail/norm_row.cuh). One kernel, where FlashInfer runs the all-reduce and rmsNormLamport as two.
#pragma once

#include "cuda/detail/fused_one_shot_impl.cuh"
#include "cuda/detail/two_shot_steps.cuh"

namespace ar::cuda::detail {

template <DType T, bool kFtz, bool kExact, bool kCluster, QuantRows kRows, int kPacks>
__global__ void __launch_bounds__(kFusedBlockThreads, 1) fused_two_shot(const __grid_constant__ FusedParams fp) {
  const AllReduceParams& p = fp.all_reduce;
  // Phases 0 and 1: wait for the previous launch, read this rank's flags and arrive (see begin_rank_launch).
  uint4 v[kUnroll];
  const RankLaunch my = begin_rank_launch<T>(p, v, kFusedStoreChunk);  // my.per_round: a multiple of W
  const std::uint64_t scatter =
      ::ar::stage_offset_bytes(static_cast<int>(my.f.current), 0, /*stages=*/2, my.f.buffer_bytes);
  const std::uint64_t broadcast =
      ::ar::stage_offset_bytes(static_cast<int>(my.f.current), 1, /*stages=*/2, my.f.buffer_bytes);
  const WaitContext waits{&p, &my.f, my.slot.rank, WaitSite::kBroadcastSlot, /*stage=*/1};
  const NormSlot& io = fp.norm[blockIdx.z];
  // kPacks: 0, the rows of any launch tree; 1 or 2, register rows, which stage nothing (fused_row).
  static_assert(kPacks == 0 || !kExact, "register rows: the MUFU's scale");
  uint4* const staged = kPacks > 0 ? nullptr : staged_row(my.row_packs);
  RowCursor rows = begin_fused_rows<kPacks, kCluster, kRows>(fp);

  for (std::uint32_t round = 0; round < my.rounds; ++round) {
    const RoundRange in = my.round_range(round);  // in.t0 % W == 0
    // Phases 2 (rs: st) and 3 (clear), as the plain TWOSHOT kernel.
    two_shot_scatter_round<T>(my, round, in, v, scatter);
    clear_dirty_share(my.own_base(), my.f, 0, round, my.rounds, my.tid, my.threads);
    clear_dirty_share(my.own_base(), my.f, 1, round, my.rounds, my.tid, my.threads);

    // Phase 4 (rs: ld, r; then st): reduce the tokens I own and store each row into BROADCAST[t] of every
    // rank, mine included (the norm reads every row from there; the clear record covers all N rows).
    const bool reduced = two_shot_reduce_owned<T, kFtz, kExact, kFusedOneGroupMax>(
        my, in, scatter, [&](std::uint32_t, std::uint32_t flat, const uint4& sum) {
          for (std::uint32_t q = 0; q < my.world; ++q)
            ptx::st_v4(reinterpret_cast<std::uint8_t*>(p.peers.base[q]) + broadcast + std::uint64_t(flat) * 16,
                       sum);  // weak store: the reader polls every word
        });
    // A wait that gave up has set the launch's abort word: the rows' polls below then give up at once, and
    // the row's barriers end the launch for every block of the cluster together (returning here could
    // leave the others waiting at a cluster barrier).
    (void)reduced;

    // Phase 5 (ag: ld, norm): a row per block, each pack polled in my BROADCAST stage.
    const auto prefetch = [&](std::uint32_t t) {  // row t's residual and its BROADCAST row
      if (t < in.t1)
        prefetch_row(io, t, my.row_packs, my.own_base() + broadcast + row_pack_index(t, my.row_packs, 0) * 16,
                     my.row_packs * 16);
    };
    for (std::uint32_t t = in.t0 + rows.cluster; t < in.t1; t += rows.clusters) {
      prefetch(t + rows.clusters);  // the block's next row (prefetch_row)
      const auto slot_of = [&](int pack) {
        return my.own_base() + broadcast + row_pack_index(t, my.row_packs, pack) * 16;
      };
      const bool done = fused_row<kPacks, T, kFtz, kCluster, kRows>(
          fp.tree, io, my.slot.output, t, rows, my.row_packs, staged,
          [&](int pack, uint4& got, const uint4* loaded) {  // `loaded`: the first poll, made ahead
            const std::uint8_t* slot = slot_of(pack);
            got = loaded != nullptr ? *loaded : ptx::ld_volatile_v4(slot);  // relaxed poll
            // poll_slots' inline polls and wait, written out: one helper for the three made ptxas schedule the
            // kernels differently, and slower (docs/results.md, "One slot's poll written once").
            for (int retry = 0; retry < kInlinePolls && is_empty(got); ++retry) got = ptx::ld_volatile_v4(slot);
            if (is_empty(got))
              got = wait_until_full(slot, got, waits, static_cast<std::int32_t>(t % my.world), t,
                                    static_cast<std::uint32_t>(pack));
            return !is_empty(got);
          },
          [&](int pack) { return ptx::ld_volatile_v4(slot_of(pack)); });
      if (!done) return;  // timed out (recorded) or another wait did: end the launch
    }
  }

  // Phase 6: the last block of the rank to arrive advances the flags.
  my.finish();
}

}  // namespace ar::cuda::detail
