// The fused path's integer IEEE operations: hand-worked special values, then many random inputs against a
// second opinion. Only these tests use host floating point: the host's IEEE binary32 in its default state
// (round to nearest, no FTZ/DAZ) for mul and fma, and exact double arithmetic for the 16-bit ops, where every
// sum of two fp16 values and every product of two 16-bit values is a double.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cfenv>
#include <cmath>
#include <optional>

#include "reference/float_ops.h"

using namespace ar;

namespace {

struct Xorshift {
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  std::uint32_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<std::uint32_t>(x);
  }
};

float as_float(std::uint32_t bits) { return std::bit_cast<float>(bits); }
std::uint32_t as_bits(float v) { return std::bit_cast<std::uint32_t>(v); }

// True when `bits` is `exact` rounded to nearest, ties to even, in T with gradual underflow and overflow to
// infinity. `exact` is the exact real result, which the caller guarantees a double holds.
bool is_nearest_even(double exact, std::uint32_t bits, DType t) {
  const FloatFormat f = float_format(t);
  const std::uint32_t magnitude = bits & ~f.sign_mask();
  const std::uint32_t max_finite = f.infinity() - 1;
  const double max = to_double(max_finite, t);
  const double overflow_at = max + (max - to_double(max_finite - 1, t)) / 2;  // the odd max ties upwards
  const double e = std::fabs(exact);
  if (is_inf(bits, f)) return e >= overflow_at && std::signbit(exact) == sign_bit(bits, f);
  if (e >= overflow_at) return false;
  if (exact != 0 && std::signbit(exact) != sign_bit(bits, f)) return false;
  const double r = to_double(magnitude, t);
  const double above = magnitude == max_finite ? 2 * max - to_double(max_finite - 1, t) : to_double(magnitude + 1, t);
  const double distance = std::fabs(e - r);
  const double to_above = std::fabs(above - e);
  if (distance > to_above || (distance == to_above && (magnitude & 1))) return false;
  if (magnitude == 0) return true;
  const double to_below = std::fabs(e - to_double(magnitude - 1, t));
  return distance < to_below || (distance == to_below && !(magnitude & 1));
}

// A random fp32 pattern biased towards the places where rounding is delicate: subnormals, the overflow
// edge, and exponents chosen by the caller.
// What the GPU's FTZ makes of an IEEE result `host` (computed with subnormals): a subnormal is a zero of its
// sign; the smallest normal survives only when the exact value rounds to it in 24 bits with an unbounded
// exponent, which `scaled_up` tells: the same operation computed 2^64 higher, where nothing is subnormal
// (nullopt when that overflowed, and the case is skipped).
std::optional<std::uint32_t> gpu_ftz(std::uint32_t host, std::optional<float> scaled_up) {
  if (is_subnormal(host, kFp32Format)) return host & 0x80000000u;
  if ((host & 0x7FFFFFFFu) != 0x00800000u) return host;
  if (!scaled_up || !std::isfinite(*scaled_up)) return std::nullopt;
  return std::fabs(*scaled_up) < std::ldexp(1.0f, -126 + 64) ? host & 0x80000000u : host;
}

std::uint32_t with_exponent(std::uint32_t random, int biased_exponent) {
  return (random & 0x807FFFFFu) | (std::uint32_t(std::clamp(biased_exponent, 0, 255)) << 23);
}

}  // namespace

