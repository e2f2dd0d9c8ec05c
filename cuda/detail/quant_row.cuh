// The quantised outputs of one normalised row (SPEC section 13; model: reference/fused_quant.h): static FP8,
// dynamic FP8 with the token's scale, or NVFP4 with its block scales.
//
// What can be written from one pack is written in the norm's output pass, from the values it has just
// computed (RowQuant::on_pack): static FP8's codes, and NVFP4's blocks, whose two packs meet in neighbouring
// lanes by a shuffle. Dynamic FP8 needs the whole row's absmax first, a maximum of values from +0 up with
// NaNs dropped: any order gives the same bits, so its reduction (a redux per warp, then an atomic max into
// every block's shared word, then a barrier) needs no tree of FlashInfer's. Two ways to it:
// - The fp32 values in TWOSHOT's order ((wb + g) * pre) * scale (TWOSHOT, and the invariant profile's ONESHOT:
//   QuantRows::kFp8DynamicEarly): the maximum is taken of the products a = (wb + g) * pre before the scale is
//   known, and travels with the sum of squares through the row's own barrier; the output pass then writes
//   the codes (RowQuant says why).
// - The T outputs (FlashInfer's ONESHOT, and the ieee profile's): in a kernel launched with clusters, from the
//   row's dominant product where it has one (16-bit T: DominantProduct, which travels with the sum of squares
//   as the early maximum does, and the output pass writes the codes); else after the output pass, with a
//   barrier of its own (a cluster's, in a cluster), and a second pass that walks the output pass's packs
//   again, recomputed from the staged `pre`, gamma and the row's scale (the same bits), but for the first
//   pack, whose values stay in registers (at decode sizes a thread's only pack) where the kernel does not
//   take the dominant product.
// The mode is a runtime field of the tree, the same in every thread; a fused kernel computes the rows of one
// QuantRows (below), so it holds the code of its own modes only, and the separate norm kernel all of them.
//
// Internal to cuda/: included by norm_row.cuh only.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cuda/detail/lamport.cuh"
#include "reference/fused_launch.h"
#include "reference/fused_quant.h"
#include "reference/nvfp4_scale_layout.h"
#include "reference/quant_formats.h"

