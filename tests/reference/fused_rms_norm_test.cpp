// The fused residual-add + RMSNorm model: hand-worked rows per strategy, the summation tree, and every place
// where SPEC section 7 says ONESHOT and TWOSHOT part.
//
// The approximate rsqrt and division are the GPU's; their models live elsewhere. Here they are replaced by
// test-only stand-ins that are NOT models of the hardware: each answers only inputs whose exact result any
// faithful approximation returns (rsqrt of a power of four, a quotient by a power of two, +Inf), and fails
// the test on anything else. Tests that only look at the sum, or at what happens after the scale, say so and
// use a placeholder scale instead.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

#include "reference/float_ops.h"
#include "reference/fused_rms_norm.h"
#include "reference/rsqrt_rn.h"

using namespace ar;

namespace {

std::uint32_t rsqrt_of_power_of_four(std::uint32_t x) {
  if (x == 0x7F800000u) return 0u;  // rsqrt(+Inf) = +0
  const int biased = int(x >> 23);
  const int exponent = biased - 127;
  if ((x & 0x807FFFFFu) != 0 || biased == 0 || biased == 255 || exponent % 2 != 0) {
    FAIL("the stand-in rsqrt was asked for an inexact result: 0x" << std::hex << x);
    return 0;
  }
  return std::uint32_t(127 - exponent / 2) << 23;
}

std::uint32_t reciprocal_of_power_of_two(std::uint32_t b) {
  const int biased = 254 - int(b >> 23);
  if ((b & 0x807FFFFFu) != 0 || (b >> 23) == 0 || biased <= 0) {
    FAIL("the stand-in reciprocal needs a power-of-two divisor with a normal reciprocal, got 0x" << std::hex << b);
    return 0;
  }
  return std::uint32_t(biased) << 23;
}

constexpr ApproxMath kExactStandIns{rsqrt_of_power_of_four, reciprocal_of_power_of_two};

// For tests about the sum or about what follows the scale: a placeholder, not an approximation of anything.
// The reciprocal of D is 1 (so the rsqrt input is the sum plus epsilon) and the scale is 1.0.
constexpr ApproxMath kPlaceholderScale{[](std::uint32_t) -> std::uint32_t { return 0x3F800000u; },
                                       [](std::uint32_t) -> std::uint32_t { return 0x3F800000u; }};

constexpr std::uint32_t kEpsilon = 0x2B800000u;  // 2^-40: absorbed by any mean >= 2^-16

std::uint32_t bits_of(double v, DType t) { return narrow_from_fp32(fp32_from_double(v), t); }

// [W, 1, D] from per-rank rows of values.
HostTensor one_token_input(DType t, const std::vector<std::vector<double>>& ranks) {
  const auto width = static_cast<std::int64_t>(ranks.front().size());
  HostTensor input(t, {static_cast<std::int64_t>(ranks.size()), 1, width});
  for (std::size_t r = 0; r < ranks.size(); ++r)
    for (std::int64_t d = 0; d < width; ++d)
      input.set_bits(static_cast<std::int64_t>(r) * width + d, bits_of(ranks[r][d], t));
  return input;
}

HostTensor tensor_of(DType t, std::vector<std::int64_t> shape, const std::vector<std::uint32_t>& bits) {
  HostTensor out(t, std::move(shape));
  for (std::size_t i = 0; i < bits.size(); ++i) out.set_bits(static_cast<std::int64_t>(i), bits[i]);
  return out;
}

HostTensor values_of(DType t, std::vector<std::int64_t> shape, const std::vector<double>& values) {
  std::vector<std::uint32_t> bits;
  for (double v : values) bits.push_back(bits_of(v, t));
  return tensor_of(t, std::move(shape), bits);
}

std::vector<std::uint32_t> all_bits(const HostTensor& t) {
  std::vector<std::uint32_t> bits;
  for (std::int64_t i = 0; i < t.size(); ++i) bits.push_back(t.bits(i));
  return bits;
}

FusedOptions options_for(Strategy s, ApproxMath approx = kExactStandIns) {
  FusedOptions o;
  o.strategy = s;
  o.epsilon = kEpsilon;
  o.approx = approx;
  return o;
}

using Bits = std::vector<std::uint32_t>;

/// SPEC 7's ONESHOT tree for bf16 `pre` written out again, on host floats (round to nearest, no subnormal
/// on the inputs it is given), from the launch's numbers alone: each thread's squares in bf16 added from +0,
/// loads outer; xor butterflies (16, 8, 4, 2, 1) in each warp with +0 in missing lanes; the same over each
/// block's warp sums padded to 32; the cluster's fold of the block sums from +0 in block order. The fp32 bits.
std::uint32_t oneshot_tree_sum(const NormLaunch& l, const Bits& pre) {
  const auto butterfly = [](std::vector<float> v, int lanes) {
    for (int mask = 16; mask >= 1; mask /= 2) {
      std::vector<float> next(32, 0.0f);
      for (int lane = 0; lane < lanes; ++lane) next[lane] = v[lane] + v[lane ^ mask];
      v = next;
    }
    return v[0];
  };
  std::vector<float> block_sums;
  for (int block = 0; block < l.cluster_size(); ++block) {
    std::vector<float> warp_sums(32, 0.0f);
    for (int warp = 0; warp < l.warps_per_block(); ++warp) {
      std::vector<float> lanes(32, 0.0f);
      for (int lane = 0; lane < 32 && warp * 32 + lane < l.block_size(); ++lane)
        for (int load = 0; load < l.loads_per_thread(); ++load) {
          const std::int64_t pack = std::int64_t{block} * l.packs_per_block + load * l.block_size() + warp * 32 + lane;
          for (int e = 0; e < 8 && pack < l.packs_per_row; ++e)
            lanes[lane] += static_cast<float>(to_double(mul_native(pre[pack * 8 + e], pre[pack * 8 + e], DType::kBf16),
                                                        DType::kBf16));
        }
      warp_sums[warp] = butterfly(lanes, std::min(32, l.block_size() - warp * 32));
    }
    block_sums.push_back(butterfly(warp_sums, 32));
  }
  float sum = block_sums[0];
  if (l.cluster_size() > 1) {
    sum = 0.0f;
    for (float b : block_sums) sum += b;
  }
  return std::bit_cast<std::uint32_t>(sum);
}

}  // namespace