TEST_CASE("16-bit add: specials, subnormals kept, one rounding", "[cpu]") {
  for (DType t : {DType::kBf16, DType::kFp16}) {
    const FloatFormat f = float_format(t);
    const std::uint32_t one = t == DType::kBf16 ? 0x3F80 : 0x3C00;
    CHECK(add_native(f.infinity() | 1, one, t) == 0x7FFFu);                       // NaN -> canonical
    CHECK(add_native(f.sign_mask() | f.infinity() | 5, one, t) == 0x7FFFu);       // negative NaN too
    CHECK(add_native(f.infinity(), f.sign_mask() | f.infinity(), t) == 0x7FFFu);  // Inf - Inf
    CHECK(add_native(f.infinity(), one, t) == f.infinity());
    CHECK(add_native(0x8000, 0x8000, t) == 0x8000u);            // -0 + -0 = -0
    CHECK(add_native(0x8000, 0x0000, t) == 0x0000u);            // -0 + +0 = +0
    CHECK(add_native(0x8000, 0x8001, t) == 0x8001u);            // a subnormal survives (SPEC section 0: no FTZ)
    CHECK(add_native(0x0001, 0x0001, t) == 0x0002u);            // SPEC section 0, measured
    CHECK(add_native(one, one | f.sign_mask(), t) == 0x0000u);  // x - x = +0
    CHECK(add_native(0x0001, 0x8001, t) == 0x0000u);
  }
  // bf16: 1 + 2^-8 is half an ulp of 1: the tie goes to the even 1; 1 + 3*2^-8 ties up to 1 + 2^-6.
  CHECK(add_native(0x3F80, 0x3B80, DType::kBf16) == 0x3F80u);
  CHECK(add_native(0x3F81, 0x3B80, DType::kBf16) == 0x3F82u);
  CHECK(add_native(0x3F80, 0x3B81, DType::kBf16) == 0x3F81u);  // just above the tie
  CHECK(add_native(0x7F7F, 0x7F7F, DType::kBf16) == 0x7F80u);  // overflow to Inf
  CHECK(add_native(0x7F7F, 0x0001, DType::kBf16) == 0x7F7Fu);  // 2^127.99 + 2^-133: 260 bits apart
  CHECK(add_native(0x7F00, 0x8001, DType::kBf16) == 0x7F00u);  // the tiny opposite term is only sticky
  // fp16: 2048 + 1 ties to the even 2048; 65504 + 16 reaches the overflow tie (65520) and becomes Inf.
  CHECK(add_native(0x6800, 0x3C00, DType::kFp16) == 0x6800u);
  CHECK(add_native(0x7BFF, 0x4C00, DType::kFp16) == 0x7C00u);
  CHECK(add_native(0x7BFF, 0x4BFF, DType::kFp16) == 0x7BFFu);
  CHECK(add_native(0x3C00, 0x1000, DType::kFp16) == 0x3C00u);  // 1 + 2^-11: a tie, to the even 1
  CHECK(add_native(0x3C01, 0x1000, DType::kFp16) == 0x3C02u);  // (1 + 2^-10) + 2^-11: a tie, up to even
}

TEST_CASE("16-bit add is the nearest-even rounding of the exact sum", "[cpu]") {
  Xorshift rng;
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t r = rng.next();
    // fp16: any two values; their exact sum always fits a double (41 bits at most).
    std::uint32_t a = r & 0xFFFF, b = r >> 16;
    if (!is_nan(a, kFp16Format) && !is_nan(b, kFp16Format) && !is_inf(a, kFp16Format) && !is_inf(b, kFp16Format)) {
      if (i % 3 == 0) b = (b & 0x83FF) | (a & 0x7C00);  // same exponent: cancellation
      const std::uint32_t ours = add_native(a, b, DType::kFp16);
      const double exact = to_double(a, DType::kFp16) + to_double(b, DType::kFp16);
      INFO("fp16 a=" << std::hex << a << " b=" << b << " ours=" << ours);
      REQUIRE(is_nearest_even(exact, ours, DType::kFp16));
      if (exact == 0) REQUIRE(ours == ((a & b) & 0x8000u));
    }
    // bf16: exponents within 40 of each other, so the exact sum fits a double.
    a = r & 0xFFFF;
    b = (rng.next() & 0x807F) | (std::uint32_t(std::clamp(int((a >> 7) & 0xFF) - 20 + int(r % 41), 0, 254)) << 7);
    if (is_nan(a, kBf16Format) || is_inf(a, kBf16Format)) continue;
    const std::uint32_t ours = add_native(a, b, DType::kBf16);
    const double exact = to_double(a, DType::kBf16) + to_double(b, DType::kBf16);
    INFO("bf16 a=" << std::hex << a << " b=" << b << " ours=" << ours);
    REQUIRE(is_nearest_even(exact, ours, DType::kBf16));
  }
}

