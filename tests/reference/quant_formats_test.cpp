// The quantised outputs' narrow formats (reference/quant_formats.h) against an independent definition: the
// nearest of the format's values, found by searching every code in doubles, ties to the even code, and the
// largest value for anything beyond it; plus the values SPEC section 13 names.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "reference/quant_formats.h"

using namespace ar;

namespace {

double value_of(std::uint32_t fp32_bits) { return static_cast<double>(std::bit_cast<float>(fp32_bits)); }

/// The code of `largest` magnitude codes (0..largest, in increasing value) nearest to |x|, ties to the even
/// code, anything past the largest value to the largest: what RN-even with saturation means.
std::uint32_t nearest_code(double magnitude, const std::vector<double>& values) {
  if (magnitude >= values.back()) return static_cast<std::uint32_t>(values.size() - 1);
  std::uint32_t best = 0;
  for (std::uint32_t c = 1; c < values.size(); ++c) {
    const double d = std::fabs(values[c] - magnitude), best_d = std::fabs(values[best] - magnitude);
    if (d < best_d || (d == best_d && (c & 1u) == 0)) best = c;
  }
  return best;
}

/// fp32 inputs that probe every rounding boundary of a format: each value and midpoint of the format, one
/// fp32 ulp either side of it, and random fp32 bits over the whole range.
std::vector<std::uint32_t> probes(const std::vector<double>& values) {
  std::vector<std::uint32_t> out;
  auto around = [&](double v) {
    const std::uint32_t b = std::bit_cast<std::uint32_t>(static_cast<float>(v));
    for (std::uint32_t x : {b - 1, b, b + 1}) out.push_back(x), out.push_back(x | 0x80000000u);
  };
  for (std::size_t c = 0; c < values.size(); ++c) {
    around(values[c]);
    if (c + 1 < values.size()) around((values[c] + values[c + 1]) / 2);  // exact in fp32
  }
  around(values.back() * 1.0625);  // beyond the largest
  std::mt19937 random(13);
  for (int i = 0; i < 200000; ++i) out.push_back(static_cast<std::uint32_t>(random()));
  for (std::uint32_t b = 0x3A000000u; b < 0x44000000u; b += 0x1F3u) out.push_back(b);  // 2^-11 .. 512, dense
  return out;
}

}  // namespace

TEST_CASE("e4m3 codes decode to the values SPEC section 13 names", "[cpu]") {
  CHECK(value_of(fp32_from_e4m3(0x7E)) == 448.0);
  CHECK(value_of(fp32_from_e4m3(0xFE)) == -448.0);
  CHECK(value_of(fp32_from_e4m3(0x38)) == 1.0);
  CHECK(value_of(fp32_from_e4m3(0x08)) == std::ldexp(1.0, -6));  // smallest normal
  CHECK(value_of(fp32_from_e4m3(0x01)) == std::ldexp(1.0, -9));  // smallest subnormal
  CHECK(fp32_from_e4m3(0x80) == 0x80000000u);
  CHECK(std::isnan(value_of(fp32_from_e4m3(0x7F))));
  CHECK(std::isnan(value_of(fp32_from_e4m3(0xFF))));
}

TEST_CASE("e4m3 from fp32 is RN-even with saturation, against a search over every code", "[cpu]") {
  std::vector<double> values;  // the 127 finite non-negative codes, in increasing value
  for (std::uint32_t c = 0; c < 0x7F; ++c) values.push_back(value_of(fp32_from_e4m3(static_cast<std::uint8_t>(c))));
  for (std::size_t c = 1; c < values.size(); ++c) REQUIRE(values[c] > values[c - 1]);
  for (std::uint32_t c = 0; c < 0x7F; ++c) {  // every finite code, both signs, comes back as itself
    CHECK(e4m3_from_fp32(fp32_from_e4m3(static_cast<std::uint8_t>(c))) == c);
    CHECK(e4m3_from_fp32(fp32_from_e4m3(static_cast<std::uint8_t>(c | 0x80))) == (c | 0x80));
  }
  int checked = 0;
  for (const std::uint32_t x : probes(values)) {
    if (std::isnan(value_of(x))) continue;
    const std::uint32_t want = nearest_code(std::fabs(value_of(x)), values) | ((x >> 31) << 7);
    INFO("fp32 bits " << std::hex << x);
    REQUIRE(e4m3_from_fp32(x) == want);
    ++checked;
  }
  CHECK(checked > 250000);
  // The edges by hand: 464 is the midpoint of 448 and (the missing) 480, and saturates like everything above;
  // infinities saturate; a NaN gives the NaN code; 2^-10 is the tie between 0 and 2^-9 (even: 0).
  CHECK(e4m3_from_fp32(0x43E80000u) == 0x7E);  // 464
  CHECK(e4m3_from_fp32(0x7F800000u) == 0x7E);
  CHECK(e4m3_from_fp32(0xFF800000u) == 0xFE);
  CHECK(e4m3_from_fp32(0x7FC00000u) == kE4m3Nan);
  CHECK(e4m3_from_fp32(0x3A800000u) == 0x00);
  CHECK(e4m3_from_fp32(0xBA800000u) == 0x80);        // -2^-10: a zero keeps its sign
  CHECK(e4m3_from_fp32(0x3A800001u) == 0x01);        // just above the tie
  CHECK(e4m3_from_fp32(0x00000001u) == 0x00);        // an fp32 subnormal
}

TEST_CASE("e2m1 from fp32 is RN-even onto 0..6 with saturation and makes a NaN +6", "[cpu]") {
  const std::vector<double> want_values{0, 0.5, 1, 1.5, 2, 3, 4, 6};
  std::vector<double> values;
  for (std::uint8_t c = 0; c < 8; ++c) values.push_back(value_of(fp32_from_e2m1(c)));
  CHECK(values == want_values);
  CHECK(value_of(fp32_from_e2m1(0xF)) == -6.0);
  int checked = 0;
  for (const std::uint32_t x : probes(values)) {
    if (std::isnan(value_of(x))) {
      CHECK(e2m1_from_fp32(x) == kE2m1Largest);  // either sign, any payload
      continue;
    }
    const std::uint32_t want = nearest_code(std::fabs(value_of(x)), values) | ((x >> 31) << 3);
    INFO("fp32 bits " << std::hex << x);
    REQUIRE(e2m1_from_fp32(x) == want);
    ++checked;
  }
  CHECK(checked > 100000);
  CHECK(e2m1_from_fp32(0x40A00000u) == 0x6);  // 5: the tie of 4 and 6, even: 4
  CHECK(e2m1_from_fp32(0x3E800000u) == 0x0);  // 0.25: the tie of 0 and 0.5
  CHECK(e2m1_from_fp32(0xBF400000u) == 0xA);  // -0.75: the tie of 0.5 and 1: 1
  CHECK(e2m1_from_fp32(0xFF800000u) == 0xF);  // -Inf saturates to -6
}