TEST_CASE("oneshot, worked by hand: bf16, W = 2, D = 8", "[cpu]") {
  // AR = [1.5, -1.5, 1.75, -1, 1.5, 1.5, -1.5, 1.5]; + residual gives pre = [2, -2, 2, -2, 2, 2, -2, 2].
  // One pack, one thread (launch (1, 1, 1)): the squares in bf16 are 4, their fp32 sum 32; the lone lane's
  // butterflies add +0. mean = 32 / 8 = 4; 4 + 2^-40 = 4; rsqrt(4) = 0.5. Output (pre * 0.5) * gamma.
  // gamma[7] = -0 becomes +0 in `0 + f(gamma)`, so pre = 2 gives +0, not -0.
  const HostTensor input =
      one_token_input(DType::kBf16, {{1, -1, 1.5, -1, 1, 1, -1, 0.5}, {0.5, -0.5, 0.25, 0, 0.5, 0.5, -0.5, 1}});
  const HostTensor residual = values_of(DType::kBf16, {1, 8}, {0.5, -0.5, 0.25, -1, 0.5, 0.5, -0.5, 0.5});
  const HostTensor gamma = values_of(DType::kBf16, {8}, {1, 2, 0.5, -1, 0.75, 3, 1.25, -0.0});
  const FusedResult r = reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kOneShot));
  CHECK(r.launch.grid == GridConfig{1, 1, 1});
  CHECK(all_bits(r.residual_out) == Bits{0x4000, 0xC000, 0x4000, 0xC000, 0x4000, 0x4000, 0xC000, 0x4000});
  CHECK(all_bits(r.normalized) == Bits{0x3F80, 0xC000, 0x3F00, 0x3F80, 0x3F40, 0x4040, 0xBFA0, 0x0000});
  CHECK_FALSE(r.normalized_undefined_on_gpu);

  const FusedElementExplanation e =
      explain_fused_element(input, residual, gamma, options_for(Strategy::kOneShot), 0, 7);
  CHECK(e.row.sum == 0x42000000u);                // 32
  CHECK(e.row.hidden_as_fp32 == 0x41000000u);     // 8
  CHECK(e.row.hidden_reciprocal == 0x3E000000u);  // 1/8
  CHECK(e.row.rsqrt_input == 0x40800000u);        // the epsilon vanished
  CHECK(e.row.rsqrt_output == 0x3F000000u);       // 0.5
  CHECK(e.gamma == 0x8000u);
  CHECK(e.gamma_term == 0x00000000u);     // 0 + (-0) = +0
  CHECK(e.first_product == 0x3F800000u);  // 2 * 0.5
  CHECK(e.second_product == 0x00000000u);
  CHECK(e.slot == 7);
  CHECK(e.owner == PackOwner{0, 0, 0});
  CHECK(e.row.cluster_partials.empty());
}

