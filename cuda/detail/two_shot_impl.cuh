// Body of two_shot_rs_st_ag (see cuda/two_shot.cuh for the contract, docs/kernels.md "Algorithms" for the phases).
//
// Indices: pack and token indices are 32-bit (the host refuses N*D*W past 2^31 elements, reference
// check_fits_workspace); byte offsets are 64-bit (a Lamport buffer may reach 4 GiB).
#pragma once

#include "cuda/detail/two_shot_steps.cuh"

namespace ar::cuda::detail {

template <DType T, bool kFtz, bool kExact>
__global__ void __launch_bounds__(kBlockThreads, kExact ? kMinBlocksPerSmExact : kMinBlocksPerSm)
    two_shot_rs_st_ag(const __grid_constant__ AllReduceParams p) {
  // Phases 0 and 1: wait for the previous launch, read this rank's flags and arrive (see begin_rank_launch).
  uint4 v[kUnroll];  // a batch of input packs in flight (begin_rank_launch loads the first)
  const RankLaunch my = begin_rank_launch<T>(p, v);  // my.per_round: a multiple of W
  const std::uint64_t scatter =
      ::ar::stage_offset_bytes(static_cast<int>(my.f.current), 0, /*stages=*/2, my.f.buffer_bytes);
  const std::uint64_t broadcast =
      ::ar::stage_offset_bytes(static_cast<int>(my.f.current), 1, /*stages=*/2, my.f.buffer_bytes);
  std::uint8_t* const own = my.own_base();

  for (std::uint32_t round = 0; round < my.rounds; ++round) {
    const RoundRange in = my.round_range(round);  // in.t0 % W == 0

    // Phase 2 (rs: st): store each of my packs of token t into SCATTER slot [t / W][rank] of its owner,
    // rank t % W (a unicast store; local when I own t).
    two_shot_scatter_round<T>(my, round, in, v, scatter);

    // Phase 3 (clear): this round's share of the previous launch's stages 0 and 1, in that launch's layout.
    // Nothing in this launch touches the dirty buffer, and every store into it was read before the previous
    // launch ended, so the clear may come anywhere; here it fills the wait for the peers' SCATTER stores.
    clear_dirty_share(own, my.f, 0, round, my.rounds, my.tid, my.threads);
    clear_dirty_share(own, my.f, 1, round, my.rounds, my.tid, my.threads);

    // Phase 4 (rs: ld, r; then st): for each token I own (t % W == rank) poll its W SCATTER slots, fold
    // them in rank order, narrow, map -0 to +0, and store the row into BROADCAST[t] of every other rank and
    // into my output (my own tokens need no round trip through my BROADCAST stage, which stays empty).
    const std::uint32_t owned = owned_tokens(my, in);
    const bool reduced = two_shot_reduce_owned<T, kFtz, kExact, kTwoShotOneGroupMax>(
        my, in, scatter, [&](std::uint32_t, std::uint32_t flat, const uint4& sum) {
          for (std::uint32_t q = 0; q < my.world; ++q)
            if (q != my.rank)
              ptx::st_v4(reinterpret_cast<std::uint8_t*>(p.peers.base[q]) + broadcast + std::uint64_t(flat) * 16,
                         sum);  // weak store
          store_output(my.slot.output, flat, sum);
        });
    if (!reduced) return;  // timed out (recorded) or another wait did: end the launch

    // Phase 5 (ag: ld): poll BROADCAST[t] of my own buffer for every token another rank owns, in token
    // order, and copy it to the output; kUnroll polls in flight per thread.
    {
      const WaitContext waits{&p, &my.f, my.slot.rank, WaitSite::kBroadcastSlot, /*stage=*/1};
      const std::uint32_t others_last = (in.t1 - in.t0 - owned) * my.row_packs;
      for (std::uint32_t base = my.tid; base < others_last; base += kUnroll * my.threads) {
        uint4 got[kUnroll];
        std::uint32_t at[kUnroll];  // flat pack index of each poll
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const std::uint32_t j = base + u * my.threads;
          if (j >= others_last) break;
          at[u] = in.first + other_token_pack(j, my.row_packs, my.world, my.rank);
          got[u] = ptx::ld_volatile_v4(own + broadcast + std::uint64_t(at[u]) * 16);  // relaxed poll
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          if (base + u * my.threads >= others_last) break;
          const std::uint32_t i = at[u];
          // poll_slots' inline polls and wait, written out: one helper for the three made ptxas schedule the
          // kernels differently, and slower (docs/results.md, "One slot's poll written once").
          for (int retry = 0; retry < kInlinePolls && is_empty(got[u]); ++retry)
            got[u] = ptx::ld_volatile_v4(own + broadcast + std::uint64_t(i) * 16);  // relaxed poll
          if (is_empty(got[u])) {
            const std::uint32_t t = i / my.row_packs;
            got[u] = wait_until_full(own + broadcast + std::uint64_t(i) * 16, got[u], waits,
                                     static_cast<std::int32_t>(t % my.world), t, i - t * my.row_packs);
            if (is_empty(got[u])) return;  // timed out (recorded) or another wait did: end the launch
          }
          store_output(my.slot.output, i, got[u]);
        }
      }
    }
  }

  // Phase 6: the last block of the rank to arrive advances the flags.
  my.finish();
}

}  // namespace ar::cuda::detail
