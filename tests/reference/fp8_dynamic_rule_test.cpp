// The rule by which our fused kernels take dynamic FP8's row maximum before the row's scale exists
// (cuda/detail/quant_row.cuh, RowQuant::early_max), replayed on the CPU against the model's maximum. Where
// dynamic FP8 quantises the fp32 values x_i = RN(a_i * s) of TWOSHOT's order (a_i = (wb + g_i) * pre_i, s the
// row's rsqrt scale), the kernels fold max |a_i| (PTX max.f32 and abs.f32: NaNs dropped, nothing flushed)
// while the row's sums of squares are still travelling, then take |RN(max |a_i| * s)| maxed with +0 (a NaN
// product gives +0). The model folds quant_max(m, quant_abs(x_i)) from +0 over the x_i themselves. The token
// scale, and with it every code, must come out the same bits for every row and every scale, special ones too.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <vector>

#include "reference/float_ops.h"
#include "reference/fused_quant.h"

using namespace ar;

namespace {

constexpr std::uint32_t kPositiveInf = 0x7F800000u, kNan = 0x7FFFFFFFu, kSign = 0x80000000u;

/// PTX max.f32 and abs.f32 without FTZ, as the kernels fold |a_i| whatever the profile.
std::uint32_t ptx_max(std::uint32_t a, std::uint32_t b) {
  QuantArithmetic plain;
  plain.ftz = false;
  return quant_max(plain, a, b);
}

/// The kernels' token scale: from max |a_i| and s alone.
std::uint32_t rule_scale(const QuantArithmetic& q, const std::vector<std::uint32_t>& products, std::uint32_t s) {
  std::uint32_t largest = 0;
  for (const std::uint32_t a : products) largest = ptx_max(largest, a & ~kSign);
  const std::uint32_t row_max = ptx_max(0u, quant_mul(q, largest, s) & ~kSign);
  return fp8_dynamic_scale(q, row_max);
}

/// The model's token scale: from the values RN(a_i * s) themselves.
std::uint32_t model_scale(const QuantArithmetic& q, const std::vector<std::uint32_t>& products, std::uint32_t s) {
  std::vector<std::uint32_t> values;
  for (const std::uint32_t a : products) values.push_back(quant_mul(q, a, s));
  return fp8_dynamic_scale(q, fp8_dynamic_absmax(q, values));
}

std::uint32_t next(std::mt19937& rng) { return static_cast<std::uint32_t>(rng()); }

/// An fp32 value of a kind the rule must survive: mostly ordinary numbers of any exponent, with zeros of
/// both signs, subnormals, infinities, NaNs and values near overflow mixed in.
std::uint32_t some_value(std::mt19937& rng) {
  const std::uint32_t sign = (next(rng) & 1u) ? kSign : 0u;
  switch (next(rng) % 16) {
    case 0: return sign;                                                   // a zero
    case 1: return sign | (next(rng) & 0x007FFFFFu);                           // a subnormal (or zero)
    case 2: return sign | kPositiveInf;                                    // an infinity
    case 3: return kNan;                                                   // the canonical NaN
    case 4: return sign | (0x7F000000u + (next(rng) & 0x007FFFFFu));           // near overflow
    case 5: return sign | (0x00800000u + (next(rng) & 0x00FFFFFFu));           // near the smallest normal
    default: return sign | (((60u + next(rng) % 140u) << 23) | (next(rng) & 0x007FFFFFu));  // 2^-67 .. 2^72
  }
}

}  // namespace

