// The invariant profile's reduction (reference reduction_order): one order for both strategies, so that no
// batch, strategy or launch can change a token's bits.
//
// Below kOneShotChunksFromWorld (W = 2, 4, 8) that is the fold FlashInfer's strategies share, rank order from
// +0, with IEEE fp32 adds: fold_slots without FTZ. At W = 2 it is also the exact sum rounded once (reference
// exact_pair_fold; tests/reference/exact_pair_fold_test.cpp checks every pair of bf16 and fp16 values).
//
// From kOneShotChunksFromWorld on (W = 16, 32, 64) it is the exact sum of an element's W values, rounded once to
// T (ReductionOrder::exact): no order at all. The kernels may get there any way they like; three ways,
// cheapest first:
//
// 1. (bf16, fp16) The fp32 fold done twice, once rounding every add down (add.rm) and once up (add.rp): two
//    adds per value where FlashInfer's fold has one. Directed rounding is monotone, so the exact sum lies
//    between the two folds; when both round to the same T value, so does the exact sum. When no add
//    rounded, the two folds are one point, so ties of T (common: sums of bf16 values have few bits) are
//    decided right too. Both ends are narrowed two elements a word, as FlashInfer's fold is, and a pack
//    whose two narrowed ends are the same bits is done: one test a pack, not a few an element. That covers
//    NaN too (cvt gives the canonical NaN, the exact sum's: a NaN in both folds needs a NaN input or both
//    infinities among the inputs, since add.rm overflows only to -Inf and add.rp only to +Inf). Only a sum
//    within a few fp32 ulps of a T midpoint goes on (on the bench's inputs about 8 in 10^4 elements at
//    W = 64), or a zero sum whose down fold is -0 (x + -x rounded down).
// 2. Doubles, element by element (fp32: the whole pack, always): every value is a multiple of the smallest
//    one's last bit and the sum stays below W times the largest one's binade, so when that span fits a
//    double's 53 bits (reference double_sum_is_exact, the host engine's test too) every partial sum is exact
//    and the double IS the exact sum. fp16 always fits (2^-24 .. 2^16, 46 bits with W = 64; its NaN and Inf
//    come out right by themselves); bf16 unless the values are 2^39 or more apart, fp32 unless 2^23.
// 3. A 320-bit integer (WideSum, the reference's ExactSum in device code) for the rest (also a NaN or an
//    Inf among bf16 or fp32 values).
// Ways 2 and 3 read the element's word of each slot again (a slot, once full, keeps its value for the rest of
// the call) and run out of line (settle_undecided, wide_sum_element): the hot loop holds none of their
// registers.
//
// Rounding a double once to T: fp32 by cvt.rn.f32.f64. bf16 and fp16 by round-to-odd into fp32 (cvt.rz plus
// a sticky last bit), then cvt.rn to T: fp32 keeps at least two bits more than either (also at their
// subnormals), so the two steps round like one.
//
// Internal to cuda/: included by cuda/detail/one_shot_steps.cuh and cuda/detail/two_shot_steps.cuh.
#pragma once

#include <cstdint>

#include "cuda/detail/lamport.cuh"
#include "reference/exact_sum.h"
#include "reference/reduction_order.h"

namespace ar::cuda::detail {

/// The exact value of a double rounded once to T (RN-even, NaN canonical, overflow to +-Inf); T bits.
template <DType T>
__device__ __forceinline__ std::uint32_t round_double_to(double x) {
  if constexpr (T == DType::kFp32) {
    return x == x ? __float_as_uint(ptx::cvt_rn_f32_f64(x)) : 0x7FFFFFFFu;  // cvt keeps a NaN's payload
  } else {
    const float toward_zero = ptx::cvt_rz_f32_f64(x);
    const bool inexact = !(ptx::cvt_f64_f32(toward_zero) == x);  // NaN too: its bits stay the canonical NaN
    const float odd = __uint_as_float(__float_as_uint(toward_zero) | (inexact ? 1u : 0u));
    return Pack<T>::narrow(odd);
  }
}

/// The largest and smallest non-zero magnitudes (fp32 bits) of the values a double sum adds, which tell
/// whether every partial sum is exact: the host engine's test, reference double_sum_is_exact.
struct MagnitudeSpan {
  std::uint32_t largest = 0;
  std::uint32_t smallest_minus_one = 0xFFFFFFFFu;  // |x| - 1: a zero's wraps, so it is never the smallest