namespace ar::cuda::detail {

/// Which rows a kernel computes, a template parameter of the fused kernels (cuda/fused.cuh picks the kernel
/// from the call's mode): dynamic FP8 and NVFP4 run in kernels of their own, so no other row's kernel holds
/// their code, and within each the mode is known. Measured on an H200 (W = 2, bf16, one to 16 tokens, same
/// run): against one kernel for every mode, unquantised rows 0.05-0.17 us faster at D = 4096 and 0.25-0.57 us
/// at D = 8192, every quantised mode faster, but for FlashInfer's ONESHOT at D = 8192 (0.06-0.18 us slower:
/// ptxas now spills 32 bytes in its cluster kernels, where the kernel of every mode spilled none;
/// docs/results.md). Each of the two fused kernel files then compiles 48 kernels where it compiled 18.
enum class QuantRows {
  kAny,              ///< every mode, chosen at run time (the separate norm kernel)
  kNoneOrFp8,        ///< unquantised rows and static FP8
  kFp8Dynamic,       ///< dynamic FP8 of the T outputs (FlashInfer's ONESHOT): the dominant product, else the
                     ///< maximum after the output pass
  kFp8DynamicEarly,  ///< dynamic FP8 of fp32 values in TWOSHOT's order: the maximum before the scale (RowQuant)
  kNvfp4,            ///< NVFP4
};

/// Calls f(std::integral_constant<QuantRows, rows>{}) with the rows of the fused kernel for a call's mode
/// (never kAny). kEarly: the kernel's dynamic FP8 quantises fp32 values in the order ((wb + g) * pre) * scale
/// (TWOSHOT, and the invariant profile under both strategies: reference quant_arithmetic's dynamic_from_fp32,
/// NormLaunch's gamma_first), so it takes its maximum before the scale. NVFP4 takes no fp32 (the host refuses
/// it, reference validate_quant), so fp32 has no NVFP4 kernel: its rows get the unquantised kernel, which
/// would write no codes.
template <DType T, bool kEarly, class F>
void dispatch_quant_rows(QuantMode mode, F&& f) {
  using Rows = QuantRows;
  switch (mode) {
    case QuantMode::kFp8Dynamic:
      f(std::integral_constant<Rows, kEarly ? Rows::kFp8DynamicEarly : Rows::kFp8Dynamic>{});
      break;
    case QuantMode::kNvfp4:
      if constexpr (T != DType::kFp32) {
        f(std::integral_constant<Rows, Rows::kNvfp4>{});
        break;
      }
      [[fallthrough]];
    default: f(std::integral_constant<Rows, Rows::kNoneOrFp8>{}); break;
  }
}

/// What the quantised rows share within a block (a part of NormShared): dynamic FP8's row absmax as fp32 bits
/// (values from +0 up order as unsigned integers), words taken row by row in turn; each warp of the cluster
/// maxes its own into every block's word, which a row starts at 0 (norm_rows_begin for the first two rows,
/// then each row for a later one). A word is cleared between two barriers of the block, after its last reader
/// and before its next writer: two words with a cluster (two barriers a row), three for a block alone (one
/// barrier for a row's sum, norm_row; a staged row's barrier at its end is not counted on).
struct QuantShared {
  std::uint32_t row_max[3];
  template <bool kCluster>
  static constexpr std::uint32_t kWords = kCluster ? 2u : 3u;
  template <bool kCluster>
  static __device__ __forceinline__ std::uint32_t word_of(std::uint32_t nth) {
    return nth % kWords<kCluster>;
  }
};

// The profile's operations (reference quant_divide, quant_max, ...; multiplies are mul_f32): fast-math's
// approximate division, FTZ max/min/abs under kFtz; the IEEE ones otherwise (ieee and invariant profiles).
template <bool kFtz>
__device__ __forceinline__ float quant_divide(float a, float b) {
  if constexpr (kFtz) return ptx::div_approx_ftz_f32(a, b);
  else return ptx::div_rn_f32(a, b);
}
template <bool kFtz>
__device__ __forceinline__ float quant_reciprocal(float b) {
  if constexpr (kFtz) return ptx::rcp_approx_ftz_f32(b);
  else return ptx::div_rn_f32(1.0f, b);
}
template <bool kFtz>
__device__ __forceinline__ float quant_max(float a, float b) {
  if constexpr (kFtz) return ptx::max_ftz_f32(a, b);
  else return ptx::max_f32(a, b);
}
template <bool kFtz>
__device__ __forceinline__ float quant_min(float a, float b) {
  if constexpr (kFtz) return ptx::min_ftz_f32(a, b);
  else return ptx::min_f32(a, b);
}
template <bool kFtz>
__device__ __forceinline__ float quant_abs(float a) {
  if constexpr (kFtz) return ptx::abs_ftz_f32(a);
  else return ptx::abs_f32(a);
}

/// e4m3 codes of two values, `lo` in bits 7..0 (the lower address when stored), `hi` in 15..8.
__device__ __forceinline__ std::uint32_t e4m3_pair(float lo, float hi) { return ptx::cvt_rn_satfinite_e4m3x2_f32(hi, lo); }

/// The exact fp32 value of an e4m3 code (reference fp32_from_e4m3), widened by the hardware: to fp16, then fp32.
__device__ __forceinline__ float e4m3_value(std::uint32_t code) {
  return ptx::cvt_f32_f16(static_cast<std::uint16_t>(ptx::cvt_rn_f16x2_e4m3x2(static_cast<std::uint16_t>(code)) & 0xFFFFu));
}

/// FP4 e2m1 of one fp32 value (reference e2m1_from_fp32), computed, since sm_90 has no cvt to e2m1 (swept over
/// all 2^32 inputs by `mufu --check`). From 1 up, e2m1 keeps one fraction bit: RN-even on the fp32 bits (add
/// half an ulp less one, plus the kept bit) leaves (exponent, bit) whose value minus 252 is the code,
/// saturating at 7 (6). Below 1 the codes 0, 1, 2 are 0, 0.5, 1: 2|x| rounded to an integer, ties to even,
/// which one fma does exactly (2|x| + 2^23 rounds at the units). The sign is kept; a NaN gives +6.
__device__ __forceinline__ std::uint32_t e2m1_code(float x) {
  // min(x, +Inf) keeps every number and turns a NaN into +Inf, whose code is the NaN's (+6).
  const std::uint32_t bits = __float_as_uint(ptx::min_f32(x, __int_as_float(0x7F800000))), magnitude = bits & 0x7FFFFFFFu;
  const std::uint32_t rounded = (magnitude + 0x001FFFFFu + ((magnitude >> 22) & 1u)) >> 22;
  const std::uint32_t below_one = __float_as_uint(ptx::fma_rn_f32(__uint_as_float(magnitude), 2.0f, 0x1p23f)) - 0x4B000000u;
  const std::uint32_t code = magnitude >= 0x3F800000u ? min(rounded - 252u, std::uint32_t{kE2m1Largest}) : below_one;
  return code | ((bits >> 28) & 0x8u);
}

/// NVFP4's amax of 16-bit values in T (reference nvfp4_block: |x| and their maximum in T, NaNs dropped, all
/// NaN the canonical NaN), two at a time: the packed max of two words' halves.
template <DType T>
__device__ __forceinline__ std::uint32_t max_halves(std::uint32_t a, std::uint32_t b) {
  if constexpr (T == DType::kBf16)
    return ptx::max_bf16x2(a, b);
  else
    return ptx::max_f16x2(a, b);
}
/// A pack's amax, in the low half (the high half is not part of it).
template <DType T>
__device__ __forceinline__ std::uint32_t pack_amax(const uint4& y) {
  constexpr std::uint32_t kMagnitudes = 0x7FFF7FFFu;
  const std::uint32_t m = max_halves<T>(max_halves<T>(y.x & kMagnitudes, y.y & kMagnitudes),
                                        max_halves<T>(y.z & kMagnitudes, y.w & kMagnitudes));
  return max_halves<T>(m, m >> 16);
}

/// One NVFP4 block's scale from the maximum |x| of its 16 T values (pack_amax's low half), and its element
/// scale: SF = e4m3(g * (amax * RECIPROCAL_6)), g / SF (0 when SF is 0; a NaN SF is not 0).
template <DType T, bool kFtz>
__device__ __forceinline__ std::uint32_t nvfp4_scale(std::uint32_t amax_bits, float global, float& element_scale) {
  const float amax = widen_element<T>(amax_bits & 0xFFFFu);
  const float scale_input = mul_f32<kFtz>(global, mul_f32<kFtz>(amax, __uint_as_float(kReciprocalOfSix)));
  const std::uint32_t code = e4m3_pair(scale_input, 0.0f) & 0xFFu;
  const float scale = e4m3_value(code);
  element_scale = scale != 0.0f ? quant_divide<kFtz>(global, scale) : 0.0f;
  return code;
}

/// The e2m1 codes of 8 values times the element scale, element e in bits 4e..4e+3.
template <bool kFtz>
__device__ __forceinline__ std::uint32_t e2m1_word(const float (&v)[8], float element_scale) {
  std::uint32_t word = 0;
#pragma unroll
  for (int e = 0; e < 8; ++e) word |= e2m1_code(mul_f32<kFtz>(v[e], element_scale)) << (4 * e);
  return word;
}

/// Dynamic FP8 of ONESHOT's T outputs x_i = T(RN(RN(p_i * s) * g_i)) (p_i the widened `pre`, g_i = wb + gamma_i,
/// s the row's scale), 16-bit T: what a row folds so that its maximum can be known as soon as s is, in a row
/// with a dominant product. Rounding after s can reorder two elements whose products |p_i * g_i| lie a few
/// ulps apart, so the largest product alone does not name the largest x; but where the largest stands 32 ulps
/// clear of every other element's, and nothing overflows or underflows on the way (`row_max` lists the
/// conditions), its element's |x| is the row's maximum. tests/reference/fp8_dynamic_rule_test.cpp proves the
/// rule against the model's maximum (the bound is written there) and finds that nearly every ordinary row
/// takes it. An element is named by its 16 bits of pre and of gamma, which fix its x.
struct DominantProduct {
  static constexpr std::uint32_t kMagnitude = 0x7FFFFFFFu, kInfinity = 0x7F800000u;
  std::uint32_t a1 = 0;  ///< the largest a = |RN(p * g)| (no FTZ), as an unsigned magnitude (NaN, Inf: >= kInfinity)
  std::uint32_t id = 0;  ///< its element: pre's 16 bits, then gamma's
  std::uint32_t a2 = 0;  ///< the largest a of an element with another name (a tie of two names: a1)
  /// max(|p|, |g|) over the row: it bounds max |p| (no p_j * s overflows) and max |g| (an element whose
  /// p_j * s is subnormal stays below), one register for both.
  std::uint32_t bound = 0;