TEST_CASE("dynamic FP8's maximum taken before the scale gives the model's token scale", "[reference][quant]") {
  struct Case {
    const char* name;
    QuantArithmetic q;
  };
  const std::vector<Case> cases{
      {"flashinfer twoshot", quant_arithmetic(Profile::kFlashInfer, Strategy::kTwoShot)},
      {"ieee twoshot", quant_arithmetic(Profile::kIeee, Strategy::kTwoShot)},
      {"invariant oneshot", quant_arithmetic(Profile::kInvariant, Strategy::kOneShot)},
  };
  // Scales of every kind: the rsqrt gives +0 (sum Inf), +Inf (sum 0, eps 0), -Inf (a -0 input), NaN.
  std::vector<std::uint32_t> special_scales{0u,          kSign,        1u,          kPositiveInf, kSign | kPositiveInf,
                                            kNan,        0x3F800000u,  0x00800000u, 0x7F7FFFFFu,  0x0F000000u,
                                            0x70000000u, 0x3D4CCCCDu};
  std::mt19937 rng(20261203);
  int rows = 0;
  for (const Case& c : cases) {
    REQUIRE(c.q.dynamic_from_fp32);  // the rule is for the fp32 values of TWOSHOT's order
    for (int row = 0; row < 20000; ++row) {
      std::vector<std::uint32_t> products(1 + next(rng) % 24);
      // Rows of ordinary numbers alone, and rows with special values among them.
      const bool ordinary = row % 2 == 0;
      for (std::uint32_t& a : products)
        a = ordinary ? ((next(rng) & 1u) ? kSign : 0u) | (((100u + next(rng) % 50u) << 23) | (next(rng) & 0x007FFFFFu))
                     : some_value(rng);
      const std::uint32_t s = row % 3 == 0 ? special_scales[next(rng) % special_scales.size()] : some_value(rng);
      INFO(c.name << ", row " << row << ", scale " << s);
      REQUIRE(rule_scale(c.q, products, s) == model_scale(c.q, products, s));
      ++rows;
    }
  }
  CHECK(rows == 60000);
}

TEST_CASE("dynamic FP8's early maximum: rows the rule must not get wrong", "[reference][quant]") {
  const QuantArithmetic fast = quant_arithmetic(Profile::kFlashInfer, Strategy::kTwoShot);
  const QuantArithmetic ieee = quant_arithmetic(Profile::kIeee, Strategy::kTwoShot);
  const std::uint32_t floor = kDynamicFp8MinScale;
  for (const QuantArithmetic& q : {fast, ieee}) {
    // An infinite product with a zero scale: NaN there, 0 elsewhere; the maximum is +0, the scale its floor.
    REQUIRE(model_scale(q, {kPositiveInf, 0x3F800000u}, 0u) == floor);
    REQUIRE(rule_scale(q, {kPositiveInf, 0x3F800000u}, 0u) == floor);
    // Zero products with an infinite scale: all NaN, dropped.
    REQUIRE(rule_scale(q, {0u, kSign}, kPositiveInf) == model_scale(q, {0u, kSign}, kPositiveInf));
    REQUIRE(rule_scale(q, {0u, kSign}, kPositiveInf) == floor);
    // A NaN product beside numbers: dropped by both.
    REQUIRE(rule_scale(q, {kNan, 0x40000000u}, 0x3F000000u) == model_scale(q, {kNan, 0x40000000u}, 0x3F000000u));
    // A negative scale (rsqrt of -0 is -Inf; here a finite one): magnitudes alike.
    REQUIRE(rule_scale(q, {0xC0400000u, 0x3F800000u}, 0xBF000000u) ==
            model_scale(q, {0xC0400000u, 0x3F800000u}, 0xBF000000u));
  }
  // Under FTZ a subnormal product is read as 0 by the multiply, whichever way: the floor.
  REQUIRE(rule_scale(fast, {0x00400000u}, 0x7F000000u) == model_scale(fast, {0x00400000u}, 0x7F000000u));
  REQUIRE(rule_scale(fast, {0x00400000u}, 0x7F000000u) == floor);
  // Without it the product is kept: 2^-127 * 2^127 = 1.
  REQUIRE(rule_scale(ieee, {0x00400000u}, 0x7F000000u) == model_scale(ieee, {0x00400000u}, 0x7F000000u));
  REQUIRE(rule_scale(ieee, {0x00400000u}, 0x7F000000u) != floor);
}
