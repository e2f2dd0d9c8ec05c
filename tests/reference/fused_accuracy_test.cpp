// The correctly rounded fused outputs: hand-worked rows (exact ties of T settled to even, a double rounding of
// the residual add the exact sum avoids, the special values), then random rows against a second opinion
// computed here in binary128 (113 bits, the root by Newton steps from the host's), and the report built on
// them.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "reference/fused_accuracy.h"

using namespace ar;

namespace {

std::uint32_t bits_of(double v, DType t) { return narrow_from_fp32(fp32_from_double(v), t); }

HostTensor filled(DType t, std::vector<std::int64_t> shape, const std::vector<double>& values) {
  HostTensor x(t, std::move(shape));
  for (std::int64_t i = 0; i < x.size(); ++i)
    x.set_bits(i, bits_of(values[static_cast<std::size_t>(i) % values.size()], t));
  return x;
}

// W = 2 ranks, the first holding `pre` and the second zeros, and a zero residual: pre* = pre.
struct Row {
  HostTensor input, residual, gamma;
  Row(DType t, const std::vector<double>& pre, const std::vector<double>& gamma_values)
      : input(t, {2, 1, static_cast<std::int64_t>(pre.size())}),
        residual(t, {1, static_cast<std::int64_t>(pre.size())}),
        gamma(filled(t, {static_cast<std::int64_t>(pre.size())}, gamma_values)) {
    for (std::size_t d = 0; d < pre.size(); ++d) input.set_bits(static_cast<std::int64_t>(d), bits_of(pre[d], t));
  }
  CorrectlyRoundedFused best(std::uint32_t eps, std::uint32_t wb) const {
    return correctly_rounded_fused(input, residual, gamma, eps, wb);
  }
};

__extension__ typedef __float128 Quad;
__extension__ typedef unsigned __int128 U128;

// RN-even of a positive binary128 value to T, through round_to_format (the top 64 of its 113 bits, the rest
// sticky).
std::uint32_t quad_to(Quad q, DType t) {
  U128 bits;
  std::memcpy(&bits, &q, sizeof bits);
  const int biased = static_cast<int>((bits >> 112) & 0x7FFF);
  const auto fraction = bits & ((U128{1} << 112) - 1);
  const auto significand = fraction | (U128{1} << 112);  // normal quads only here
  WideValue v{false, static_cast<std::uint64_t>(significand >> 49), biased - 16383 - 112 + 49,
              (significand & ((U128{1} << 49) - 1)) != 0};
  return round_to_format(v, float_format(t)).bits;
}

Quad quad_of(std::uint32_t bits, DType t) {
  const double v = to_double(bits, t);
  return static_cast<Quad>(v);
}

}  // namespace

TEST_CASE("correctly rounded norm: exact ties of T go to even, values just past them do not", "[cpu]") {
  // Every |pre| = 2 and eps = 0: the root is 2, so the output is +-(wb + gamma) exactly; wb = 2^-8 puts it
  // on the midpoint of two bf16 values.
  const Row row(DType::kBf16, {2, -2, 2, 2, -2, 2, 2, 2}, {1.0, 1.0078125, -1.0, 3.0});
  const std::uint32_t eps = 0, wb = fp32_from_double(0x1p-8);
  const HostTensor n = row.best(eps, wb).normalized;
  CHECK(n.bits(0) == 0x3F80u);  // 1 + 2^-8: a tie between 0x3F80 and 0x3F81, to even
  CHECK(n.bits(1) == 0xBF82u);  // -(1.0078125 + 2^-8): a tie between 0x3F81 and 0x3F82, to even, signed by pre
  CHECK(n.bits(2) == 0xBF7Fu);  // -1 + 2^-8 = -0.99609375: exact in bf16
  CHECK(n.bits(3) == 0x4040u);  // 3 + 2^-8 rounds to 3
  // Just past the midpoint (wb = 2^-8 + 2^-30): up.
  CHECK(row.best(eps, fp32_from_double(0x1p-8 + 0x1p-30)).normalized.bits(0) == 0x3F81u);
  // A hair either side of it, closer than a long double resolves: eps = +-2^-80 moves the root by about
  // 2^-82 relatively, so the exact comparison decides (down for +, up for -).
  CHECK(row.best(fp32_from_double(0x1p-80), wb).normalized.bits(1) == 0xBF81u);
  CHECK(row.best(fp32_from_double(0x1p-80), wb).normalized.bits(0) == 0x3F80u);
  CHECK(row.best(fp32_from_double(-0x1p-80), wb).normalized.bits(0) == 0x3F81u);
  CHECK(row.best(fp32_from_double(-0x1p-80), wb).normalized.bits(1) == 0xBF82u);
}