TEST_CASE("twoshot, worked by hand: fp32, W = 2, D = 4", "[cpu]") {
  // AR = [2, -3, 3.5, 2], pre = [4, -4, 4, 4]. The thread's fmas: 16, 32, 48, 64; mean 64 / 4 = 16;
  // rsqrt(16) = 0.25. Output ((0 + gamma) * pre) * 0.25: 0.5 -> (0.5 * 4) * 0.25 = 0.5; 3 -> -3; -0 -> +0
  // (0 + -0 = +0, times 4); the negative subnormal -2^-127 is flushed by the add.ftz to -0, 0 + -0 = +0.
  const HostTensor input = one_token_input(DType::kFp32, {{1, -2, 3, 0.5}, {1, -1, 0.5, 1.5}});
  const HostTensor residual = values_of(DType::kFp32, {1, 4}, {2, -1, 0.5, 2});
  const HostTensor gamma = tensor_of(DType::kFp32, {4}, {0x3F000000u, 0x40400000u, 0x80000000u, 0x80400000u});
  const FusedResult r = reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kTwoShot));
  CHECK(r.launch.strategy == Strategy::kTwoShot);
  CHECK_FALSE(r.launch.cluster_launch);
  CHECK(all_bits(r.residual_out) == Bits{0x40800000u, 0xC0800000u, 0x40800000u, 0x40800000u});
  CHECK(all_bits(r.normalized) == Bits{0x3F000000u, 0xC0400000u, 0x00000000u, 0x00000000u});

  const FusedElementExplanation e =
      explain_fused_element(input, residual, gamma, options_for(Strategy::kTwoShot), 0, 1);
  CHECK(e.row.blocks.at(0).thread_sums == Bits{0x42800000u});  // 64
  CHECK(e.row.rsqrt_output == 0x3E800000u);
  CHECK(e.gamma_term == 0x40400000u);
  CHECK(e.first_product == 0xC1400000u);  // 3 * -4 = -12
  CHECK(e.second_product == 0xC0400000u);

  // Nothing here depends on the multiplication order, so ONESHOT agrees.
  const FusedResult one = reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kOneShot));
  CHECK(one.normalized == r.normalized);
}

