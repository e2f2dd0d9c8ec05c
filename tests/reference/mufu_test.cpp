// The MUFU model (reference/mufu.h) against what the hardware capture established: the special values, the
// exponent structure, the predictor's definition in double arithmetic, the tables' contents and ranges,
// and div.approx worked by hand. `mnnvl-ar mufu --check` compares the same functions with a GPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "reference/float_ops.h"
#include "reference/mufu.h"

using namespace ar;

namespace {

constexpr std::uint32_t kPosInf = 0x7F800000u, kNegInf = 0xFF800000u, kNan = 0x7FFFFFFFu, kNegZero = 0x80000000u;

std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::map<int, std::uint64_t> histogram(int (*delta)(std::uint32_t), std::uint32_t entries) {
  std::map<int, std::uint64_t> h;
  for (std::uint32_t i = 0; i < entries; ++i) ++h[delta(i)];
  return h;
}

}  // namespace

TEST_CASE("rsqrt.approx.ftz special values follow the rules the capture found", "[cpu]") {
  CHECK(rsqrt_approx_ftz_bits(0x00000000u) == kPosInf);
  CHECK(rsqrt_approx_ftz_bits(0x00000001u) == kPosInf);  // subnormals are zeros
  CHECK(rsqrt_approx_ftz_bits(0x007FFFFFu) == kPosInf);
  CHECK(rsqrt_approx_ftz_bits(kNegZero) == kNegInf);
  CHECK(rsqrt_approx_ftz_bits(0x80000001u) == kNegInf);
  CHECK(rsqrt_approx_ftz_bits(kPosInf) == 0u);
  CHECK(rsqrt_approx_ftz_bits(kNegInf) == kNan);
  CHECK(rsqrt_approx_ftz_bits(0xBF800000u) == kNan);  // -1
  CHECK(rsqrt_approx_ftz_bits(0x80800000u) == kNan);  // the smallest negative normal
  CHECK(rsqrt_approx_ftz_bits(0x7FC00000u) == kNan);
  CHECK(rsqrt_approx_ftz_bits(0xFF800001u) == kNan);  // a signalling NaN of either sign
  CHECK(rsqrt_approx_ftz_bits(0x7F800001u) == kNan);
}

TEST_CASE("rsqrt.approx.ftz of hand-picked normals", "[cpu]") {
  CHECK(rsqrt_approx_ftz(1.0f) == 1.0f);  // the table's entry for 1.0 is 0
  CHECK(rsqrt_approx_ftz(4.0f) == 0.5f);  // 4 = 1.0 * 4^1
  CHECK(rsqrt_approx_ftz(0.25f) == 2.0f);
  CHECK(rsqrt_approx_ftz(0x1p-126f) == 0x1p63f);  // the extremes of the exponent shift
  CHECK(rsqrt_approx_ftz(0x1p126f) == 0x1p-63f);
  // 1/sqrt(2) rounds to 0x3F3504F3 (twice rounded, as the predictor says); the hardware is one ulp below.
  CHECK(rsqrt_predictor_bits(0x40000000u) == 0x3F3504F3u);
  CHECK(rsqrt_approx_ftz_bits(0x40000000u) == 0x3F3504F2u);
  CHECK(rsqrt_approx_ftz_bits(0x41000000u) == 0x3F3504F2u - (1u << 23));  // x = 8 = 2 * 4: half of it
}