TEST_CASE("16-bit multiply: specials, the fp16 square overflow, subnormals", "[cpu]") {
  for (DType t : {DType::kBf16, DType::kFp16}) {
    const FloatFormat f = float_format(t);
    const std::uint32_t one = t == DType::kBf16 ? 0x3F80 : 0x3C00;
    CHECK(mul_native(f.infinity(), 0x0000, t) == 0x7FFFu);  // Inf * 0
    CHECK(mul_native(0x8000, f.infinity(), t) == 0x7FFFu);
    CHECK(mul_native(f.infinity() | 3, one, t) == 0x7FFFu);
    CHECK(mul_native(f.sign_mask() | f.infinity(), one, t) == (f.sign_mask() | f.infinity()));
    CHECK(mul_native(0x8000, 0x8000, t) == 0x0000u);  // (-0)^2 = +0
    CHECK(mul_native(0x8000, one, t) == 0x8000u);
    CHECK(mul_native(0x0001, one, t) == 0x0001u);  // a subnormal is kept
    CHECK(mul_native(one, one, t) == one);
  }
  CHECK(mul_native(0x5C00, 0x5C00, DType::kFp16) == 0x7C00u);  // 256^2 = 65536 > 65504: the SPEC 7 hazard
  CHECK(mul_native(0x5BFF, 0x5BFF, DType::kFp16) == 0x7BFEu);  // 255.875^2 = 65472.015625 -> 65472
  CHECK(mul_native(0x0C00, 0x0C00, DType::kFp16) == 0x0001u);  // 2^-12 * 2^-12 = 2^-24, the least subnormal
  CHECK(mul_native(0x0800, 0x0C00, DType::kFp16) == 0x0000u);  // 2^-25: a tie, to the even +0
  CHECK(mul_native(0x8800, 0x0C00, DType::kFp16) == 0x8000u);  // the same with a sign: -0
  CHECK(mul_native(0x3F81, 0x3F81, DType::kBf16) == 0x3F82u);  // (1+2^-7)^2 = 1 + 2^-6 + 2^-14 -> 1 + 2^-6
  CHECK(mul_native(0x7F00, 0x4000, DType::kBf16) == 0x7F80u);  // 2^127 * 2 overflows
}

TEST_CASE("16-bit multiply is the nearest-even rounding of the exact product", "[cpu]") {
  Xorshift rng;
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t r = rng.next();
    for (DType t : {DType::kBf16, DType::kFp16}) {
      const FloatFormat f = float_format(t);
      const std::uint32_t a = r & 0xFFFF, b = i % 2 ? r >> 16 : a;  // half of them squares
      if (is_nan(a, f) || is_nan(b, f) || is_inf(a, f) || is_inf(b, f)) continue;
      const std::uint32_t ours = mul_native(a, b, t);
      const double exact = to_double(a, t) * to_double(b, t);  // 22 significant bits: exact in a double
      INFO(dtype_name(t) << " a=" << std::hex << a << " b=" << b << " ours=" << ours);
      REQUIRE(is_nearest_even(exact, ours, t));
      if (exact == 0) REQUIRE(ours == ((a ^ b) & f.sign_mask()));
    }
  }
}

TEST_CASE("fp32 multiply: specials and flush-to-zero", "[cpu]") {
  CHECK(mul_fp32(0x7F800000, 0x00000000, true) == 0x7FFFFFFFu);  // Inf * 0
  CHECK(mul_fp32(0x7F800000, 0x00000001, true) == 0x7FFFFFFFu);  // FTZ makes the subnormal a zero first
  CHECK(mul_fp32(0x7F800000, 0x00000001, false) == 0x7F800000u);
  CHECK(mul_fp32(0xFFC00001, 0x3F800000, true) == 0x7FFFFFFFu);
  CHECK(mul_fp32(0xFF800000, 0x40000000, true) == 0xFF800000u);
  CHECK(mul_fp32(0x80000000, 0x40A00000, true) == 0x80000000u);   // -0 * 5 = -0
  CHECK(mul_fp32(0x7F7FFFFF, 0x40000000, true) == 0x7F800000u);   // overflow
  CHECK(mul_fp32(0x1C800000, 0x1C800000, true) == 0x00000000u);   // 2^-70 * 2^-70 = 2^-140: flushed
  CHECK(mul_fp32(0x9C800000, 0x1C800000, true) == 0x80000000u);   // keeps its sign
  CHECK(mul_fp32(0x9C800000, 0x1C800000, false) == 0x80000200u);  // IEEE: the subnormal 2^-140
  CHECK(mul_fp32(0x00400000, 0x4B000000, true) == 0x00000000u);   // 2^-127 (subnormal) flushed before
  CHECK(mul_fp32(0x00400000, 0x4B000000, false) == 0x0B800000u);  // IEEE: 2^-104
  CHECK(mul_fp32(0x3F800001, 0x3F800001, true) == 0x3F800002u);   // (1+u)^2 = 1 + 2u + u^2 -> 1 + 2u
}

