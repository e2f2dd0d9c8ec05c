// The fast paths of detail/fast_float_ops.h against the general integer model: wherever a fast path answers,
// its bits must be the model's (under both profiles where the model takes one), over random operands aimed
// at the places where rounding is delicate (ties, carries into the exponent, cancellation, the edges of the
// normal range, the limits of each path's frame), and exhaustively where the operand space is small. The
// fp32 multiply is compared with a rounding of the exact product written out here, since mul_fp32 itself
// takes the fast path (and is checked against the host's IEEE multiply in float_ops_test.cpp).
#include <catch2/catch.hpp>

#include <algorithm>

#include "reference/detail/fast_float_ops.h"
#include "reference/float_ops.h"

using namespace ar;
using namespace ar::detail;

namespace {

struct Xorshift {
  std::uint64_t x = 0x2545F4914F6CDD1Dull;
  std::uint32_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<std::uint32_t>(x);
  }
};

// A value of format `f` with a random sign and fraction and the biased exponent `field` (clamped to the
// format's range, so 0 gives zeros and subnormals and the top Inf and NaN).
std::uint32_t with_field(FloatFormat f, std::uint32_t random, int field) {
  const int top = static_cast<int>(f.infinity() >> f.fraction_bits);
  const std::uint32_t sign = (random >> 31) != 0 ? f.sign_mask() : 0u;
  return sign | (static_cast<std::uint32_t>(std::clamp(field, 0, top)) << f.fraction_bits) |
         ((random >> 3) & f.fraction_mask());
}

// Fractions with a run of ones or zeros at the bottom make ties and carries likely.
std::uint32_t roughen(FloatFormat f, std::uint32_t v, std::uint32_t random) {
  switch (random % 4) {
    case 0: return v | (f.fraction_mask() >> (random >> 8) % 4);          // low ones: carries
    case 1: return v & ~(f.fraction_mask() >> (1 + (random >> 8) % 6));   // low zeros: exact or ties
    case 2: return (v & ~f.fraction_mask()) | (1u << (random >> 8) % 3);  // near a power of two
    default: return v;
  }
}

// An operand at `field` plus or minus `spread`, sometimes a special value.
std::uint32_t operand(FloatFormat f, Xorshift& rng, int field, int spread) {
  const std::uint32_t r = rng.next();
  switch (r % 64) {
    case 0: return 0u;
    case 1: return f.sign_mask();
    case 2: return (r >> 7) & f.fraction_mask();  // subnormal
    case 3: return f.infinity() | ((r >> 8) & 1 ? f.sign_mask() : 0u);
    case 4: return f.canonical_nan();
    default: break;
  }
  const int e = field + static_cast<int>(rng.next() % (2 * spread + 1)) - spread;
  return roughen(f, with_field(f, rng.next(), e), rng.next());
}

int top_field(FloatFormat f) { return static_cast<int>(f.infinity() >> f.fraction_bits); }

// The model's fp32 product of two normals, written out: the exact product rounded once.
std::uint32_t exact_product_rounded(std::uint32_t a, std::uint32_t b, bool ftz) {
  const WideValue x = decode_finite(a, kFp32Format), y = decode_finite(b, kFp32Format);
  WideValue p;
  p.negative = x.negative != y.negative;
  p.significand = x.significand * y.significand;
  p.exponent = x.exponent + y.exponent;
  return ftz ? round_to_format_ftz(p, kFp32Format) : round_to_format(p, kFp32Format).bits;
}

// Runs `check(a, b)` over operand pairs whose fields lie near each other, near the bottom and top of the
// range, and far apart. Returns how many pairs the fast path answered.
template <class Check>
int sweep_pairs(FloatFormat f, int count, Check check) {
  Xorshift rng;
  int answered = 0;
  const int top = top_field(f);
  for (int i = 0; i < count; ++i) {
    const int centre = static_cast<int>(rng.next() % static_cast<std::uint32_t>(top + 1));
    const std::uint32_t a = operand(f, rng, centre, 2);
    int other = centre;
    switch (i % 5) {
      case 0: other = centre + static_cast<int>(rng.next() % 80) - 40; break;                 // far apart
      case 1: other = 2 * f.bias() - centre + static_cast<int>(rng.next() % 7) - 3; break;    // products near 1
      case 2: other = f.bias() + 1 - centre + static_cast<int>(rng.next() % 30) - 15; break;  // near tiny
      case 3: other = top + f.bias() - centre + static_cast<int>(rng.next() % 5) - 3; break;  // near overflow
      default: break;                                                                         // alike
    }
    const std::uint32_t b = operand(f, rng, other, 2);
    answered += check(a, b) ? 1 : 0;
  }
  return answered;
}

}  // namespace

