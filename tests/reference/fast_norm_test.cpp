// The fused norm's fast engine against its scalar model (fused_rms_norm_row on every row, after the scalar
// all-reduce), bit for bit: both outputs, every dtype, both strategies and profiles, weight bias 0 and 1,
// over launches with and without clusters, with partial warps, a block that is one partial warp, and
// ONESHOT threads beyond the row; rows of ordinary values, of special values, of values whose squares
// overflow (fp16) or underflow, with -0 and subnormal residuals and gammas. The MUFU models are the GPU's.
#include <catch2/catch.hpp>

#include <algorithm>

#include "reference/float_bits.h"
#include "reference/fused_rms_norm.h"

using namespace ar;

namespace {

struct Lcg {
  std::uint64_t s;
  std::uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(s >> 32);
  }
};

// One value of T for a row of kind `kind`: 0 ordinary (exponents within +-6 of 1), 1 ordinary with special
// values sprinkled in, 2 large (fp16 squares overflow; bf16/fp32 near the top of the range), 3 tiny
// (squares below fp32's normal range).
std::uint32_t value(DType t, int kind, Lcg& rng) {
  const FloatFormat f = float_format(t);
  const std::uint32_t r = rng.next();
  const std::uint32_t sign = (r & 1) != 0 ? f.sign_mask() : 0u;
  const std::uint32_t fraction = (r >> 8) & f.fraction_mask();
  if (kind == 1) {
    switch (r % 16) {
      case 0: return 0u;
      case 1: return f.sign_mask();                          // -0
      case 2: return sign | ((r >> 4) & f.fraction_mask());  // subnormal
      case 3: return (r >> 6) % 4 == 0 ? f.canonical_nan() : sign | f.infinity();
      default: break;
    }
  }
  int field = f.bias() + static_cast<int>((r >> 2) % 13) - 6;
  if (kind == 2) field = t == DType::kFp16 ? f.bias() + 8 + static_cast<int>((r >> 2) % 6) : 2 * f.bias() - 8;
  if (kind == 3) field = t == DType::kFp16 ? 1 + static_cast<int>((r >> 2) % 4) : 1 + static_cast<int>((r >> 2) % 40);
  return sign | (static_cast<std::uint32_t>(field) << f.fraction_bits) | fraction;
}

// [W, N, D] input, [N, D] residual (row kind token % 4), [D] gamma: ordinary values with a few subnormal,
// -0 and zero entries.
struct Inputs {
  HostTensor input, residual, gamma;
};

Inputs random_inputs(DType t, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed) {
  Lcg rng{seed};
  Inputs in{HostTensor(t, {world, tokens, hidden}), HostTensor(t, {tokens, hidden}), HostTensor(t, {hidden})};
  for (int r = 0; r < world; ++r)
    for (std::int64_t n = 0; n < tokens; ++n)
      for (std::int64_t d = 0; d < hidden; ++d)
        in.input.set_bits((r * tokens + n) * hidden + d, value(t, static_cast<int>(n % 4), rng));
  for (std::int64_t n = 0; n < tokens; ++n)
    for (std::int64_t d = 0; d < hidden; ++d) {
      // Tiny rows get -0 residuals too: they meet ONESHOT's -0 all-reduce results.
      const bool negative_zero = n % 4 == 3 && d % 3 == 0;
      in.residual.set_bits(n * hidden + d,
                           negative_zero ? float_format(t).sign_mask() : value(t, static_cast<int>(n % 4), rng));
    }
  for (std::int64_t d = 0; d < hidden; ++d) in.gamma.set_bits(d, value(t, d % 7 == 0 ? 1 : 0, rng));
  return in;
}

struct Case {
  DType dtype;
  int world;
  std::int64_t tokens, hidden;
  int sm_count;
  const char* covers;
};

}  // namespace

TEST_CASE("the fused norm's fast engine equals the scalar model bit for bit", "[cpu]") {
  const Case cases[] = {
      {DType::kBf16, 2, 4, 7168, 132, "clusters of 8 blocks of 112 threads: partial warps"},
      {DType::kBf16, 4, 4, 8200, 132, "ONESHOT: one thread beyond the row"},
      {DType::kBf16, 16, 4, 128, 132, "a block that is one partial warp of 16 threads"},
      {DType::kFp16, 8, 8, 2880, 132, "fp16: square overflow rows, tiny rows"},
      {DType::kFp16, 2, 16, 2048, 16, "few SMs: no cluster"},
      {DType::kFp32, 2, 4, 1028, 132, "fp32: 257 threads, a partial warp, no power-of-two cluster"},
      {DType::kFp32, 32, 4, 8192, 78, "fp32 at W = 32, a cluster of 8"},
  };
  for (const Case& c : cases) {
    const Inputs in = random_inputs(c.dtype, c.world, c.tokens, c.hidden, 77u + c.hidden);
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
      for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant})
        for (std::uint32_t weight_bias : {0u, 0x3F800000u}) {
          FusedOptions o;
          o.strategy = s;
          o.profile = p;
          o.sm_count = c.sm_count;
          o.epsilon = default_epsilon(c.dtype);
          o.weight_bias = weight_bias;
          o.engine = Engine::kScalar;
          const FusedResult scalar = reference_fused_rms_norm(in.input, in.residual, in.gamma, o);
          o.engine = Engine::kFast;
          const FusedResult fast = reference_fused_rms_norm(in.input, in.residual, in.gamma, o);
          INFO(dtype_name(c.dtype) << " W=" << c.world << " N=" << c.tokens << " D=" << c.hidden
                                   << " SMs=" << c.sm_count << " " << strategy_name(s) << "/" << profile_name(p)
                                   << " weight bias " << weight_bias << ": " << c.covers);
          REQUIRE(fast.launch.grid == scalar.launch.grid);
          REQUIRE(fast.residual_out == scalar.residual_out);
          REQUIRE(fast.normalized == scalar.normalized);
        }
  }
}

TEST_CASE("the fast engine's launches include what its proof needs", "[cpu]") {
  // The cases above are chosen for these shapes; this keeps them honest if adjustGridConfig changes.
  const NormLaunch clusters = norm_launch(Strategy::kOneShot, 4, 7168, DType::kBf16);
  CHECK(clusters.cluster_size() == 8);
  CHECK(clusters.has_partial_warp());
  CHECK(norm_launch(Strategy::kTwoShot, 4, 7168, DType::kBf16).cluster_launch);
  CHECK(norm_launch(Strategy::kOneShot, 4, 8200, DType::kBf16).exited_threads() == 1);
  CHECK(norm_launch(Strategy::kOneShot, 4, 128, DType::kBf16).block_size() == 16);
  CHECK_FALSE(norm_launch(Strategy::kTwoShot, 16, 2048, DType::kFp16, 16).cluster_launch);
  CHECK(norm_launch(Strategy::kTwoShot, 4, 1028, DType::kFp32).block_size() == 257);
}