TEST_CASE("the output multiplications come in each strategy's own order", "[cpu]") {
  SECTION("an underflow: TWOSHOT multiplies gamma by pre first") {
    // pre = 0.5 everywhere: sum 8 * 0.25 = 2, mean 0.25, scale 2. gamma[0] = 2^-126, the least normal.
    // ONESHOT (0.5 * 2) * 2^-126 = 2^-126; TWOSHOT (2^-126 * 0.5) = 2^-127 is flushed to +0 before * 2.
    const HostTensor input =
        one_token_input(DType::kBf16, {std::vector<double>(8, 0.25), std::vector<double>(8, 0.25)});
    const HostTensor residual = values_of(DType::kBf16, {1, 8}, std::vector<double>(8, 0.0));
    HostTensor gamma = values_of(DType::kBf16, {8}, std::vector<double>(8, 1.0));
    gamma.set_bits(0, 0x0080);
    const FusedResult one = reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kOneShot));
    const FusedResult two = reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kTwoShot));
    CHECK(one.normalized.bits(0) == 0x0080u);
    CHECK(two.normalized.bits(0) == 0x0000u);
    CHECK(one.normalized.bits(1) == 0x3F80u);
    CHECK(two.normalized.bits(1) == 0x3F80u);
  }
  SECTION("rounding: against the host's IEEE multiplies, with a fixed scale") {
    // A fixed scale of sqrt(2) rounded (0x3FB504F3) stands in for rsqrt's output: a placeholder, not a
    // model. fp32, so no narrowing; values in [1, 2), far from FTZ, where the host's multiply is the same.
    const std::uint32_t scale = 0x3FB504F3u;
    NormArithmetic arithmetic;
    arithmetic.approx = {[](std::uint32_t) -> std::uint32_t { return 0x3FB504F3u; },
                         [](std::uint32_t) -> std::uint32_t { return 0x3F800000u; }};
    const std::int64_t width = 64;
    Bits pre(width), gamma(width), zeros(width, 0u);
    std::uint32_t seed = 12345;
    for (std::int64_t d = 0; d < width; ++d) {
      seed = seed * 1664525u + 1013904223u;
      pre[d] = 0x3F800000u | (seed >> 9);
      seed = seed * 1664525u + 1013904223u;
      gamma[d] = 0x3F800000u | (seed >> 9);
    }
    int differing = 0;
    Bits out_one(width), out_two(width), residual_out(width);
    fused_rms_norm_row(norm_launch(Strategy::kOneShot, 1, width, DType::kFp32), arithmetic, pre, zeros, gamma, out_one,
                       residual_out);
    fused_rms_norm_row(norm_launch(Strategy::kTwoShot, 1, width, DType::kFp32), arithmetic, pre, zeros, gamma, out_two,
                       residual_out);
    for (std::int64_t d = 0; d < width; ++d) {
      const float x = std::bit_cast<float>(pre[d]), g = std::bit_cast<float>(gamma[d]);
      const float s = std::bit_cast<float>(scale);
      const float x_s = x * s, g_x = g * x;
      const float oneshot = x_s * g, twoshot = g_x * s;
      CHECK(out_one[d] == std::bit_cast<std::uint32_t>(oneshot));
      CHECK(out_two[d] == std::bit_cast<std::uint32_t>(twoshot));
      differing += out_one[d] != out_two[d];
    }
    CHECK(differing > 0);
  }
}

TEST_CASE("fp16: oneshot's square overflows to Inf and zeroes the row, twoshot's does not", "[cpu]") {
  // pre = +-256: ONESHOT squares in fp16, 256^2 = 65536 > 65504 -> +Inf; the sum is Inf, Inf / 8 = Inf,
  // rsqrt(Inf) = +0, and (pre * +0) * gamma is a zero with the sign of pre * gamma. TWOSHOT squares in fp32:
  // sum 8 * 65536 = 2^19, mean 2^16, scale 2^-8, output pre / 256 * gamma.
  const std::vector<double> signs{1, -1, 1, -1, 1, 1, 1, 1};
  std::vector<double> half_a, half_b, residual_values;
  for (double s : signs) {
    half_a.push_back(128 * s);
    half_b.push_back(64 * s);
    residual_values.push_back(64 * s);
  }
  const HostTensor input = one_token_input(DType::kFp16, {half_a, half_b});
  const HostTensor residual = values_of(DType::kFp16, {1, 8}, residual_values);
  const HostTensor gamma = values_of(DType::kFp16, {8}, {1, 1, -1, -1, 0.5, 1, 1, 1});
  const FusedResult one = reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kOneShot));
  const FusedResult two = reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kTwoShot));
  CHECK(one.residual_out == two.residual_out);
  CHECK(all_bits(one.normalized) == Bits{0x0000, 0x8000, 0x8000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000});
  CHECK(all_bits(two.normalized) == Bits{0x3C00, 0xBC00, 0xBC00, 0x3C00, 0x3800, 0x3C00, 0x3C00, 0x3C00});
  const FusedElementExplanation e =
      explain_fused_element(input, residual, gamma, options_for(Strategy::kOneShot), 0, 0);
  CHECK(e.row.sum == 0x7F800000u);
  CHECK(e.row.rsqrt_output == 0x00000000u);
}

