// The fused residual-add + RMSNorm of one row by a block alone whose threads each compute one or two packs of
// it, start to end in registers (register_packs, cuda/params.h): the decode rows of up to 1024 packs. The
// bits are norm_row's (the same tree, the same operations in the same order, but for adds of +0 that cannot
// change them: row_sum_by_lanes); what goes is everything that serves other launch shapes. A thread's packs
// are its own index and that plus the block's width, so there is no walk over FlashInfer's threads, no staged
// row and no second pass over packs: `pre`, gamma and the output's first products stay in registers from the
// poll to the output. And the work that does not wait for the row's sum (wb + gamma, the widened `pre`,
// TWOSHOT's products before the scale, rcp(D)) is done before the row's one barrier, where it fills the warp
// butterfly's shuffle latencies in the warp the block waits for, instead of after it, where every warp of the
// block issues it at once.
//
// Internal to cuda/: included by the fused kernels' bodies only.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cuda/detail/norm_row.cuh"

namespace ar::cuda::detail {

/// fused_row's `load` where a kernel makes no polls ahead (its `fetch` then ignores `loaded`).
struct NoPollsAhead {};

/// A pack's normalised values in two halves (normalized_values): before the row's scale is known, the
/// widened `pre` x and g = wb + gamma, and for TWOSHOT's order the products (wb + g) * x; with the scale,
/// (x * scale) * g (ONESHOT's order) or ((wb + g) * x) * scale. The same operations on the same values.
template <DType T, bool kFtz>
struct SplitProducts {
  static constexpr int kElements = Pack<T>::kElements;
  float first[kElements];  ///< x, or TWOSHOT's (wb + g) * x
  float g[kElements];      ///< wb + gamma

  __device__ __forceinline__ void before_scale(const uint4& pre, const uint4& gamma, const NormTree& tree) {
    const float bias = __uint_as_float(tree.weight_bias);
#pragma unroll
    for (int e = 0; e < kElements; ++e) {
      g[e] = add_f32<kFtz>(bias, Pack<T>::widen(gamma, e));  // a real add even for a bias of 0
      first[e] = Pack<T>::widen(pre, e);
    }
    if (tree.two_shot_order) {
#pragma unroll
      for (int e = 0; e < kElements; ++e) first[e] = mul_f32<kFtz>(g[e], first[e]);
    }
  }

  __device__ __forceinline__ void with_scale(float scale, const NormTree& tree, float (&out)[kElements]) const {
    if (tree.two_shot_order) {
#pragma unroll
      for (int e = 0; e < kElements; ++e) out[e] = mul_f32<kFtz>(first[e], scale);
    } else {
#pragma unroll
      for (int e = 0; e < kElements; ++e) out[e] = mul_f32<kFtz>(mul_f32<kFtz>(first[e], scale), g[e]);
    }
  }
};

/// Row t of one rank, the `nth` row this block computes, by a block alone of threads that hold kPacks packs
/// each (register_packs): thread i computes packs i and i + blockDim.x, playing FlashInfer's threads of the
/// same index (FlashInfer's thread j of block b loads pack b * bs + j). `fetch(pack, &ar, loaded)` gives the
/// all-reduced pack (polling; false when a wait gave up), from the first polls `load(pack)` made ahead when
/// `loaded` is not null. The block is `replica` of the blocks that compute the row (replica_plan,
/// cuda/params.h): it computes the whole row, and writes residual_out, the normalised output and the quantised
/// outputs of kRows (whose kernels never take the dominant product: a block alone) of its part's packs,
/// [replica * part, + part). Every thread of the block must call it for the same row, after
/// norm_rows_begin<false, kRows> (it holds the block's barriers); returns false, in every thread, when any
/// fetch gave up.
template <int kPacks, DType T, bool kFtz, QuantRows kRows, class Fetch, class Load>
__device__ __forceinline__ bool norm_row_in_registers(const NormTree& tree, const NormSlot& io, void* output,
                                                      std::uint32_t t, std::uint32_t nth, std::uint32_t replica,
                                                      std::uint32_t part, std::uint32_t row_packs, Fetch&& fetch,
                                                      Load&& load) {
  static_assert(kPacks == 1 || kPacks == 2, "register_packs gives one or two");
  constexpr int kElements = Pack<T>::kElements;
  NormShared& shared = norm_shared();
  // FlashInfer's warp sums by their warp's index in the row (block * their_warps + warp: pass j of our warp k
  // plays warp k + j * warps), two sets alternating row by row: the block reads a row's after its only barrier.
  float* const warp_sums = shared.warp_sums[nth % 2];
  const int lane = static_cast<int>(threadIdx.x) % kWarpLanes;
  const int warp = static_cast<int>(threadIdx.x) / kWarpLanes;
  const int warps = static_cast<int>(blockDim.x) / kWarpLanes;
  const int their_warps = tree.block_size / kWarpLanes;
  RowQuant<T, kFtz, /*kCluster=*/false, kRows> quant(tree, io);  // reads output_scale now, for after the polls
  constexpr bool kEarlyMax = decltype(quant)::kEarlyMax;
  static_assert(!decltype(quant)::kDominant, "a block alone never takes the dominant product");
  quant.replica = static_cast<int>(replica);

  int pack[kPacks];
  bool mine[kPacks];     // FlashInfer's thread has a pack of the row
  bool in_part[kPacks];  // the pack's outputs are this block's to write (the same in every lane of a warp)
  std::uint64_t at[kPacks];
  uint4 gamma[kPacks], residual[kPacks];
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    pack[j] = static_cast<int>(threadIdx.x + j * blockDim.x);
    mine[j] = pack[j] < static_cast<int>(row_packs);
    in_part[j] = static_cast<std::uint32_t>(pack[j]) - replica * part < part;
    at[j] = row_pack_index(t, row_packs, pack[j]);
    // What does not depend on the all-reduce is on its way before the poll.
    gamma[j] = residual[j] = uint4{};
    if (mine[j]) {
      gamma[j] = load_input(io.gamma, static_cast<std::uint32_t>(pack[j]));
      residual[j] = load_input(io.residual, static_cast<std::uint32_t>(at[j]));
    }
  }
  const float rcp_hidden = kFtz ? hidden_rcp_approx(tree) : 0.0f;

