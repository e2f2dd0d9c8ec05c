#include "reference/float_bits.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <utility>

namespace ar {

Rounded round_to_format(const WideValue& v, FloatFormat f) {
  const std::uint32_t sign = v.negative ? f.sign_mask() : 0u;
  if (v.significand == 0) return {sign, v.sticky, false};
  const int msb = 63 - std::countl_zero(v.significand);
  const int value_exponent = v.exponent + msb;             // value in [2^E, 2^(E+1))
  const int min_exponent = 1 - f.bias();                   // smallest normal exponent
  const int min_quantum = min_exponent - f.fraction_bits;  // last bit of the subnormals
  if (value_exponent > f.max_exponent()) return {sign | f.infinity(), true, true};
  // Exponent of the last kept bit: p bits for normals, fixed for subnormals.
  const int quantum = std::max(value_exponent - f.fraction_bits, min_quantum);
  const int drop = quantum - v.exponent;

  std::uint64_t kept = 0;
  bool inexact = v.sticky;
  if (drop <= 0) {
    kept = v.significand << -drop;  // no more than fraction_bits + 1 bits: exact
  } else if (drop >= 65) {
    kept = 0;  // below half of the last place
    inexact = true;
  } else {
    const std::uint64_t rest = drop == 64 ? v.significand : v.significand & ((std::uint64_t{1} << drop) - 1);
    const std::uint64_t half = std::uint64_t{1} << (drop - 1);
    kept = drop == 64 ? 0 : v.significand >> drop;
    inexact = inexact || rest != 0;
    const bool above_half = rest > half || (rest == half && v.sticky);
    const bool tie = rest == half && !v.sticky;
    if (above_half || (tie && (kept & 1))) ++kept;
  }
  // Encoding with the last bit at `quantum`: ((quantum - min_quantum) << fraction_bits) + kept. A subnormal
  // has quantum == min_quantum and kept < 2^fraction_bits; a carry out of the significand moves into the
  // exponent field by itself.
  const std::uint64_t magnitude = (std::uint64_t(quantum - min_quantum) << f.fraction_bits) + kept;
  if (magnitude >= f.infinity()) return {sign | f.infinity(), true, true};
  return {sign | static_cast<std::uint32_t>(magnitude), inexact, false};
}

std::uint32_t round_to_format_ftz(const WideValue& v, FloatFormat f) {
  const std::uint32_t sign = v.negative ? f.sign_mask() : 0u;
  if (v.significand == 0) return sign;
  const int msb = 63 - std::countl_zero(v.significand);
  const int value_exponent = v.exponent + msb;  // v in [2^E, 2^(E+1))
  const int min_exponent = 1 - f.bias();
  if (value_exponent < min_exponent - 1) return sign;  // below 2^(min-1): tiny whatever the rounding
  if (value_exponent == min_exponent - 1) {
    // In the binade just below the smallest normal: not tiny only when rounding to p = fraction_bits + 1
    // bits carries into the next binade, which needs the top p bits all ones and the rest at least half of
    // the last place (a tie rounds up too: all ones is odd).
    const int p = f.fraction_bits + 1;
    const int drop = msb + 1 - p;
    if (drop <= 0) return sign;  // exact in p bits: stays below the smallest normal
    const std::uint64_t top = v.significand >> drop;
    const std::uint64_t rest = drop >= 64 ? v.significand : v.significand & ((std::uint64_t{1} << drop) - 1);
    const std::uint64_t half = std::uint64_t{1} << (drop - 1);
    // Below half stays below half whatever the sticky bits, which lie under rest's last bit.
    if (top != (std::uint64_t{1} << p) - 1 || rest < half) return sign;
  }
  return round_to_format(v, f).bits;
}

WideValue decode_finite(std::uint32_t bits, FloatFormat f) {
  const std::uint32_t biased = (bits & f.exponent_mask()) >> f.fraction_bits;
  const std::uint32_t fraction = bits & f.fraction_mask();
  WideValue v;
  v.negative = sign_bit(bits, f);
  if (biased == 0) {
    v.significand = fraction;
    v.exponent = 1 - f.bias() - f.fraction_bits;
  } else {
    v.significand = fraction | (std::uint64_t{1} << f.fraction_bits);
    v.exponent = int(biased) - f.bias() - f.fraction_bits;
  }
  return v;
}

namespace {

// Re-encodes a value of format `from` in format `to`, rounding once (RN-even). NaN handling is the caller's.
std::uint32_t convert(std::uint32_t bits, FloatFormat from, FloatFormat to) {
  const std::uint32_t to_sign = sign_bit(bits, from) ? to.sign_mask() : 0u;
  if (is_inf(bits, from)) return to_sign | to.infinity();
  if (is_zero(bits, from)) return to_sign;
  return round_to_format(decode_finite(bits, from), to).bits;
}

}  // namespace

std::uint32_t widen_to_fp32(std::uint32_t bits, DType t) {
  switch (t) {
    case DType::kFp32: return bits;
    case DType::kBf16: return bits << 16;  // bf16 is the top half of an fp32: exact, NaNs included
    case DType::kFp16: break;
  }
  if (is_nan(bits, kFp16Format)) {
    // Keep sign and payload, as cvt.f32.f16 does; the sum turns any NaN canonical anyway.
    return ((bits & 0x8000u) << 16) | 0x7F800000u | ((bits & 0x3FFu) << 13);
  }
  return convert(bits, kFp16Format, kFp32Format);
}

std::uint32_t narrow_from_fp32(std::uint32_t fp32_bits, DType t) {
  if (t == DType::kFp32) return fp32_bits;
  const FloatFormat to = float_format(t);
  if (is_nan(fp32_bits, kFp32Format)) return to.canonical_nan();
  return convert(fp32_bits, kFp32Format, to);
}

Fp32AddDetail add_fp32_detailed(std::uint32_t a, std::uint32_t b, bool ftz) {
  constexpr FloatFormat f = kFp32Format;
  Fp32AddDetail d;
  if (ftz) {
    d.flushed_lhs = is_subnormal(a, f);
    d.flushed_rhs = is_subnormal(b, f);
    a = flush_subnormal_fp32(a);
    b = flush_subnormal_fp32(b);
  }
  const auto nan_result = [&d] {
    d.result = kFp32Format.canonical_nan();
    d.nan = true;
    return d;
  };
  if (is_nan(a, f) || is_nan(b, f)) return nan_result();
  if (is_inf(a, f) && is_inf(b, f)) {
    if (a != b) return nan_result();
    d.result = a;
    return d;
  }
  if (is_inf(a, f)) {
    d.result = a;
    return d;
  }
  if (is_inf(b, f)) {
    d.result = b;
    return d;
  }
  if (is_zero(a, f) && is_zero(b, f)) {
    d.result = (a & b & f.sign_mask());  // -0 only for (-0) + (-0) under round-to-nearest
    return d;
  }
  if (is_zero(a, f)) {
    d.result = b;
    return d;
  }  // exact; with FTZ b is already normal or zero
  if (is_zero(b, f)) {
    d.result = a;
    return d;
  }

  // Both finite and non-zero. Order by magnitude (the bit patterns of |x| order like the values).
  if ((a & ~f.sign_mask()) < (b & ~f.sign_mask())) std::swap(a, b);
  WideValue big = decode_finite(a, f);
  WideValue small = decode_finite(b, f);
  // Put both 24-bit significands at the top of a 64-bit frame, then align the smaller one, folding the bits
  // shifted out into the lowest bit ("jamming"): far below the guard and round bits, so RN stays exact.
  constexpr int kHeadroom = 38;
  std::uint64_t big_sig = big.significand << kHeadroom;
  std::uint64_t small_sig = small.significand << kHeadroom;
  const int shift = big.exponent - small.exponent;
  if (shift >= 63) {
    small_sig = 1;  // only its stickiness remains
  } else if (shift > 0) {
    const bool lost = (small_sig & ((std::uint64_t{1} << shift) - 1)) != 0;
    small_sig = (small_sig >> shift) | (lost ? 1u : 0u);
  }
  WideValue sum;
  sum.exponent = big.exponent - kHeadroom;
  if (big.negative == small.negative) {
    sum.negative = big.negative;
    sum.significand = big_sig + small_sig;
  } else {
    sum.negative = big.negative;
    sum.significand = big_sig - small_sig;  // |a| >= |b|
    if (sum.significand == 0) {
      d.result = 0;  // x + (-x) = +0 under round-to-nearest
      return d;
    }
  }
  const Rounded r = round_to_format(sum, f);
  d.result = r.bits;
  d.inexact = r.inexact;
  if (ftz && is_subnormal(d.result, f)) {
    d.result &= f.sign_mask();
    d.flushed_result = true;
  }
  return d;
}

double to_double(std::uint32_t bits, DType t) {
  const FloatFormat f = float_format(t);
  const bool negative = sign_bit(bits, f);
  if (is_nan(bits, f)) return negative ? -std::nan("") : std::nan("");
  if (is_inf(bits, f)) return negative ? -HUGE_VAL : HUGE_VAL;
  if (is_zero(bits, f)) return negative ? -0.0 : 0.0;
  const WideValue v = decode_finite(bits, f);
  const double magnitude = std::ldexp(double(v.significand), v.exponent);
  return negative ? -magnitude : magnitude;
}

std::uint64_t ulp_distance(std::uint32_t a, std::uint32_t b, DType t) {
  const FloatFormat f = float_format(t);
  // Sign-magnitude to a line of integers: -x maps to -|x|, so +0 and -0 meet at 0.
  const auto ordered = [f](std::uint32_t bits) -> std::int64_t {
    const std::int64_t magnitude = bits & ~f.sign_mask();
    return sign_bit(bits, f) ? -magnitude : magnitude;
  };
  const std::int64_t d = ordered(a) - ordered(b);
  return static_cast<std::uint64_t>(d < 0 ? -d : d);
}

}  // namespace ar