  __device__ __forceinline__ void add(float x) {
    const std::uint32_t magnitude = __float_as_uint(x) & 0x7FFFFFFFu;
    largest = max(largest, magnitude);
    smallest_minus_one = min(smallest_minus_one, magnitude - 1u);
  }

  /// Whether the double sum of W such values of T is exact.
  template <DType T>
  __device__ __forceinline__ bool exact_in_double(int world) const {
    if constexpr (T == DType::kFp16) {
      return true;  // 2^-24 .. 2^16 and W <= 64: 46 bits; a NaN or an Inf stays in its own element
    } else {
      if (largest >= 0x7F800000u) return false;  // a NaN or an Inf: WideSum, element by element
      return ::ar::double_sum_is_exact(largest, smallest_minus_one + 1u, world, ::ar::float_format(T));
    }
  }
};

/// The exact sum of fp32 values as a two's-complement integer in units of 2^-149 (320 bits: 2^283 covers 64
/// times the largest float), NaN and infinities kept apart, rounded once to T at the end. The slow path.
struct WideSum {
  static constexpr int kLimbs = 5;
  std::uint64_t limb[kLimbs] = {};
  bool nan = false, positive_inf = false, negative_inf = false;

  __device__ void add(std::uint32_t bits) {
    const std::uint32_t field = (bits >> 23) & 0xFFu;
    if (field == 0xFFu) {
      if (bits & 0x7FFFFFu) nan = true;
      else if (bits >> 31) negative_inf = true;
      else positive_inf = true;
      return;
    }
    const std::uint64_t significand = field ? ((bits & 0x7FFFFFu) | 0x800000u) : (bits & 0x7FFFFFu);
    const int shift = field ? static_cast<int>(field) - 1 : 0;  // value = significand * 2^(shift - 149)
    const int at = shift / 64, offset = shift % 64;
    std::uint64_t part[2] = {significand << offset, offset ? significand >> (64 - offset) : 0};
    const bool negative = (bits >> 31) != 0;
    std::uint64_t carry = 0;  // carry (adding) or borrow (subtracting)
    for (int i = at; i < kLimbs; ++i) {
      const std::uint64_t x = i - at < 2 ? part[i - at] : 0;
      const std::uint64_t before = limb[i];
      if (!negative) {
        limb[i] = before + x + carry;
        carry = (limb[i] < before || (carry && limb[i] == before)) ? 1 : 0;
      } else {
        limb[i] = before - x - carry;
        carry = (before < x || (carry && before == x)) ? 1 : 0;
      }
      if (i - at >= 1 && carry == 0) break;
    }
  }