  __device__ __forceinline__ void fold(std::uint32_t a, std::uint32_t element) {
    const bool above = a > a1, same = a == a1 && element == id;
    a2 = max(a2, above ? a1 : (same ? 0u : a));
    if (above) {
      a1 = a;
      id = element;
    }
  }

  /// Another part of the row's fold, folded into this one.
  __device__ __forceinline__ void merge(const DominantProduct& o) {
    fold(o.a1, o.id);
    a2 = max(a2, o.a2);
    bound = max(bound, o.bound);
  }

  /// Each element of a pack of `pre` with its gamma (g = wb + gamma in the profile's add, as the output's).
  template <DType T, bool kFtz>
  __device__ __forceinline__ void fold_pack(const uint4& pre, const uint4& gamma, float bias) {
#pragma unroll
    for (int e = 0; e < Pack<T>::kElements; ++e) {
      const float pe = Pack<T>::widen(pre, e), ge = add_f32<kFtz>(bias, Pack<T>::widen(gamma, e));
      fold(__float_as_uint(ptx::mul_rn_f32(pe, ge)) & kMagnitude, half_bits(pre, e) << 16 | half_bits(gamma, e));
      bound = max(bound, max(__float_as_uint(pe) & kMagnitude, __float_as_uint(ge) & kMagnitude));
    }
  }