TEST_CASE("FTZ judges a result tiny after rounding to 24 bits, as measured on an H200", "[cpu]") {
  // Exact products just below 2^-126 that round up to it in 24 bits: kept (the GPU gave 0x00800000 with and
  // without .ftz): (2^23 + k)(2^24 - 2k) = 2^47 - 2k^2.
  for (std::uint32_t k : {1u, 2u, 3u, 100u, 700u, 1000u, 1448u}) {
    const std::uint32_t a = 0x20000000u | k, b = 0x1F800000u | ((0x1000000u - 2 * k) & 0x7FFFFFu);
    INFO("k=" << k);
    CHECK(mul_fp32(a, b, true) == 0x00800000u);
    CHECK(mul_fp32(a, b, false) == 0x00800000u);
  }
  // fma(2a, b, -2^-126): exact 2^-126 (1 - k^2 2^-45): kept up to k = 1000, flushed at k = 1448, where it
  // rounds to 2^-126 - 2^-150 in 24 bits (and to 2^-126 with subnormals).
  for (std::uint32_t k : {1u, 100u, 1000u}) {
    const std::uint32_t a = 0x20800000u | k, b = 0x1F800000u | ((0x1000000u - 2 * k) & 0x7FFFFFu);
    CHECK(fma_fp32(a, b, 0x80800000u, true) == 0x00800000u);
  }
  CHECK(fma_fp32(0x208005A8u, 0x1FFFF4B0u, 0x80800000u, true) == 0x00000000u);
  CHECK(fma_fp32(0x208005A8u, 0x1FFFF4B0u, 0x80800000u, false) == 0x00800000u);
  // (2^24 - 1) 2^-150 exactly, which rounds to 2^-126 with subnormals but is exact, and tiny, in 24 bits: the
  // first difference `mufu --check` found before this rule (div.approx(0x05FFFFFF, 2048) on the GPU is 0).
  CHECK(mul_fp32(0x05FFFFFFu, 0x3A000000u, true) == 0x00000000u);
  CHECK(mul_fp32(0x85FFFFFFu, 0x3A000000u, true) == 0x80000000u);
  CHECK(mul_fp32(0x05FFFFFFu, 0x3A000000u, false) == 0x00800000u);
}

TEST_CASE("fp32 division agrees with the host's IEEE division", "[cpu]") {
  REQUIRE(std::fegetround() == FE_TONEAREST);
  CHECK(div_fp32(0x00000000u, 0x00000000u) == 0x7FFFFFFFu);
  CHECK(div_fp32(0x7F800000u, 0xFF800000u) == 0x7FFFFFFFu);
  CHECK(div_fp32(0x3F800000u, 0x80000000u) == 0xFF800000u);
  CHECK(div_fp32(0x80000000u, 0x3F800000u) == 0x80000000u);
  CHECK(div_fp32(0x3F800000u, 0x7F800000u) == 0x00000000u);
  Xorshift rng;
  for (int i = 0; i < 300000; ++i) {
    std::uint32_t a = rng.next(), b = rng.next();
    const int ea = int((a >> 23) & 0xFF);
    if (i % 4 == 0) b = with_exponent(b, ea + int(rng.next() % 40) - 20);   // quotients near 1
    if (i % 4 == 1) b = with_exponent(b, ea + 126 + int(rng.next() % 30));  // into the subnormals
    if (i % 8 == 2) b = with_exponent(b, int(rng.next() % 2));              // subnormal divisors
    const std::uint32_t host = as_bits(as_float(a) / as_float(b));
    INFO("a=" << std::hex << a << " b=" << b);
    REQUIRE(div_fp32(a, b) == (is_nan(host, kFp32Format) ? 0x7FFFFFFFu : host));
  }
}