TEST_CASE("rsqrt.approx without FTZ: the .ftz results, and subnormals scaled into the normals", "[cpu]") {
  for (std::uint32_t x : {0u, kNegZero, kPosInf, kNegInf, 0x3F800000u, 0x00800000u, 0x7F7FFFFFu, 0xBF800000u})
    CHECK(rsqrt_approx_bits(x) == rsqrt_approx_ftz_bits(x));
  CHECK(rsqrt_approx_bits(0x80000001u) == kNan);  // a negative subnormal
  CHECK(rsqrt_approx_bits(0x807FFFFFu) == kNan);
  // The structure the normals follow, rsqrt(4x) = rsqrt(x) / 2, holds across the subnormal boundary: for
  // m >= 2^21, 4x is normal and answered by the table directly, x by the scaling.
  for (std::uint32_t m = 1u << 21; m < (1u << 23); m += 997) {
    const std::uint32_t four_x = bits(4.0f * std::bit_cast<float>(m));  // exact: a normal with the same digits
    REQUIRE((four_x >> 23) != 0);
    REQUIRE(rsqrt_approx_bits(m) == rsqrt_approx_bits(four_x) + (1u << 23));
  }
  // And down the subnormals: rsqrt(x) = 2 rsqrt(4x) while 4x stays subnormal.
  for (std::uint32_t m = 1; m < (1u << 21); m = m * 3 + 1)
    REQUIRE(rsqrt_approx_bits(m) == rsqrt_approx_bits(4 * m) + (1u << 23));
}

TEST_CASE("rcp.approx.ftz special values follow the rules the capture found", "[cpu]") {
  CHECK(rcp_approx_ftz_bits(0x00000000u) == kPosInf);
  CHECK(rcp_approx_ftz_bits(0x00000001u) == kPosInf);
  CHECK(rcp_approx_ftz_bits(kNegZero) == kNegInf);
  CHECK(rcp_approx_ftz_bits(0x807FFFFFu) == kNegInf);
  CHECK(rcp_approx_ftz_bits(kPosInf) == 0u);
  CHECK(rcp_approx_ftz_bits(kNegInf) == kNegZero);
  CHECK(rcp_approx_ftz_bits(0x7FC00000u) == kNan);
  CHECK(rcp_approx_ftz_bits(0xFFFFFFFFu) == kNan);
  // Results below the normal range are zeros of the input's sign: every input from 2^126 up, except 2^126.
  CHECK(rcp_approx_ftz(0x1p126f) == 0x1p-126f);
  CHECK(rcp_approx_ftz_bits(0x7E800001u) == 0u);
  CHECK(rcp_approx_ftz_bits(0x7F000000u) == 0u);  // 2^127
  CHECK(rcp_approx_ftz_bits(0x7F7FFFFFu) == 0u);  // FLT_MAX
  CHECK(rcp_approx_ftz_bits(0xFF7FFFFFu) == kNegZero);
  CHECK(rcp_approx_ftz(1.0f) == 1.0f);
  CHECK(rcp_approx_ftz(2.0f) == 0.5f);
  CHECK(rcp_approx_ftz(4096.0f) == 0x1p-12f);
  CHECK(rcp_approx_ftz(-0x1p-126f) == -0x1p126f);
  CHECK(rcp_approx_ftz_bits(0x40400000u) == 0x3EAAAAABu);  // 1/3: the table's entry is 0
}

TEST_CASE("rsqrt.approx.ftz depends on the mantissa and the exponent's parity only", "[cpu]") {
  // rsqrt(4x) = rsqrt(x) / 2 exactly, for every normal x with 4x normal (a sample of them).
  for (std::uint32_t x = 0x00800000u; x < 0x7E800000u; x += 997) {
    const std::uint32_t y = rsqrt_approx_ftz_bits(x);
    REQUIRE(rsqrt_approx_ftz_bits(x + (2u << 23)) == y - (1u << 23));
  }
}

TEST_CASE("rcp.approx.ftz is odd and halves when its input doubles", "[cpu]") {
  for (std::uint32_t x = 0; x < 0x80000000u; x += 1009) {
    const std::uint32_t y = rcp_approx_ftz_bits(x);
    if (y != kNan) REQUIRE(rcp_approx_ftz_bits(x | kNegZero) == (y | kNegZero));
    const std::uint32_t e = x >> 23;
    if (e >= 1 && e <= 251) REQUIRE(rcp_approx_ftz_bits(x + (1u << 23)) == y - (1u << 23));
  }
}

