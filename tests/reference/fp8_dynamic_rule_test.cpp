// The rule by which our fused kernels take dynamic FP8's row maximum before the row's scale exists
// (cuda/detail/quant_row.cuh, RowQuant::early_max), replayed on the CPU against the model's maximum. Where
// dynamic FP8 quantises the fp32 values x_i = RN(a_i * s) of TWOSHOT's order (a_i = (wb + g_i) * pre_i, s the
// row's rsqrt scale), the kernels fold max |a_i| (PTX max.f32 and abs.f32: NaNs dropped, nothing flushed)
// while the row's sums of squares are still travelling, then take |RN(max |a_i| * s)| maxed with +0 (a NaN
// product gives +0). The model folds quant_max(m, quant_abs(x_i)) from +0 over the x_i themselves. The token
// scale, and with it every code, must come out the same bits for every row and every scale, special ones too.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "reference/fused_launch.h"
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

// ---------------------------------------------------------------------------------------------------------
// FlashInfer's ONESHOT (and the ieee profile's) quantise the T outputs x_i = T(RN(RN(p_i * s) * g_i)), p_i the
// widened `pre`, g_i = wb + gamma_i, s the row's scale. Rounding after s can reorder two elements whose exact
// products |p_i * g_i| lie a few ulps apart, so the kernels cannot take the largest x from the products
// alone. But a row whose largest product stands clear of every other element's (cuda/detail/quant_row.cuh,
// DominantProduct) has its largest |x| at that element, which every thread can compute once s is known. The
// rule, as the kernels apply it:
// - a_i = |RN(p_i * g_i)| without FTZ; the element of the largest a (its identity: its pre and gamma bits),
//   the largest a of any element with another identity (a tie of two identities gives a2 = a1), and
//   b = max(max |p|, max |g|), all as unsigned magnitudes (a NaN or Inf shows as a1 >= 0x7F800000);
// - the row's maximum is the dominant element's |x| when: a1 is finite and at least 2^-100; a2 lies 32 ulps
//   or more below a1 (a2 <= a1 (1 - 2^-19)); q = RN(p_k * s) is finite and normal; RN(b * |s|) is finite
//   (no q_j overflows); and |RN(q * g_k)| is at least 2^-125 and at least b * 2^-124 (an element whose q_j is
//   subnormal or flushed stays below it).
// Why it holds: for an element j whose q_j is normal, |q_j g_j| <= |p_j g_j| |s| (1 + u) <= (a_j / (1 - u) +
// 2^-150) |s| (1 + u), and |q g_k| >= (a1 / (1 + u) - 2^-150) |s| (1 - u), u = 2^-24; the margin covers both
// (about 4u is needed), so |q_j g_j| <= |q g_k| and rounding, FTZ's flushes, the narrowing to T and the
// absolute value all keep that order. For q_j subnormal or flushed, |q_j g_j| < 2^-126 max |g| <= 2^-126 b.
// Where the rule does not apply (and in every kernel launched without clusters) the kernels take the row's
// maximum after the output pass.