  /// The fold of the warp's 32 lanes, in every lane (the whole warp calls it). A lane whose largest is the
  /// warp's but names another element than the first such lane's makes a tie.
  __device__ __forceinline__ DominantProduct warp_fold() const {
    DominantProduct w;
    w.a1 = ptx::redux_max_u32(a1);
    const bool largest = a1 == w.a1;
    w.id = ptx::shfl_idx_u32(id, __ffs(static_cast<int>(ptx::vote_ballot(largest))) - 1);
    w.a2 = ptx::redux_max_u32(largest ? (id == w.id ? a2 : w.a1) : a1);
    w.bound = ptx::redux_max_u32(bound);
    return w;
  }

  /// The row's absmax when the rule applies (then true), from the row's fold and its scale s: the dominant
  /// element's |x|, as the output pass computes x, maxed with +0 in the profile's max.
  template <DType T, bool kFtz>
  __device__ __forceinline__ bool row_max(float s, float bias, float& absmax) const {
    if (a1 >= kInfinity || a1 < 0x0D800000u /* 2^-100 */ || a2 + 32u > a1) return false;
    const float pk = widen_element<T>(id >> 16);
    const float gk = add_f32<kFtz>(bias, widen_element<T>(id & 0xFFFFu));
    const float first = mul_f32<kFtz>(pk, s);
    const std::uint32_t first_magnitude = __float_as_uint(first) & kMagnitude;
    if (first_magnitude < 0x00800000u || first_magnitude >= kInfinity) return false;  // normal and finite
    if ((__float_as_uint(mul_f32<kFtz>(__uint_as_float(bound), ptx::abs_f32(s))) & kMagnitude) >= kInfinity)
      return false;  // some p_j * s overflows
    const float y = mul_f32<kFtz>(first, gk);
    const std::uint32_t y_magnitude = __float_as_uint(y) & kMagnitude;
    if (y_magnitude < 0x01000000u /* 2^-125 */ ||
        y_magnitude < (__float_as_uint(ptx::mul_rn_f32(__uint_as_float(bound), 0x1p-124f)) & kMagnitude))
      return false;  // an element whose p_j * s is subnormal could lie above
    const float x = widen_element<T>(Pack<T>::narrow(y));
    absmax = quant_max<kFtz>(0.0f, quant_abs<kFtz>(x));
    return true;
  }
};

/// The shared memory of the dominant product's fold (kernels of QuantRows::kFp8Dynamic only): each warp's
/// fold, and each block's, the latter written into every block of the cluster, two sets alternating row by row
/// (a block a row ahead never writes what another still reads).
struct DominantShared {
  DominantProduct warps[kMaxBlockSize / 32];        ///< a block's warps at most (reference/fused_launch.h)
  DominantProduct blocks[2][kMaxClusterSize];
};

__device__ __forceinline__ DominantShared& dominant_shared() {
  __shared__ DominantShared shared;
  return shared;
}

/// A row's quantisation, in two parts. `on_pack` takes each pack as the output pass computes it (its fp32
/// values and its T output): static FP8 writes its codes there, dynamic FP8 folds the pack into the thread's
/// absmax and keeps the values of its first pack, and NVFP4 writes its blocks there when the two packs of a
/// block lie in neighbouring lanes. `finish` does the rest after the output pass: dynamic FP8's reduction,
/// scale and codes; NVFP4's blocks whose packs lie elsewhere. Every thread of every block of the cluster must
/// call `finish` for the same row (dynamic FP8 holds a block or cluster barrier).
template <DType T, bool kFtz, bool kCluster, QuantRows kRows>
struct RowQuant {
  static constexpr int kElements = Pack<T>::kElements;
  static constexpr bool kEarlyMax = kRows == QuantRows::kFp8DynamicEarly;
  static constexpr bool kLateMax = kRows == QuantRows::kAny || kRows == QuantRows::kFp8Dynamic;
  static constexpr bool kMayNvfp4 = kRows == QuantRows::kAny || kRows == QuantRows::kNvfp4;
  /// The T outputs' maximum from the row's dominant product where it has one (DominantProduct), in kernels
  /// launched with clusters only, where the late way costs a cluster barrier and a second pass. Measured on an
  /// H200 (W = 2, bf16, 1-16 tokens, the time over the unquantised fused call): D = 8192, 0.99-1.13 us the late
  /// way, 0.83-0.97 us this one; a block alone's barrier costs less than the fold (D = 4096, with the fold
  /// there too: 0.45 us the late way, 1.05-1.12 us this one).
  static constexpr bool kDominant = kRows == QuantRows::kFp8Dynamic && T != DType::kFp32 && kCluster;
  /// The late way keeps its first pack's values in registers for the second pass; not where the dominant
  /// product makes it rare (its registers would spill on the common way).
  static constexpr bool kKeepFirst = kLateMax && !kDominant;
  QuantMode mode = QuantMode::kNone;
  ScaleLayout layout = ScaleLayout::kSwizzled128x4;  ///< NVFP4's
  float scale = 0.0f;            ///< output_scale: static FP8's scale, NVFP4's global scale
  /// Dynamic FP8: this thread's max |x| from +0, NaNs dropped (max.f32 gives the number). Subnormals stay,
  /// where the flashinfer profile's max.ftz reads them as 0: the token scale made of the row's maximum is
  /// its floor either way (any maximum below 2^-9 gives the floor). Its bits order as unsigned integers.
  float absmax = 0.0f;
  bool from_fp32 = false;        ///< dynamic FP8 quantises the fp32 values (else the T outputs)
  /// kEarlyMax (QuantRows::kFp8DynamicEarly): dynamic FP8 of the fp32 values RN(a * s), a = (wb + g) * pre the
  /// products before the row's scale s (TWOSHOT's order). |RN(a * s)| grows with |a| (rounding, and FTZ's
  /// flush of an input or a result, never reverse an order; |s| scales every a alike), so the largest of them
  /// is |RN(max |a| * s)|: the maximum can be taken of the products before s exists. Its NaN (max |a|
  /// infinite and s 0, max |a| 0 and s infinite, or s NaN) is where every value is NaN or 0, whose maximum
  /// from +0 is +0: a max with +0 gives that too. tests/reference/fp8_dynamic_rule_test.cpp replays the rule
  /// against the model's maximum. So the maximum of the a crosses the row's barrier with the sum of squares,
  /// with no barrier and no second pass of its own (docs/quant.md has what it saves on an H200).
  /// kEarlyMax, or kDominant and `dominant`: the row's scale_out, known before the output pass.
  float token_scale = 0.0f;
  DominantProduct fold;          ///< kDominant: this thread's part of the row's fold
  bool dominant = false;         ///< kDominant: the rule applied to this row (the same in every thread)
  /// Register rows computed by several blocks (replica_plan): this block's index among them; only the first
  /// writes the token scale (each writes the codes of its own part).
  int replica = 0;
  int kept_pack = -1;            ///< dynamic FP8: the first pack this thread output, whose values `kept` holds
  float kept[kElements] = {};    ///< (the second pass then recomputes only the packs after it: none at decode sizes)