TEST_CASE("fp32 multiply agrees with the host's IEEE multiply", "[cpu]") {
  REQUIRE(std::fegetround() == FE_TONEAREST);
  Xorshift rng;
  for (int i = 0; i < 300000; ++i) {
    std::uint32_t a = rng.next(), b = rng.next();
    const int ea = int((a >> 23) & 0xFF);
    // A product's biased exponent is ea + eb - 127: aim it at the overflow edge or at the subnormals.
    if (i % 4 == 0) b = with_exponent(b, 381 - ea + int(rng.next() % 5) - 2);
    if (i % 4 == 1) b = with_exponent(b, 128 - ea + int(rng.next() % 30) - 15);
    const std::uint32_t host = as_bits(as_float(a) * as_float(b));
    INFO("a=" << std::hex << a << " b=" << b);
    if (is_nan(host, kFp32Format)) {
      REQUIRE(mul_fp32(a, b, false) == 0x7FFFFFFFu);
      continue;
    }
    REQUIRE(mul_fp32(a, b, false) == host);
    // With FTZ the answer is the same for normal inputs, except for tiny results (gpu_ftz).
    if (!is_subnormal(a, kFp32Format) && !is_subnormal(b, kFp32Format)) {
      const bool scale_a = std::fabs(as_float(a)) <= std::fabs(as_float(b));
      const float up = scale_a ? std::ldexp(as_float(a), 64) * as_float(b) : as_float(a) * std::ldexp(as_float(b), 64);
      if (const auto want = gpu_ftz(host, up)) REQUIRE(mul_fp32(a, b, true) == *want);
    }
  }
}

TEST_CASE("fp32 fma: specials, single rounding, flush-to-zero of inputs and result only", "[cpu]") {
  CHECK(fma_fp32(0x7F800000, 0x00000000, 0x3F800000, true) == 0x7FFFFFFFu);  // Inf * 0 + 1
  CHECK(fma_fp32(0x00000000, 0x7F800000, 0x7FC00000, true) == 0x7FFFFFFFu);
  CHECK(fma_fp32(0x7F800000, 0x3F800000, 0xFF800000, true) == 0x7FFFFFFFu);  // Inf - Inf
  CHECK(fma_fp32(0x7F800000, 0x3F800000, 0x7F800000, true) == 0x7F800000u);
  CHECK(fma_fp32(0x3F800000, 0x3F800000, 0xFF800000, true) == 0xFF800000u);
  CHECK(fma_fp32(0x3F800000, 0x3F800000, 0xBF800000, true) == 0x00000000u);  // 1*1 - 1 = +0
  CHECK(fma_fp32(0xBF800000, 0x00000000, 0x80000000, true) == 0x80000000u);  // -0 + -0 = -0
  CHECK(fma_fp32(0x3F800000, 0x00000000, 0x80000000, true) == 0x00000000u);  // +0 + -0 = +0
  CHECK(fma_fp32(0xBF800000, 0x00000000, 0x00000000, true) == 0x00000000u);  // -0 + +0 = +0
  CHECK(fma_fp32(0x80000000, 0x80000000, 0x80000000, true) == 0x00000000u);  // (-0)^2 = +0, + -0 = +0
  // (1 + 2^-12)^2 - 1 = 2^-11 + 2^-24 exactly; a multiply then an add would round 1 + 2^-11 + 2^-24 to
  // 1 + 2^-11 first (a tie to even) and give 2^-11.
  CHECK(fma_fp32(0x3F800800, 0x3F800800, 0xBF800000, true) == 0x3A000400u);
  CHECK(fma_fp32(0x7F7FFFFF, 0x40000000, 0xFF7FFFFF, true) == 0x7F7FFFFFu);  // no intermediate overflow
  // FTZ: a subnormal input is a zero; the product 2^-140 is not flushed inside the fma, only the result.
  CHECK(fma_fp32(0x00400000, 0x4B000000, 0x00000000, true) == 0x00000000u);
  CHECK(fma_fp32(0x00400000, 0x4B000000, 0x00000000, false) == 0x0B800000u);
  CHECK(fma_fp32(0x1C800000, 0x1C800000, 0x00000000, true) == 0x00000000u);  // 2^-140 result: flushed
  CHECK(fma_fp32(0x9C800000, 0x1C800000, 0x00000000, true) == 0x80000000u);  // with its sign
  CHECK(fma_fp32(0x1C800000, 0x1C800000, 0x00800000, true) == 0x00800200u);  // 2^-126 + 2^-140: normal
  CHECK(fma_fp32(0x3F800000, 0x3F800000, 0x00000001, true) == 0x3F800000u);  // subnormal addend flushed
  CHECK(fma_fp32(0x3F800000, 0x3F800000, 0x80000001, true) == 0x3F800000u);
  // A square accumulating onto a far smaller sum, as the TWOSHOT sum of squares does.
  CHECK(fma_fp32(0x40000000, 0x40000000, 0x33800000, true) == 0x40800000u);  // 4 + 2^-24 -> 4
}

