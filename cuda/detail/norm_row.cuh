// The fused residual-add + RMSNorm of one row, computed by one block of ours in FlashInfer's order (SPEC 7).
//
// FlashInfer computes a row with a cluster of cs blocks of bs threads, each thread adding the squares of
// its own packs; the row's sum is then a tree: per-thread sums, xor butterflies in each warp, a second
// butterfly over each block's warp sums, and the cluster's fold of the block sums. Our block has its own
// width (any multiple of 32), so it walks FlashInfer's threads warp by warp: our warp k plays FlashInfer's
// warps k, k + (our warps), ... with its lanes as theirs, so every shuffle partner and every +0 of a missing
// lane is the same, and every fp32 add happens in the same order on the same values (reference
// fused_rms_norm_row is the model; NormTree carries the launch it describes).
//
// Internal to cuda/: included by the fused kernels' bodies only.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cuda/detail/lamport.cuh"
#include "cuda/detail/quant_row.cuh"
#include "cuda/detail/sum_tree.cuh"
#include "reference/fused_launch.h"
#include "reference/rsqrt_rn.h"

namespace ar::cuda::detail {

/// op applied word by word to two packs: (op(a.x, b.x), ..., op(a.w, b.w)).
template <class Op>
__device__ __forceinline__ uint4 word_by_word(const uint4& a, const uint4& b, Op&& op) {
  return make_uint4(op(a.x, b.x), op(a.y, b.y), op(a.z, b.z), op(a.w, b.w));
}

/// pre = a + b in T, element by element (SPEC 7's `pre`): the 16-bit add two elements a word (one rounding
/// each, subnormals kept) or the profile's fp32 add.
template <DType T, bool kFtz>
__device__ __forceinline__ uint4 add_pack_in_t(const uint4& a, const uint4& b) {
  if constexpr (T == DType::kBf16)
    return word_by_word(a, b, ptx::add_rn_bf16x2);
  else if constexpr (T == DType::kFp16)
    return word_by_word(a, b, ptx::add_rn_f16x2);
  else
    return word_by_word(a, b, [](std::uint32_t x, std::uint32_t y) {
      return __float_as_uint(add_f32<kFtz>(__uint_as_float(x), __uint_as_float(y)));
    });
}

/// Each element of a 16-bit pack squared in T (ONESHOT's square), two a word.
template <DType T>
__device__ __forceinline__ uint4 square_pack_in_t(const uint4& x) {
  static_assert(T != DType::kFp32, "fp32 squares are fp32 fmas");
  if constexpr (T == DType::kBf16)
    return word_by_word(x, x, ptx::mul_rn_bf16x2);
  else
    return word_by_word(x, x, ptx::mul_rn_f16x2);
}

/// A thread's sum of squares continued over one pack of `pre`, elements in order: ONESHOT's squares in T added
/// in fp32 (`square_in_t`), else TWOSHOT's fp32 fma of the widened element.
template <DType T, bool kFtz>
__device__ __forceinline__ float add_squares(float acc, const uint4& pre, bool square_in_t) {
  if constexpr (T != DType::kFp32) {
    if (square_in_t) {
      const uint4 squares = square_pack_in_t<T>(pre);
#pragma unroll
      for (int e = 0; e < Pack<T>::kElements; ++e) acc = add_f32<kFtz>(acc, Pack<T>::widen(squares, e));
      return acc;
    }
  }
#pragma unroll
  for (int e = 0; e < Pack<T>::kElements; ++e) {
    const float f = Pack<T>::widen(pre, e);
    acc = fma_f32<kFtz>(f, f, acc);
  }
  return acc;
}

/// Where pack `pack` of row t lies in an [N, D] tensor.
__device__ __forceinline__ std::uint64_t row_pack_index(std::uint32_t t, std::uint32_t row_packs, int pack) {
  return std::uint64_t(t) * row_packs + static_cast<std::uint32_t>(pack);
}

/// Whether the midpoint above the fp32 `lower` lies below 1/sqrt(x), decided exactly (reference
/// rsqrt_rn_by_correction): m^2 is exact in fp64 and one fma gives the sign of m^2 x - 1.
__device__ __forceinline__ bool midpoint_below_root(std::uint32_t lower, double x) {
  const double m = __longlong_as_double(static_cast<long long>(rsqrt_midpoint_fp64_bits(lower)));
  return ptx::fma_rn_f64(ptx::mul_rn_f64(m, m), x, -1.0) < 0.0;
}

/// The invariant profile's correctly rounded rsqrt (reference rsqrt_rn_fp32), as reference
/// rsqrt_rn_by_correction computes it: the MUFU's guess, then one round of independent midpoint tests around
/// it (their count names the answer within kRsqrtWindow ulps), and one-ulp steps beyond the window only if a
/// guess ever lies that far off (tests/reference/rsqrt_rn_test.cpp: never, on the MUFU reference/mufu.h
/// models). Zeros, infinities, NaNs and negatives keep the guess, which is already the answer there.
/// A whole warp computes it, every lane with the same x: lane k runs the window's k-th test, so the round
/// costs one fp64 test's latency, not six (one thread running all six cost a fused row about 0.15 us on an
/// H200); every lane returns the answer.
__device__ __forceinline__ float rsqrt_rn_warp(float x) {
  const float y = ptx::rsqrt_approx_f32(x);
  if (!(x > 0.0f) || !(x < __int_as_float(0x7F800000))) return y;  // the same x in every lane: no divergence
  const double wide = ptx::cvt_f64_f32(x);
  const std::uint32_t guess = __float_as_uint(y);
  constexpr int kTests = 2 * (kRsqrtWindow + 1);
  const int lane = static_cast<int>(threadIdx.x) % kWarpLanes;
  const std::uint32_t lower = guess - static_cast<std::uint32_t>(kRsqrtWindow + 1) + static_cast<std::uint32_t>(lane);
  const int below = ptx::vote_count(lane < kTests && midpoint_below_root(lower, wide));
  std::uint32_t r = guess - static_cast<std::uint32_t>(kRsqrtWindow + 1) + static_cast<std::uint32_t>(below);
  if (below == 0) {
#pragma unroll 1
    for (int i = 0; i < kRsqrtCorrections && !midpoint_below_root(r - 1, wide); ++i) --r;
  } else if (below == kTests) {
#pragma unroll 1
    for (int i = 0; i < kRsqrtCorrections && midpoint_below_root(r, wide); ++i) ++r;
  }
  return __uint_as_float(r);
}

/// rcp.approx.ftz(D), the one operation of the fast-math scale that does not depend on the row's values: a row
/// may compute it before its polls (row_scale).
__device__ __forceinline__ float hidden_rcp_approx(const NormTree& tree) {
  return ptx::rcp_approx_ftz_f32(ptx::cvt_rn_f32_u32(tree.hidden));
}

/// The row's scale rsqrt(sum / D + eps): under fast-math rcp.approx(D) (`rcp_hidden`, hidden_rcp_approx) and one
/// fma, then rsqrt.approx.ftz; without it div.rn, add.rn and rsqrt.approx, or (invariant profile) one fma with
/// 1/D rounded on the host and the correctly rounded rsqrt (reference row_scale), which whole warps compute:
/// every lane of a warp that calls it must, with the same sum.
template <bool kFtz>
__device__ __forceinline__ float row_scale(float sum, const NormTree& tree, float rcp_hidden) {
  const float epsilon = __uint_as_float(tree.epsilon);
  if constexpr (kFtz) {
    return ptx::rsqrt_approx_ftz_f32(ptx::fma_rn_ftz_f32(sum, rcp_hidden, epsilon));
  } else {
    const float hidden = ptx::cvt_rn_f32_u32(tree.hidden);
    if (tree.exact_rsqrt != 0)
      return rsqrt_rn_warp(ptx::fma_rn_f32(sum, __uint_as_float(tree.hidden_reciprocal), epsilon));
    return ptx::rsqrt_approx_f32(ptx::add_rn_f32(ptx::div_rn_f32(sum, hidden), epsilon));
  }
}
template <bool kFtz>
__device__ __forceinline__ float row_scale(float sum, const NormTree& tree) {
  return row_scale<kFtz>(sum, tree, kFtz ? hidden_rcp_approx(tree) : 0.0f);
}

/// TWOSHOT's first products (wb + f(gamma)) * f(pre) of a pack: its normalised values before the scale.
template <DType T, bool kFtz>
__device__ __forceinline__ void gamma_products(const uint4& pre, const uint4& gamma, const NormTree& tree,
                                               float (&out)[Pack<T>::kElements]) {
  const float bias = __uint_as_float(tree.weight_bias);
#pragma unroll
  for (int e = 0; e < Pack<T>::kElements; ++e) {
    const float g = add_f32<kFtz>(bias, Pack<T>::widen(gamma, e));  // a real add even for a bias of 0
    out[e] = mul_f32<kFtz>(g, Pack<T>::widen(pre, e));
  }
}

/// The normalised pack before its one narrowing to T: each element's products in the strategy's order (SPEC 7).
template <DType T, bool kFtz>
__device__ __forceinline__ void normalized_values(const uint4& pre, const uint4& gamma, float scale,
                                                  const NormTree& tree, float (&out)[Pack<T>::kElements]) {
  const float bias = __uint_as_float(tree.weight_bias);
  // One branch a pack, not a choice an element (a select there computes both orders' products).
  if (tree.two_shot_order) {
    gamma_products<T, kFtz>(pre, gamma, tree, out);
#pragma unroll
    for (int e = 0; e < Pack<T>::kElements; ++e) out[e] = mul_f32<kFtz>(out[e], scale);
  } else {
#pragma unroll
    for (int e = 0; e < Pack<T>::kElements; ++e) {
      const float g = add_f32<kFtz>(bias, Pack<T>::widen(gamma, e));
      out[e] = mul_f32<kFtz>(mul_f32<kFtz>(Pack<T>::widen(pre, e), scale), g);
    }
  }
}

/// The shared memory of the rows' reductions (one per block).
struct NormShared {
  /// FlashInfer's warp sums: in a block alone [their warp][their block] (lane b reads block b's, a row of
  /// banks at once) and two sets, alternating row by row, since it may read them after its only barrier of
  /// the row; with a cluster [their block][their warp] and one set, as a warp reads a block's; in register
  /// rows (norm_row_registers.cuh) [their block][their warp] and two sets, for the same reason.
  float warp_sums[2][kMaxNormWarps * kMaxNormClusterSize];
  /// FlashInfer's block sums, written by the blocks of the cluster that compute them into every block's
  /// copy; two sets, alternating row by row, so a block a row ahead never writes what another still reads.
  float block_sums[2][kMaxNormClusterSize];
  std::uint32_t failed;  ///< set (through the cluster) when a fetch of any block gave up
  /// The invariant profile's row scale, computed by one thread: its fp64 rsqrt in every warp would cost a
  /// block about as much issue time as the rest of the row's norm.
  float scale;
  QuantShared quant;  ///< a quantised row's maxima
};

__device__ __forceinline__ NormShared& norm_shared() {
  __shared__ NormShared shared;
  return shared;
}

/// Before a kernel's first row: clears the failure word and the first two rows' quantised maxima; with a
/// cluster, then waits until every block of the cluster has, so no block's report of a failure or maximum can
/// be cleared afterwards. A block alone reads the failure word only after the first row's barrier, and most
/// of its kernels write the maxima only after it too; kRows = kFp8DynamicEarly writes them before it, so
/// that kernel waits for its block here. Every thread must call it.
/// kCluster: the kernel is launched with clusters. A kernel that never is holds no cluster instruction at all
/// (measured on an H200: their mere presence cost a one-block row 0.4 us).
template <bool kCluster, QuantRows kRows>
__device__ __forceinline__ void norm_rows_begin() {
  if (threadIdx.x == 0) {
    NormShared& shared = norm_shared();
    shared.failed = 0u;
    shared.quant.row_max[0] = shared.quant.row_max[1] = 0u;
  }
  // kFp8DynamicEarly rows (TWOSHOT's dynamic FP8) max into the first row's word before that row's first
  // barrier: without a barrier here a warp could get there before thread 0's clear, and the row's scale would
  // miss that warp's maximum.
  if constexpr (kCluster)
    ptx::cluster_sync();
  else if constexpr (kRows == QuantRows::kFp8DynamicEarly)
    ptx::bar_cta_sync();
}

/// The rows of a round this block's group computes: t0 + cluster, t0 + cluster + clusters, ... where a group is
/// a cluster of blocks, or the `replicas` blocks that each compute a register row (replica_plan, cuda/params.h;
/// this block is the group's `replica` and writes the outputs of packs [replica * part, + part)), or one block;
/// and how many rows it has computed so far (norm_row's `nth`).
struct RowCursor {
  std::uint32_t cluster, clusters, nth;
  std::uint32_t replica = 0, part = 0;
};

/// norm_rows_begin, then the block's cursor over the rows; `replicas` > 1 only for register rows (never in a
/// cluster), whose parts have `part` packs (replica_plan: gridDim.x a multiple of `replicas`).
template <bool kCluster, QuantRows kRows>
__device__ __forceinline__ RowCursor begin_rows(std::uint32_t replicas = 1, std::uint32_t part = 0) {
  norm_rows_begin<kCluster, kRows>();
  const std::uint32_t blocks = kCluster ? ptx::cluster_nctarank() : replicas;
  return RowCursor{blockIdx.x / blocks, gridDim.x / blocks, 0, kCluster ? 0u : blockIdx.x % blocks, part};
}

/// Which of FlashInfer's blocks and warps this block of ours plays in a row: with a cluster of C blocks of
/// ours per row, block r plays FlashInfer's blocks r, r + C, ...; within them its warps take FlashInfer's warps
/// in turn. Without a cluster (C = 1) one block plays them all.
struct RowPart {
  int rank = 0;      ///< this block's rank in its cluster (r)
  int blocks = 1;    ///< blocks of ours per row (C)
  int their_warps;   ///< warps of one FlashInfer block
  int my_blocks;     ///< how many of FlashInfer's blocks this block plays
  __device__ int block_of(int local) const { return rank + local * blocks; }
};

template <bool kCluster>
__device__ __forceinline__ RowPart row_part(const NormTree& tree) {
  RowPart part;
  if constexpr (kCluster) {
    part.rank = static_cast<int>(ptx::cluster_ctarank());
    part.blocks = static_cast<int>(ptx::cluster_nctarank());
  }
  part.their_warps = (tree.block_size + kWarpLanes - 1) / kWarpLanes;
  part.my_blocks = part.rank < tree.cluster_size ? (tree.cluster_size - part.rank + part.blocks - 1) / part.blocks : 0;
  return part;
}

/// Calls f(block, their_warp) for each of FlashInfer's warps our warp plays: j = warp, warp + warps, ... below
/// my_blocks * their_warps, as (j / their_warps, j % their_warps) of block_of's numbering. Stepped without a
/// division (one by a run-time divisor is some twenty instructions, and the walk takes a step for about every
/// pack of a row).
template <class F>
__device__ __forceinline__ void for_each_their_warp(const RowPart& part, F&& f) {
  const int warp = static_cast<int>(threadIdx.x) / kWarpLanes;
  const int warps = static_cast<int>(blockDim.x) / kWarpLanes;
  const int step_local = warps / part.their_warps, step_warp = warps % part.their_warps;
  int local = warp / part.their_warps, their_warp = warp % part.their_warps;
  while (local < part.my_blocks) {
    f(part.block_of(local), their_warp);
    local += step_local;
    their_warp += step_warp;
    if (their_warp >= part.their_warps) {
      their_warp -= part.their_warps;
      ++local;
    }
  }
}

/// Calls f(pack) for each pack this thread computes in a row, FlashInfer's thread by FlashInfer's thread
/// (loads outer), and after each of FlashInfer's threads `done(block, their_warp, lanes)`, which every lane of
/// the warp reaches together (it may shuffle).
template <class Each, class Done>
__device__ __forceinline__ void for_each_their_thread(const NormTree& tree, const RowPart& part, int packs, Each&& each,
                                                      Done&& done) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpLanes;
  for_each_their_warp(part, [&](int block, int their_warp) {
    const int thread = their_warp * kWarpLanes + lane;
    const int lanes = min(kWarpLanes, tree.block_size - their_warp * kWarpLanes);
    for (int load = 0; load < tree.loads && lane < lanes; ++load) {
      const int pack = block * tree.packs_per_block + load * tree.block_size + thread;
      if (pack >= packs) break;  // later loads lie further out
      each(pack);
    }
    done(block, their_warp, lanes);
  });
}