TEST_CASE("a -0 residual meets oneshot's -0 sum but twoshot's +0", "[cpu]") {
  // Element 0: bf16 0x8081 + 0x0080 = -2^-133 in fp32, flushed to -0: ONESHOT's all-reduce gives -0, TWOSHOT
  // sanitises it to +0 (SPEC section 3). With residual -0: ONESHOT pre = -0 + -0 = -0, TWOSHOT +0 + -0 = +0.
  // The rest: pre = [_, 4, 2, 2, 2, 2, 0, 0], sum 32, scale 0.5, gamma 1.
  HostTensor input = one_token_input(DType::kBf16, {{0, 4, 2, 2, 2, 2, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0}});
  input.set_bits(0, 0x8081);
  input.set_bits(8, 0x0080);
  HostTensor residual = values_of(DType::kBf16, {1, 8}, std::vector<double>(8, 0.0));
  residual.set_bits(0, 0x8000);
  const HostTensor gamma = values_of(DType::kBf16, {8}, std::vector<double>(8, 1.0));
  const FusedResult one = reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kOneShot));
  const FusedResult two = reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kTwoShot));
  CHECK(one.residual_out.bits(0) == 0x8000u);
  CHECK(two.residual_out.bits(0) == 0x0000u);
  CHECK(all_bits(one.normalized) == Bits{0x8000, 0x4000, 0x3F80, 0x3F80, 0x3F80, 0x3F80, 0x0000, 0x0000});
  CHECK(all_bits(two.normalized) == Bits{0x0000, 0x4000, 0x3F80, 0x3F80, 0x3F80, 0x3F80, 0x0000, 0x0000});
}

TEST_CASE("weight_bias + gamma is a real add: subnormal gamma flushed, -0 gamma made +0", "[cpu]") {
  const HostTensor input = one_token_input(DType::kBf16, {std::vector<double>(8, 1.0), std::vector<double>(8, 0.0)});
  const HostTensor residual = values_of(DType::kBf16, {1, 8}, std::vector<double>(8, 0.0));
  // pre = 1 everywhere: sum 8, mean 1, scale 1.
  const HostTensor gamma = tensor_of(DType::kBf16, {8}, {0x0001, 0x8001, 0x8000, 0x007F, 0x3F80, 0, 0, 0});
  FusedOptions o = options_for(Strategy::kTwoShot);
  const auto term = [&](std::int64_t d) { return explain_fused_element(input, residual, gamma, o, 0, d).gamma_term; };
  CHECK(term(0) == 0x00000000u);  // 2^-133 flushed
  CHECK(term(1) == 0x00000000u);  // -2^-133 flushed to -0, then +0 + -0 = +0
  CHECK(term(2) == 0x00000000u);  // -0 -> +0
  CHECK(term(3) == 0x00000000u);  // the largest bf16 subnormal, still flushed
  const FusedResult r = reference_fused_rms_norm(input, residual, gamma, o);
  CHECK(all_bits(r.normalized) == Bits{0x0000, 0x0000, 0x0000, 0x0000, 0x3F80, 0, 0, 0});

  o.weight_bias = 0x3F800000u;  // Gemma's 1 + gamma: 1 + (flushed) = 1
  CHECK(term(0) == 0x3F800000u);
  CHECK(term(4) == 0x40000000u);

  o.weight_bias = 0;
  o.profile = Profile::kIeee;  // no FTZ: the subnormal survives the add, and the -0 still becomes +0
  CHECK(term(0) == 0x00010000u);
  CHECK(term(1) == 0x80010000u);
  CHECK(term(2) == 0x00000000u);
}

TEST_CASE("the summation tree follows the launch shape", "[cpu]") {
  // Sums only: the placeholder scale leaves the tree's result visible in the trace.
  NormArithmetic arithmetic;
  arithmetic.approx = kPlaceholderScale;
  const std::int64_t width = 7168;
  const NormLaunch wide = norm_launch(Strategy::kOneShot, 1, width, DType::kBf16);     // (112, 8, 1)
  const NormLaunch narrow = norm_launch(Strategy::kOneShot, 67, width, DType::kBf16);  // (896, 1, 1)
  REQUIRE(wide.grid == GridConfig{112, 8, 1});
  REQUIRE(narrow.grid == GridConfig{896, 1, 1});

  Bits pre(width), zeros(width, 0u), ones(width, 0x3F80u), out(width), residual_out(width);
  std::uint32_t seed = 777;
  int rows_that_differ = 0;
  for (int row = 0; row < 20; ++row) {
    for (auto& v : pre) {
      seed = seed * 1664525u + 1013904223u;
      v = 0x3C00u + (seed >> 23);  // bf16 in [2^-7, 2^-3): squares of many magnitudes
    }
    RowTrace a, b;
    fused_rms_norm_row(wide, arithmetic, pre, zeros, ones, out, residual_out, &a);
    fused_rms_norm_row(narrow, arithmetic, pre, zeros, ones, out, residual_out, &b);
    REQUIRE(a.blocks.size() == 8);
    REQUIRE(a.blocks[0].warps.size() == 4);
    CHECK(a.blocks[0].warps[3].lanes == 16);  // 112 = 3 * 32 + 16
    CHECK(a.blocks[0].second_level.lanes == 32);
    REQUIRE(a.cluster_partials.size() == 8);
    CHECK(a.sum == a.cluster_partials.back());
    REQUIRE(b.blocks.size() == 1);
    CHECK(b.blocks[0].warps.size() == 28);
    CHECK(b.cluster_partials.empty());
    CHECK(b.sum == b.blocks[0].sum());
    // Each is its own tree's sum (written out again above), and the two trees' bits may differ.
    CHECK(a.sum == oneshot_tree_sum(wide, pre));
    CHECK(b.sum == oneshot_tree_sum(narrow, pre));
    rows_that_differ += a.sum != b.sum;
  }
  CHECK(rows_that_differ > 0);
}