  /// The sum rounded once to T (RN-even, overflow to +-Inf; an exact zero is +0).
  template <DType T>
  __device__ std::uint32_t round() const {
    constexpr int kFraction = T == DType::kBf16 ? 7 : T == DType::kFp16 ? 10 : 23;
    constexpr int kBias = T == DType::kFp16 ? 15 : 127;
    constexpr std::uint32_t kInfinity = T == DType::kFp16 ? 0x7C00u : T == DType::kBf16 ? 0x7F80u : 0x7F800000u;
    constexpr std::uint32_t kSign = T == DType::kFp32 ? 0x80000000u : 0x8000u;
    constexpr std::uint32_t kNan = T == DType::kFp32 ? 0x7FFFFFFFu : 0x7FFFu;
    if (nan || (positive_inf && negative_inf)) return kNan;
    if (positive_inf || negative_inf) return kInfinity | (negative_inf ? kSign : 0u);
    const bool negative = (limb[kLimbs - 1] >> 63) != 0;
    std::uint64_t m[kLimbs];
    std::uint64_t borrow = 1;  // magnitude: two's complement negation when negative
    for (int i = 0; i < kLimbs; ++i) {
      if (negative) {
        m[i] = ~limb[i] + borrow;
        borrow = (borrow && m[i] == 0) ? 1 : 0;
      } else {
        m[i] = limb[i];
      }
    }
    int top = -1;
    for (int i = kLimbs - 1; i >= 0 && top < 0; --i)
      if (m[i]) top = i * 64 + 63 - __clzll(static_cast<long long>(m[i]));
    if (top < 0) return 0u;
    // T's last bit at this magnitude, as a bit index of m: kFraction below the top, but not below T's
    // subnormal step 2^(1 - kBias - kFraction).
    const int lsb = max(top - kFraction, 1 - kBias - kFraction + 149);
    const auto bit = [&m](int pos) -> std::uint64_t { return pos < 0 ? 0 : (m[pos / 64] >> (pos % 64)) & 1u; };
    std::uint32_t q = 0;
    for (int pos = top; pos >= lsb; --pos) q = (q << 1) | static_cast<std::uint32_t>(bit(pos));
    const bool half = bit(lsb - 1) != 0;
    bool sticky = false;
    for (int i = 0; i < kLimbs && i * 64 < lsb - 1; ++i) {
      const int below = lsb - 1 - i * 64;  // bits of limb i below the rounding bit
      sticky = sticky || (below >= 64 ? m[i] != 0 : (m[i] & ((std::uint64_t{1} << below) - 1)) != 0);
    }
    q += (half && (sticky || (q & 1u))) ? 1u : 0u;
    // q * 2^(lsb - 149): the biased exponent of q's leading bit is lsb - 149 + kFraction + kBias; a carry out
    // of q (or a subnormal q) lands in the exponent field by itself.
    const std::uint32_t magnitude =
        (static_cast<std::uint32_t>(lsb - 149 + kFraction + kBias - 1) << kFraction) + q;
    return (magnitude >= kInfinity ? kInfinity : magnitude) | (negative ? kSign : 0u);
  }
};

/// Way 1 for bf16 and fp16: polls the W slots like fold_slots and folds them twice in fp32, rounding down and
/// rounding up, then narrows both ends two elements a word. `high` gets the up fold narrowed: the answer
/// wherever `low` (the down fold narrowed) has the same bits. False when a wait gave up.
template <DType T>
__device__ __forceinline__ bool exact_fold_fp32(const std::uint8_t* first, std::uint64_t stride, int world,
                                                std::int64_t token, std::uint32_t pack, uint4& low_words,
                                                uint4& high_words, const WaitContext& ctx) {
  constexpr int E = Pack<T>::kElements;
  float low[E], high[E];  // the fold rounded down and rounded up: low <= every exact partial sum <= high
#pragma unroll
  for (int e = 0; e < E; ++e) low[e] = high[e] = 0.0f;  // +0 + x is x, whichever way it rounds (or a zero)
  const bool polled = poll_each_slot(first, stride, 0, world, token, pack, ctx, [&](int, const uint4& v) {
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const float x = Pack<T>::widen(v, e);
      low[e] = ptx::add_rm_f32(low[e], x);
      high[e] = ptx::add_rp_f32(high[e], x);
    }
  });
  if (!polled) return false;
  std::uint32_t* l = &low_words.x;
  std::uint32_t* h = &high_words.x;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    l[i] = Pack<T>::narrow_word(low[2 * i], low[2 * i + 1]);
    h[i] = Pack<T>::narrow_word(high[2 * i], high[2 * i + 1]);
  }
  return true;
}

/// Element e of a pack as fp32, from the 32-bit word that holds it (word e / 2 of 16-bit elements, e of fp32).
template <DType T>
__device__ __forceinline__ float widen_element(std::uint32_t word, int e) {
  return Pack<T>::widen(make_uint4(word, 0u, 0u, 0u), T == DType::kFp32 ? 0 : e % 2);
}

/// The byte offset in a slot of the 32-bit word that holds element e.
template <DType T>
__device__ __forceinline__ std::uint32_t element_word_offset(int e) {
  return 4u * static_cast<std::uint32_t>(T == DType::kFp32 ? e : e / 2);
}

