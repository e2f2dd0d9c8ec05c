#include "reference/quant_formats.h"

#include <algorithm>

#include "reference/float_bits.h"

namespace ar {
namespace {

// Each narrow format with a wider exponent field but its own bias: values below 2^8 (e4m3) or 2^4 (e2m1)
// encode exactly as in the narrow format, and larger ones round without overflowing, so saturating is a
// clamp of the magnitude's code. The fraction and the bias are the narrow format's.
constexpr FloatFormat kE4m3Wide{3, 6, 7};
constexpr FloatFormat kE2m1Wide{1, 5, 1};

// RN-even into `wide`, the magnitude clamped to `largest`; the sign goes to bit `sign_position`.
std::uint8_t round_saturating(std::uint32_t fp32_bits, FloatFormat wide, std::uint32_t largest, int sign_position) {
  const std::uint8_t sign = sign_bit(fp32_bits, kFp32Format) ? static_cast<std::uint8_t>(1u << sign_position) : 0;
  std::uint32_t magnitude = 0;
  if (is_inf(fp32_bits, kFp32Format)) {
    magnitude = largest;
  } else if (!is_zero(fp32_bits, kFp32Format)) {
    const Rounded r = round_to_format(decode_finite(fp32_bits, kFp32Format), wide);
    magnitude = std::min(r.bits & ~wide.sign_mask(), largest);
  }
  return static_cast<std::uint8_t>(sign | magnitude);
}

}  // namespace

std::uint8_t e4m3_from_fp32(std::uint32_t fp32_bits) {
  if (is_nan(fp32_bits, kFp32Format)) return kE4m3Nan;
  return round_saturating(fp32_bits, kE4m3Wide, kE4m3Largest, 7);
}

std::optional<std::uint8_t> e2m1_from_fp32(std::uint32_t fp32_bits) {
  if (is_nan(fp32_bits, kFp32Format)) return std::nullopt;
  return round_saturating(fp32_bits, kE2m1Wide, kE2m1Largest, 3);
}

std::uint32_t fp32_from_e4m3(std::uint8_t code) {
  if ((code & 0x7F) == kE4m3Nan) return kFp32Format.canonical_nan();
  constexpr FloatFormat kE4m3{3, 4};
  const std::uint32_t sign = (code & 0x80) ? kFp32Format.sign_mask() : 0u;
  if ((code & 0x7F) == 0) return sign;
  return round_to_format(decode_finite(code, kE4m3), kFp32Format).bits;  // exact: fp32 holds every e4m3
}

std::uint32_t fp32_from_e2m1(std::uint8_t code) {
  constexpr FloatFormat kE2m1{1, 2};
  const std::uint32_t sign = (code & 0x8) ? kFp32Format.sign_mask() : 0u;
  if ((code & 0x7) == 0) return sign;
  return round_to_format(decode_finite(code & 0xF, kE2m1), kFp32Format).bits;
}

}  // namespace ar
