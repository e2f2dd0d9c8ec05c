// The invariant profile's reciprocal square root: the integer definition is correctly rounded, and the
// kernels' route (the MUFU's rsqrt.approx.f32 corrected by exact midpoint tests) gives its bits for every
// fp32 input, with the MUFU as reference/mufu.h models it (proven on the GPU by `mnnvl-ar mufu --check`).
//
// Why the inputs below cover all 2^32: the functions commute with scaling by four. The definition does
// (1/sqrt(4x) = (1/sqrt(x)) / 2 exactly, and halving a normal fp32 is exact: every result is normal); the
// MUFU's guess for a normal input depends only on the significand and the exponent's parity (mufu.h); and
// the correction's tests are exact. So every positive normal input has a twin in [1, 4) with the same answer
// up to that scale; subnormals, zeros, infinities, NaNs and negatives are tested one by one.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>

#include "reference/mufu.h"
#include "reference/rsqrt_rn.h"

using namespace ar;

namespace {

/// Independent check of correct rounding: r is the nearest fp32 to 1/sqrt(x) iff 1/sqrt(x) lies strictly
/// between the midpoints around r, i.e. x * lo^2 < 1 < x * hi^2 for the midpoints lo < hi, decided in
/// long double: x * mid^2 has at most 24 + 2*25 = 74 significant bits, more than long double's 64, so it is
/// decided by comparing mid with 1/sqrt(x) the other way round when the product is close.
bool is_nearest(std::uint32_t x, std::uint32_t r) {
  const long double xv = std::bit_cast<float>(x);
  const long double rv = std::bit_cast<float>(r);
  const long double up = std::nextafter(std::bit_cast<float>(r), INFINITY);
  const long double down = std::nextafter(std::bit_cast<float>(r), 0.0f);
  const long double hi = (rv + up) / 2, lo = (rv + down) / 2;  // exact in long double
  return xv * lo * lo < 1.0L && xv * hi * hi > 1.0L;
}

}  // namespace

TEST_CASE("rsqrt_rn of exact cases and special values", "[reference][rsqrt_rn]") {
  CHECK(rsqrt_rn_fp32(0x3F800000u) == 0x3F800000u);  // 1 -> 1
  CHECK(rsqrt_rn_fp32(0x40800000u) == 0x3F000000u);  // 4 -> 1/2
  CHECK(rsqrt_rn_fp32(0x3E800000u) == 0x40000000u);  // 1/4 -> 2
  CHECK(rsqrt_rn_fp32(0x00000001u) == 0x64B504F3u);  // 2^-149 -> 2^74.5, rounded
  CHECK(rsqrt_rn_fp32(0x00000000u) == 0x7F800000u);
  CHECK(rsqrt_rn_fp32(0x80000000u) == 0xFF800000u);
  CHECK(rsqrt_rn_fp32(0x7F800000u) == 0x00000000u);
  CHECK(rsqrt_rn_fp32(0xBF800000u) == 0x7FFFFFFFu);
  CHECK(rsqrt_rn_fp32(0x7FC00001u) == 0x7FFFFFFFu);
  CHECK(rsqrt_rn_fp32(0xFF800000u) == 0x7FFFFFFFu);
  // The MUFU's guess is already the answer where the correction does not look.
  for (std::uint32_t x : {0x00000000u, 0x80000000u, 0x7F800000u, 0xBF800000u, 0x7FC00001u, 0xFF800000u, 0x80000001u})
    CHECK(rsqrt_rn_by_correction(x, rsqrt_approx_bits(x)) == rsqrt_rn_fp32(x));
  // From a guess inside the window, beyond it (one-ulp steps from its edge) and beyond those steps' bound.
  constexpr int kReach = kRsqrtWindow + 1 + kRsqrtCorrections;  // the furthest a guess may lie off
  for (int off : {-2, -1, 0, 1, 2, -3, 3, -5, 6, -kReach, kReach, kReach + 1}) {
    int ulps_off = 0;
    const auto guess = static_cast<std::uint32_t>(0x3F3504F3 + off);  // 1/sqrt(2) is 0x3F3504F3
    const std::uint32_t r = rsqrt_rn_by_correction(0x40000000u, guess, &ulps_off);
    if (off >= -kReach && off <= kReach) {
      CHECK(r == 0x3F3504F3u);
      CHECK(ulps_off == -off);
    } else {
      CHECK(r == guess - static_cast<std::uint32_t>(kReach));  // the bound holds
    }
  }
  // The midpoint bits: (a + b) / 2 in fp64 for neighbours a < b, also across a binade's end.
  for (std::uint32_t lower : {0x3F3504F3u, 0x3F7FFFFFu, 0x00800000u, 0x7F7FFFFEu}) {
    const double a = std::bit_cast<float>(lower), b = std::bit_cast<float>(lower + 1);
    CHECK(std::bit_cast<double>(rsqrt_midpoint_fp64_bits(lower)) == (a + b) / 2);
  }
}

TEST_CASE("rsqrt_rn is correctly rounded (random inputs over every exponent)", "[reference][rsqrt_rn]") {
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t x = rng() & 0x7FFFFFFFu;
    if (x == 0 || x >= 0x7F800000u) continue;
    const std::uint32_t r = rsqrt_rn_fp32(x);
    INFO("x = 0x" << std::hex << x << ", r = 0x" << r);
    REQUIRE(is_nearest(x, r));
  }
}

TEST_CASE("rsqrt_rn: the kernels' corrected MUFU guess gives the definition's bits for every fp32", "[reference][rsqrt_rn]") {
  std::int64_t checked = 0;
  int most_off = 0;
  const auto check = [&](std::uint32_t x) {
    int ulps_off = 0;
    const std::uint32_t r = rsqrt_rn_by_correction(x, rsqrt_approx_bits(x), &ulps_off);
    most_off = std::max(most_off, ulps_off < 0 ? -ulps_off : ulps_off);
    ++checked;
    if (r != rsqrt_rn_fp32(x))
      FAIL("x = 0x" << std::hex << x << ": corrected 0x" << r << ", definition 0x" << rsqrt_rn_fp32(x));
  };
  for (std::uint32_t x = 0x3F800000u; x < 0x40800000u; ++x) check(x);  // [1, 4): every significand, both parities
  for (std::uint32_t x = 1; x < 0x00800000u; ++x) check(x);            // every subnormal
  CHECK(checked == (std::int64_t{1} << 24) + (std::int64_t{1} << 23) - 1);
  // The guess is at most two ulps off: the window's one round of tests always decides, no step beyond it.
  CHECK(most_off <= kRsqrtWindow);
  // The scaling argument, checked on a sample of every exponent.
  std::mt19937 rng(11);
  for (int i = 0; i < 100000; ++i) check(static_cast<std::uint32_t>(0x00800000u + rng() % (0x7F800000u - 0x00800000u)));
}