/// Calls f(pack, active) for the packs for_each_their_thread gives this thread, with every lane of a warp in
/// every call: lanes past their FlashInfer block's width or the row's end are not `active`. A pack's
/// neighbour (pack ^ 1) is then lane ^ 1's when FlashInfer's blocks and block offsets are even.
template <class Each>
__device__ __forceinline__ void for_each_their_pack(const NormTree& tree, const RowPart& part, int packs, Each&& each) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpLanes;
  for_each_their_warp(part, [&](int block, int their_warp) {
    const int lanes = min(kWarpLanes, tree.block_size - their_warp * kWarpLanes);
    for (int load = 0; load < tree.loads; ++load) {
      const int first = block * tree.packs_per_block + load * tree.block_size + their_warp * kWarpLanes;
      if (first >= packs) break;  // the warp's later loads lie further out
      each(first + lane, lane < lanes && first + lane < packs);
    }
  });
}

/// Thread 0 of a block asks L2 for row t's residual and `lamport_bytes` of its all-reduce values at `lamport`
/// (a hint: nothing waits for it). The fused kernels call it for a block's next row as they start a row: a
/// block computes its rows one after another, each a round trip to memory for its inputs, then barriers and
/// the scale; with the next row's bytes on their way, its loads find them in L2. Measured on an H200 (W = 2,
/// bf16, D = 4096, same run): 16 MiB from 129.4 to 114.7 us (ONESHOT) and 122.0 to 111.9 us (TWOSHOT), 4 MiB
/// 1.2-1.3 us faster; two rows ahead gained a third of that (every block's rows in flight then crowd L2). It
/// costs a block of one row (decode) 0.03-0.1 us though it issues nothing there; a prefetch of a line a
/// thread (prefetch.global.L2) in its place measured the same, both ways.
__device__ __forceinline__ void prefetch_row(const NormSlot& io, std::uint32_t t, std::uint32_t row_packs,
                                             const std::uint8_t* lamport, std::uint32_t lamport_bytes) {
  if (threadIdx.x != 0) return;
  ptx::bulk_prefetch_l2(static_cast<const uint4*>(io.residual) + row_pack_index(t, row_packs, 0), row_packs * 16);
  ptx::bulk_prefetch_l2(lamport, lamport_bytes);
}

