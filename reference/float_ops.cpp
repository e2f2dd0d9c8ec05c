#include "reference/float_ops.h"

#include <bit>
#include <optional>
#include <utility>

#include "reference/detail/fast_float_ops.h"

namespace ar {
namespace {

__extension__ typedef unsigned __int128 Wide;  // GCC and Clang both have it; -Wpedantic asks for the marker

// Both operands of an exact sum are placed with their leading bit here, leaving bit 126 for the carry.
constexpr int kLeadingBit = 125;

Wide place(const WideValue& v, int& exponent) {
  const int shift = kLeadingBit - (63 - std::countl_zero(v.significand));
  exponent = v.exponent - shift;
  return Wide{v.significand} << shift;
}

// The exact sum of two finite non-zero values (significands of at most 48 bits: an fp32 product or any
// single value), or nullopt when it is exactly zero. When the smaller operand lies more than ~78 bits below
// the larger, its shifted-out bits are jammed into bit 0: far below any rounding position, and the sum then
// cancels at most one bit, so rounding the jammed sum gives the bits of the exact one. The result is folded
// into 63 bits plus the sticky flag that round_to_format reads.
std::optional<WideValue> exact_sum(const WideValue& x, const WideValue& y) {
  int ex = 0, ey = 0;
  Wide sx = place(x, ex), sy = place(y, ey);
  bool negx = x.negative, negy = y.negative;
  if (ey > ex || (ey == ex && sy > sx)) {
    std::swap(sx, sy);
    std::swap(ex, ey);
    std::swap(negx, negy);
  }
  const int shift = ex - ey;
  if (shift > kLeadingBit) {
    sy = 1;
  } else if (shift > 0) {
    const bool lost = (sy & ((Wide{1} << shift) - 1)) != 0;
    sy = (sy >> shift) | Wide{lost};
  }
  // |x| >= |y| now, so the difference never goes negative.
  const Wide sum = negx == negy ? sx + sy : sx - sy;
  if (sum == 0) return std::nullopt;
  const auto high = static_cast<std::uint64_t>(sum >> 64);
  const int msb = high != 0 ? 127 - std::countl_zero(high) : 63 - std::countl_zero(static_cast<std::uint64_t>(sum));
  WideValue v;
  v.negative = negx;
  v.exponent = ex;
  if (msb > 62) {
    const int drop = msb - 62;
    v.sticky = (sum & ((Wide{1} << drop) - 1)) != 0;
    v.significand = static_cast<std::uint64_t>(sum >> drop);
    v.exponent += drop;
  } else {
    v.significand = static_cast<std::uint64_t>(sum);
  }
  return v;
}

// The exact product of two finite non-zero values: significands of at most 24 bits multiply exactly in 64.
WideValue exact_product(std::uint32_t a, std::uint32_t b, FloatFormat f) {
  const WideValue x = decode_finite(a, f), y = decode_finite(b, f);
  WideValue p;
  p.negative = x.negative != y.negative;
  p.significand = x.significand * y.significand;
  p.exponent = x.exponent + y.exponent;
  return p;
}

std::uint32_t flush_if(bool ftz, std::uint32_t bits, FloatFormat f) {
  return ftz && is_subnormal(bits, f) ? bits & f.sign_mask() : bits;
}

// One rounding of an exact result, with the GPU's flush of tiny results when `ftz`.
std::uint32_t round_in_mode(bool ftz, const WideValue& v, FloatFormat f) {
  return ftz ? round_to_format_ftz(v, f) : round_to_format(v, f).bits;
}

std::uint32_t add_in_format(std::uint32_t a, std::uint32_t b, FloatFormat f) {
  if (is_nan(a, f) || is_nan(b, f)) return f.canonical_nan();
  if (is_inf(a, f) && is_inf(b, f)) return a == b ? a : f.canonical_nan();
  if (is_inf(a, f)) return a;
  if (is_inf(b, f)) return b;
  if (is_zero(a, f) && is_zero(b, f)) return a & b & f.sign_mask();  // -0 only for (-0) + (-0)
  if (is_zero(a, f)) return b;
  if (is_zero(b, f)) return a;
  const auto sum = exact_sum(decode_finite(a, f), decode_finite(b, f));
  return sum ? round_to_format(*sum, f).bits : 0u;  // x + (-x) = +0 under RN
}

std::uint32_t multiply_in_format(std::uint32_t a, std::uint32_t b, FloatFormat f, bool ftz) {
  a = flush_if(ftz, a, f);
  b = flush_if(ftz, b, f);
  if (is_nan(a, f) || is_nan(b, f)) return f.canonical_nan();
  const std::uint32_t sign = (a ^ b) & f.sign_mask();
  if (is_inf(a, f) || is_inf(b, f)) return is_zero(a, f) || is_zero(b, f) ? f.canonical_nan() : sign | f.infinity();
  if (is_zero(a, f) || is_zero(b, f)) return sign;
  // The common case without building a WideValue: `mufu --check` multiplies 2^36 times.
  if (f.fraction_bits == kFp32Format.fraction_bits && f.exponent_bits == kFp32Format.exponent_bits)
    if (const auto fast = detail::fast_mul<kFp32Format>(a, b)) return *fast;
  return round_in_mode(ftz, exact_product(a, b, f), f);
}

}  // namespace

std::uint32_t add_native(std::uint32_t a, std::uint32_t b, DType t) { return add_in_format(a, b, float_format(t)); }

std::uint32_t mul_native(std::uint32_t a, std::uint32_t b, DType t) {
  return multiply_in_format(a, b, float_format(t), false);
}

std::uint32_t mul_fp32(std::uint32_t a, std::uint32_t b, bool ftz) {
  return multiply_in_format(a, b, kFp32Format, ftz);
}

std::uint32_t fma_fp32(std::uint32_t a, std::uint32_t b, std::uint32_t c, bool ftz) {
  constexpr FloatFormat f = kFp32Format;
  a = flush_if(ftz, a, f);
  b = flush_if(ftz, b, f);
  c = flush_if(ftz, c, f);
  if (is_nan(a, f) || is_nan(b, f) || is_nan(c, f)) return f.canonical_nan();
  const std::uint32_t product_sign = (a ^ b) & f.sign_mask();
  const bool product_zero = is_zero(a, f) || is_zero(b, f);
  if (is_inf(a, f) || is_inf(b, f)) {
    if (product_zero) return f.canonical_nan();  // Inf * 0
    if (is_inf(c, f) && (c & f.sign_mask()) != product_sign) return f.canonical_nan();
    return product_sign | f.infinity();
  }
  if (is_inf(c, f)) return c;
  if (product_zero) {
    if (is_zero(c, f)) return product_sign & c;  // -0 only when both zeros are negative
    return c;                                    // exact (c is already flushed under FTZ)
  }
  const WideValue product = exact_product(a, b, f);
  if (is_zero(c, f)) return round_in_mode(ftz, product, f);
  const auto sum = exact_sum(product, decode_finite(c, f));
  if (!sum) return 0u;  // exact cancellation gives +0 under RN
  return round_in_mode(ftz, *sum, f);
}

std::uint32_t div_fp32(std::uint32_t a, std::uint32_t b) {
  constexpr FloatFormat f = kFp32Format;
  if (is_nan(a, f) || is_nan(b, f)) return f.canonical_nan();
  const std::uint32_t sign = (a ^ b) & f.sign_mask();
  if (is_inf(a, f)) return is_inf(b, f) ? f.canonical_nan() : sign | f.infinity();
  if (is_inf(b, f)) return sign;
  if (is_zero(b, f)) return is_zero(a, f) ? f.canonical_nan() : sign | f.infinity();
  if (is_zero(a, f)) return sign;
  // Both finite and non-zero. Normalise both significands to 24 bits (subnormals have fewer), so the
  // quotient of (A << 40) by B has 40 or 41 bits: more than the 24 kept plus a rounding bit, and the
  // remainder says whether anything lies below.
  WideValue x = decode_finite(a, f), y = decode_finite(b, f);
  for (WideValue* v : {&x, &y})
    while (v->significand < (std::uint64_t{1} << 23)) {
      v->significand <<= 1;
      --v->exponent;
    }
  WideValue q;
  q.negative = sign != 0;
  q.significand = (x.significand << 40) / y.significand;
  q.sticky = (x.significand << 40) % y.significand != 0;
  q.exponent = x.exponent - 40 - y.exponent;
  return round_to_format(q, f).bits;
}

std::uint32_t fp32_from_integer(std::uint64_t n) {
  if (n == 0) return 0u;
  // round_to_format takes at most 63 significant bits: a 64th is jammed into the last one, far below fp32's
  // rounding position.
  WideValue v;
  v.significand = (n >> 63) != 0 ? (n >> 1) | (n & 1) : n;
  v.exponent = (n >> 63) != 0 ? 1 : 0;
  return round_to_format(v, kFp32Format).bits;
}

std::uint32_t fp32_from_double(double value) { return round_from_double(value, kFp32Format); }

std::uint32_t round_from_double(double value, FloatFormat f) {
  const auto bits = std::bit_cast<std::uint64_t>(value);
  const bool negative = (bits >> 63) != 0;
  const auto biased = static_cast<int>((bits >> 52) & 0x7FF);
  const std::uint64_t fraction = bits & ((std::uint64_t{1} << 52) - 1);
  const std::uint32_t sign = negative ? f.sign_mask() : 0u;
  if (biased == 0x7FF) return fraction != 0 ? f.canonical_nan() : sign | f.infinity();
  if (biased == 0 && fraction == 0) return sign;
  WideValue v;
  v.negative = negative;
  v.significand = biased == 0 ? fraction : fraction | (std::uint64_t{1} << 52);
  v.exponent = (biased == 0 ? 1 : biased) - 1023 - 52;
  return round_to_format(v, f).bits;
}

}  // namespace ar
