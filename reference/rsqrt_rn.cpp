#include "reference/rsqrt_rn.h"

#include <bit>
#include <cmath>

#include "reference/float_ops.h"

namespace ar {
namespace {

__extension__ typedef unsigned __int128 Wide;  // GCC and Clang both have it; -Wpedantic asks for the marker

constexpr std::uint32_t kSignMask = 0x80000000u;
constexpr std::uint32_t kInfinity = 0x7F800000u;
constexpr std::uint32_t kCanonicalNan = 0x7FFFFFFFu;

/// floor(sqrt(n)) for n < 2^62.
std::uint64_t integer_sqrt(std::uint64_t n) {
  auto r = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(n)));  // within a few units
  while (r * r > n) --r;
  while ((r + 1) * (r + 1) <= n) ++r;
  return r;
}

}  // namespace

std::uint32_t rsqrt_rn_fp32(std::uint32_t x) {
  const std::uint32_t magnitude = x & ~kSignMask;
  if (magnitude > kInfinity) return kCanonicalNan;              // NaN
  if (magnitude == 0) return (x & kSignMask) | kInfinity;       // 1/sqrt(+-0) = +-Inf
  if ((x & kSignMask) != 0) return kCanonicalNan;               // negative
  if (magnitude == kInfinity) return 0u;                        // 1/sqrt(+Inf) = +0

  // x = m * 2^e with m a 24-bit significand (subnormals normalised), then e made even: m < 2^25.
  std::uint64_t m = x & 0x007FFFFFu;
  int e = static_cast<int>(x >> 23);
  if (e == 0) {
    e = 1;
    while (m < (std::uint64_t{1} << 23)) {
      m <<= 1;
      --e;
    }
  } else {
    m |= std::uint64_t{1} << 23;
  }
  e -= 127 + 23;
  if (e % 2 != 0) {
    m <<= 1;
    --e;
  }
  // 1/sqrt(x) = 2^(-e/2) * 2^-s * (2^s / sqrt(m)). r = floor(2^s / sqrt(m)) = floor(sqrt(floor(2^2s / m)))
  // lands in [2^23, 2^24) for s = 36 or 35 (sqrt(m) lies in [2^11.5, 2^12.5)).
  int s = 36;
  std::uint64_t r = integer_sqrt(static_cast<std::uint64_t>((Wide{1} << (2 * s)) / m));
  if (r >= (std::uint64_t{1} << 24)) {
    s = 35;
    r = integer_sqrt(static_cast<std::uint64_t>((Wide{1} << (2 * s)) / m));
  }
  // Round to nearest: up when 2^s / sqrt(m) > r + 1/2, i.e. (2r + 1)^2 m < 2^(2s + 2). Equality would need m
  // to be a power of two over an odd square, which r >= 2^23 rules out: no ties.
  const Wide twice_plus_one = 2 * Wide{r} + 1;
  if (twice_plus_one * twice_plus_one * m < (Wide{1} << (2 * s + 2))) ++r;
  if (r == (std::uint64_t{1} << 24)) {
    r >>= 1;
    --s;
  }
  // value = r * 2^(-s - e/2), r in [2^23, 2^24): always a normal fp32 (x lies in [2^-149, 2^128)).
  const int exponent = -s - e / 2 + 23;
  return static_cast<std::uint32_t>(exponent + 127) << 23 | static_cast<std::uint32_t>(r - (std::uint64_t{1} << 23));
}

std::uint32_t rsqrt_rn_by_correction(std::uint32_t x, std::uint32_t guess, int* ulps_off) {
  if (ulps_off != nullptr) *ulps_off = 0;
  if ((x & kSignMask) != 0 || x == 0 || x >= kInfinity) return guess;
  // Only the bits travel through float and double: every operation below is exact or one IEEE rounding.
  const double wide = std::bit_cast<float>(x);
  // m lies below 1/sqrt(x) exactly when m^2 x < 1.
  const auto below_root = [&](std::uint32_t lower) {
    const double m = std::bit_cast<double>(rsqrt_midpoint_fp64_bits(lower));
    return std::fma(m * m, wide, -1.0) < 0.0;
  };
  // One round: the midpoints above g - kRsqrtWindow - 1 .. g + kRsqrtWindow, counted (they rise with k).
  int below = 0;
  for (int k = -kRsqrtWindow - 1; k <= kRsqrtWindow; ++k) below += below_root(guess + static_cast<std::uint32_t>(k));
  std::uint32_t y = guess - static_cast<std::uint32_t>(kRsqrtWindow + 1) + static_cast<std::uint32_t>(below);
  // At the window's edge the answer may lie further out: step on while a neighbour is nearer.
  if (below == 0) {
    for (int i = 0; i < kRsqrtCorrections && !below_root(y - 1); ++i) --y;
  } else if (below == 2 * (kRsqrtWindow + 1)) {
    for (int i = 0; i < kRsqrtCorrections && below_root(y); ++i) ++y;
  }
  if (ulps_off != nullptr) *ulps_off = static_cast<int>(y - guess);
  return y;
}

std::uint32_t reciprocal_rn_fp32(std::uint32_t x) { return div_fp32(0x3F800000u, x); }

}  // namespace ar
