#include "reference/mufu.h"

#include <bit>
#include <cmath>

#include "reference/float_bits.h"
#include "reference/float_ops.h"

namespace ar {
namespace {

__extension__ typedef unsigned __int128 u128;  // GCC and Clang; -Wpedantic knows no 128-bit type

constexpr std::uint32_t kSign = 0x80000000u;
constexpr std::uint32_t kInfinity = 0x7F800000u;
constexpr std::uint32_t kNan = 0x7FFFFFFFu;
constexpr std::uint32_t kOne = 0x3F800000u;
constexpr std::uint32_t kMantissaMask = 0x007FFFFFu;
constexpr std::uint64_t kHidden = std::uint64_t{1} << 23;

constexpr std::uint32_t exponent_field(std::uint32_t x) { return (x >> 23) & 0xFFu; }

/// Rounds q * 2^-53, with q in (2^52, 2^53], to the nearest float (ties to even): the predictor's last step,
/// double to float. Every value here lies in (0.5, 1], so the float is normal.
std::uint32_t double_to_float(std::uint64_t q) {
  if (q == std::uint64_t{1} << 53) return kOne;
  std::uint64_t kept = q >> 29;  // 24 bits: the float's significand
  const std::uint64_t rest = q & ((std::uint64_t{1} << 29) - 1);
  const std::uint64_t half = std::uint64_t{1} << 28;
  if (rest > half || (rest == half && (kept & 1))) ++kept;
  if (kept == std::uint64_t{1} << 24) return kOne;
  return (126u << 23) | static_cast<std::uint32_t>(kept & kMantissaMask);  // kept * 2^-24 in [0.5, 1)
}

/// The double nearest to 2^k / d (ties to even) as q * 2^-53, for 2^k / d in (0.5, 1): q in (2^52, 2^53].
std::uint64_t reciprocal_double(u128 numerator, std::uint64_t d) {
  std::uint64_t q = static_cast<std::uint64_t>(numerator / d);
  const std::uint64_t r = static_cast<std::uint64_t>(numerator % d);
  if (r > d - r || (r == d - r && (q & 1))) ++q;
  return q;
}

/// floor(sqrt(n)) for n < 2^106. The host's sqrt only gives the first guess, which integer steps correct,
/// so the answer does not depend on the host's rounding mode.
std::uint64_t isqrt(u128 n) {
  auto s = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(n)));
  while (u128{s} * s > n) --s;
  while (u128{s + 1} * (s + 1) <= n) ++s;
  return s;
}

/// 2-bit entry i of a packed table.
int packed_entry(std::span<const std::uint8_t> table, std::uint32_t i) { return (table[i >> 2] >> (2 * (i & 3))) & 3; }

/// The canonical result yc with its exponent field moved by `shift`: the hardware's result for an input
/// whose exponent differs from the canonical one. A field that would fall below 1 gives a zero (the FTZ of
/// the result); none rises above 254 for a normal input.
std::uint32_t shift_exponent(std::uint32_t yc, int shift) {
  const int field = static_cast<int>(exponent_field(yc)) + shift;
  if (field < 1) return yc & kSign;
  if (field > 254) return (yc & kSign) | kInfinity;
  return (yc & ~(0xFFu << 23)) | (static_cast<std::uint32_t>(field) << 23);
}

}  // namespace

std::uint32_t rcp_predictor_bits(std::uint32_t x) {
  const std::uint64_t m = kHidden | (x & kMantissaMask);  // x = m * 2^-23 in [1, 2)
  if (m == kHidden) return kOne;
  return double_to_float(reciprocal_double(u128{1} << 76, m));  // 1 / x = 2^76 / m * 2^-53
}

std::uint32_t rsqrt_predictor_bits(std::uint32_t x) {
  const std::uint64_t m = kHidden | (x & kMantissaMask);
  // x = m * 2^-23 in [1, 2) for an odd exponent field, m * 2^-22 in [2, 4) for an even one; sqrt(x) in
  // [1, 2) as a double is s * 2^-52 with s the integer nearest to sqrt(x * 2^104) (never a tie).
  const u128 scaled = u128{m} << ((exponent_field(x) & 1) ? 81 : 82);
  std::uint64_t s = isqrt(scaled);
  if (scaled - u128{s} * s > s) ++s;
  if (s == std::uint64_t{1} << 52) return kOne;
  return double_to_float(reciprocal_double(u128{1} << 105, s));  // 1 / sqrt(x) = 2^105 / s * 2^-53
}

int rsqrt_delta(std::uint32_t index) { return packed_entry(rsqrt_delta_table(), index) - 2; }
int rcp_delta(std::uint32_t index) { return packed_entry(rcp_delta_table(), index) - 1; }

std::uint32_t rsqrt_approx_ftz_bits(std::uint32_t x) {
  const std::uint32_t e = exponent_field(x);
  const bool negative = (x & kSign) != 0;
  if (e == 0xFF) return (x & kMantissaMask) == 0 && !negative ? 0u : kNan;
  if (e == 0) return negative ? kSign | kInfinity : kInfinity;  // zeros and (flushed) subnormals
  if (negative) return kNan;
  // The binade of the canonical input has the parity of x's: x = xc * 4^k, so rsqrt(x) = rsqrt(xc) / 2^k.
  const std::uint32_t odd = e & 1;
  const std::uint32_t xc = ((odd ? 127u : 128u) << 23) | (x & kMantissaMask);
  const std::uint32_t yc = rsqrt_predictor_bits(xc) + rsqrt_delta((odd << 23) | (x & kMantissaMask));
  return shift_exponent(yc, -(static_cast<int>(e) - static_cast<int>(exponent_field(xc))) / 2);
}

std::uint32_t rsqrt_approx_bits(std::uint32_t x) {
  if (!is_subnormal(x, kFp32Format)) return rsqrt_approx_ftz_bits(x);
  if ((x & kSign) != 0) return kNan;
  // x = m * 2^-149 with m < 2^23, so x * 2^64 = m * 2^-85 is normal and exact; rsqrt(x) = rsqrt(x * 2^64) * 2^32.
  const WideValue scaled{false, x & kMantissaMask, -85, false};
  return shift_exponent(rsqrt_approx_ftz_bits(round_to_format(scaled, kFp32Format).bits), 32);
}

std::uint32_t rcp_approx_ftz_bits(std::uint32_t x) {
  const std::uint32_t e = exponent_field(x);
  const std::uint32_t sign = x & kSign;
  if (e == 0xFF) return (x & kMantissaMask) == 0 ? sign : kNan;
  if (e == 0) return sign | kInfinity;
  const std::uint32_t xc = kOne | (x & kMantissaMask);
  const std::uint32_t yc = rcp_predictor_bits(xc) + rcp_delta(x & kMantissaMask);
  return sign | shift_exponent(yc, 127 - static_cast<int>(e));
}

// One FTZ multiply in reference/ (float_ops), with its fast path for normal products.
std::uint32_t mul_ftz_bits(std::uint32_t a, std::uint32_t b) { return mul_fp32(a, b, /*ftz=*/true); }

std::uint32_t div_approx_ftz_bits(std::uint32_t a, std::uint32_t b) { return mul_ftz_bits(a, rcp_approx_ftz_bits(b)); }

}  // namespace ar