TEST_CASE("the integer predictors equal the double arithmetic they define, on every canonical input", "[cpu]") {
  // The host's double arithmetic is IEEE with round to nearest even in the default mode.
  for (std::uint32_t m = 0; m < (1u << 23); ++m) {
    for (const std::uint32_t e : {127u, 128u}) {
      const std::uint32_t x = (e << 23) | m;
      const double xd = std::bit_cast<float>(x);
      REQUIRE(rsqrt_predictor_bits(x) == bits(static_cast<float>(1.0 / std::sqrt(xd))));
    }
    const std::uint32_t x = (127u << 23) | m;
    REQUIRE(rcp_predictor_bits(x) == bits(static_cast<float>(1.0 / static_cast<double>(std::bit_cast<float>(x)))));
  }
}

TEST_CASE("the built-in tables are data/mufu's files, with the capture's histograms", "[cpu]") {
  const std::string dir = std::string(AR_SOURCE_DIR) + "/data/mufu/";
  const auto rsqrt = rsqrt_delta_table();
  const auto rcp = rcp_delta_table();
  REQUIRE(rsqrt.size() == kRsqrtDeltaEntries / 4);
  REQUIRE(rcp.size() == kRcpDeltaEntries / 4);
  CHECK(read_file(dir + "rsqrt_delta.bin") == std::vector<std::uint8_t>(rsqrt.begin(), rsqrt.end()));
  CHECK(read_file(dir + "rcp_delta.bin") == std::vector<std::uint8_t>(rcp.begin(), rcp.end()));
  // The counts the capture printed over the canonical binades: every delta within -2..1 and -1..1.
  CHECK(histogram(rsqrt_delta, kRsqrtDeltaEntries) ==
        std::map<int, std::uint64_t>{{-2, 8}, {-1, 2344391}, {0, 13143086}, {1, 1289731}});
  CHECK(histogram(rcp_delta, kRcpDeltaEntries) ==
        std::map<int, std::uint64_t>{{-1, 374723}, {0, 7280086}, {1, 733799}});
}

// Hidden (run by name, not by the suite): it needs a raw capture, which the repository does not hold.
TEST_CASE("the built-in tables equal a raw capture", "[.][capture]") {
  // AR_MUFU_CAPTURE_DIR: a folder with the capture's rsqrt_delta.i8 and rcp_delta.i8 (one int8 per entry).
  const char* dir = std::getenv("AR_MUFU_CAPTURE_DIR");
  INFO("AR_MUFU_CAPTURE_DIR must name the folder of a capture (mnnvl-ar mufu --capture DIR)");
  REQUIRE(dir != nullptr);
  const std::vector<std::uint8_t> rsqrt = read_file(std::string(dir) + "/rsqrt_delta.i8");
  const std::vector<std::uint8_t> rcp = read_file(std::string(dir) + "/rcp_delta.i8");
  REQUIRE(rsqrt.size() == kRsqrtDeltaEntries);
  REQUIRE(rcp.size() == kRcpDeltaEntries);
  for (std::uint32_t i = 0; i < kRsqrtDeltaEntries; ++i) REQUIRE(rsqrt_delta(i) == static_cast<std::int8_t>(rsqrt[i]));
  for (std::uint32_t i = 0; i < kRcpDeltaEntries; ++i) REQUIRE(rcp_delta(i) == static_cast<std::int8_t>(rcp[i]));
}