/// Row t of one rank, the `nth` row this block computes (from 0): `fetch(pack, &ar)` gives the all-reduced
/// pack (polling; false when a wait gave up). Writes residual_out and the normalised output of the packs this
/// block computes; `staged` (dynamic shared memory of staged_row_bytes, or null) keeps their `pre` for the
/// output pass. Every thread of every block of the cluster must call it for the same row, after
/// norm_rows_begin (it holds block and cluster barriers); returns false, in every thread of the cluster, when
/// any fetch gave up. kRows: the quantised rows this kernel computes (QuantRows); the tree's mode is one of
/// them.
template <DType T, bool kFtz, bool kCluster, QuantRows kRows, class Fetch>
__device__ __forceinline__ bool norm_row(const NormTree& tree, const NormSlot& io, void* output, std::uint32_t t,
                                         std::uint32_t nth, std::uint32_t row_packs, uint4* staged, Fetch&& fetch) {
  NormShared& shared = norm_shared();
  float* const warp_sums = shared.warp_sums[kCluster ? 0 : nth % 2];
  const auto warp_sum_at = [](int block, int their_warp) {
    return kCluster ? block * kMaxNormWarps + their_warp : their_warp * kMaxNormClusterSize + block;
  };
  const int lane = static_cast<int>(threadIdx.x) % kWarpLanes;
  const int warp = static_cast<int>(threadIdx.x) / kWarpLanes;
  const int warps = static_cast<int>(blockDim.x) / kWarpLanes;
  const int packs = static_cast<int>(row_packs);
  const RowPart part = row_part<kCluster>(tree);
  float* const sums = shared.block_sums[nth % 2];
  RowQuant<T, kFtz, kCluster, kRows> quant(tree, io);  // reads output_scale now, for after the row's polls
  constexpr bool kEarlyMax = decltype(quant)::kEarlyMax, kDominant = decltype(quant)::kDominant;
  // A block alone whose row is one round of the output walk (every decode row that fits a block): each
  // thread's gamma pack for the output pass, loaded now, so its latency lies behind the row's polls and
  // barriers, not after them. Four registers through the row; ptxas spills 12 bytes in one kernel for it
  // (fp16, invariant profile, no cluster).
  const bool one_round = part.blocks == 1 && packs <= static_cast<int>(blockDim.x);
  uint4 kept_gamma{};
  if (one_round && static_cast<int>(threadIdx.x) < packs) kept_gamma = load_input(io.gamma, threadIdx.x);

  // 1. FlashInfer's threads this block plays: pre = AR + residual (stored as residual_out) and each thread's
  // sum of squares from +0, loads outer and elements inner; then each warp's butterfly. kEarlyMax: also the
  // products before the scale, their maximum published before the barrier; kDominant: the fold of the
  // dominant product's rule, likewise.
  bool ok = true;
  float acc = 0.0f;
  for_each_their_thread(
      tree, part, packs,
      [&](int pack) {
        const std::uint64_t at = row_pack_index(t, row_packs, pack);
        // The residual and gamma do not depend on the all-reduce, so they are on their way before the poll:
        // the residual into registers (its latency after the poll cost a one-token row of D = 4096 about
        // 0.2 us on an H200), gamma towards L1 for the output pass (or into registers, kept_gamma), or into
        // registers here for dynamic FP8's products (kEarlyMax).
        uint4 gamma{};
        if constexpr (kEarlyMax)
          gamma = one_round && pack == static_cast<int>(threadIdx.x)
                      ? kept_gamma
                      : load_input(io.gamma, static_cast<std::uint32_t>(pack));
        else
          ptx::prefetch_l1(static_cast<const uint4*>(io.gamma) + pack);
        const uint4 residual = load_input(io.residual, static_cast<std::uint32_t>(at));
        uint4 ar{};
        if (ok) ok = fetch(pack, ar);  // after a failed wait the values are garbage, but every lane still shuffles
        const uint4 pre = add_pack_in_t<T, kFtz>(ar, residual);
        acc = add_squares<T, kFtz>(acc, pre, tree.square_in_t != 0);
        if constexpr (kEarlyMax) {
          float products[Pack<T>::kElements];
          gamma_products<T, kFtz>(pre, gamma, tree, products);
          quant.fold_products(products);
        }
        if constexpr (kDominant) {
          // gamma from L1 (prefetched above; kDominant kernels run in clusters, where no gamma is kept): loaded
          // before the poll, its registers would live across the poll's call to its slow path, which spilled.
          const uint4 g = load_input(io.gamma, static_cast<std::uint32_t>(pack));
          quant.fold.template fold_pack<T, kFtz>(pre, g, __uint_as_float(tree.weight_bias));
        }
        reinterpret_cast<uint4*>(io.residual_out)[at] = pre;
        if (staged != nullptr) staged[pack] = pre;
      },
      [&](int block, int their_warp, int lanes) {
        const float sum = butterfly<kFtz>(acc, lanes);
        if (lane == 0) warp_sums[warp_sum_at(block, their_warp)] = sum;
        acc = 0.0f;
      });
  if constexpr (kEarlyMax) quant.publish_max(shared.quant, nth);  // read after the barrier below
  if constexpr (kDominant) quant.publish_dominant();              // read in step 2, by its last warp
  const bool block_failed = ptx::bar_cta_sync_or(!ok);
  if constexpr (kEarlyMax) quant.clear_later_max(shared.quant, nth);

  float scale;
  if (!kCluster && tree.exact_rsqrt == 0 && part.their_warps <= kMaxOneThreadLeaves) {
    // 2 and 3 for a block alone whose FlashInfer blocks have at most 8 warps (decode rows of up to 512
    // packs; a many-token launch has wider blocks, see kMaxOneThreadLeaves): after the one barrier every warp has
    // the row's sum itself. Lane b computes the second level of FlashInfer's block b from its warp sums
    // (butterfly_in_one_thread: a few adds where a warp's five shuffles were round trips, then a barrier);
    // the fold of those from +0 in block order (or block 0's alone) goes through shuffles, then the scale:
    // the same bits in every thread. Measured on an H200 (W = 2, bf16, D = 4096, 1-16 tokens): 0.17-0.19 us
    // off the fused call, both strategies.
    if (block_failed) return false;
    const float sum = row_sum_by_lanes<kFtz, /*kLean=*/false>(tree, lane, part.my_blocks, part.their_warps,
                                                               [&](int w) { return warp_sums[warp_sum_at(lane, w)]; });
    scale = row_scale<kFtz>(sum, tree);
  } else {
    // 2. The second level of each FlashInfer block this block plays: its warp sums, +0 beyond them, butterflied
    // again by a warp (over the block's own lanes when it is a single partial warp); lane 0 gives the sum to
    // every block of the cluster. (A warp's shuffles, not butterfly_in_one_thread: with a cluster, that in the lanes
    // of one warp made the quantised rows of D = 8192 0.05-0.1 us slower on an H200.)
    const int second_lanes =
        (tree.block_size % kWarpLanes != 0 && part.their_warps == 1) ? tree.block_size : kWarpLanes;
    for (int local = warp; local < part.my_blocks; local += warps) {
      const int block = part.block_of(local);
      const float v = lane < part.their_warps ? warp_sums[warp_sum_at(block, lane)] : 0.0f;
      const float sum = butterfly<kFtz>(v, second_lanes);
      if (lane == 0) {
        if constexpr (kCluster) {
          for (int r = 0; r < part.blocks; ++r) ptx::st_shared_cluster_u32(&sums[block], r, __float_as_uint(sum));
        } else {
          sums[block] = sum;
        }
      }
      if constexpr (!kCluster) {
        // A block alone whose first block sum is the row's: its scale now, before the barrier (step 3), by the
        // whole warp (lane 0's sum; lanes beyond a partial second level hold +0).
        if (tree.exact_rsqrt != 0 && block == 0 && !tree.cluster_fold) {
          const float scale = row_scale<kFtz>(ptx::shfl_idx_f32(sum, 0), tree);
          if (lane == 0) shared.scale = scale;
        }
      }
    }
    // The block's dominant product, by a warp that plays no block of the tree in step 2 where there is one.
    if constexpr (kDominant) {
      if (warp == warps - 1) quant.merge_dominant(nth, part.rank, part.blocks);
    }
    if (block_failed && threadIdx.x == 0) {
      if constexpr (kCluster) {
        for (int r = 0; r < part.blocks; ++r) ptx::st_shared_cluster_u32(&shared.failed, r, 1u);
      } else {
        shared.failed = 1u;
      }
    }
    // Also makes the staged row and every residual_out store visible to the whole block.
    if constexpr (kCluster)
      ptx::cluster_sync();
    else
      ptx::bar_cta_sync();
    if (shared.failed != 0) return false;

    // 3. The cluster's fold of the block sums from +0 in block order (or the one block's sum), and the scale:
    // every thread computes the same bits itself, which costs less than a barrier to share them. The invariant
    // profile's rsqrt (fp64 tests, one per lane) is dearer: a block alone has one warp compute it, in step 2,
    // before the barrier (a block playing several of the tree's blocks here, behind one more barrier); with a
    // cluster (few rows, where latency counts more than issue) every warp still does.
    float sum = sums[0];
    if (tree.cluster_fold) {
      sum = 0.0f;
      for (int block = 0; block < tree.cluster_size; ++block) sum = add_f32<kFtz>(sum, sums[block]);
    }
    if (tree.exact_rsqrt == 0 || kCluster) {
      scale = row_scale<kFtz>(sum, tree);
    } else if (!tree.cluster_fold) {
      scale = shared.scale;
    } else {
      if (warp == 0) {
        const float scale = row_scale<kFtz>(sum, tree);  // the whole warp (rsqrt_rn_warp)
        if (lane == 0) shared.scale = scale;
      }
      ptx::bar_cta_sync();
      scale = shared.scale;
    }
  }
  if constexpr (kEarlyMax) quant.take_row_max(shared.quant, nth, scale);
  if constexpr (kDominant) quant.take_dominant(nth, part.blocks, scale, __uint_as_float(tree.weight_bias));

  // 4. The output of the packs this block computed: all of the row's, pack by pack, for a block alone; as
  // step 1 walked them in a cluster (each block staged only its own). Every lane of a warp runs every round
  // of the walk (those without a pack too, not active), so a pack's NVFP4 partner (pack ^ 1) is the
  // neighbouring lane's, there to shuffle with: always for a block alone, and in a cluster when FlashInfer's
  // blocks and their offsets are even (every launch tree of a 16-bit D that NVFP4 takes, but odd blocks).
  const bool neighbours = part.blocks == 1 || (tree.packs_per_block % 2 == 0 && tree.block_size % 2 == 0);
  const auto walk = [&](auto&& f) {
    if (part.blocks == 1) {
      for (int first = 0; first < packs; first += static_cast<int>(blockDim.x)) {
        const int pack = first + static_cast<int>(threadIdx.x);
        f(pack, pack < packs);
      }
    } else {
      for_each_their_pack(tree, part, packs, f);
    }
  };
  // A pack's fp32 values, from plain loads of what this launch wrote: `pre` from the staged row when it holds
  // the pack (`staged_here`: a block of a cluster staged only the packs step 1 gave it, which the walk gives
  // it again), else from residual_out, which every block of the cluster wrote before step 2's barrier.
  const auto pack_values = [&](int pack, bool staged_here, float (&v)[Pack<T>::kElements]) {
    const std::uint64_t at = row_pack_index(t, row_packs, pack);
    const uint4 pre = staged != nullptr && staged_here ? staged[pack]
                                                       : reinterpret_cast<const uint4*>(io.residual_out)[at];
    const uint4 gamma = one_round && pack == static_cast<int>(threadIdx.x)
                            ? kept_gamma
                            : load_input(io.gamma, static_cast<std::uint32_t>(pack));
    normalized_values<T, kFtz>(pre, gamma, scale, tree, v);
  };
  // Each mode's pass is a loop of its own (with the quantisation's first part, RowQuant::on_pack, or none):
  // in one loop, the compiler would hoist NVFP4's per-row address arithmetic ahead of every row, quantised
  // or not (measured on an H200: an unquantised one-token row of D = 4096 took 0.12 us longer).
  const auto output_pass = [&](auto&& also) {
    walk([&](int pack, bool active) {
      const std::uint64_t at = row_pack_index(t, row_packs, pack);
      float v[Pack<T>::kElements];
      uint4 y{};
      if (active) {
        pack_values(pack, /*staged_here=*/true, v);
        y = narrow_pack<T>(v, /*sanitize_result=*/false);
        reinterpret_cast<uint4*>(output)[at] = y;
      }
      also(pack, active, v, y);
    });
  };
  const auto quantized_pass = [&](auto mode) {
    output_pass([&](int pack, bool active, const float (&v)[Pack<T>::kElements], const uint4& y) {
      quant.template on_pack<decltype(mode)::value>(io, t, row_packs, pack, v, y, neighbours, active);
    });
  };
  if constexpr (kRows == QuantRows::kFp8Dynamic || kRows == QuantRows::kFp8DynamicEarly) {
    quantized_pass(std::integral_constant<QuantMode, QuantMode::kFp8Dynamic>{});
  } else if constexpr (kRows == QuantRows::kNvfp4) {
    quantized_pass(std::integral_constant<QuantMode, QuantMode::kNvfp4>{});
  } else if constexpr (kRows == QuantRows::kNoneOrFp8) {
    if (quant.mode == QuantMode::kFp8)
      quantized_pass(std::integral_constant<QuantMode, QuantMode::kFp8>{});
    else
      output_pass([](int, bool, const float (&)[Pack<T>::kElements], const uint4&) {});
  } else {
    switch (quant.mode) {
      case QuantMode::kFp8: quantized_pass(std::integral_constant<QuantMode, QuantMode::kFp8>{}); break;
      case QuantMode::kFp8Dynamic: quantized_pass(std::integral_constant<QuantMode, QuantMode::kFp8Dynamic>{}); break;
      case QuantMode::kNvfp4: quantized_pass(std::integral_constant<QuantMode, QuantMode::kNvfp4>{}); break;
      default: output_pass([](int, bool, const float (&)[Pack<T>::kElements], const uint4&) {}); break;
    }
  }

  // 5. The rest of the quantised outputs (quant_row.cuh).
  if (quant.mode != QuantMode::kNone) {
    quant.finish(io, t, row_packs, nth, shared.quant, neighbours, walk,
                 [&](int pack, bool fp32, bool staged_here, float (&v)[Pack<T>::kElements]) {
                   pack_values(pack, staged_here, v);
                   if (fp32) return;
                   const uint4 y = narrow_pack<T>(v, /*sanitize_result=*/false);
#pragma unroll
                   for (int e = 0; e < Pack<T>::kElements; ++e) v[e] = Pack<T>::widen(y, e);
                 });
  }
  if (staged != nullptr) ptx::bar_cta_sync();  // the next row's stores into the staged row come after these reads
  return true;
}

/// The dynamic shared memory of a block that runs norm_row (its staged row, or none).
__device__ __forceinline__ uint4* staged_row(std::uint32_t row_packs) {
  extern __shared__ uint4 dynamic_shared[];
  return staged_row_bytes(row_packs) > 0 ? dynamic_shared : nullptr;
}

}  // namespace ar::cuda::detail