  /// Reads output_scale early, so its load overlaps the row's polls.
  __device__ __forceinline__ RowQuant(const NormTree& tree, const NormSlot& io)
      : mode(static_cast<QuantMode>(tree.quant_mode)),
        layout(static_cast<ScaleLayout>(tree.scale_layout)),
        from_fp32(tree.quant_from_fp32 != 0) {
    if (mode == QuantMode::kFp8 || mode == QuantMode::kNvfp4) scale = *io.quant_scale;
  }

  __device__ __forceinline__ void store_e4m3(const NormSlot& io, std::uint64_t first_element, const float (&q)[kElements]) const {
    std::uint8_t* at = static_cast<std::uint8_t*>(io.quant_out) + first_element;
    if constexpr (kElements == 8) {
      const uint2 w{e4m3_pair(q[0], q[1]) | e4m3_pair(q[2], q[3]) << 16, e4m3_pair(q[4], q[5]) | e4m3_pair(q[6], q[7]) << 16};
      *reinterpret_cast<uint2*>(at) = w;
    } else {
      *reinterpret_cast<std::uint32_t*>(at) = e4m3_pair(q[0], q[1]) | e4m3_pair(q[2], q[3]) << 16;
    }
  }

  /// Dynamic FP8's codes of one pack's values `v` (fp32 or the T outputs widened) with the token's scale.
  __device__ __forceinline__ void store_fp8_dynamic(const NormSlot& io, std::uint64_t first_element,
                                                    const float (&v)[kElements], float row_scale) const {
    const float largest = __uint_as_float(kE4m3LargestFp32);
    float q[kElements];
#pragma unroll
    for (int e = 0; e < kElements; ++e)
      q[e] = quant_min<kFtz>(quant_max<kFtz>(quant_divide<kFtz>(v[e], row_scale), -largest), largest);
    store_e4m3(io, first_element, q);
  }

