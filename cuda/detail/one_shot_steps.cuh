// The two steps of ONESHOT that the plain and the fused kernel share: storing a round's packs into every
// rank's buffer, and folding the W slots of one pack (see cuda/one_shot.cuh for the contract).
//
// Internal to cuda/: included by the ONESHOT kernels' bodies (cuda/detail/*one_shot_impl.cuh) only.
#pragma once

#include "cuda/detail/exact_fold.cuh"
#include "cuda/detail/lamport.cuh"
#include "cuda/detail/rank_launch.cuh"

namespace ar::cuda::detail {

/// Store my sanitised packs of the round into slot [t][rank] of every rank's buffer `current` (stage at
/// byte `stage`), mine included: W unicast stores where FlashInfer issues one multicast store.
template <DType T>
__device__ __forceinline__ void one_shot_store_round(const RankLaunch& my, std::uint32_t round, const RoundRange& in,
                                                     uint4 (&v)[kUnroll], std::uint64_t stage) {
  my.for_each_input_pack<T>(round, in, v, [&](std::uint32_t t, std::uint32_t c, const uint4& pack) {
    const std::uint64_t offset = stage + (std::uint64_t(t * my.world + my.rank) * my.row_packs + c) * 16;
    for (std::uint32_t q = 0; q < my.world; ++q)  // weak stores: the reader polls every word
      ptx::st_v4(reinterpret_cast<std::uint8_t*>(my.p.peers.base[q]) + offset, pack);
  });
}

/// Poll the W slots of pack c of token t in my own buffer and fold them in rank order (ReductionOrder; in one poll
/// group up to kOneGroupMax ranks, fold_slots), or sum them as the invariant profile does (kExact,
/// exact_fold.cuh); `sum` gets the narrowed pack. False when a wait gave up.
template <DType T, bool kFtz, bool kExact, int kOneGroupMax>
__device__ __forceinline__ bool one_shot_fold_pack(const RankLaunch& my, std::uint64_t stage, std::uint32_t t,
                                                   std::uint32_t c, const WaitContext& waits, uint4& sum) {
  const std::uint8_t* first = my.own_base() + stage + (std::uint64_t(t) * my.world * my.row_packs + c) * 16;
  if constexpr (kExact)
    return invariant_fold_slots<T>(first, my.slot_stride, static_cast<int>(my.world), t, c, sum, waits);
  float acc[Pack<T>::kElements];
  if (!fold_slots<T, kFtz, kOneGroupMax>(first, my.slot_stride, static_cast<int>(my.world), my.p.chunk, t, c, acc,
                                         waits))
    return false;
  sum = narrow_pack<T>(acc, my.p.sanitize_result != 0);
  return true;
}

}  // namespace ar::cuda::detail