TEST_CASE("the warp butterfly pairs lanes 16 apart first", "[cpu]") {
  // bf16 D = 256: 32 packs, launch (32, 1, 1), one full warp, thread i holding pack i. Squares: 2^24 in
  // lane 0 and 1 in two more lanes. Lanes 8 and 24 meet at the first step (mask 16), so lane 8 carries 2 and
  // lane 0 gets 2^24 + 2, exact. Lanes 16 and 24 instead reach lane 0 one at a time: 2^24 + 1 ties to even,
  // twice, leaving 2^24. A sequential sum would give 2^24 both times.
  NormArithmetic arithmetic;
  arithmetic.approx = kPlaceholderScale;
  const NormLaunch l = norm_launch(Strategy::kOneShot, 1, 256, DType::kBf16);
  REQUIRE(l.grid == GridConfig{32, 1, 1});
  Bits zeros(256, 0u), ones(256, 0x3F80u), out(256), residual_out(256);
  const auto sum_with_ones_at = [&](int lane_a, int lane_b) {
    Bits pre(256, 0u);
    pre[0] = 0x4580;  // 2^12
    pre[8 * lane_a] = 0x3F80;
    pre[8 * lane_b] = 0x3F80;
    RowTrace trace;
    fused_rms_norm_row(l, arithmetic, pre, zeros, ones, out, residual_out, &trace);
    return trace.sum;
  };
  CHECK(sum_with_ones_at(8, 24) == 0x4B800001u);
  CHECK(sum_with_ones_at(16, 24) == 0x4B800000u);
}

TEST_CASE("oneshot threads beyond the row make the GPU's norm undefined: twoshot's add +0", "[cpu]") {
  const std::int64_t width = 8200;  // 1025 packs on (513, 2, 1): one thread too many
  HostTensor input(DType::kBf16, {2, 1, width});
  const HostTensor residual(DType::kBf16, {1, width});
  const HostTensor gamma(DType::kBf16, {width});
  const FusedResult one =
      reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kOneShot, kPlaceholderScale));
  const FusedResult two =
      reference_fused_rms_norm(input, residual, gamma, options_for(Strategy::kTwoShot, kPlaceholderScale));
  CHECK(one.normalized_undefined_on_gpu);
  CHECK_FALSE(two.normalized_undefined_on_gpu);
  CHECK(one.residual_out == two.residual_out);
}

TEST_CASE("AUTO, the SM count and residual_out", "[cpu]") {
  // 16 tokens of bf16 D = 7168 on 2 ranks: 16*7168*2*2 bytes <= 1 MiB, so AUTO is ONESHOT.
  const std::int64_t n = 16, width = 7168;
  HostTensor input(DType::kBf16, {2, n, width}), residual(DType::kBf16, {n, width});
  HostTensor gamma(DType::kBf16, {width});
  std::uint32_t seed = 99;
  for (std::int64_t i = 0; i < input.size(); ++i)
    input.set_bits(i, 0x3C00u + ((seed = seed * 1664525u + 1013904223u) >> 24));
  for (std::int64_t i = 0; i < residual.size(); ++i)
    residual.set_bits(i, 0xBC00u + ((seed = seed * 1664525u + 1013904223u) >> 24));
  for (std::int64_t i = 0; i < gamma.size(); ++i) gamma.set_bits(i, 0x3F80);
  FusedOptions o = options_for(Strategy::kAuto, kPlaceholderScale);
  const FusedResult h200 = reference_fused_rms_norm(input, residual, gamma, o);
  o.sm_count = 114;
  const FusedResult pcie = reference_fused_rms_norm(input, residual, gamma, o);
  CHECK(h200.launch.strategy == Strategy::kOneShot);
  CHECK(h200.launch.grid == GridConfig{112, 8, 1});
  CHECK(pcie.launch.grid == GridConfig{224, 4, 1});
  CHECK(h200.residual_out == pcie.residual_out);  // no cross-thread arithmetic in residual_out
}