  /// Dynamic FP8's token scale from the row's absmax.
  __device__ __forceinline__ static float fp8_dynamic_scale(float row_max) {
    return quant_max<kFtz>(quant_divide<kFtz>(row_max, __uint_as_float(kE4m3LargestFp32)),
                           __uint_as_float(kDynamicFp8MinScale));
  }

  /// Each warp's absmax (the whole warp calls it), maxed by its lane 0 into this row's word of every block of
  /// the cluster; readable after the next block (cluster) barrier. The row's word was cleared a row before.
  __device__ __forceinline__ void publish_max(QuantShared& shared, std::uint32_t nth) const {
    const std::uint32_t warp_max = ptx::redux_max_u32(__float_as_uint(absmax));
    std::uint32_t* const word = &shared.row_max[QuantShared::word_of<kCluster>(nth)];
    if (threadIdx.x % 32 == 0) {
      if constexpr (kCluster) {
        const std::uint32_t blocks = ptx::cluster_nctarank();
        for (std::uint32_t r = 0; r < blocks; ++r) ptx::red_shared_cluster_max_u32(word, r, warp_max);
      } else {
        ptx::red_shared_max_u32(word, warp_max);
      }
    }
  }

  /// Clears the word the row kWords - 1 after the `nth` takes (thread 0), between this row's first barrier
  /// and the next row's: every thread of the block read it in the row before (the word's last row), ahead of
  /// this row's first barrier, and its next row maxes into it only after the next row's first barrier (with
  /// a cluster, the other blocks' maxima of the next row come after this row's cluster barrier, which follows
  /// this clear).
  __device__ __forceinline__ static void clear_later_max(QuantShared& shared, std::uint32_t nth) {
    constexpr std::uint32_t kWords = QuantShared::kWords<kCluster>;
    if (threadIdx.x == 0) shared.row_max[QuantShared::word_of<kCluster>(nth + kWords - 1)] = 0u;
  }

  /// kEarlyMax: folds a pack's products a = (wb + g) * pre into the thread's max |a| (NaNs dropped).
  __device__ __forceinline__ void fold_products(const float (&a)[kElements]) {
#pragma unroll
    for (int e = 0; e < kElements; ++e) absmax = ptx::max_f32(absmax, ptx::abs_f32(a[e]));
  }

  /// kEarlyMax, once the row's maximum of |a| (published before the barrier just passed) and its scale are
  /// known: the token scale, from |RN(max |a| * scale)| maxed with +0.
  __device__ __forceinline__ void take_row_max(const QuantShared& shared, std::uint32_t nth, float scale) {
    const float largest_product = __uint_as_float(shared.row_max[QuantShared::word_of<kCluster>(nth)]);
    const float row_max = ptx::max_f32(0.0f, ptx::abs_f32(mul_f32<kFtz>(largest_product, scale)));
    token_scale = fp8_dynamic_scale(row_max);
  }

  /// kDominant, before the row's first barrier (the whole block): each warp's fold into its slot.
  __device__ __forceinline__ void publish_dominant() const {
    const DominantProduct w = fold.warp_fold();
    if (threadIdx.x % 32 == 0) dominant_shared().warps[threadIdx.x / 32] = w;
  }

  /// kDominant, by one warp between the row's first barrier and its second: the block's fold, from its warps'
  /// slots, into its slot `rank` of every block of the cluster (of `blocks`).
  __device__ __forceinline__ void merge_dominant(std::uint32_t nth, int rank, int blocks) const {
    DominantShared& shared = dominant_shared();
    const int lane = static_cast<int>(threadIdx.x) % 32;
    const DominantProduct w = lane < static_cast<int>(blockDim.x) / 32 ? shared.warps[lane] : DominantProduct{};
    const DominantProduct b = w.warp_fold();
    if (lane != 0) return;
    DominantProduct* const slot = &shared.blocks[nth % 2][rank];
    static_assert(kCluster && sizeof(DominantProduct) == 4 * sizeof(std::uint32_t));
    const std::uint32_t words[4] = {b.a1, b.id, b.a2, b.bound};
    for (int r = 0; r < blocks; ++r)
      for (int k = 0; k < 4; ++k)
        ptx::st_shared_cluster_u32(reinterpret_cast<const std::uint32_t*>(slot) + k, static_cast<std::uint32_t>(r),
                                   words[k]);
  }

