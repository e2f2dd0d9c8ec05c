// Properties of the fold that SPEC section 3 states: which strategies agree, and on what.
#include <catch2/catch.hpp>

#include <vector>

#include "reference/exact_sum.h"
#include "reference/fold.h"

using namespace ar;

namespace {

// Random bits of T with a wide exponent range, plus occasional -0, subnormals and cancelling pairs.
std::vector<std::uint32_t> random_column(std::uint64_t& state, int world, DType t) {
  const FloatFormat f = float_format(t);
  std::vector<std::uint32_t> v(world);
  for (int r = 0; r < world; ++r) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const std::uint32_t bits = static_cast<std::uint32_t>(state >> 32);
    const int exponent = int((bits >> 8) % 40) - 20 + f.bias();
    std::uint32_t x =
        (bits & f.fraction_mask()) | (std::uint32_t(std::clamp(exponent, 0, 2 * f.bias())) << f.fraction_bits);
    if (bits & 0x80000000u) x |= f.sign_mask();
    switch ((bits >> 4) % 16) {
      case 0: x = f.sign_mask(); break;                       // -0
      case 1: x &= f.sign_mask() | f.fraction_mask(); break;  // subnormal
      case 2:
        if (r > 0) x = v[r - 1] ^ f.sign_mask();
        break;  // cancels the previous rank
      default: break;
    }
    v[r] = x;
  }
  return v;
}

}  // namespace

TEST_CASE("W <= 8: ONESHOT and TWOSHOT agree except ONESHOT's -0", "[cpu]") {
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    const std::uint32_t negative_zero = float_format(t).sign_mask();
    for (int world : {2, 4, 8}) {
      std::uint64_t state = 42 + world;
      int negative_zero_cases = 0;
      for (int i = 0; i < 20000; ++i) {
        const auto v = random_column(state, world, t);
        const std::uint32_t one =
            reduce_element(v, t, reduction_order(Strategy::kOneShot, Profile::kFlashInfer, world));
        const std::uint32_t two =
            reduce_element(v, t, reduction_order(Strategy::kTwoShot, Profile::kFlashInfer, world));
        if (one == two) continue;
        INFO(dtype_name(t) << " W=" << world << " case " << i);
        REQUIRE(one == negative_zero);
        REQUIRE(two == 0u);
        REQUIRE(t != DType::kFp16);  // fp16 sums are never fp32-subnormal: fully identical
        ++negative_zero_cases;
      }
      if (t == DType::kFp16) CHECK(negative_zero_cases == 0);
    }
  }
}

TEST_CASE("W >= 16: ONESHOT and TWOSHOT differ on some inputs", "[cpu]") {
  // Rank 0 holds a large +B and a later rank the exact -B; the result is the sum of the small values, but the
  // bits of them that B absorbed depend on where each order's chunks start.
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    const FloatFormat f = float_format(t);
    for (int world : {16, 32, 64}) {
      std::uint64_t state = 7 + world;
      int differing = 0;
      for (int i = 0; i < 2000; ++i) {
        auto v = random_column(state, world, t);
        const std::uint32_t big =
            (std::uint32_t(f.bias() + (t == DType::kFp16 ? 12 : 20)) << f.fraction_bits) | (v[1] & f.fraction_mask());
        v[0] = big;
        v[world / 2 + i % (world / 2)] = big | f.sign_mask();
        for (int r = 1; r < world; ++r)  // small values: exponents within +-4 of 1
          if (v[r] != (big | f.sign_mask()))
            v[r] = (v[r] & (f.sign_mask() | f.fraction_mask())) |
                   (std::uint32_t(f.bias() + int(v[r] % 9) - 4) << f.fraction_bits);
        const auto one = reduce_element(v, t, reduction_order(Strategy::kOneShot, Profile::kFlashInfer, world));
        const auto two = reduce_element(v, t, reduction_order(Strategy::kTwoShot, Profile::kFlashInfer, world));
        differing += one != two ? 1 : 0;
      }
      INFO(dtype_name(t) << " W=" << world << ": " << differing << " of 2000 differ");
      CHECK(differing > 0);
    }
  }
}

TEST_CASE("seeding with rank 0 differs from starting at +0 only in the sign of zero", "[cpu]") {
  // A(+0, v0) turns a negative-subnormal v0 into +0, while a seeded acc = v0 keeps it until the first add
  // flushes it to -0; after that both folds see the same values.
  for (int world : {2, 4, 8}) {
    std::uint64_t state = 99;
    for (int i = 0; i < 20000; ++i) {
      const auto v = random_column(state, world, DType::kBf16);
      const auto seeded = reduce_element(v, DType::kBf16, reduction_order(Strategy::kOneShot, Profile::kTrtllm, world));
      const auto from_zero =
          reduce_element(v, DType::kBf16, reduction_order(Strategy::kOneShot, Profile::kFlashInfer, world));
      if (seeded != from_zero) {
        INFO("W=" << world << " case " << i);
        REQUIRE(((seeded == 0x8000 && from_zero == 0) || (seeded == 0 && from_zero == 0x8000)));
      }
    }
  }
  const std::vector<std::uint32_t> v{0x8001, 0x8001};  // -subnormal, -subnormal
  CHECK(reduce_element(v, DType::kBf16, reduction_order(Strategy::kOneShot, Profile::kTrtllm, 2)) == 0x8000);
  CHECK(reduce_element(v, DType::kBf16, reduction_order(Strategy::kOneShot, Profile::kFlashInfer, 2)) == 0x0000);
}