TEST_CASE("fast add equals the model wherever it answers", "[cpu]") {
  const auto add16 = [](DType t) {
    return [t](std::uint32_t a, std::uint32_t b) {
      const FloatFormat f = float_format(t);
      const auto fast = t == DType::kBf16 ? fast_add<kBf16Format>(a, b) : fast_add<kFp16Format>(a, b);
      if (!fast) return false;
      INFO(dtype_name(t) << " a=" << std::hex << a << " b=" << b);
      REQUIRE(*fast == add_native(a, b, t));
      REQUIRE((*fast & ~f.sign_mask()) < f.infinity());
      return true;
    };
  };
  CHECK(sweep_pairs(kBf16Format, 400000, add16(DType::kBf16)) > 100000);
  CHECK(sweep_pairs(kFp16Format, 400000, add16(DType::kFp16)) > 100000);
  const int answered = sweep_pairs(kFp32Format, 600000, [](std::uint32_t a, std::uint32_t b) {
    const auto fast = fast_add<kFp32Format>(a, b);
    if (!fast) return false;
    INFO("a=" << std::hex << a << " b=" << b);
    REQUIRE(*fast == add_fp32(a, b, true));
    REQUIRE(*fast == add_fp32(a, b, false));
    return true;
  });
  CHECK(answered > 150000);
  // Exhaustive in a for the 16-bit types, against operands a few binades around it.
  Xorshift rng;
  for (DType t : {DType::kBf16, DType::kFp16}) {
    const FloatFormat f = float_format(t);
    for (std::uint32_t a = 0; a < 0x10000u; ++a) {
      const int field = static_cast<int>((a & f.exponent_mask()) >> f.fraction_bits);
      const std::uint32_t b = operand(f, rng, field, f.fraction_bits + 3);
      (void)add16(t)(a, b);
    }
  }
  CHECK(fast_add<kFp32Format>(0x3F800000u, 0x3F800000u) == 0x40000000u);  // 1 + 1
  CHECK(fast_add<kFp32Format>(0x3F800000u, 0xBF800000u) == 0x00000000u);  // x - x = +0
  CHECK(fast_add<kFp32Format>(0x3F800000u, 0x80000000u) == 0x3F800000u);  // x + -0 = x
  CHECK_FALSE(fast_add<kFp32Format>(0x00800000u, 0x80800001u));           // tiny: left to the model
}

TEST_CASE("fast multiply equals the model wherever it answers", "[cpu]") {
  for (DType t : {DType::kBf16, DType::kFp16}) {
    const FloatFormat f = float_format(t);
    const auto check = [t, f](std::uint32_t a, std::uint32_t b) {
      const auto fast = t == DType::kBf16 ? fast_mul<kBf16Format>(a, b) : fast_mul<kFp16Format>(a, b);
      if (!fast) return false;
      INFO(dtype_name(t) << " a=" << std::hex << a << " b=" << b);
      REQUIRE(*fast == mul_native(a, b, t));
      return true;
    };
    CHECK(sweep_pairs(f, 400000, check) > 100000);
    for (std::uint32_t a = 0; a < 0x10000u; ++a) (void)check(a, a);  // every square, as ONESHOT takes them
  }
  const int answered = sweep_pairs(kFp32Format, 600000, [](std::uint32_t a, std::uint32_t b) {
    const auto fast = fast_mul<kFp32Format>(a, b);
    if (!fast) return false;
    INFO("a=" << std::hex << a << " b=" << b);
    REQUIRE(*fast == exact_product_rounded(a, b, true));
    REQUIRE(*fast == exact_product_rounded(a, b, false));
    REQUIRE(*fast == mul_fp32(a, b, true));
    return true;
  });
  CHECK(answered > 200000);
  CHECK(fast_mul<kFp32Format>(0x3FFFFFFFu, 0x3FFFFFFFu) == 0x407FFFFEu);  // (2 - 2^-23)^2: a carry
  CHECK_FALSE(fast_mul<kFp32Format>(0x7F000000u, 0x40000000u));           // 2^127 * 2: overflow, to the model
}