  /// kDominant, after the row's second barrier, once its scale is known: whether the rule applies and, if so,
  /// the token scale (every thread alike). A row it does not apply to goes the late way (finish).
  __device__ __forceinline__ void take_dominant(std::uint32_t nth, int blocks, float scale, float bias) {
    const DominantShared& shared = dominant_shared();
    DominantProduct row = shared.blocks[nth % 2][0];
    for (int r = 1; r < blocks; ++r) row.merge(shared.blocks[nth % 2][r]);
    float absmax;
    dominant = row.row_max<T, kFtz>(scale, bias, absmax);
    if (dominant) token_scale = fp8_dynamic_scale(absmax);
  }

  /// NVFP4 block `block` of row t, the T outputs of its two packs in `y` and their amax (pack_amax's, folded).
  __device__ __forceinline__ void store_nvfp4_block(const NormSlot& io, std::uint32_t t, std::uint32_t row_packs,
                                                    int block, std::uint32_t amax, const uint4 (&y)[2]) const {
    float element_scale;
    const std::uint32_t code = nvfp4_scale<T, kFtz>(amax, scale, element_scale);
    std::uint32_t words[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float w[kElements];
#pragma unroll
      for (int e = 0; e < kElements; ++e) w[e] = Pack<T>::widen(y[i], e);
      words[i] = e2m1_word<kFtz>(w, element_scale);
    }
    const std::uint64_t at = (std::uint64_t(t) * row_packs * kElements + std::uint64_t(block) * 16) / 2;
    *reinterpret_cast<uint2*>(static_cast<std::uint8_t*>(io.quant_out) + at) = make_uint2(words[0], words[1]);
    static_cast<std::uint8_t*>(io.scale_out)[scale_offset(layout, t, block, std::int64_t(row_packs) * kElements)] =
        static_cast<std::uint8_t>(code);
  }

  /// Pack `pack` of row t: `v` its fp32 values, `y` its T output. `neighbours`: the whole warp calls this
  /// together, and the pack's NVFP4 partner (pack ^ 1) is lane ^ 1's; lanes without a pack call it too, not
  /// `active` (their values unused), for NVFP4's shuffle. kMode is `mode`: each mode's output pass is a loop
  /// of its own, so no mode's loop-invariant arithmetic is hoisted ahead of another's rows (NVFP4's scale
  /// addresses cost static FP8 0.15 us on an H200 when the modes shared a loop).
  template <QuantMode kMode>
  __device__ __forceinline__ void on_pack(const NormSlot& io, std::uint32_t t, std::uint32_t row_packs, int pack,
                                          const float (&v)[kElements], const uint4& y, bool neighbours, bool active) {
    const std::uint64_t first = (std::uint64_t(t) * row_packs + pack) * kElements;
    if (kMode != QuantMode::kNvfp4 && !active) return;
    if constexpr (kMode == QuantMode::kFp8) {
      // 1.0f / *outputScale, as FlashInfer's every thread: here, not at the row's start, where it would hold
      // the warp until the load of the scale returned.
      const float inverse = quant_reciprocal<kFtz>(scale);
      float q[kElements];
#pragma unroll
      for (int e = 0; e < kElements; ++e) q[e] = mul_f32<kFtz>(Pack<T>::widen(y, e), inverse);
      store_e4m3(io, first, q);
    } else if constexpr (kMode == QuantMode::kFp8Dynamic) {
      if constexpr (kEarlyMax) {
        store_fp8_dynamic(io, first, v, token_scale);
        return;
      }
      if constexpr (kDominant) {
        if (dominant) {
          float x[kElements];
#pragma unroll
          for (int e = 0; e < kElements; ++e) x[e] = Pack<T>::widen(y, e);
          store_fp8_dynamic(io, first, x, token_scale);
          return;
        }
      }
      const bool keep = kKeepFirst && kept_pack < 0;
#pragma unroll
      for (int e = 0; e < kElements; ++e) {
        const float x = from_fp32 ? v[e] : Pack<T>::widen(y, e);
        absmax = ptx::max_f32(absmax, ptx::abs_f32(x));
        if (keep) kept[e] = x;
      }
      if (keep) kept_pack = pack;
    } else if constexpr (kMode == QuantMode::kNvfp4) {
      if constexpr (T != DType::kFp32) {
        if (!neighbours) return;
        std::uint32_t amax = pack_amax<T>(y);
        amax = max_halves<T>(amax, ptx::shfl_bfly_u32(amax, 1));  // every lane of the warp (`neighbours`)
        if (!active) return;
        float element_scale;
        const std::uint32_t code = nvfp4_scale<T, kFtz>(amax, scale, element_scale);
        float w[kElements];
#pragma unroll
        for (int e = 0; e < kElements; ++e) w[e] = Pack<T>::widen(y, e);
        *reinterpret_cast<std::uint32_t*>(static_cast<std::uint8_t*>(io.quant_out) + first / 2) =
            e2m1_word<kFtz>(w, element_scale);
        if (pack % 2 == 0) {
          const std::int64_t hidden = std::int64_t(row_packs) * kElements;
          static_cast<std::uint8_t*>(io.scale_out)[scale_offset(layout, t, pack / 2, hidden)] =
              static_cast<std::uint8_t>(code);
        }
      }
    }
  }

