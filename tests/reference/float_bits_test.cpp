// The integer IEEE primitives against values worked out by hand from the format definitions and the
// GPU behaviour recorded in SPEC section 0.
#include <catch2/catch.hpp>

#include <bit>

#include "reference/float_bits.h"

using namespace ar;

TEST_CASE("widening is exact", "[cpu]") {
  CHECK(widen_to_fp32(0x3F80, DType::kBf16) == 0x3F800000u);  // 1.0
  CHECK(widen_to_fp32(0x8001, DType::kBf16) == 0x80010000u);  // bf16 subnormal stays subnormal
  CHECK(widen_to_fp32(0x3C00, DType::kFp16) == 0x3F800000u);  // 1.0
  CHECK(widen_to_fp32(0x0001, DType::kFp16) == 0x33800000u);  // 2^-24 is normal in fp32
  CHECK(widen_to_fp32(0x83FF, DType::kFp16) == 0xB87FC000u);  // -(2^-14 - 2^-24)
  CHECK(widen_to_fp32(0x7BFF, DType::kFp16) == 0x477FE000u);  // 65504
  CHECK(widen_to_fp32(0xFC00, DType::kFp16) == 0xFF800000u);  // -Inf
  CHECK(widen_to_fp32(0x12345678, DType::kFp32) == 0x12345678u);
}

TEST_CASE("narrowing rounds to nearest even with canonical NaN", "[cpu]") {
  CHECK(narrow_from_fp32(0x3F808000, DType::kBf16) == 0x3F80);  // tie, even stays
  CHECK(narrow_from_fp32(0x3F818000, DType::kBf16) == 0x3F82);  // tie, odd rounds up
  CHECK(narrow_from_fp32(0x3F808001, DType::kBf16) == 0x3F81);  // above the tie
  CHECK(narrow_from_fp32(0x7F7FFFFF, DType::kBf16) == 0x7F80);  // SPEC: cvt.rn.bf16.f32(FLT_MAX) = Inf
  CHECK(narrow_from_fp32(0x7F7F8000, DType::kBf16) == 0x7F80);  // the first value that overflows bf16
  CHECK(narrow_from_fp32(0x7F7F7FFF, DType::kBf16) == 0x7F7F);
  CHECK(narrow_from_fp32(0x80008001, DType::kBf16) == 0x8001);  // SPEC section 0, no FTZ in narrowing
  CHECK(narrow_from_fp32(0x80000001, DType::kBf16) == 0x8000);
  CHECK(narrow_from_fp32(0xFFC00001, DType::kBf16) == 0x7FFF);  // any NaN -> 0x7FFF
  CHECK(narrow_from_fp32(0x7F800001, DType::kFp16) == 0x7FFF);
  CHECK(narrow_from_fp32(0x477FF000, DType::kFp16) == 0x7C00);  // 65520 -> Inf
  CHECK(narrow_from_fp32(0x477FEFFF, DType::kFp16) == 0x7BFF);  // just below 65520 -> 65504
  CHECK(narrow_from_fp32(0xC77FF000, DType::kFp16) == 0xFC00);
  CHECK(narrow_from_fp32(0x33000000, DType::kFp16) == 0x0000);  // 2^-25 ties to even (0)
  CHECK(narrow_from_fp32(0x33000001, DType::kFp16) == 0x0001);  // just above half the smallest subnormal
  CHECK(narrow_from_fp32(0x33C00000, DType::kFp16) == 0x0002);  // 1.5 * 2^-24 ties to even (2)
  CHECK(narrow_from_fp32(0x387FC000, DType::kFp16) == 0x03FF);  // largest fp16 subnormal, exact
}