TEST_CASE("fast fma equals the model wherever it answers", "[cpu]") {
  Xorshift rng;
  constexpr FloatFormat f = kFp32Format;
  int answered = 0, wide = 0;
  for (int i = 0; i < 600000; ++i) {
    const int ea = static_cast<int>(rng.next() % 256);
    const std::uint32_t a = operand(f, rng, ea, 2);
    const std::uint32_t b = i % 3 == 0 ? a : operand(f, rng, 254 - ea + static_cast<int>(rng.next() % 60) - 30, 2);
    const int product_field = ea + static_cast<int>((b >> 23) & 0xFF) - 127;
    // The addend around the product, at each frame's limits (last bits 15, 39, 64 and 96 places apart are
    // fields 16 - 23 = -8, 39 - 23 = 16, 64 - 23 = 41 and 96 - 23 = 73 apart), or anywhere.
    static constexpr int kOffsets[] = {0, -8, 16, 41, 73, -41, -73};
    const int offset = i % 9 < 7 ? kOffsets[i % 9] : static_cast<int>(rng.next() % 120) - 60;
    std::uint32_t c = operand(f, rng, product_field + offset, 3);
    if (i % 4 == 0) c = (c & 0x7FFFFFFFu) | (~(a ^ b) & 0x80000000u);  // opposite signs: cancellation
    const auto fast = fast_fma_fp32(a, b, c);
    if (!fast) continue;
    ++answered;
    const int gap = std::abs((static_cast<int>((c >> 23) & 0xFF)) - product_field);
    wide += gap > 16 ? 1 : 0;
    INFO("a=" << std::hex << a << " b=" << b << " c=" << c);
    REQUIRE(*fast == fma_fp32(a, b, c, true));
    REQUIRE(*fast == fma_fp32(a, b, c, false));
  }
  CHECK(answered > 250000);
  CHECK(wide > 50000);
  // (1 + 2^-12)^2 - 1 = 2^-11 + 2^-24 exactly, which a multiply then an add would not give.
  CHECK(fast_fma_fp32(0x3F800800u, 0x3F800800u, 0xBF800000u) == 0x3A000400u);
  CHECK(fast_fma_fp32(0x40000000u, 0x40000000u, 0x33800000u) == 0x40800000u);  // 4 + 2^-24 -> 4
}

TEST_CASE("fast narrowing and widening equal the model wherever they answer", "[cpu]") {
  Xorshift rng;
  int answered16 = 0;
  for (int i = 0; i < 2000000; ++i) {
    std::uint32_t x = rng.next();
    if (i % 2 == 0) x = roughen(kFp32Format, with_field(kFp32Format, x, 100 + static_cast<int>(rng.next() % 50)), x);
    INFO("x=" << std::hex << x);
    if (const auto bf = fast_narrow<DType::kBf16>(x)) REQUIRE(*bf == narrow_from_fp32(x, DType::kBf16));
    if (const auto h = fast_narrow<DType::kFp16>(x)) {
      REQUIRE(*h == narrow_from_fp32(x, DType::kFp16));
      ++answered16;
    }
  }
  CHECK(answered16 > 500000);
  for (std::uint32_t x : {0x7F7FFFFFu, 0x7F7F8000u, 0x477FF000u, 0x477FEFFFu, 0x38800000u, 0x387FFFFFu, 0x00000001u})
    for (std::uint32_t s : {0u, 0x80000000u}) {
      if (const auto bf = fast_narrow<DType::kBf16>(x | s)) CHECK(*bf == narrow_from_fp32(x | s, DType::kBf16));
      if (const auto h = fast_narrow<DType::kFp16>(x | s)) CHECK(*h == narrow_from_fp32(x | s, DType::kFp16));
    }
  CHECK_FALSE(fast_narrow<DType::kBf16>(0x7FC00000u));  // NaN: to the model
  for (std::uint32_t h = 0; h < 0x10000u; ++h)
    if (const auto w = fast_widen<DType::kFp16>(h)) REQUIRE(*w == widen_to_fp32(h, DType::kFp16));
  CHECK(fast_widen<DType::kFp16>(0x3C00u) == 0x3F800000u);
}
