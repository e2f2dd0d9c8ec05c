// SPEC section 10, case by case. Every expected value below was worked out by hand from the rules
// (sanitise, widen, FTZ fp32 fold from +0 in rank order, RN-even narrowing, TWOSHOT -0 -> +0), not taken from
// the code's output; the comment on each line gives the derivation.
#include <catch2/catch.hpp>

#include <vector>

#include "reference/float_bits.h"
#include "reference/fold.h"
#include "reference/workspace.h"

using namespace ar;

namespace {

std::uint32_t run(std::vector<std::uint32_t> v, DType t, Strategy s, Profile p = Profile::kFlashInfer) {
  return reduce_element(v, t, reduction_order(s, p, static_cast<int>(v.size())));
}
constexpr auto kOne = Strategy::kOneShot;
constexpr auto kTwo = Strategy::kTwoShot;

}  // namespace

TEST_CASE("10.1 -0 inputs are sanitised to +0", "[cpu]") {
  CHECK(run({0x8000, 0x8000}, DType::kBf16, kOne) == 0x0000);  // +0 + +0 + +0
  CHECK(run({0x80000000, 0x80000000}, DType::kFp32, kOne) == 0x00000000);
  // Sanitising changes the sum where a -0 accumulator meets a -0 input: -0 (flushed sum) + (+0) = +0.
  CHECK(run({0x8081, 0x0080, 0x8000, 0x8000}, DType::kBf16, kOne) == 0x0000);
}

TEST_CASE("10.2 ONESHOT can return -0, TWOSHOT never", "[cpu]") {
  // bf16 0x8081 + 0x0080 = -2^-133: a negative subnormal sum, flushed to -0 (SPEC section 3 example).
  CHECK(run({0x8081, 0x0080}, DType::kBf16, kOne) == 0x8000);
  CHECK(run({0x8081, 0x0080}, DType::kBf16, kTwo) == 0x0000);
  // fp32 -(2^-126 + 2^-149) + 2^-126 = -2^-149 -> -0.
  CHECK(run({0x80800001, 0x00800000}, DType::kFp32, kOne) == 0x80000000);
  CHECK(run({0x80800001, 0x00800000}, DType::kFp32, kTwo) == 0x00000000);
  // A later +0 operand turns the -0 accumulator back to +0: A(-0, +0) = +0.
  CHECK(run({0x0000, 0x8081, 0x0080, 0x0000}, DType::kBf16, kOne) == 0x0000);
  // Flushed negative subnormals keep it -0: A(-0, -0) = -0.
  CHECK(run({0x8081, 0x0080, 0x8001, 0x8001}, DType::kBf16, kOne) == 0x8000);
  CHECK(run({0x8081, 0x0080, 0x8001, 0x8001}, DType::kBf16, kTwo) == 0x0000);
  // fp16 sums are multiples of 2^-24, never fp32-subnormal: -2^-24 + 2^-24 = +0 in both.
  CHECK(run({0x8001, 0x0001}, DType::kFp16, kOne) == 0x0000);
}

TEST_CASE("10.3 subnormals: FTZ for bf16/fp32 adds, exact for fp16", "[cpu]") {
  CHECK(run({0x0001, 0x0001}, DType::kBf16, kOne) == 0x0000);                  // both flush to +0
  CHECK(run({0x0001, 0x0001}, DType::kBf16, kOne, Profile::kIeee) == 0x0002);  // IEEE keeps them
  CHECK(run({0x8001, 0x807F}, DType::kBf16, kOne) == 0x0000);                  // +0 + -0 + -0 = +0
  CHECK(run({0x8001, 0x807F}, DType::kBf16, kOne, Profile::kIeee) == 0x8080);  // -(1+127)*2^-133 = -2^-126
  CHECK(run({0x8001, 0x3F80}, DType::kBf16, kOne) == 0x3F80);
  CHECK(run({0x8001, 0x8001}, DType::kFp16, kOne) == 0x8002);  // -2^-23, exact
  CHECK(run({0x0400, 0x8001}, DType::kFp16, kOne) == 0x03FF);  // 2^-14 - 2^-24
  CHECK(run({0x00000001, 0x80000002}, DType::kFp32, kOne) == 0x00000000);
  CHECK(run({0x00000001, 0x80000002}, DType::kFp32, kOne, Profile::kIeee) == 0x80000001);
}

TEST_CASE("10.4 every NaN becomes the canonical NaN", "[cpu]") {
  CHECK(run({0x7FC1, 0x3F80}, DType::kBf16, kOne) == 0x7FFF);
  CHECK(run({0xFF81, 0x3F80}, DType::kBf16, kTwo) == 0x7FFF);
  CHECK(run({0x7F80, 0xFF80}, DType::kBf16, kOne) == 0x7FFF);  // Inf - Inf
  CHECK(run({0xFC01, 0x3C00}, DType::kFp16, kOne) == 0x7FFF);
  CHECK(run({0x7C00, 0xFC00}, DType::kFp16, kTwo) == 0x7FFF);
  CHECK(run({0xFFC00001, 0x3F800000}, DType::kFp32, kOne) == 0x7FFFFFFF);
  CHECK(run({0x7F800001, 0x3F800000}, DType::kFp32, kTwo) == 0x7FFFFFFF);
}

