// Bit-level IEEE arithmetic for the reference: decoding, exact widening, round-to-nearest-even narrowing and
// the fp32 add of the kernels (with or without flush-to-zero), all done in integers.
//
// Why integers: the reference must give the same bits at -O0 and -O3, whatever the host FPU's rounding or
// FTZ/DAZ modes are. Nothing here touches a host float operation. Values travel as raw bits in a uint32_t
// (16-bit types in the low half).
#pragma once

#include <cstdint>

#include "reference/dtype.h"

namespace ar {

/// An IEEE binary format: the field widths decide everything else.
struct FloatFormat {
  int fraction_bits;  ///< explicit mantissa bits (7 bf16, 10 fp16, 23 fp32)
  int exponent_bits;  ///< 8 bf16, 5 fp16, 8 fp32
  /// 0: the IEEE bias 2^(exponent_bits - 1) - 1. Set for a wider exponent field with a narrow format's bias,
  /// in which the quantised outputs' formats round without overflowing (reference/quant_formats.h).
  int explicit_bias = 0;

  constexpr int bias() const { return explicit_bias != 0 ? explicit_bias : (1 << (exponent_bits - 1)) - 1; }
  /// The largest finite value's exponent (its field all ones but the last bit): the bias for IEEE formats.
  constexpr int max_exponent() const { return (1 << exponent_bits) - 2 - bias(); }
  constexpr std::uint32_t sign_mask() const { return 1u << (fraction_bits + exponent_bits); }
  constexpr std::uint32_t exponent_mask() const { return ((1u << exponent_bits) - 1) << fraction_bits; }
  constexpr std::uint32_t fraction_mask() const { return (1u << fraction_bits) - 1; }
  constexpr std::uint32_t infinity() const { return exponent_mask(); }
  /// The NaN every GPU operation of this project produces: positive, all fraction bits set
  /// (0x7FFF for 16-bit types, 0x7FFFFFFF for fp32).
  constexpr std::uint32_t canonical_nan() const { return exponent_mask() | fraction_mask(); }
};

inline constexpr FloatFormat kBf16Format{7, 8};
inline constexpr FloatFormat kFp16Format{10, 5};
inline constexpr FloatFormat kFp32Format{23, 8};

constexpr FloatFormat float_format(DType t) {
  switch (t) {
    case DType::kBf16: return kBf16Format;
    case DType::kFp16: return kFp16Format;
    case DType::kFp32: break;
  }
  return kFp32Format;
}

constexpr bool is_nan(std::uint32_t bits, FloatFormat f) {
  return (bits & f.exponent_mask()) == f.exponent_mask() && (bits & f.fraction_mask()) != 0;
}
constexpr bool is_inf(std::uint32_t bits, FloatFormat f) { return (bits & ~f.sign_mask()) == f.infinity(); }
constexpr bool is_zero(std::uint32_t bits, FloatFormat f) { return (bits & ~f.sign_mask()) == 0; }
constexpr bool is_subnormal(std::uint32_t bits, FloatFormat f) {
  return (bits & f.exponent_mask()) == 0 && (bits & f.fraction_mask()) != 0;
}
constexpr bool is_negative_zero(std::uint32_t bits, FloatFormat f) { return bits == f.sign_mask(); }
constexpr bool sign_bit(std::uint32_t bits, FloatFormat f) { return (bits & f.sign_mask()) != 0; }

/// A finite non-zero real value `(-1)^negative * significand * 2^exponent`, plus a sticky flag saying that
/// nonzero bits lie below the significand's last bit. It is the exact intermediate of every operation here.
struct WideValue {
  bool negative = false;
  std::uint64_t significand = 0;
  int exponent = 0;
  bool sticky = false;
};

struct Rounded {
  std::uint32_t bits = 0;
  bool inexact = false;   ///< the value was not representable
  bool overflow = false;  ///< rounded to infinity
};

/// Rounds a WideValue (significand may be 0 only when the value is zero) to format `f` with
/// round-to-nearest-even, keeping subnormals and overflowing to a signed infinity.
Rounded round_to_format(const WideValue& v, FloatFormat f);

/// The result of a flush-to-zero operation (`mul.rn.ftz`, `fma.rn.ftz`): `v` rounded once (RN-even) to `f`,
/// or a zero of its sign when the result is tiny. The GPU judges tininess after rounding to f's precision
/// with an unbounded exponent: an exact result just below the smallest normal that rounds up to it keeps it,
/// one that rounds to a value below it is flushed (measured on an H200, docs/mufu.md). Rounding with
/// subnormals and flushing a subnormal result would keep a few values of the second kind.
std::uint32_t round_to_format_ftz(const WideValue& v, FloatFormat f);

/// Decodes a finite, non-zero value of format `f` exactly.
WideValue decode_finite(std::uint32_t bits, FloatFormat f);

/// Exact widening of a bf16 / fp16 / fp32 value to fp32 bits (identity for fp32; NaNs keep sign and payload).
std::uint32_t widen_to_fp32(std::uint32_t bits, DType t);

/// fp32 -> T with one RN-even rounding: `cvt.rn.{bf16,f16}.f32`. Any NaN becomes T's canonical NaN
/// (0x7FFF); overflow gives a signed infinity (fp16 from 65520). Identity for fp32.
std::uint32_t narrow_from_fp32(std::uint32_t fp32_bits, DType t);

/// Flush-to-zero: a subnormal fp32 becomes a zero of the same sign.
constexpr std::uint32_t flush_subnormal_fp32(std::uint32_t bits) {
  return is_subnormal(bits, kFp32Format) ? (bits & kFp32Format.sign_mask()) : bits;
}

/// Maps the exact -0 bit pattern of T to +0 (the kernels' input sanitising); other values pass unchanged.
constexpr std::uint32_t sanitize_negative_zero(std::uint32_t bits, DType t) {
  return is_negative_zero(bits, float_format(t)) ? 0u : bits;
}

/// What happened inside one fp32 add; `explain` shows it.
struct Fp32AddDetail {
  std::uint32_t result = 0;
  bool flushed_lhs = false;  ///< lhs was subnormal and FTZ made it a signed zero
  bool flushed_rhs = false;
  bool flushed_result = false;  ///< the rounded sum was subnormal and FTZ made it a signed zero
  bool inexact = false;         ///< the sum was rounded
  bool nan = false;             ///< result is the canonical NaN
};

/// The kernel's fp32 add A(a,b): `add.ftz.f32` when `ftz`, plain IEEE `add.rn.f32` otherwise. RN-even,
/// canonical NaN 0x7FFFFFFF for any NaN operand or Inf + (-Inf).
Fp32AddDetail add_fp32_detailed(std::uint32_t a, std::uint32_t b, bool ftz);
inline std::uint32_t add_fp32(std::uint32_t a, std::uint32_t b, bool ftz) {
  return add_fp32_detailed(a, b, ftz).result;
}

/// Exact value as a double, for printing (every bf16/fp16/fp32 value is a double; NaN/Inf map to themselves).
double to_double(std::uint32_t bits, DType t);

/// Distance in units in the last place between two non-NaN values of T, counting along the ordered bit
/// patterns (+0 and -0 are the same point).
std::uint64_t ulp_distance(std::uint32_t a, std::uint32_t b, DType t);

}  // namespace ar