/// Way 3: element e's exact sum in a WideSum, its W values read again from the full slots. Out of line: the
/// 320-bit sum's registers and stack belong to this rare call alone, not to the kernel's hot loop.
template <DType T>
__device__ __noinline__ std::uint32_t wide_sum_element(const std::uint8_t* first, std::uint64_t stride, int world,
                                                       int e) {
  const std::uint8_t* word = first + element_word_offset<T>(e);
  WideSum wide;
  for (int r = 0; r < world; ++r) {
    const auto* at = reinterpret_cast<const std::uint32_t*>(word + std::uint64_t(r) * stride);
    wide.add(__float_as_uint(widen_element<T>(ptx::ld_volatile_u32(at), e)));
  }
  return wide.round<T>();
}

/// Way 2 for one element: its values summed in doubles as they come, with the span that tells whether that
/// sum is exact; `finish` rounds it once to T, or takes way 3 (reading the slots again) where it is not.
template <DType T>
struct DoubleSum {
  double acc = 0.0;
  MagnitudeSpan span;

  /// Adds element e of the 32-bit word that holds it.
  __device__ __forceinline__ void add(std::uint32_t word, int e) {
    const float x = widen_element<T>(word, e);
    acc = ptx::add_rn_f64(acc, ptx::cvt_f64_f32(x));
    span.add(x);
  }

  __device__ __forceinline__ std::uint32_t finish(const std::uint8_t* first, std::uint64_t stride, int world,
                                                  int e) const {
    if (span.exact_in_double<T>(world)) return round_double_to<T>(acc);
    return wide_sum_element<T>(first, stride, world, e);
  }
};

/// Ways 2 and 3 for the element of bf16 or fp16 that way 1 left undecided (about 8 in 10^4 at W = 64): only its
/// word of each slot is read again, kGroup loads in flight at once (one round trip up to W = 16), and summed
/// in doubles when the span fits, else in a WideSum.
template <DType T>
__device__ __forceinline__ std::uint32_t exact_element(const std::uint8_t* first, std::uint64_t stride, int world,
                                                       int e) {
  constexpr int kGroup = 16;
  const std::uint8_t* word = first + element_word_offset<T>(e);
  DoubleSum<T> sum;
  for (int g0 = 0; g0 < world; g0 += kGroup) {
    std::uint32_t w[kGroup];
#pragma unroll
    for (int i = 0; i < kGroup; ++i)
      if (g0 + i < world)
        w[i] = ptx::ld_volatile_u32(reinterpret_cast<const std::uint32_t*>(word + std::uint64_t(g0 + i) * stride));
#pragma unroll
    for (int i = 0; i < kGroup; ++i)
      if (g0 + i < world) sum.add(w[i], e);
  }
  return sum.finish(first, stride, world, e);
}

/// The elements of a pack whose two narrowed ends differ, as a mask of element indices. Ends of -0 and +0 are
/// an exact zero sum, whose bits are +0 (the up end's): decided.
template <DType T>
__device__ __forceinline__ std::uint32_t undecided_elements(const uint4& low, const uint4& high) {
  const std::uint32_t l[4] = {low.x, low.y, low.z, low.w}, h[4] = {high.x, high.y, high.z, high.w};
  std::uint32_t undecided = 0;
#pragma unroll
  for (int e = 0; e < Pack<T>::kElements; ++e) {
    const std::uint32_t lo = (l[e / 2] >> (16 * (e % 2))) & 0xFFFFu, hi = (h[e / 2] >> (16 * (e % 2))) & 0xFFFFu;
    const bool zero = lo == Pack<T>::kNegativeZero && hi == 0u;
    undecided |= (lo != hi && !zero) ? 1u << e : 0u;
  }
  return undecided;
}

/// The undecided elements (undecided_elements) settled one by one, each summed from its word of every slot
/// read again (exact_element); `high` is the pack with them put right. Out of line: the kernel's hot loop
/// holds none of this path's registers. (The compiler puts the pack in local memory here, indexed by e; selects
/// on the four words by name keep it in registers but take more of them, and the kernels that call this one
/// then spilled: measured in ptxas's report of the fused TWOSHOT kernels.)
template <DType T>
__device__ __noinline__ uint4 settle_undecided(uint4 low, uint4 high, const std::uint8_t* first, std::uint64_t stride,
                                               int world) {
  static_assert(T != DType::kFp32, "fp32 packs are summed in doubles whole (exact_fold_in_doubles)");
  std::uint32_t* h = &high.x;
  for (std::uint32_t undecided = undecided_elements<T>(low, high); undecided != 0; undecided &= undecided - 1u) {
    const int e = __ffs(static_cast<int>(undecided)) - 1;
    const std::uint32_t bits = exact_element<T>(first, stride, world, e);
    const int shift = 16 * (e % 2);
#pragma unroll
    for (int i = 0; i < 4; ++i)
      if (i == e / 2) h[i] = (h[i] & ~(0xFFFFu << shift)) | (bits << shift);
  }
  return high;
}