TEST_CASE("fp32 fma agrees with the host's correctly rounded fmaf", "[cpu]") {
  REQUIRE(std::fegetround() == FE_TONEAREST);
  Xorshift rng;
  for (int i = 0; i < 300000; ++i) {
    std::uint32_t a = rng.next(), b = rng.next(), c = rng.next();
    const int ea = int((a >> 23) & 0xFF);
    if (i % 2 == 0) b = with_exponent(b, 254 - ea + int(rng.next() % 60) - 30);   // products near 1
    if (i % 13 == 0) b = with_exponent(b, 128 - ea + int(rng.next() % 20) - 10);  // products near 2^-126
    if (i % 11 == 0) b = a;                                                       // squares, as the norm does
    const int product_exponent = ea + int((b >> 23) & 0xFF) - 127;
    if (i % 3 == 0) c = with_exponent(c, product_exponent + int(rng.next() % 5) - 2);  // cancellation
    if (i % 5 == 0) c = (c & 0x7FFFFFFFu) | (~(a ^ b) & 0x80000000u);  // the sign opposite the product's
    if (i % 7 == 0) c = with_exponent(c, int(rng.next() % 3));         // subnormal or tiny addends
    const std::uint32_t host = as_bits(std::fma(as_float(a), as_float(b), as_float(c)));
    INFO("a=" << std::hex << a << " b=" << b << " c=" << c);
    if (is_nan(host, kFp32Format)) {
      REQUIRE(fma_fp32(a, b, c, false) == 0x7FFFFFFFu);
      continue;
    }
    REQUIRE(fma_fp32(a, b, c, false) == host);
    const bool normal_inputs =
        !is_subnormal(a, kFp32Format) && !is_subnormal(b, kFp32Format) && !is_subnormal(c, kFp32Format);
    if (normal_inputs) {
      const bool scale_a = std::fabs(as_float(a)) <= std::fabs(as_float(b));
      const float up = scale_a ? std::fma(std::ldexp(as_float(a), 64), as_float(b), std::ldexp(as_float(c), 64))
                               : std::fma(as_float(a), std::ldexp(as_float(b), 64), std::ldexp(as_float(c), 64));
      if (const auto want = gpu_ftz(host, up)) REQUIRE(fma_fp32(a, b, c, true) == *want);
    }
  }
}

TEST_CASE("conversions to fp32: integers and doubles, one RN rounding", "[cpu]") {
  CHECK(fp32_from_integer(0) == 0u);
  CHECK(fp32_from_integer(7168) == 0x45E00000u);
  CHECK(fp32_from_integer(16777217) == 0x4B800000u);           // 2^24 + 1: a tie, to the even 2^24
  CHECK(fp32_from_integer(16777219) == 0x4B800002u);           // 2^24 + 3: a tie, up to 2^24 + 4
  CHECK(fp32_from_integer(~std::uint64_t{0}) == 0x5F800000u);  // 2^64 - 1 rounds to 2^64
  CHECK(fp32_from_double(1e-5) == as_bits(1e-5f));
  CHECK(fp32_from_double(-0.0) == 0x80000000u);
  CHECK(fp32_from_double(1e300) == 0x7F800000u);
  CHECK(fp32_from_double(1e-50) == 0x00000000u);
  CHECK(fp32_from_double(std::nan("")) == 0x7FFFFFFFu);
  Xorshift rng;
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t bits = (std::uint64_t{rng.next()} << 32) | rng.next();
    // Exponents around fp32's range, subnormals included.
    const std::uint64_t exponent = 1023 - 160 + rng.next() % 300;
    const double value = std::bit_cast<double>((bits & 0x800FFFFFFFFFFFFFull) | (exponent << 52));
    INFO("double bits " << std::hex << std::bit_cast<std::uint64_t>(value));
    REQUIRE(fp32_from_double(value) == as_bits(static_cast<float>(value)));
    const std::uint64_t n = bits >> (rng.next() % 64);
    REQUIRE(fp32_from_integer(n) == as_bits(static_cast<float>(n)));
  }
}