TEST_CASE("correctly rounded residual: one rounding of the exact sum, where the kernel rounds twice", "[cpu]") {
  // Ranks 1 and 2^-8 sum to a bf16 tie (1 + 2^-8 -> 1); + 2^-9 then stays 1. The exact sum 1 + 2^-8 + 2^-9 lies
  // above the midpoint: 1.0078125.
  HostTensor input = filled(DType::kBf16, {2, 1, 8}, {1.0});
  for (std::int64_t d = 0; d < 8; ++d) input.set_bits(8 + d, bits_of(0x1p-8, DType::kBf16));
  const HostTensor residual = filled(DType::kBf16, {1, 8}, {0x1p-9});
  const HostTensor gamma = filled(DType::kBf16, {8}, {1.0});
  CHECK(correctly_rounded_fused(input, residual, gamma, 0, 0).residual_out.bits(0) == 0x3F81u);
  FusedOptions o;
  o.strategy = Strategy::kOneShot;
  CHECK(reference_fused_rms_norm(input, residual, gamma, o).residual_out.bits(0) == 0x3F80u);
}

TEST_CASE("correctly rounded norm: special values as IEEE arithmetic gives them", "[cpu]") {
  const DType t = DType::kFp32;
  const std::uint32_t nan = 0x7FFFFFFFu;
  // A NaN in the row: all NaN.
  Row with_nan(t, {1, std::nan(""), 2, 3}, {1.0});
  for (int d = 0; d < 4; ++d) CHECK(with_nan.best(0, 0).normalized.bits(d) == nan);
  // An infinite pre: finite ones give zeros signed by pre * gamma, the infinite one NaN.
  Row with_inf(t, {1, HUGE_VAL, -2, 0}, {1.0, 1.0, 1.0, -1.0});
  const HostTensor inf_row = with_inf.best(0, 0).normalized;
  CHECK(inf_row.bits(0) == 0u);
  CHECK(inf_row.bits(1) == nan);
  CHECK(inf_row.bits(2) == 0x80000000u);
  CHECK(inf_row.bits(3) == 0x80000000u);  // +0 * -1
  // All zeros and eps = 0: 0 / 0.
  Row zeros(t, {0, 0, 0, 0}, {1.0});
  CHECK(zeros.best(0, 0).normalized.bits(0) == nan);
  CHECK(zeros.best(fp32_from_double(1e-6), 0).normalized.bits(0) == 0u);
  // A negative eps larger than the mean: the root of a negative number.
  Row small(t, {1, 1, 1, 1}, {1.0});
  CHECK(small.best(fp32_from_double(-2.0), 0).normalized.bits(0) == nan);
  // eps = -mean exactly: a zero root, so infinities.
  CHECK(small.best(fp32_from_double(-1.0), 0).normalized.bits(0) == 0x7F800000u);
  // gamma NaN and Inf; wb + gamma = 0 exactly is +0 (so +1 * +0 = +0 and -1 * +0 = -0).
  Row specials(t, {1, -1, 1, -1}, {std::nan(""), HUGE_VAL, -1.0, -1.0});
  const HostTensor s = specials.best(0, fp32_from_double(1.0)).normalized;
  CHECK(s.bits(0) == nan);
  CHECK(s.bits(1) == 0xFF800000u);
  CHECK(s.bits(2) == 0x00000000u);
  CHECK(s.bits(3) == 0x80000000u);
  // The output overflows T: one fp16 65504 among eight, so the ratio is sqrt(8), times gamma = 65504.
  Row big(DType::kFp16, {65504, 0, 0, 0, 0, 0, 0, 0}, {65504.0});
  CHECK(big.best(0, 0).normalized.bits(0) == 0x7C00u);
  CHECK(big.best(0, 0).normalized.bits(1) == 0x0000u);
}