/// Ways 2 and 3 for an fp32 pack, whole: polls the W slots and sums them in doubles; where the pack's span
/// does not fit a double, sums each element again in a WideSum. False when a wait gave up.
__device__ __forceinline__ bool exact_fold_in_doubles(const std::uint8_t* first, std::uint64_t stride, int world,
                                                      std::int64_t token, std::uint32_t pack, uint4& sum,
                                                      const WaitContext& ctx) {
  constexpr DType T = DType::kFp32;
  constexpr int E = Pack<T>::kElements;
  double acc[E];
#pragma unroll
  for (int e = 0; e < E; ++e) acc[e] = 0.0;
  MagnitudeSpan span;
  const bool polled = poll_each_slot(first, stride, 0, world, token, pack, ctx, [&](int, const uint4& v) {
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const float x = Pack<T>::widen(v, e);
      acc[e] = ptx::add_rn_f64(acc[e], ptx::cvt_f64_f32(x));
      span.add(x);
    }
  });
  if (!polled) return false;
  const bool exact = span.exact_in_double<T>(world);
  std::uint32_t* w = &sum.x;
#pragma unroll
  for (int e = 0; e < E; ++e) w[e] = exact ? round_double_to<T>(acc[e]) : wide_sum_element<T>(first, stride, world, e);
  return true;
}

/// The IEEE fold of W slots from +0 in rank order, narrowed (never -0).
template <DType T>
__device__ __forceinline__ bool ieee_fold_slots(const std::uint8_t* first, std::uint64_t stride, int world,
                                                std::int64_t token, std::uint32_t pack, uint4& sum,
                                                const WaitContext& ctx) {
  float acc[Pack<T>::kElements];
  if (!fold_slots<T, /*kFtz=*/false>(first, stride, world, /*chunk=*/0, token, pack, acc, ctx)) return false;
  sum = narrow_pack<T>(acc, /*sanitize_result=*/false);
  return true;
}

/// The invariant profile's fold of one pack: `sum` gets each element's W values folded in rank order from +0
/// with IEEE adds and narrowed (W < kOneShotChunksFromWorld), or their exact sum rounded once to T (from there
/// on); neither gives a -0. False when a wait gave up.
template <DType T>
__device__ __forceinline__ bool invariant_fold_slots(const std::uint8_t* first, std::uint64_t stride, int world,
                                                     std::int64_t token, std::uint32_t pack, uint4& sum,
                                                     const WaitContext& ctx) {
  if (world < ::ar::kOneShotChunksFromWorld) {
    // W = 2 as a constant: its two polls unrolled, no predicate a slot. With W = 2 a run-time value too, the
    // invariant kernels were slower from 1 MiB (H200, bf16, graph replay, against flashinfer in the same run:
    // plain ONESHOT at 16 MiB +6.6% against +3.1%, fused TWOSHOT at 4 MiB +4.3% against +1.8%); with W = 4
    // and 8 constants as well, the fused ONESHOT kernels got 0.1-0.3 us slower at 4-64 KiB.
    if (world == 2) return ieee_fold_slots<T>(first, stride, 2, token, pack, sum, ctx);
    return ieee_fold_slots<T>(first, stride, world, token, pack, sum, ctx);
  }
  if constexpr (T == DType::kFp32) {
    return exact_fold_in_doubles(first, stride, world, token, pack, sum, ctx);
  } else {
    uint4 low;
    if (!exact_fold_fp32<T>(first, stride, world, token, pack, low, sum, ctx)) return false;
    if (((low.x ^ sum.x) | (low.y ^ sum.y) | (low.z ^ sum.z) | (low.w ^ sum.w)) != 0)
      sum = settle_undecided<T>(low, sum, first, stride, world);
    return true;
  }
}

}  // namespace ar::cuda::detail