TEST_CASE("reduction orders per strategy and profile", "[cpu]") {
  CHECK(reduction_order(Strategy::kOneShot, Profile::kFlashInfer, 8).chunk == 0);
  CHECK(reduction_order(Strategy::kOneShot, Profile::kFlashInfer, 16).chunk == 8);
  CHECK(reduction_order(Strategy::kOneShot, Profile::kFlashInfer, 64).chunk_count() == 8);
  CHECK(reduction_order(Strategy::kTwoShot, Profile::kFlashInfer, 4).chunk == 4);
  CHECK(reduction_order(Strategy::kTwoShot, Profile::kFlashInfer, 64).chunk == 16);
  CHECK(reduction_order(Strategy::kTwoShot, Profile::kFlashInfer, 64).sanitize_result);
  CHECK_FALSE(reduction_order(Strategy::kOneShot, Profile::kFlashInfer, 2).sanitize_result);
  CHECK_FALSE(reduction_order(Strategy::kOneShot, Profile::kIeee, 2).ftz);
  CHECK(reduction_order(Strategy::kTwoShot, Profile::kTrtllm, 64).chunk == 0);
  CHECK_FALSE(reduction_order(Strategy::kTwoShot, Profile::kTrtllm, 64).sanitize_result);
}

TEST_CASE("the invariant profile's exact order rounds once where a fold rounds twice", "[cpu][invariant]") {
  // From W = 16 the invariant profile's order is the exact sum rounded once; below it, FlashInfer's fold with
  // IEEE adds. `sum` pads a column with +0 to the world size and reduces it in the order of (strategy, profile).
  const auto sum = [](std::vector<std::uint32_t> v, DType t, Strategy s, Profile p, int world) {
    v.resize(static_cast<std::size_t>(world), 0u);
    return reduce_element(v, t, reduction_order(s, p, world));
  };
  constexpr Strategy kOne = Strategy::kOneShot, kTwo = Strategy::kTwoShot;
  // 1 + 2^-8 + 2^-30 lies just above the bf16 midpoint 1 + 2^-8. The fp32 fold loses 2^-30 (below half an
  // fp32 ulp of 1), lands on the midpoint, and the narrowing's tie goes to even: 1.0. The exact sum rounds
  // once, up: 1 + 2^-7.
  const std::vector<std::uint32_t> bf16{0x3F80, 0x3B80, 0x3080};
  CHECK(sum(bf16, DType::kBf16, kOne, Profile::kFlashInfer, 16) == 0x3F80);
  CHECK(sum(bf16, DType::kBf16, kOne, Profile::kInvariant, 16) == 0x3F81);
  CHECK(sum(bf16, DType::kBf16, kOne, Profile::kInvariant, 8) == 0x3F80);  // W = 8: the fold
  // fp16: 1 + 2^-11 + 2^-24; the fp32 add of 2^-24 is itself a tie (half an ulp of 1), kept even.
  const std::vector<std::uint32_t> fp16{0x3C00, 0x1000, 0x0001};
  CHECK(sum(fp16, DType::kFp16, kTwo, Profile::kFlashInfer, 32) == 0x3C00);
  CHECK(sum(fp16, DType::kFp16, kTwo, Profile::kInvariant, 32) == 0x3C01);
  // fp32 values whose fp32 partial sum overflows although the exact sum does not: the fold gives +Inf.
  const std::vector<std::uint32_t> fp32{0x7F7FFFFF, 0x7F7FFFFF, 0xFF7FFFFF};
  CHECK(sum(fp32, DType::kFp32, kOne, Profile::kIeee, 16) == 0x7F800000);
  CHECK(sum(fp32, DType::kFp32, kOne, Profile::kInvariant, 16) == 0x7F7FFFFF);
  CHECK(sum(fp32, DType::kFp32, kOne, Profile::kInvariant, 4) == 0x7F800000);  // W = 4: the fold
  // Specials: Inf - Inf is the canonical NaN, an exact zero sum is +0, at every W.
  for (int world : kWorldSizes) {
    INFO("W = " << world);
    CHECK(sum({0x7F80, 0xFF80}, DType::kBf16, kOne, Profile::kInvariant, world) == 0x7FFF);
    if (world >= 4)
      CHECK(sum({0x8000, 0xBF80, 0x3F80, 0x8000}, DType::kBf16, kOne, Profile::kInvariant, world) == 0x0000);
  }
}