TEST_CASE("correctly rounded norm agrees with a binary128 second opinion on random rows", "[cpu]") {
  std::uint64_t state = 12345;
  const auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(state >> 32);
  };
  int checked = 0, skipped = 0;
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    const FloatFormat f = float_format(t);
    for (int trial = 0; trial < 40; ++trial) {
      const std::int64_t width = 8 * (1 + next() % 64);
      const int spread = t == DType::kFp16 ? 4 : 1 + static_cast<int>(next() % 40);
      std::vector<double> pre, gamma;
      for (std::int64_t d = 0; d < width; ++d) {
        const auto random_value = [&](int e) {
          const std::uint32_t r = next();
          const int exponent = static_cast<int>(r % static_cast<std::uint32_t>(2 * e + 1)) - e;
          return std::ldexp(1.0 + static_cast<double>(r >> 16) / 65536.0, exponent) * ((r & 1) ? -1 : 1);
        };
        pre.push_back(random_value(spread));
        gamma.push_back(std::fabs(random_value(2)));
      }
      const Row row(t, pre, gamma);
      const std::uint32_t eps = fp32_from_double(std::ldexp(1.0, -static_cast<int>(next() % 30))),
                          wb = trial % 3 == 0 ? fp32_from_double(1.0) : 0u;
      const HostTensor best = row.best(eps, wb).normalized;
      // The second opinion: sum, mean and products in binary128; the root by two Newton steps.
      Quad sum = 0;
      for (std::int64_t d = 0; d < width; ++d) {
        const Quad p = quad_of(row.input.bits(d), t);
        sum += p * p;
      }
      const Quad mean = sum / static_cast<Quad>(width) + quad_of(eps, DType::kFp32);
      Quad root = static_cast<Quad>(std::sqrt(static_cast<long double>(mean)));
      for (int i = 0; i < 3; ++i) root = (root + mean / root) / 2;
      for (std::int64_t d = 0; d < width; ++d) {
        const Quad g = quad_of(wb, DType::kFp32) + quad_of(row.gamma.bits(d), t);
        const Quad y = quad_of(row.input.bits(d), t) * g / root;
        const Quad magnitude = y < 0 ? -y : y;
        const std::uint32_t want = quad_to(magnitude, t);
        // Values within 2^-99 (relative) of a rounding boundary are beyond this opinion; the hand-worked ties
        // cover them.
        const Quad error = magnitude * static_cast<Quad>(std::ldexp(1.0, -99));
        const std::uint32_t up = quad_to(magnitude + error, t), down = quad_to(magnitude - error, t);
        if (up != down) {
          // Within 2^-99 of a boundary: the answer must still be one of the two sides.
          CHECK(((best.bits(d) & ~f.sign_mask()) == up || (best.bits(d) & ~f.sign_mask()) == down));
          ++skipped;
          continue;
        }
        INFO(dtype_name(t) << " trial " << trial << " d " << d);
        REQUIRE((best.bits(d) & ~f.sign_mask()) == want);
        REQUIRE(sign_bit(best.bits(d), f) == (y < 0));
        ++checked;
      }
    }
  }
  CHECK(checked > 10000);
  CHECK(skipped * 1000 < checked);
}

TEST_CASE("the fused accuracy report measures every run against the correctly rounded outputs", "[cpu]") {
  const Row row(DType::kBf16, {1.5, -0.75, 3.25, 2.0, -1.125, 0.5, 7.0, -2.5}, {1.0, 0.5, 2.0, 1.5});
  FusedOptions o;
  o.epsilon = default_epsilon(DType::kBf16);
  const std::vector<std::pair<Strategy, Profile>> runs{{Strategy::kOneShot, Profile::kFlashInfer},
                                                       {Strategy::kTwoShot, Profile::kIeee}};
  const FusedAccuracyReport r = fused_accuracy_report(row.input, row.residual, row.gamma, o, runs);
  REQUIRE(r.rows.size() == 2);
  CHECK(r.best.normalized == correctly_rounded_fused(row.input, row.residual, row.gamma, o.epsilon, 0).normalized);
  for (const FusedAccuracyRow& a : r.rows) {
    CHECK(a.normalized.elements == 8);
    std::int64_t in_histogram = 0;
    for (auto n : a.normalized.histogram) in_histogram += n;
    CHECK(in_histogram == 8);
    CHECK(a.residual_out.correctly_rounded == 8);  // exact sums: pre is exact for any order
    CHECK(a.normalized.correctly_rounded + a.normalized.histogram[1] + a.normalized.histogram[2] >= 6);
  }
  CHECK(r.rows[1].strategy == Strategy::kTwoShot);
  CHECK(r.rows[1].result.normalized == reference_fused_rms_norm(row.input, row.residual, row.gamma,
                                                                [&] {
                                                                  FusedOptions t = o;
                                                                  t.strategy = Strategy::kTwoShot;
                                                                  t.profile = Profile::kIeee;
                                                                  return t;
                                                                }())
                                           .normalized);
}