namespace {

/// What the kernels fold over a row for the rule (DominantProduct): per element, then merged.
struct Dominant {
  std::uint32_t a1 = 0, id = 0, a2 = 0, bound = 0;
  void fold(std::uint32_t a, std::uint32_t element_id) {
    const bool above = a > a1, same = a == a1 && element_id == id;
    a2 = std::max(a2, above ? a1 : (same ? 0u : a));
    if (above) {
      a1 = a;
      id = element_id;
    }
  }
};

constexpr std::uint32_t kMagnitude = 0x7FFFFFFFu;

Dominant dominant_of_row(DType t, const NormArithmetic& norm, const std::vector<std::uint32_t>& pre,
                         const std::vector<std::uint32_t>& gamma) {
  Dominant d;
  for (std::size_t i = 0; i < pre.size(); ++i) {
    const std::uint32_t p = widen_to_fp32(pre[i], t);
    const std::uint32_t g = add_fp32(norm.weight_bias, widen_to_fp32(gamma[i], t), norm.ftz);
    d.fold(mul_fp32(p, g, /*ftz=*/false) & kMagnitude, pre[i] << 16 | gamma[i]);
    d.bound = std::max(d.bound, std::max(p & kMagnitude, g & kMagnitude));
  }
  return d;
}

/// The kernels' token scale under the rule, or none where it does not apply.
std::optional<std::uint32_t> dominant_rule_scale(DType t, const NormArithmetic& norm, const QuantArithmetic& q,
                                                 const Dominant& d, std::uint32_t s) {
  if (d.a1 >= kPositiveInf || d.a1 < 0x0D800000u /* 2^-100 */ || d.a2 + 32u > d.a1) return std::nullopt;
  const std::uint32_t p = widen_to_fp32(d.id >> 16, t);
  const std::uint32_t g = add_fp32(norm.weight_bias, widen_to_fp32(d.id & 0xFFFFu, t), norm.ftz);
  const std::uint32_t first = mul_fp32(p, s, norm.ftz), first_magnitude = first & kMagnitude;
  if (first_magnitude < 0x00800000u || first_magnitude >= kPositiveInf) return std::nullopt;
  if ((mul_fp32(d.bound, s & kMagnitude, norm.ftz) & kMagnitude) >= kPositiveInf) return std::nullopt;
  const std::uint32_t y = mul_fp32(first, g, norm.ftz);
  const std::uint32_t y_magnitude = y & kMagnitude;
  if (y_magnitude < 0x01000000u /* 2^-125 */ ||
      y_magnitude < (mul_fp32(d.bound, 0x01800000u /* 2^-124 */, /*ftz=*/false) & kMagnitude))
    return std::nullopt;
  const std::uint32_t x = widen_to_fp32(narrow_from_fp32(y, t), t);
  return fp8_dynamic_scale(q, quant_max(q, 0u, quant_abs(q, x)));
}

/// The model's token scale of ONESHOT's dynamic FP8: from the T outputs themselves.
std::uint32_t oneshot_model_scale(const NormLaunch& launch, const NormArithmetic& norm, const QuantArithmetic& q,
                                  const std::vector<std::uint32_t>& pre, const std::vector<std::uint32_t>& gamma,
                                  std::uint32_t s) {
  std::vector<std::uint32_t> x;
  for (std::size_t i = 0; i < pre.size(); ++i)
    x.push_back(widen_to_fp32(narrow_from_fp32(normalized_fp32(launch, norm, pre[i], gamma[i], s), launch.dtype),
                              launch.dtype));
  return fp8_dynamic_scale(q, fp8_dynamic_absmax(q, x));
}

/// A 16-bit value of T: mostly ordinary numbers around 1, with zeros, subnormals, infinities, NaNs and
/// values near the format's ends mixed in when `special`.
std::uint32_t some_element(std::mt19937& rng, DType t, bool special) {
  const std::uint32_t sign = (next(rng) & 1u) ? 0x8000u : 0u;
  const bool bf16 = t == DType::kBf16;
  const int mantissa_bits = bf16 ? 7 : 10, bias = bf16 ? 127 : 15, largest_exponent = bf16 ? 254 : 30;
  const std::uint32_t mantissa = next(rng) & ((1u << mantissa_bits) - 1);
  const auto with_exponent = [&](int e) { return sign | static_cast<std::uint32_t>(e) << mantissa_bits | mantissa; };
  if (special) {
    switch (next(rng) % 12) {
      case 0: return sign;                                                  // a zero
      case 1: return sign | mantissa;                                       // a subnormal
      case 2: return with_exponent(largest_exponent + 1) & ~((1u << mantissa_bits) - 1);  // an infinity
      case 3: return with_exponent(largest_exponent + 1) | 1u;              // a NaN
      case 4: return with_exponent(largest_exponent - static_cast<int>(next(rng) % 3));  // near overflow
      case 5: return with_exponent(1 + static_cast<int>(next(rng) % 3));    // near the smallest normal
      default: break;
    }
  }
  return with_exponent(bias - 4 + static_cast<int>(next(rng) % 7));  // 2^-4 .. 2^2
}

}  // namespace