  // FlashInfer's threads: pre = AR + residual (stored as residual_out), each one's sum of squares from +0, and
  // its warp's butterfly (a thread without a pack holds +0, as in norm_row).
  bool ok = true;
  uint4 pre[kPacks];
  float squares[kPacks];
  SplitProducts<T, kFtz> products[kPacks];
  // With two packs, both packs' first polls are in flight before the thread waits for either (where the kernel
  // makes them ahead: TWOSHOT's one slot a pack).
  using Loads = decltype(load(0));
  Loads loads[kPacks];
  if constexpr (kPacks > 1 && !std::is_same_v<Loads, NoPollsAhead>) {
#pragma unroll
    for (int j = 0; j < kPacks; ++j)
      if (mine[j]) loads[j] = load(pack[j]);
  }
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    uint4 ar{};
    if (ok && mine[j])  // after a failed wait the values are garbage, but every lane still shuffles
      ok = fetch(pack[j], ar, kPacks > 1 ? &loads[j] : static_cast<const Loads*>(nullptr));
    pre[j] = add_pack_in_t<T, kFtz>(ar, residual[j]);
    squares[j] = mine[j] ? add_squares<T, kFtz>(0.0f, pre[j], tree.square_in_t != 0) : 0.0f;
    if (mine[j] && in_part[j]) reinterpret_cast<uint4*>(io.residual_out)[at[j]] = pre[j];
    products[j].before_scale(pre[j], gamma[j], tree);
    if constexpr (kEarlyMax) {
      if (mine[j]) {
        float a[kElements];
        gamma_products<T, kFtz>(pre[j], gamma[j], tree, a);
        quant.fold_products(a);
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    const float warp_sum = butterfly<kFtz>(squares[j], kWarpLanes);
    const int their_warp = warp + j * warps;
    if (lane == 0 && their_warp < tree.cluster_size * their_warps) warp_sums[their_warp] = warp_sum;
  }
  if constexpr (kEarlyMax) quant.publish_max(shared.quant, nth);  // read after the barrier below
  // Lane b's block's warp sums, read after the barrier from an address computed before it.
  const std::uint32_t my_leaves = ptx::shared_address_now(warp_sums + lane * their_warps);
  const bool block_failed = ptx::bar_cta_sync_or(!ok);
  if constexpr (kEarlyMax) quant.clear_later_max(shared.quant, nth);
  if (block_failed) return false;

  // The second level and the fold, in every warp, lean (row_sum_by_lanes): the same bits in every thread.
  const float sum = row_sum_by_lanes<kFtz, /*kLean=*/true>(tree, lane, tree.cluster_size, their_warps, [&](int w) {
    return ptx::ld_shared_f32(my_leaves + 4u * static_cast<std::uint32_t>(w));
  });
  const float scale = row_scale<kFtz>(sum, tree, rcp_hidden);
  if constexpr (kEarlyMax) quant.take_row_max(shared.quant, nth, scale);

  // The outputs of the part's packs, and their quantised outputs (RowQuant::on_pack: every lane of the warp calls
  // it, or none, as in_part is the warp's; a pack's NVFP4 partner, pack ^ 1, is lane ^ 1's). Dynamic FP8 of the
  // T outputs folds every pack of the row into its maximum (on_pack), where it writes no codes.
  constexpr bool kRowMax = kRows == QuantRows::kFp8Dynamic;
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    if (!kRowMax && !in_part[j]) continue;
    const bool writes = mine[j] && in_part[j];
    float v[kElements];
    products[j].with_scale(scale, tree, v);
    uint4 y{};
    if (mine[j]) y = narrow_pack<T>(v, /*sanitize_result=*/false);
    if (writes) reinterpret_cast<uint4*>(output)[at[j]] = y;
    if constexpr (kRowMax) {
      quant.template on_pack<QuantMode::kFp8Dynamic>(io, t, row_packs, pack[j], v, y, /*neighbours=*/true, mine[j]);
    } else if constexpr (kRows == QuantRows::kFp8DynamicEarly) {
      quant.template on_pack<QuantMode::kFp8Dynamic>(io, t, row_packs, pack[j], v, y, /*neighbours=*/true, writes);
    } else if constexpr (kRows == QuantRows::kNvfp4) {
      quant.template on_pack<QuantMode::kNvfp4>(io, t, row_packs, pack[j], v, y, /*neighbours=*/true, writes);
    } else {
      static_assert(kRows == QuantRows::kNoneOrFp8, "the fused kernels' rows");
      if (quant.mode == QuantMode::kFp8)
        quant.template on_pack<QuantMode::kFp8>(io, t, row_packs, pack[j], v, y, /*neighbours=*/true, writes);
    }
  }
  // The rest of the quantised outputs: dynamic FP8's maximum of the T outputs, its barrier and codes (of the
  // values on_pack kept for a thread's first pack; its second is recomputed from registers).
  if (quant.mode != QuantMode::kNone) {
    const auto walk = [&](auto&& f) {
#pragma unroll
      for (int j = 0; j < kPacks; ++j) f(pack[j], mine[j] && in_part[j]);
    };
    quant.finish(io, t, row_packs, nth, shared.quant, /*neighbours=*/true, walk,
                 [&](int p, bool fp32, bool, float(&values)[kElements]) {
#pragma unroll
                   for (int j = 0; j < kPacks; ++j)  // the walk's packs are this thread's own
                     if (p == pack[j]) products[j].with_scale(scale, tree, values);
                   if (fp32) return;
                   const uint4 narrowed = narrow_pack<T>(values, /*sanitize_result=*/false);
#pragma unroll
                   for (int e = 0; e < kElements; ++e) values[e] = Pack<T>::widen(narrowed, e);
                 });
  }
  return true;
}