TEST_CASE("fp32 add with FTZ matches add.ftz.f32 as measured", "[cpu]") {
  // SPEC section 0, [gpu]: +0 + 0x80010000 -> +0; -0 + 0x80010000 -> -0; 0x81000000 + 0x00C00000 -> -0.
  CHECK(add_fp32(0x00000000, 0x80010000, true) == 0x00000000u);
  CHECK(add_fp32(0x80000000, 0x80010000, true) == 0x80000000u);
  CHECK(add_fp32(0x81000000, 0x00C00000, true) == 0x80000000u);
  CHECK(add_fp32(0x81000000, 0x00C00000, false) == 0x80400000u);  // IEEE: exact -2^-127
  CHECK(add_fp32(0x7F800000, 0xFF800000, true) == 0x7FFFFFFFu);   // Inf - Inf
  CHECK(add_fp32(0xFFC00123, 0x3F800000, true) == 0x7FFFFFFFu);   // NaN payload and sign lost
  CHECK(add_fp32(0x7F7FFFFF, 0x7F7FFFFF, true) == 0x7F800000u);   // overflow
  CHECK(add_fp32(0x3F800000, 0x33800000, true) == 0x3F800000u);   // 1 + 2^-24: tie to even
  CHECK(add_fp32(0x3F800001, 0x33800000, true) == 0x3F800002u);   // 1+ulp + half ulp: tie up to even
  CHECK(add_fp32(0x3F800000, 0x33800001, true) == 0x3F800001u);   // just above the tie
  CHECK(add_fp32(0x4B800000, 0xBF800000, true) == 0x4B7FFFFFu);   // 2^24 - 1, exact
  CHECK(add_fp32(0x3F800000, 0xBF800000, true) == 0x00000000u);   // x - x = +0
  CHECK(add_fp32(0x80000000, 0x80000000, true) == 0x80000000u);   // -0 + -0 = -0
  CHECK(add_fp32(0x00000001, 0x00000001, false) == 0x00000002u);  // IEEE keeps subnormals
  CHECK(add_fp32(0x00000001, 0x00000001, true) == 0x00000000u);
  CHECK(add_fp32(0x4F000000, 0x3F800000, true) == 0x4F000000u);  // 2^31 + 1: far below the last place
  CHECK(add_fp32(0x4F000000, 0xBF800000, true) == 0x4F000000u);  // 2^31 - 1 rounds back to 2^31
  CHECK(add_fp32(0x4B800001, 0xBF800000, true) == 0x4B800000u);  // (2^24+2) - 1: tie, to the even 2^24
}

TEST_CASE("fp32 add agrees with the host's IEEE adds on many random pairs", "[cpu]") {
  // The host FPU in its default state (RN, no FTZ/DAZ) is IEEE binary32: a second opinion on random inputs.
  std::uint64_t x = 0x243F6A8885A308D3ull;
  const auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<std::uint32_t>(x);
  };
  for (int i = 0; i < 200000; ++i) {
    std::uint32_t a = next(), b = next();
    if (i % 3 == 0) b = (b & 0x807FFFFFu) | (a & 0x7F800000u);  // same exponent: cancellation
    if (i % 5 == 0) b = (b & 0x80FFFFFFu) | (a & 0x7F000000u);
    const float fa = std::bit_cast<float>(a), fb = std::bit_cast<float>(b);
    const std::uint32_t host = std::bit_cast<std::uint32_t>(fa + fb);
    const std::uint32_t ours = add_fp32(a, b, false);
    if (is_nan(host, kFp32Format)) {
      REQUIRE(ours == 0x7FFFFFFFu);
    } else {
      INFO("a=" << std::hex << a << " b=" << b);
      REQUIRE(ours == host);
    }
  }
}

TEST_CASE("sanitising touches only the exact -0", "[cpu]") {
  CHECK(sanitize_negative_zero(0x8000, DType::kBf16) == 0u);
  CHECK(sanitize_negative_zero(0x8001, DType::kBf16) == 0x8001u);
  CHECK(sanitize_negative_zero(0x80000000, DType::kFp32) == 0u);
  CHECK(sanitize_negative_zero(0x80000001, DType::kFp32) == 0x80000001u);
  CHECK(sanitize_negative_zero(0x8000, DType::kFp32) == 0x8000u);
}

TEST_CASE("ulp distance counts along the ordered patterns", "[cpu]") {
  CHECK(ulp_distance(0x3F80, 0x3F81, DType::kBf16) == 1);
  CHECK(ulp_distance(0x0000, 0x8000, DType::kBf16) == 0);
  CHECK(ulp_distance(0x0001, 0x8001, DType::kBf16) == 2);
  CHECK(ulp_distance(0x3F800000, 0x40000000, DType::kFp32) == 0x800000u);
}
