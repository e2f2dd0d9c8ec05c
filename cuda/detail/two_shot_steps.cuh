// The steps of TWOSHOT that the plain and the fused kernel share: the scatter of a round's packs to their
// owners, and the reduction of the tokens I own (see cuda/two_shot.cuh for the contract).
//
// Internal to cuda/: included by the TWOSHOT kernels' bodies (cuda/detail/*two_shot_impl.cuh) only.
#pragma once

#include "cuda/detail/exact_fold.cuh"
#include "cuda/detail/lamport.cuh"
#include "cuda/detail/rank_launch.cuh"

namespace ar::cuda::detail {

/// Store each of my packs of token t into SCATTER slot [t / W][rank] of its owner, rank t % W (a unicast
/// store; local when I own t). `scatter`: the stage's byte offset.
template <DType T>
__device__ __forceinline__ void two_shot_scatter_round(const RankLaunch& my, std::uint32_t round, const RoundRange& in,
                                                       uint4 (&v)[kUnroll], std::uint64_t scatter) {
  my.for_each_input_pack<T>(round, in, v, [&](std::uint32_t t, std::uint32_t c, const uint4& pack) {
    const std::uint32_t row = t / my.world, owner = t - row * my.world;
    ptx::st_v4(reinterpret_cast<std::uint8_t*>(my.p.peers.base[owner]) + scatter +
                   (std::uint64_t(row * my.world + my.rank) * my.row_packs + c) * 16,
               pack);  // weak store: the owner polls every word
  });
}

/// Tokens of the round that I own (t % W == rank; the round starts at a multiple of W).
__device__ __forceinline__ std::uint32_t owned_tokens(const RankLaunch& my, const RoundRange& in) {
  return in.t1 - in.t0 > my.rank ? (in.t1 - in.t0 - my.rank + my.world - 1) / my.world : 0;
}

/// For each pack of the tokens I own: poll its W SCATTER slots, fold them in rank order (in one poll group up to
/// kOneGroupMax ranks, fold_slots; or as the invariant profile does: kExact, exact_fold.cuh), narrow, map -0 to
/// +0, and hand the pack to `deliver(t, flat pack index, sum)`. False when a wait gave up.
template <DType T, bool kFtz, bool kExact, int kOneGroupMax, class Deliver>
__device__ __forceinline__ bool two_shot_reduce_owned(const RankLaunch& my, const RoundRange& in, std::uint64_t scatter,
                                                      Deliver&& deliver) {
  const WaitContext waits{&my.p, &my.f, my.slot.rank, WaitSite::kScatterSlot, /*stage=*/0};
  const std::uint32_t owned_last = owned_tokens(my, in) * my.row_packs;
  for (std::uint32_t i = my.tid; i < owned_last; i += my.threads) {
    const std::uint32_t j = i / my.row_packs, c = i - j * my.row_packs;
    const std::uint32_t t = in.t0 + my.rank + j * my.world;
    const std::uint8_t* first =
        my.own_base() + scatter + (std::uint64_t(in.t0 / my.world + j) * my.world * my.row_packs + c) * 16;
    uint4 sum;
    if constexpr (kExact) {
      if (!invariant_fold_slots<T>(first, my.slot_stride, static_cast<int>(my.world), t, c, sum, waits)) return false;
    } else {
      float acc[Pack<T>::kElements];
      if (!fold_slots<T, kFtz, kOneGroupMax>(first, my.slot_stride, static_cast<int>(my.world), my.p.chunk, t, c, acc,
                                             waits))
        return false;
      sum = narrow_pack<T>(acc, my.p.sanitize_result != 0);
    }
    deliver(t, t * my.row_packs + c, sum);
  }
  return true;
}

}  // namespace ar::cuda::detail