TEST_CASE("dynamic FP8 of ONESHOT's T outputs: the dominant product's rule gives the model's token scale",
          "[reference][quant]") {
  std::mt19937 rng(20261204);
  // Scales of every kind beside ordinary ones: +0, -0, +-Inf, NaN, tiny, huge.
  const std::vector<std::uint32_t> special_scales{0u,          kSign,       kPositiveInf, kSign | kPositiveInf,
                                                  kNan,        0x00800000u, 0x7F7FFFFFu,  0x0F000000u,
                                                  0x70000000u, 0x3D4CCCCDu};
  int rows = 0, ordinary_rows = 0, ordinary_by_rule = 0, by_rule = 0;
  for (const Profile profile : {Profile::kFlashInfer, Profile::kIeee}) {
    for (const DType t : {DType::kBf16, DType::kFp16}) {
      for (const std::uint32_t weight_bias : {0u, kFp32One}) {
        FusedOptions options;
        options.profile = profile;
        options.weight_bias = weight_bias;
        const NormArithmetic norm = norm_arithmetic(options);
        const QuantArithmetic q = quant_arithmetic(profile, Strategy::kOneShot);
        REQUIRE_FALSE(q.dynamic_from_fp32);  // the rule is for the T outputs
        const NormLaunch launch = norm_launch(Strategy::kOneShot, 1, 4096, t);
        REQUIRE_FALSE(launch.gamma_first);
        for (int row = 0; row < 6000; ++row) {
          // Kinds of rows: ordinary; ordinary with gamma all 1 (ties of equal pre); a few elements near one
          // another (near ties after s); special values mixed in.
          const int kind = row % 4;
          const std::size_t width = 1 + next(rng) % (kind == 0 ? 64 : 12);
          std::vector<std::uint32_t> pre(width), gamma(width);
          for (std::size_t i = 0; i < width; ++i) {
            pre[i] = some_element(rng, t, kind == 3);
            gamma[i] = kind == 1 ? (t == DType::kBf16 ? 0x3F80u : 0x3C00u) : some_element(rng, t, kind == 3);  // 1.0
            if (kind == 2 && i > 0 && next(rng) % 2 == 0) {  // the neighbour of an earlier element, one ulp apart
              pre[i] = (pre[next(rng) % i] + next(rng) % 3 + 0xFFFFu) & 0xFFFFu;
              gamma[i] = (gamma[next(rng) % i] + next(rng) % 3 + 0xFFFFu) & 0xFFFFu;
            }
          }
          const std::uint32_t s = row % 5 == 0 ? special_scales[next(rng) % special_scales.size()]
                                               : (0x3E000000u + (next(rng) & 0x01FFFFFFu));  // 2^-3 .. 2^1
          const Dominant d = dominant_of_row(t, norm, pre, gamma);
          const std::optional<std::uint32_t> rule = dominant_rule_scale(t, norm, q, d, s);
          INFO(profile_name(profile) << " " << dtype_name(t) << ", bias " << weight_bias << ", row " << row
                                     << " (kind " << kind << "), scale " << s);
          if (rule) REQUIRE(*rule == oneshot_model_scale(launch, norm, q, pre, gamma, s));
          ++rows;
          by_rule += rule ? 1 : 0;
          if (kind == 0 && row % 5 != 0) {
            ++ordinary_rows;
            ordinary_by_rule += rule ? 1 : 0;
          }
        }
      }
    }
  }
  CHECK(rows == 48000);
  // The rule is worth a kernel's code only if ordinary rows take it: nearly all of them do.
  INFO(ordinary_by_rule << " of " << ordinary_rows << " ordinary rows, " << by_rule << " of all rows");
  CHECK(ordinary_by_rule * 100 >= ordinary_rows * 95);
}

TEST_CASE("dynamic FP8 of ONESHOT's T outputs: equal products need not give equal values", "[reference][quant]") {
  // Why the rule refuses a tie of two identities: 3 * 5 and 5 * 3 are the same product, but (3 s) 5 and (5 s) 3
  // round differently for most scales s, so either element may hold the row's largest fp32 value.
  FusedOptions options;
  const NormArithmetic norm = norm_arithmetic(options);
  const DType t = DType::kBf16;
  const NormLaunch launch = norm_launch(Strategy::kOneShot, 1, 4096, t);
  const std::uint32_t three = 0x4040u, five = 0x40A0u;  // bf16
  const Dominant d = dominant_of_row(t, norm, {three, five}, {five, three});
  CHECK(d.a2 == d.a1);  // a tie: the rule does not apply
  std::mt19937 rng(7);
  int differ = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::uint32_t s = 0x3E000000u + (next(rng) & 0x01FFFFFFu);
    differ += normalized_fp32(launch, norm, three, five, s) != normalized_fp32(launch, norm, five, three, s) ? 1 : 0;
  }
  CHECK(differ > 100);
}

TEST_CASE("dynamic FP8 of ONESHOT's T outputs: the rule's bound is of magnitudes", "[reference][quant]") {
  // p_0 * s overflows, so the model's token scale is +Inf and the rule must refuse the row. A bound taken as
  // the largest signed bit pattern (the sign bit deciding which of p and g counts) would keep |g| = 1e-17 in
  // place of |p| = 2^100 and let the rule through, with a finite scale.
  FusedOptions options;
  const NormArithmetic norm = norm_arithmetic(options);
  const QuantArithmetic q = quant_arithmetic(Profile::kFlashInfer, Strategy::kOneShot);
  const DType t = DType::kBf16;
  const NormLaunch launch = norm_launch(Strategy::kOneShot, 1, 4096, t);
  const std::vector<std::uint32_t> pre{0x71EBu, 0xC412u, 0x47F2u}, gamma{0xA339u, 0x918Du, 0x5963u};
  const std::uint32_t s = 0x56724205u;
  const std::uint32_t model = oneshot_model_scale(launch, norm, q, pre, gamma, s);
  CHECK(model == kPositiveInf);
  const Dominant d = dominant_of_row(t, norm, pre, gamma);
  CHECK_FALSE(dominant_rule_scale(t, norm, q, d, s).has_value());
  Dominant signed_bound = d;
  signed_bound.bound = 0;
  for (std::size_t i = 0; i < pre.size(); ++i) {
    const std::uint32_t p = widen_to_fp32(pre[i], t), g = add_fp32(norm.weight_bias, widen_to_fp32(gamma[i], t), true);
    signed_bound.bound = std::max(signed_bound.bound, std::max(p, g) & kMagnitude);
  }
  REQUIRE(signed_bound.bound < d.bound);
  const std::optional<std::uint32_t> wrong = dominant_rule_scale(t, norm, q, signed_bound, s);
  REQUIRE(wrong.has_value());
  CHECK(*wrong != model);
}