TEST_CASE("explain names the thread that holds an element", "[cpu]") {
  HostTensor input(DType::kBf16, {2, 1, 7168}), residual(DType::kBf16, {1, 7168}), gamma(DType::kBf16, {7168});
  const FusedElementExplanation e =
      explain_fused_element(input, residual, gamma, options_for(Strategy::kOneShot, kPlaceholderScale), 0, 7001);
  // Pack 875 = 7 * 112 + 91: block 7, thread 91 = warp 2, lane 27; element 1 of the pack.
  CHECK(e.owner == PackOwner{7, 91, 0});
  CHECK(e.warp == 2);
  CHECK(e.lane == 27);
  CHECK(e.slot == 1);
  CHECK(e.row.blocks.size() == 8);
  CHECK_THROWS_AS(explain_fused_element(input, residual, gamma, options_for(Strategy::kOneShot), 1, 0),
                  std::out_of_range);
}

TEST_CASE("the fused entry point refuses what it cannot model", "[cpu]") {
  HostTensor input(DType::kBf16, {2, 1, 8}), residual(DType::kBf16, {1, 8}), gamma(DType::kBf16, {8});
  FusedOptions o = options_for(Strategy::kOneShot);
  o.profile = Profile::kTrtllm;
  CHECK_THROWS_WITH(reference_fused_rms_norm(input, residual, gamma, o), Catch::Contains("profiles only"));
  o = options_for(Strategy::kOneShot, ApproxMath{});
  CHECK_THROWS_WITH(reference_fused_rms_norm(input, residual, gamma, o), Catch::Contains("rsqrt.approx"));
  o = options_for(Strategy::kOneShot);
  CHECK_THROWS_WITH(reference_fused_rms_norm(input, residual, HostTensor(DType::kBf16, {16}), o),
                    Catch::Contains("gamma must be [D]"));
  CHECK_THROWS_WITH(reference_fused_rms_norm(input, HostTensor(DType::kFp16, {1, 8}), gamma, o),
                    Catch::Contains("dtype"));
}

namespace {
// The stand-ins again, written on floats the way reference/mufu.h's models are, to check the adapter.
float float_rsqrt_stand_in(float x) {
  return std::bit_cast<float>(rsqrt_of_power_of_four(std::bit_cast<std::uint32_t>(x)));
}
float float_reciprocal_stand_in(float b) {
  return std::bit_cast<float>(reciprocal_of_power_of_two(std::bit_cast<std::uint32_t>(b)));
}
}  // namespace

TEST_CASE("models written on floats plug in unchanged", "[cpu]") {
  constexpr ApproxMath adapted = approx_math_of<float_rsqrt_stand_in, float_reciprocal_stand_in>();
  CHECK(adapted.rsqrt(0x40800000u) == 0x3F000000u);
  CHECK(adapted.reciprocal(0x41000000u) == 0x3E000000u);
  CHECK(default_epsilon(DType::kBf16) == fp32_from_double(0.0078125));
  CHECK(default_epsilon(DType::kFp16) == fp32_from_double(0.0009765625));
  CHECK(default_epsilon(DType::kFp32) == fp32_from_double(1.1920928955078125e-07));
}