namespace {

/// |exact sum - result| as a double, the values of T widened exactly (a -0 input counts as +0).
double fold_error(const std::vector<std::uint32_t>& v, std::uint32_t result, DType t) {
  ExactSum e;
  for (std::uint32_t x : v) e.add_fp32(widen_to_fp32(sanitize_negative_zero(x, t), t));
  e.add_fp32(widen_to_fp32(result, t) ^ 0x80000000u);
  return std::abs(e.to_double());
}

}  // namespace

TEST_CASE("below W = 16 the invariant order is ieee's, and its mean and largest errors are at most FlashInfer's",
          "[cpu][invariant]") {
  // Below W = 16 the invariant profile's order is FlashInfer's with IEEE adds: ieee's bits under both
  // strategies. On the random, subnormal and cancelling columns its mean and largest error are at most
  // FlashInfer's FTZ folds'; it is closer where FlashInfer flushes a subnormal sum (the first case below), but
  // not on every input: a flushed subnormal can cancel a rounding (the second).
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    double sum_invariant = 0, sum_flashinfer = 0;
    for (int world : kWorldSizes) {
      if (world >= kOneShotChunksFromWorld) continue;
      double max_invariant = 0, max_flashinfer = 0;
      std::uint64_t state = 3 + world;
      for (int i = 0; i < 3000; ++i) {
        const auto v = random_column(state, world, t);
        const std::uint32_t invariant =
            reduce_element(v, t, reduction_order(Strategy::kOneShot, Profile::kInvariant, world));
        for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
          INFO(dtype_name(t) << " W=" << world << " case " << i << " " << strategy_name(s));
          REQUIRE(invariant ==
                  sanitize_negative_zero(reduce_element(v, t, reduction_order(s, Profile::kIeee, world)), t));
          const double fi = fold_error(v, reduce_element(v, t, reduction_order(s, Profile::kFlashInfer, world)), t);
          const double in = fold_error(v, invariant, t);
          sum_flashinfer += fi;
          sum_invariant += in;
          max_flashinfer = std::max(max_flashinfer, fi);
          max_invariant = std::max(max_invariant, in);
        }
      }
      INFO(dtype_name(t) << " W=" << world);
      CHECK(max_invariant <= max_flashinfer);
    }
    INFO(dtype_name(t));
    CHECK(sum_invariant <= sum_flashinfer);
  }
  const std::vector<std::uint32_t> tiny{0x0001, 0x0001};  // bf16 2^-133 twice: FTZ flushes both to +0
  CHECK(reduce_element(tiny, DType::kBf16, reduction_order(Strategy::kOneShot, Profile::kInvariant, 2)) == 0x0002);
  CHECK(reduce_element(tiny, DType::kBf16, reduction_order(Strategy::kOneShot, Profile::kFlashInfer, 2)) == 0x0000);
  // bf16, W = 4: the IEEE fold rounds an early partial sum up by 2^-133 and lands on a midpoint of bf16, whose
  // tie goes down; FlashInfer's FTZ fold flushes the subnormal -0x807F, stays above the midpoint and rounds up,
  // as the exact sum does.
  const std::vector<std::uint32_t> v{0x807F, 0x0B00, 0x0700, 0x0081};
  const std::uint32_t invariant =
      reduce_element(v, DType::kBf16, reduction_order(Strategy::kOneShot, Profile::kInvariant, 4));
  const std::uint32_t flashinfer =
      reduce_element(v, DType::kBf16, reduction_order(Strategy::kOneShot, Profile::kFlashInfer, 4));
  CHECK(flashinfer == reduce_element(v, DType::kBf16, exact_sum_order(4)));
  CHECK(fold_error(v, flashinfer, DType::kBf16) < fold_error(v, invariant, DType::kBf16));
}

TEST_CASE("from W = 16 the invariant profile's exact sum is never less accurate than any fold", "[cpu][invariant]") {
  // The error of each result as an exact real, |sum - result|: the exact sum's never exceeds the error of any
  // strategy under any other profile, on every input (random, subnormal, cancelling), and is smaller on some.
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    int better = 0;
    for (int world : kWorldSizes) {
      if (world < kOneShotChunksFromWorld) continue;
      std::uint64_t state = 3 + world;
      for (int i = 0; i < 3000; ++i) {
        const auto v = random_column(state, world, t);
        const std::uint32_t exact =
            reduce_element(v, t, reduction_order(Strategy::kOneShot, Profile::kInvariant, world));
        REQUIRE(exact == reduce_element(v, t, exact_sum_order(world)));
        const double exact_error = fold_error(v, exact, t);
        for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
          for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kTrtllm}) {
            const double other = fold_error(v, reduce_element(v, t, reduction_order(s, p, world)), t);
            INFO(dtype_name(t) << " W=" << world << " case " << i << " " << strategy_name(s) << "/" << profile_name(p));
            REQUIRE(other >= exact_error);
            better += other > exact_error ? 1 : 0;
          }
      }
    }
    INFO(dtype_name(t));
    CHECK(better > 0);
  }
}
