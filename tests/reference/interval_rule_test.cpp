// The rule by which the invariant profile's kernels decide most elements of the exact sum in one pass
// (cuda/detail/exact_fold.cuh, way 1), replayed on the CPU against the reference's exact sum: fold the W
// widened values from +0 in fp32 twice, every add rounded down and every add rounded up, narrow both ends to
// T (RN-even, canonical NaN, as cvt.rn does), and take the up end's bits when the two narrowings are the same
// bits, or when they are -0 and +0. Whatever it decides must be the exact sum rounded once; what it leaves
// undecided goes to the kernels' later ways. The x86 SSE adds here honour the rounding mode set by
// fesetround, as add.rm.f32 and add.rp.f32 do theirs; volatile keeps each add between its mode's calls.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cfenv>
#include <cstdint>
#include <random>
#include <vector>

#include "reference/exact_sum.h"
#include "reference/float_bits.h"

using namespace ar;

namespace {

float fold(const std::vector<std::uint32_t>& fp32_bits, int mode) {
  volatile float acc = 0.0f;
  std::fesetround(mode);
  for (std::uint32_t bits : fp32_bits) {
    volatile float x = std::bit_cast<float>(bits);
    acc = acc + x;
  }
  std::fesetround(FE_TONEAREST);
  return acc;
}

struct Tally {
  int decided = 0, undecided = 0, zero_pairs = 0;
};

/// Applies the rule to one element's W values of T (T bits) and checks a decision against the exact sum.
void check_rule(const std::vector<std::uint32_t>& values, DType t, Tally& tally) {
  std::vector<std::uint32_t> wide;
  ExactSum exact;
  for (std::uint32_t v : values) {
    wide.push_back(widen_to_fp32(v, t));
    exact.add_fp32(wide.back());
  }
  const std::uint32_t low = narrow_from_fp32(std::bit_cast<std::uint32_t>(fold(wide, FE_DOWNWARD)), t);
  const std::uint32_t high = narrow_from_fp32(std::bit_cast<std::uint32_t>(fold(wide, FE_UPWARD)), t);
  const FloatFormat f = float_format(t);
  const bool zero_pair = low == f.sign_mask() && high == 0u;
  if (low != high && !zero_pair) {
    ++tally.undecided;
    return;
  }
  ++tally.decided;
  if (zero_pair) ++tally.zero_pairs;
  INFO("W = " << values.size() << ", up end " << high << ", exact " << exact.round_to(f));
  REQUIRE(high == exact.round_to(f));
}

/// A value of T with a random sign and mantissa and an exponent within +-spread of 0 (subnormals below).
std::uint32_t random_value(std::mt19937& rng, DType t, int spread) {
  const FloatFormat f = float_format(t);
  const int bias = static_cast<int>(f.bias());
  const int exponent = std::uniform_int_distribution<int>(-spread, spread)(rng) + bias;
  const std::uint32_t field = static_cast<std::uint32_t>(std::clamp(exponent, 0, 2 * bias));
  const std::uint32_t mantissa = static_cast<std::uint32_t>(rng()) & f.fraction_mask();
  return (rng() & 1u ? f.sign_mask() : 0u) | (field << f.fraction_bits) | mantissa;
}

}  // namespace

TEST_CASE("the kernels' interval rule never decides an element wrongly", "[cpu]") {
  std::mt19937 rng(2026);
  for (DType t : {DType::kBf16, DType::kFp16}) {
    const FloatFormat f = float_format(t);
    Tally tally;
    // Full-mantissa values as the bench makes them, and spreads wide enough to reach subnormals.
    for (int world : {2, 3, 8, 16, 64})
      for (int spread : {3, 12, 40})
        for (int trial = 0; trial < 400; ++trial) {
          std::vector<std::uint32_t> values;
          for (int r = 0; r < world; ++r) values.push_back(random_value(rng, t, spread));
          check_rule(values, t, tally);
        }
    // Cancellations: x then -x pairs (an exact zero, whose down fold is -0), then one more small value.
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<std::uint32_t> values;
      for (int pair = 0; pair < 4; ++pair) {
        const std::uint32_t x = random_value(rng, t, 12);
        values.push_back(x);
        values.push_back(x ^ f.sign_mask());
      }
      if (trial % 2) values.push_back(random_value(rng, t, 20));
      check_rule(values, t, tally);
    }
    // Ties: 1 plus half an ulp of T, split into two exact halves, and near the top of the range.
    const std::uint32_t one = static_cast<std::uint32_t>(f.bias()) << f.fraction_bits;
    const std::uint32_t quarter_ulp = static_cast<std::uint32_t>(f.bias() - f.fraction_bits - 2) << f.fraction_bits;
    check_rule({one, quarter_ulp, quarter_ulp}, t, tally);
    check_rule({one | 1u, quarter_ulp, quarter_ulp}, t, tally);
    const std::uint32_t largest = f.infinity() - 1u;
    check_rule({largest, largest, largest ^ f.sign_mask()}, t, tally);  // an fp32 overflow of bf16 on the way
    check_rule({largest, largest}, t, tally);
    // Infinities and NaN: Inf alone, Inf - Inf, a NaN among finite values.
    const std::uint32_t inf = f.infinity(), nan = f.infinity() | 1u;
    check_rule({inf, one}, t, tally);
    check_rule({inf, inf ^ f.sign_mask(), one}, t, tally);
    check_rule({one, nan, one}, t, tally);
    INFO(dtype_name(t) << ": decided " << tally.decided << ", undecided " << tally.undecided);
    // The rule must have been put to work on each kind of element, not only on easy ones.
    CHECK(tally.zero_pairs > 0);
    CHECK(tally.undecided > 0);
    CHECK(tally.decided > 10 * tally.undecided);
  }
}