TEST_CASE("whatever the tree, exact sums come out exact", "[cpu]") {
  // Squares of small integers sum exactly in fp32 (below 2^24) in any order: the tree must count every
  // element once, whatever the shape. Sums only: the placeholder scale.
  NormArithmetic arithmetic;
  arithmetic.approx = kPlaceholderScale;
  std::uint32_t seed = 4242;
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
    for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
      for (std::int64_t width : {8, 128, 4096, 7168, 8200, 16400, 32768}) {
        for (std::int64_t tokens : {1, 40, 1000}) {
          const NormLaunch l = norm_launch(s, tokens, width, t, 132);
          Bits pre(width), zeros(width, 0u), ones(width, bits_of(1.0, t)), out(width), residual_out(width);
          std::uint64_t exact = 0;
          for (auto& v : pre) {
            seed = seed * 1664525u + 1013904223u;
            const int value = int(seed >> 29) - 3;  // -3..4
            exact += std::uint64_t(value * value);
            v = bits_of(value, t);
          }
          RowTrace trace;
          fused_rms_norm_row(l, arithmetic, pre, zeros, ones, out, residual_out, &trace);
          INFO(strategy_name(s) << " " << dtype_name(t) << " D=" << width << " N=" << tokens);
          REQUIRE(trace.sum == fp32_from_integer(exact));
          REQUIRE(residual_out == pre);
        }
      }
    }
  }
}

TEST_CASE("without a model given, each profile takes the GPU's: the ieee rsqrt does not flush", "[cpu]") {
  // fp32, W = 2, D = 8: pre = 2^-74 everywhere, squares 2^-148 (subnormal, exact without FTZ), sum 2^-145,
  // / 8 = 2^-148 and eps = 0: the rsqrt input is subnormal. Under ieee the measured non-FTZ rsqrt answers it
  // (finite, about 2^74); the flashinfer profile flushes the squares and takes rsqrt(+0) = +Inf.
  const double tiny = std::ldexp(1.0, -75);
  const HostTensor input = one_token_input(DType::kFp32, {std::vector<double>(8, tiny), std::vector<double>(8, tiny)});
  const HostTensor residual = values_of(DType::kFp32, {1, 8}, std::vector<double>(8, 0.0));
  const HostTensor gamma = values_of(DType::kFp32, {8}, std::vector<double>(8, 1.0));
  FusedOptions o;
  o.strategy = Strategy::kTwoShot;
  o.profile = Profile::kIeee;
  const FusedElementExplanation ieee = explain_fused_element(input, residual, gamma, o, 0, 3);
  CHECK(ieee.row.rsqrt_input == 0x00000002u);  // 2^-148
  CHECK(ieee.row.rsqrt_output == rsqrt_approx_bits(0x00000002u));
  CHECK(ieee.row.rsqrt_output == 0x64800000u);  // 2^74: rsqrt(2^-84) = 2^42 exactly, times 2^32
  CHECK(ieee.row.rsqrt_output != 0x7F800000u);
  o.profile = Profile::kFlashInfer;
  const FusedElementExplanation fast = explain_fused_element(input, residual, gamma, o, 0, 3);
  CHECK(fast.row.rsqrt_input == 0u);
  CHECK(fast.row.rsqrt_output == 0x7F800000u);
}

TEST_CASE("the invariant scale is one fma with 1/D rounded once, then the correctly rounded rsqrt", "[cpu]") {
  // Not ieee's div.rn + add.rn: the two roundings part from the fma's one on some sums, and then (often) the
  // scale does too. Sums of D = 2880 squares from a fixed generator; the invariant profile must follow the fma
  // on every one, and the generator must reach sums where the routes part (else the test could not fail).
  FusedOptions o;
  o.profile = Profile::kInvariant;
  o.epsilon = fp32_from_double(1e-6);
  const NormArithmetic invariant = norm_arithmetic(o);
  o.profile = Profile::kIeee;
  NormArithmetic divided = norm_arithmetic(o);
  divided.approx = invariant.approx;  // the same correctly rounded rsqrt: only the rsqrt's input differs
  CHECK(invariant.reciprocal_fma);
  CHECK_FALSE(divided.reciprocal_fma);
  const std::int64_t width = 2880;
  const std::uint32_t d = fp32_from_integer(width);
  const std::uint32_t reciprocal = div_fp32(0x3F800000u, d);
  int parted = 0;
  std::uint32_t seed = 777;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 1664525u + 1013904223u;
    const std::uint32_t sum = 0x44000000u + (seed >> 9);  // [512, 2048)
    RowTrace row;
    const std::uint32_t scale = row_scale(invariant, width, sum, &row);
    CHECK(row.hidden_reciprocal == reciprocal);
    REQUIRE(row.rsqrt_input == fma_fp32(sum, reciprocal, o.epsilon, /*ftz=*/false));
    REQUIRE(scale == rsqrt_rn_fp32(row.rsqrt_input));
    parted += row_scale(divided, width, sum) != scale;
  }
  CHECK(parted > 0);
}
