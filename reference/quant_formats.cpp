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

// The exact fp32 value of a finite code of narrow format `f` (fp32 holds every value of e4m3 and e2m1).
std::uint32_t fp32_from_code(std::uint32_t code, FloatFormat f) {
  const std::uint32_t sign = sign_bit(code, f) ? kFp32Format.sign_mask() : 0u;
  if (is_zero(code, f)) return sign;
  return round_to_format(decode_finite(code, f), kFp32Format).bits;
}

}  // namespace

std::uint8_t e4m3_from_fp32(std::uint32_t fp32_bits) {
  if (is_nan(fp32_bits, kFp32Format)) return kE4m3Nan;
  return round_saturating(fp32_bits, kE4m3Wide, kE4m3Largest, 7);
}

std::uint8_t e2m1_from_fp32(std::uint32_t fp32_bits) {
  if (is_nan(fp32_bits, kFp32Format)) return kE2m1Largest;
  return round_saturating(fp32_bits, kE2m1Wide, kE2m1Largest, 3);
}

std::uint32_t fp32_from_e4m3(std::uint8_t code) {
  if ((code & 0x7F) == kE4m3Nan) return kFp32Format.canonical_nan();
  return fp32_from_code(code, FloatFormat{3, 4});
}

std::uint32_t fp32_from_e2m1(std::uint8_t code) { return fp32_from_code(code & 0xF, FloatFormat{1, 2}); }

}  // namespace ar