TEST_CASE("mul.rn.ftz flushes subnormal operands and results and rounds once", "[cpu]") {
  CHECK(mul_ftz(3.0f, 5.0f) == 15.0f);
  CHECK(mul_ftz_bits(0x00000001u, 0x7F000000u) == 0u);  // a subnormal operand is +0 even times 2^127
  CHECK(mul_ftz_bits(0x80000001u, 0x3F800000u) == kNegZero);
  CHECK(mul_ftz(0x1p-63f, 0x1p-63f) == 0x1p-126f);            // the smallest normal result stays
  CHECK(mul_ftz_bits(bits(0x1p-64f), bits(0x1p-63f)) == 0u);  // 2^-127 is subnormal: flushed
  CHECK(mul_ftz_bits(bits(-0x1p-64f), bits(0x1p-63f)) == kNegZero);
  CHECK(mul_ftz(0x1p64f, 0x1p64f) == INFINITY);
  CHECK(mul_ftz_bits(kPosInf, 0u) == kNan);
  CHECK(mul_ftz_bits(kNegInf, 0x00000001u) == kNan);  // Inf times a flushed subnormal
  CHECK(mul_ftz_bits(kNegInf, 0x3F800000u) == kNegInf);
  CHECK(mul_ftz_bits(0xFFC00001u, 0x3F800000u) == kNan);
  // (1 + 2^-23)^2 = 1 + 2^-22 + 2^-46 rounds down to 1 + 2^-22. A tie goes to even: (1 + 2^-12)^2 =
  // 1 + 2^-11 + 2^-24 lies half an ulp above 1 + 2^-11, whose last bit is even.
  CHECK(mul_ftz_bits(0x3F800001u, 0x3F800001u) == 0x3F800002u);
  CHECK(mul_ftz(1.0f + 0x1p-12f, 1.0f + 0x1p-12f) == 1.0f + 0x1p-11f);
}

TEST_CASE("mul.rn.ftz flushes what is tiny after rounding to 24 bits", "[cpu]") {
  // All-ones significands times powers of two: products exact in 24 bits just below 2^-126, flushed on the
  // GPU although IEEE rounding with subnormals gives 2^-126 (mufu --check's first differences); one ulp
  // more and the product is the smallest normal itself. float_ops' tests cover the rest of the band.
  for (std::uint32_t e = 1; e <= 126; ++e) {
    const std::uint32_t a = (e << 23) | 0x7FFFFFu;  // (2 - 2^-23) 2^(e-127)
    const std::uint32_t b = (127 - e) << 23;        // 2^-e: a * b = (2 - 2^-23) 2^-127 = 2^-126 - 2^-150
    REQUIRE(mul_ftz_bits(a, b) == 0u);
    REQUIRE(mul_ftz_bits(a + 1, b) == 0x00800000u);  // a's next value times b: 2^-126 exactly
    REQUIRE(mul_ftz_bits(a | 0x80000000u, b) == kNegZero);
  }
  CHECK(mul_ftz_bits(0x05FFFFFFu, 0x3A000000u) == 0u);
  CHECK(mul_ftz_bits(0x85FFFFFFu, 0x3A000000u) == kNegZero);
}

TEST_CASE("div.approx.ftz is mul.rn.ftz by rcp.approx.ftz, worked by hand", "[cpu]") {
  CHECK(div_approx_ftz_bits(bits(3.0f), bits(4096.0f)) == bits(3.0f * 0x1p-12f));  // rcp(4096) = 2^-12 exactly
  CHECK(div_approx_ftz_bits(bits(0x1p-114f), bits(4096.0f)) == bits(0x1p-126f));
  CHECK(div_approx_ftz_bits(bits(0x1p-115f), bits(4096.0f)) == 0u);  // 2^-127: flushed
  CHECK(div_approx_ftz_bits(bits(-0x1p-115f), bits(4096.0f)) == kNegZero);
  CHECK(div_approx_ftz_bits(bits(6.0f), bits(3.0f)) == 0x40000000u);  // 6 * 0x3EAAAAAB rounds to 2
  CHECK(div_approx_ftz_bits(bits(1.0f), bits(3.0f)) == 0x3EAAAAABu);
  CHECK(div_approx_ftz_bits(bits(1.0f), 0u) == kPosInf);
  CHECK(div_approx_ftz_bits(0u, 0u) == kNan);            // 0 * Inf
  CHECK(div_approx_ftz_bits(kPosInf, kPosInf) == kNan);  // Inf * 0
  CHECK(div_approx_ftz_bits(bits(1.0f), kNegInf) == kNegZero);
  CHECK(div_approx_ftz_bits(bits(1e38f), bits(0x1p127f)) == 0u);  // rcp(2^127) underflows to +0: any finite a gives +0
  CHECK(div_approx_ftz_bits(bits(0x1p100f), bits(0x1p126f)) == bits(0x1p-26f));
}
