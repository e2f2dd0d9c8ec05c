// Fast paths of float_ops' and float_bits' operations for the common case, inline so that a loop over a row
// can use them without a call: operands that are normal numbers (not zero, subnormal, Inf or NaN) and a
// result that is a normal number before and after rounding. There flush-to-zero changes nothing, so one
// answer serves both profiles. Anything else gives std::nullopt, and the caller asks the general integer
// model (add_native, mul_native, add_fp32, mul_fp32, fma_fp32, narrow_from_fp32), which stays the
// definition. tests/reference/fast_float_ops_test.cpp sweeps random and edge operands through both.
//
// Integers only, like the model: the same bits at any optimisation level and host FPU mode.
#pragma once

#include <bit>
#include <cstdint>
#include <optional>

#include "reference/float_bits.h"

namespace ar::detail {

__extension__ typedef unsigned __int128 FastWide;  // GCC and Clang both have it; -Wpedantic asks for the marker

/// Rounds `exact` (non-zero, its last bit worth 2^(lsb_field - F.bias() - F.fraction_bits), i.e. a value
/// whose last bit sits where a normal of biased exponent `lsb_field` has its own) to F's precision,
/// RN-even, and encodes it with `sign`. nullopt when the result is not a normal number of F.
template <FloatFormat F, class Uint>
[[gnu::always_inline]] inline std::optional<std::uint32_t> round_normal(Uint exact, int lsb_field, std::uint32_t sign) {
  constexpr int kBits = static_cast<int>(sizeof(Uint) * 8);
  int msb = 0;
  if constexpr (kBits == 128) {
    const auto high = static_cast<std::uint64_t>(exact >> 64);
    msb = high != 0 ? 127 - std::countl_zero(high) : 63 - std::countl_zero(static_cast<std::uint64_t>(exact));
  } else {
    msb = kBits - 1 - std::countl_zero(exact);
  }
  const int drop = msb - F.fraction_bits;  // keep fraction_bits + 1 bits
  const int field = lsb_field + drop;
  if (field < 1) return std::nullopt;  // below the normal range before rounding (tiny, or FTZ decides)
  Uint kept = 0;
  if (drop <= 0) {
    kept = exact << -drop;  // exact: fewer bits than the format holds
  } else {
    kept = exact >> drop;
    const Uint rest = exact & ((Uint{1} << drop) - 1);
    const Uint half = Uint{1} << (drop - 1);
    // Without a branch: whether to round up is as good as random.
    kept += static_cast<Uint>((rest > half) | ((rest == half) & ((kept & 1) != 0)));
  }
  // A carry out of the significand (kept == 2^(fraction_bits + 1)) moves into the exponent field.
  const std::uint32_t magnitude = (static_cast<std::uint32_t>(field) << F.fraction_bits) +
                                  static_cast<std::uint32_t>(kept) - (1u << F.fraction_bits);
  if (magnitude >= F.infinity()) return std::nullopt;  // overflow: the model gives the infinity
  return sign | magnitude;
}

/// The biased exponent field of `bits` when it is a normal number, else 0.
template <FloatFormat F>
[[gnu::always_inline]] inline int normal_field(std::uint32_t bits) {
  const auto field = static_cast<int>((bits & F.exponent_mask()) >> F.fraction_bits);
  return field == static_cast<int>(F.infinity() >> F.fraction_bits) ? 0 : field;
}

template <FloatFormat F>
[[gnu::always_inline]] inline std::uint64_t significand_of(std::uint32_t bits) {
  return (bits & F.fraction_mask()) | (std::uint64_t{1} << F.fraction_bits);
}

/// a + b rounded once to F (fp32, bf16 or fp16): add_fp32 (either profile) or add_native. A normal plus a
/// zero is the normal itself; exact cancellation is +0.
template <FloatFormat F>
[[gnu::always_inline]] inline std::optional<std::uint32_t> fast_add(std::uint32_t a, std::uint32_t b) {
  // Order by magnitude (the patterns of magnitudes order like the values), without a branch.
  const bool swap = (a & ~F.sign_mask()) < (b & ~F.sign_mask());
  const std::uint32_t first = swap ? b : a, second = swap ? a : b;
  a = first;
  b = second;
  const std::uint32_t mb = b & ~F.sign_mask();
  const int ea = normal_field<F>(a);
  if (ea == 0) return std::nullopt;
  if (mb == 0) return a;
  const int eb = normal_field<F>(b);
  const int shift = ea - eb;
  if (eb == 0 || shift > 32) return std::nullopt;
  // Both significands in 64 bits, a's 32 places up and b's aligned to it: nothing of b is lost.
  const std::uint64_t big = significand_of<F>(a) << 32;
  const std::uint64_t small = significand_of<F>(b) << (32 - shift);
  // big - small when the signs differ (|a| >= |b|, so it never goes negative), big + small otherwise.
  const std::uint64_t negate = ((a ^ b) & F.sign_mask()) != 0 ? ~std::uint64_t{0} : 0;
  const std::uint64_t sum = big + ((small ^ negate) - negate);
  if (sum == 0) return 0u;  // x + (-x) = +0 under round-to-nearest
  return round_normal<F>(sum, ea - 32, a & F.sign_mask());
}

/// a * b rounded once to F: mul_fp32 (either profile) or mul_native.
template <FloatFormat F>
[[gnu::always_inline]] inline std::optional<std::uint32_t> fast_mul(std::uint32_t a, std::uint32_t b) {
  const int ea = normal_field<F>(a), eb = normal_field<F>(b);
  if (ea == 0 || eb == 0) return std::nullopt;
  // The product's last bit is worth 2^(ea + eb - 2 bias - 2 fraction_bits).
  return round_normal<F>(significand_of<F>(a) * significand_of<F>(b), ea + eb - F.bias() - F.fraction_bits,
                         (a ^ b) & F.sign_mask());
}

/// The exact sum of a product and an addend (significands `product`, `addend`, their last bits `gap` places
/// apart, the addend's above when `addend_higher`), rounded once to fp32: exact in Uint when the shifted
/// operand fits, which the caller checks.
template <class Uint>
[[gnu::always_inline]] inline std::optional<std::uint32_t> round_product_sum(Uint product, Uint addend, int gap,
                                                                             bool addend_higher, int lsb,
                                                                             std::uint32_t product_sign,
                                                                             std::uint32_t addend_sign) {
  if (addend_higher) {
    addend <<= gap;
  } else {
    product <<= gap;
  }
  if (product_sign == addend_sign) return round_normal<kFp32Format>(product + addend, lsb, product_sign);
  if (product == addend) return 0u;  // exact cancellation: +0 under round-to-nearest
  return product > addend ? round_normal<kFp32Format>(product - addend, lsb, product_sign)
                          : round_normal<kFp32Format>(addend - product, lsb, addend_sign);
}

/// a * b + c with one rounding to fp32: fma_fp32 (either profile). The exact sum is formed in 64 bits when
/// the shifted operand fits there (the usual case), else in 128 bits when the operands' last bits lie at
/// most 64 (product above) or 96 (addend above) places apart; nullopt beyond.
[[gnu::always_inline]] inline std::optional<std::uint32_t> fast_fma_fp32(std::uint32_t a, std::uint32_t b,
                                                                         std::uint32_t c) {
  constexpr FloatFormat F = kFp32Format;
  if ((c & ~F.sign_mask()) == 0) return fast_mul<F>(a, b);  // a non-zero product plus a zero is the product
  const int ea = normal_field<F>(a), eb = normal_field<F>(b), ec = normal_field<F>(c);
  if (ea == 0 || eb == 0 || ec == 0) return std::nullopt;
  const int product_lsb = ea + eb - F.bias() - F.fraction_bits;  // as a field, like round_normal's
  const int addend_lsb = ec;
  const bool addend_higher = addend_lsb >= product_lsb;
  const int gap = addend_higher ? addend_lsb - product_lsb : product_lsb - addend_lsb;
  const int lsb = addend_higher ? product_lsb : addend_lsb;
  const std::uint64_t product = significand_of<F>(a) * significand_of<F>(b);  // at most 48 bits
  const std::uint64_t addend = significand_of<F>(c);                          // 24 bits
  const std::uint32_t product_sign = (a ^ b) & F.sign_mask(), addend_sign = c & F.sign_mask();
  // In 64 bits: the addend shifted by up to 39 (63 bits), or the product by up to 15; the sum then fits too.
  if (gap <= (addend_higher ? 39 : 15))
    return round_product_sum<std::uint64_t>(product, addend, gap, addend_higher, lsb, product_sign, addend_sign);
  if (gap > (addend_higher ? 96 : 64)) return std::nullopt;
  return round_product_sum<FastWide>(product, addend, gap, addend_higher, lsb, product_sign, addend_sign);
}

/// fp32 -> T (cvt.rn): narrow_from_fp32. bf16 for every non-NaN value (RN-even on the bit pattern: bf16 is
/// the top half of fp32, subnormals and the overflow to Inf included); fp16 for results that are normal
/// fp16 numbers; fp32 is the identity.
template <DType T>
[[gnu::always_inline]] inline std::optional<std::uint32_t> fast_narrow(std::uint32_t bits) {
  if constexpr (T == DType::kFp32) {
    return bits;
  } else if constexpr (T == DType::kBf16) {
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return std::nullopt;  // NaN
    return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  } else {
    const int field = normal_field<kFp32Format>(bits);
    if (field == 0) return std::nullopt;
    // The fp32 significand's last bit is worth 2^(field - 150) = 2^((field - 125) - 15 - 10).
    return round_normal<kFp16Format>(significand_of<kFp32Format>(bits), field - 125, (bits >> 16) & 0x8000u);
  }
}

/// Exact widening of T to fp32 (widen_to_fp32) for normal numbers; nullopt for the rest (fp16 only: bf16 and
/// fp32 are always immediate).
template <DType T>
[[gnu::always_inline]] inline std::optional<std::uint32_t> fast_widen(std::uint32_t bits) {
  if constexpr (T == DType::kFp32) {
    return bits;
  } else if constexpr (T == DType::kBf16) {
    return bits << 16;
  } else {
    const int field = normal_field<kFp16Format>(bits);
    if (field == 0) return std::nullopt;
    return ((bits & 0x8000u) << 16) | (static_cast<std::uint32_t>(field - 15 + 127) << 23) | ((bits & 0x3FFu) << 13);
  }
}

}  // namespace ar::detail