  /// After the output pass of row t, the `nth` row of this block. `walk(f)` calls f(pack, active) for the
  /// packs of the output pass (the same packs, the same lanes); `values(pack, fp32, staged_here, v)`
  /// recomputes a pack's fp32 values (fp32 true) or its T outputs widened, from the staged row when
  /// `staged_here` (the packs of the walk), else from residual_out. `neighbours`: on_pack was told so.
  template <class Walk, class Values>
  __device__ __forceinline__ void finish(const NormSlot& io, std::uint32_t t, std::uint32_t row_packs, std::uint32_t nth,
                                         QuantShared& shared, bool neighbours, Walk&& walk, Values&& values) {
    int rank = 0, blocks = 1;
    if constexpr (kCluster) {
      rank = static_cast<int>(ptx::cluster_ctarank());
      blocks = static_cast<int>(ptx::cluster_nctarank());
    }
    if (kEarlyMax || (kDominant && dominant)) {  // the token scale known before the output pass
      if (threadIdx.x == 0 && rank == 0 && replica == 0) static_cast<float*>(io.scale_out)[t] = token_scale;
      if constexpr (kDominant) clear_later_max(shared, nth);  // as the late way would: a later row may take it
      return;
    }
    if (kLateMax && mode == QuantMode::kFp8Dynamic) {
      // The row's absmax, from the T outputs: one barrier, then every thread reads it.
      publish_max(shared, nth);
      clear_later_max(shared, nth);
      if constexpr (kCluster)
        ptx::cluster_sync();
      else
        ptx::bar_cta_sync();
      const float row_scale = fp8_dynamic_scale(__uint_as_float(shared.row_max[QuantShared::word_of<kCluster>(nth)]));
      if (threadIdx.x == 0 && rank == 0 && replica == 0) static_cast<float*>(io.scale_out)[t] = row_scale;
      // The walk's packs (the output pass's, less those of another replica's part): the kept one from `kept`.
      walk([&](int pack, bool active) {
        if (!active) return;
        const std::uint64_t first = (std::uint64_t(t) * row_packs + pack) * kElements;
        if (pack == kept_pack) {
          store_fp8_dynamic(io, first, kept, row_scale);
          return;
        }
        float v[kElements];
        values(pack, from_fp32, /*staged_here=*/true, v);
        store_fp8_dynamic(io, first, v, row_scale);
      });
    } else if (kMayNvfp4 && mode == QuantMode::kNvfp4 && !neighbours) {
      // A block's two packs lie in other lanes or blocks: each block takes every blocks-th block of the row
      // from its rank, threads interleaved, from residual_out (every block of the cluster wrote it before the
      // row's barrier). Only launch trees with an odd FlashInfer block come here.
      if constexpr (T != DType::kFp32) {
        const int first = rank + blocks * static_cast<int>(threadIdx.x), step = blocks * static_cast<int>(blockDim.x);
        for (int block = first; block < static_cast<int>(row_packs) / 2; block += step) {
          uint4 y[2];
          for (int i = 0; i < 2; ++i) {
            float v[kElements];
            values(2 * block + i, false, /*staged_here=*/false, v);
            y[i] = narrow_pack<T>(v, /*sanitize_result=*/false);  // the T outputs widened: their bits come back
          }
          store_nvfp4_block(io, t, row_packs, block, max_halves<T>(pack_amax<T>(y[0]), pack_amax<T>(y[1])), y);
        }
      }
    }
  }
};

}  // namespace ar::cuda::detail