TEST_CASE("10.5 overflow to infinity", "[cpu]") {
  CHECK(run({0x7F80, 0x3F80}, DType::kBf16, kOne) == 0x7F80);
  CHECK(run({0xFF80, 0xC000}, DType::kBf16, kOne) == 0xFF80);
  CHECK(run({0x7F7F, 0x7F7F}, DType::kBf16, kOne) == 0x7F80);                  // 2 * 3.39e38 overflows fp32
  CHECK(run({0x7F7F, 0x7B00}, DType::kBf16, kOne) == 0x7F80);                  // fp32 0x7F7F8000: narrowing overflows
  CHECK(run({0x7BFF, 0x4C00}, DType::kFp16, kOne) == 0x7C00);                  // 65504 + 16 = 65520 -> Inf
  CHECK(run({0x7BFF, 0x4800}, DType::kFp16, kOne) == 0x7BFF);                  // 65512 -> 65504
  CHECK(run({0x7BFF, 0x7BFF, 0xFBFF, 0xFBFF}, DType::kFp16, kOne) == 0x0000);  // fp32 has the range
  CHECK(run({0x7F7FFFFF, 0x7F7FFFFF}, DType::kFp32, kOne) == 0x7F800000);
  CHECK(run({0x7F7FFFFF, 0x73000000}, DType::kFp32, kOne) == 0x7F800000);  // max + half ulp: tie -> Inf
}

TEST_CASE("10.6 one RN-even rounding at the narrowing", "[cpu]") {
  // bf16 1.0078125 + 2^-8 = 1.01171875: between 0x3F81 and 0x3F82, a tie; even is 0x3F82.
  CHECK(run({0x3F81, 0x3B80}, DType::kBf16, kOne) == 0x3F82);
  // fp16 (1 + 2^-10) + 2^-11: a tie between 0x3C01 and 0x3C02; even is 0x3C02.
  CHECK(run({0x3C01, 0x1000}, DType::kFp16, kOne) == 0x3C02);
  // fp32 (1 + 2^-23) + 2^-24: tie, even is 1 + 2^-22.
  CHECK(run({0x3F800001, 0x33800000}, DType::kFp32, kOne) == 0x3F800002);
}

TEST_CASE("10.7 order: rank order from +0, chunk 8 (ONESHOT W >= 16) vs 16 (TWOSHOT)", "[cpu]") {
  // Ranks 0..7 = [2^24, 1 x7], ranks 8..15 = [1 x7, -2^24].
  // ONESHOT: chunk 0 = 2^24 (each +1 ties back to the even 2^24); chunk 1 = 7 - 2^24 (exact);
  //          acc = 2^24 + (7 - 2^24) = 7 -> 0x40E0.
  // TWOSHOT: one chunk: 2^24 absorbs all fourteen 1s, then -2^24 gives +0 -> 0x0000.
  std::vector<std::uint32_t> v(16, 0x3F80);
  v[0] = 0x4B80;
  v[15] = 0xCB80;
  CHECK(run(v, DType::kBf16, kOne) == 0x40E0);
  CHECK(run(v, DType::kBf16, kTwo) == 0x0000);
  CHECK(run(v, DType::kBf16, kOne, Profile::kTrtllm) == 0x0000);  // flat, like one 16-chunk
  // Cancellation without chunks: 2^24 + 1 = 2^24, - 2^24 = 0, + 1 = 1 (exact sum is 2).
  CHECK(run({0x4B80, 0x3F80, 0xCB80, 0x3F80}, DType::kBf16, kOne) == 0x3F80);
}

TEST_CASE("10.8 the empty pattern is never produced by sanitised data", "[cpu]") {
  // A 32-bit word of two 16-bit elements is the empty word 0x80000000 only with -0 (0x8000) high and +0 low.
  // Sanitised, no element is -0, so no pair of sanitised elements forms it, whatever the two are: every high
  // element against the two low ones that could complete it (+0, and -0 before sanitising). Only -0 changes:
  // the negative subnormals 0x8001..0x807F next to it stay (they are not the pattern).
  for (DType t : {DType::kBf16, DType::kFp16}) {
    int changed = 0;
    for (std::uint32_t high = 0; high <= 0xFFFFu; ++high)
      for (std::uint32_t low : {0x0000u, 0x8000u}) {
        const std::uint32_t word = sanitize_negative_zero(high, t) << 16 | sanitize_negative_zero(low, t);
        if (word == kLamportEmptyWord) FAIL_CHECK("sanitised pair 0x" << std::hex << high << ", 0x" << low);
        changed += sanitize_negative_zero(high, t) != high;
      }
    CHECK(changed == 2);  // 0x8000 only, once for each low element
    for (std::uint32_t high = 0x8001; high <= 0x807F; ++high) CHECK(sanitize_negative_zero(high, t) == high);
  }
  // fp32: the word is the element; only -0 is the pattern, and only it changes (to +0).
  CHECK(sanitize_negative_zero(kLamportEmptyWord, DType::kFp32) == 0u);
  for (std::uint32_t w : {0x80000001u, 0x00000000u, 0x807FFFFFu, 0xFF800000u, 0x7FFFFFFFu})
    CHECK(sanitize_negative_zero(w, DType::kFp32) == w);
}