/// A fused kernel's cursor over its rows (begin_rows): a row per cluster of blocks, or, for register rows
/// (kPacks > 0), per group of fp.row_replicas blocks alone (replica_plan).
template <int kPacks, bool kCluster, QuantRows kRows>
__device__ __forceinline__ RowCursor begin_fused_rows(const FusedParams& fp) {
  if constexpr (kPacks > 0)
    return begin_rows<kCluster, kRows>(static_cast<std::uint32_t>(fp.row_replicas), fp.row_part_packs);
  else
    return begin_rows<kCluster, kRows>();
}

/// Row t of one rank in a fused kernel, the next of `rows` (whose `nth` it counts): register rows where
/// kPacks > 0 (norm_row_in_registers, which stage nothing: `staged` is null), else norm_row; the same contract
/// as norm_row, but `fetch(pack, &ar, loaded)` takes the pack's first polls when `load(pack)` made them ahead
/// (else null).
template <int kPacks, DType T, bool kFtz, bool kCluster, QuantRows kRows, class Fetch, class Load>
__device__ __forceinline__ bool fused_row(const NormTree& tree, const NormSlot& io, void* output, std::uint32_t t,
                                          RowCursor& rows, std::uint32_t row_packs, uint4* staged, Fetch&& fetch,
                                          Load&& load) {
  static_assert(kPacks == 0 || !kCluster, "register rows: a block alone");
  const std::uint32_t nth = rows.nth++;
  if constexpr (kPacks > 0) {
    return norm_row_in_registers<kPacks, T, kFtz, kRows>(tree, io, output, t, nth, rows.replica, rows.part,
                                                         row_packs, fetch, load);
  } else {
    using Loads = decltype(load(0));
    return norm_row<T, kFtz, kCluster, kRows>(tree, io, output, t, nth, row_packs, staged, [&](int pack, uint4& ar) {
      return fetch(pack, ar, static_cast<const Loads*>(nullptr));
    });
  }
}

}  // namespace ar::cuda::detail
