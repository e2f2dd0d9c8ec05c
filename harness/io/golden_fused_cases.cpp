// The fused golden cases (golden_cases.h): seeded all-reduce inputs, residuals and gammas, with the
// scenarios of SPEC section 7 written over chosen elements. The input is f(seed, index) as for the plain
// cases; the residual and gamma come from the same generator under the seed xor a constant of their own.
#include <cstring>

#include <fmt/format.h>

#include "harness/io/golden_cases.h"
#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "reference/fused_rms_norm.h"

namespace ar {
namespace {

constexpr std::uint64_t kResidualSalt = 0x72657369;  // "resi"
constexpr std::uint64_t kGammaSalt = 0x67616D6D;     // "gamm"
constexpr std::uint32_t kOne = 0x3F800000;           // fp32 1.0, the Gemma weight bias

/// `t` with its bytes kept and its shape replaced (same element count).
HostTensor reshaped(const HostTensor& t, std::vector<std::int64_t> shape) {
  HostTensor out(t.dtype(), std::move(shape));
  std::memcpy(out.bytes().data(), t.bytes().data(), t.bytes().size());
  return out;
}

/// Full-mantissa values of both signs, exponents within +-3: sums of W of them are inexact, and no square
/// leaves fp16's range.
GoldenCase random_fused(std::string name, std::string kind, std::string description, std::uint64_t seed, DType t,
                        int world, std::int64_t tokens, std::int64_t hidden) {
  GoldenFusedInputs f;
  f.residual = reshaped(random_input(t, 1, tokens, hidden, seed ^ kResidualSalt, 3), {tokens, hidden});
  // gamma near 1 and positive, as trained weights are: exponents -1..1.
  f.gamma = reshaped(random_input(t, 1, 1, hidden, seed ^ kGammaSalt, 1), {hidden});
  for (std::int64_t d = 0; d < hidden; ++d) f.gamma.set_bits(d, f.gamma.bits(d) & ~float_format(t).sign_mask());
  f.epsilon = default_epsilon(t);
  return {
      std::move(name), std::move(kind), std::move(description), seed, random_input(t, world, tokens, hidden, seed, 3),
      std::move(f)};
}

/// The all-reduce's adversarial input (golden_cases.h: large values that cancel, the SPEC section 10
/// scenarios on token 0) under a random residual and gamma: at W >= 16 ONESHOT's chunks of 8 and TWOSHOT's of
/// 16 give different sums even after narrowing to bf16, so `pre` differs between the strategies.
GoldenCase adversarial_fused(std::string name, std::string description, std::uint64_t seed, DType t, int world,
                             std::int64_t tokens, std::int64_t hidden) {
  GoldenCase c = random_fused(std::move(name), "edge", std::move(description), seed, t, world, tokens, hidden);
  c.input = adversarial_input(t, world, tokens, hidden, seed);
  return c;
}

GoldenCase with(GoldenCase c, std::uint32_t epsilon, std::uint32_t weight_bias, int sm_count = kDefaultSmCount) {
  c.fused->epsilon = epsilon;
  c.fused->weight_bias = weight_bias;
  c.fused->sm_count = sm_count;
  return c;
}

/// Bits of T for a double that T holds exactly.
std::uint32_t bits_of(double v, DType t) { return narrow_from_fp32(fp32_from_double(v), t); }

// The edge case of `t` at W = 2, N = 5, D = 64 (one scenario per token, or per column of token 0):
//   token 0: columns 0-2 hold an all-reduce result of -0 under ONESHOT (+0 under TWOSHOT; fp16 sums are
//            exact and give +0 for both) met by residuals -0, +0 and 1; gamma is the largest subnormal at column 3,
//            -0 at 4, a negative subnormal at 5 and the smallest normal at 6;
//   token 1: a NaN at column 7 of rank 0: the row's sum, and so every output of the row, is NaN;
//   token 2: +Inf at column 9 of rank 1: the sum is Inf, the scale +0, the row zeros (NaN at column 9);
//   token 3: small values whose squares lie below T's normal range (fp16 ONESHOT squares to subnormals
//            and zeros in fp16; bf16 and fp32 squares below 2^-126 flush under FTZ);
//   token 4: all zeros: the scale is rsqrt(eps).
GoldenCase edge_fused(std::string name, std::uint64_t seed, DType t) {
  constexpr int kWorld = 2;
  constexpr std::int64_t kTokens = 5, kHidden = 64;
  GoldenCase c = random_fused(std::move(name), "edge",
                              "SPEC section 7 scenarios: -0 residual against ONESHOT's -0 sum, subnormal and -0 gamma "
                              "(flushed by wb + gamma under FTZ), a NaN row, an Inf row, squares below the normal "
                              "range, a zero row",
                              seed, t, kWorld, kTokens, kHidden);
  const FloatFormat f = float_format(t);
  HostTensor& in = c.input;
  GoldenFusedInputs& fused = *c.fused;
  const auto set_input = [&](int rank, std::int64_t token, std::int64_t col, std::uint32_t v) {
    in.set_bits((rank * kTokens + token) * kHidden + col, v);
  };
  // Token 0: rank 0 + rank 1 = a negative subnormal sum, flushed to -0 (bf16, fp32).
  const std::uint32_t negative = t == DType::kFp32 ? 0x80800001u : t == DType::kBf16 ? 0x8081u : 0x8001u;
  const std::uint32_t positive = t == DType::kFp32 ? 0x00800000u : t == DType::kBf16 ? 0x0080u : 0x0001u;
  for (std::int64_t col = 0; col < 3; ++col) {
    set_input(0, 0, col, negative);
    set_input(1, 0, col, positive);
  }
  fused.residual.set_bits(0, f.sign_mask());  // -0
  fused.residual.set_bits(1, 0u);             // +0
  fused.residual.set_bits(2, bits_of(1.0, t));
  fused.gamma.set_bits(3, f.fraction_mask());                         // the largest positive subnormal
  fused.gamma.set_bits(4, f.sign_mask());                             // -0
  fused.gamma.set_bits(5, f.sign_mask() | (f.fraction_mask() >> 1));  // a negative subnormal
  fused.gamma.set_bits(6, 1u << f.fraction_bits);                     // the smallest normal
  // Token 1: a NaN with a payload; token 2: +Inf.
  set_input(0, 1, 7, f.canonical_nan() ^ 0x1u);
  set_input(1, 2, 9, f.infinity());
  // Token 3: fp16 around 2^-8 (squares near and below 2^-14); bf16 and fp32 around 2^-66 (squares below 2^-126).
  const int small_exponent = t == DType::kFp16 ? -8 : -66;
  for (int rank = 0; rank < kWorld; ++rank)
    for (std::int64_t col = 0; col < kHidden; ++col) {
      const std::uint64_t r = seeded_bits(seed, static_cast<std::uint64_t>((rank * kTokens + 3) * kHidden + col));
      const int exponent = small_exponent + static_cast<int>(r % 3) - 1;
      set_input(rank, 3, col,
                ((r >> 8) & 1 ? f.sign_mask() : 0u) |
                    (static_cast<std::uint32_t>(exponent + f.bias()) << f.fraction_bits) |
                    (static_cast<std::uint32_t>(r >> 16) & f.fraction_mask()));
    }
  for (std::int64_t col = 0; col < kHidden; ++col) fused.residual.set_bits(3 * kHidden + col, 0u);
  // Token 4: zeros everywhere.
  for (int rank = 0; rank < kWorld; ++rank)
    for (std::int64_t col = 0; col < kHidden; ++col) set_input(rank, 4, col, 0u);
  for (std::int64_t col = 0; col < kHidden; ++col) fused.residual.set_bits(4 * kHidden + col, 0u);
  return c;
}

// fp16, W = 2, N = 2, D = 2880: token 0 holds pre = +-300 at three columns (ONESHOT squares them in fp16: Inf,
// so its scale is +0 and the row's outputs signed zeros; TWOSHOT squares in fp32 and is unaffected); token 1
// holds pre = +-255 (255^2 = 65025 is still finite in fp16).
GoldenCase fp16_square_overflow(std::uint64_t seed) {
  constexpr std::int64_t kTokens = 2, kHidden = 2880;
  GoldenCase c = random_fused("fused_fp16_square_overflow_w2", "edge",
                              "fp16 |pre| >= 256 in token 0: ONESHOT's fp16 square overflows, so its row becomes "
                              "signed zeros; TWOSHOT squares in fp32 and is unaffected; token 1 stays below (255)",
                              seed, DType::kFp16, 2, kTokens, kHidden);
  const auto place = [&](std::int64_t token, std::int64_t col, double rank0, double rank1) {
    c.input.set_bits(token * kHidden + col, bits_of(rank0, DType::kFp16));
    c.input.set_bits((kTokens + token) * kHidden + col, bits_of(rank1, DType::kFp16));
    c.fused->residual.set_bits(token * kHidden + col, 0u);
  };
  place(0, 5, 256, 44);
  place(0, 1000, -256, -44);
  place(0, 2879, 200, 100);
  place(1, 17, 250, 5);
  place(1, 2000, -250, -5);
  return c;
}

}  // namespace

std::vector<GoldenCase> golden_fused_cases() {
  std::vector<GoldenCase> cases;
  std::uint64_t seed = 2000;  // apart from the all-reduce cases' seeds
  // Edge scenarios, per dtype; bf16 again with the Gemma weight bias, where 1 + a subnormal gamma rounds to 1.
  cases.push_back(edge_fused("fused_edge_bf16_w2", ++seed, DType::kBf16));
  GoldenCase gemma = edge_fused("fused_edge_bf16_w2_wb1", seed, DType::kBf16);
  gemma.description += "; weight bias 1 (Gemma): 1 + a subnormal gamma is 1 under either profile";
  cases.push_back(with(std::move(gemma), default_epsilon(DType::kBf16), kOne));
  GoldenCase edge_fp16 = edge_fused("fused_edge_fp16_w2", ++seed, DType::kFp16);
  edge_fp16.description += "; eps 1e-5 (the C++ op's default), comparable to token 3's mean";
  cases.push_back(with(std::move(edge_fp16), fp32_from_double(1e-5), 0));
  GoldenCase edge_fp32 = edge_fused("fused_edge_fp32_w2", ++seed, DType::kFp32);
  edge_fp32.description += "; eps 0: a zero sum gives an infinite scale (flushed squares) or a finite one (ieee)";
  cases.push_back(with(std::move(edge_fp32), 0, 0));
  cases.push_back(fp16_square_overflow(++seed));
  // One input under three SM counts of real GPUs (H100/H200, a MIG 2g and a 1g slice): at N = 5 and 512 packs
  // a row the launch is 8 x 64, 4 x 128 and 2 x 256 threads, so the sum-of-squares trees differ. fp32, where a
  // scale one ulp apart shows in the output (bf16 rounds most such differences away); with this seed every
  // pair of SM counts gives different outputs (the golden test checks it).
  ++seed;
  for (int sms : {132, 32, 16}) {
    GoldenCase c = random_fused(fmt::format("fused_fp32_w2_n5_d2048_sm{}", sms), "random",
                                fmt::format("the same input on {} SMs: the launch, and so the sum-of-squares tree, "
                                            "follows the SM count (132: 8 x 64, 32: 4 x 128, 16: 2 x 256 threads)",
                                            sms),
                                seed, DType::kFp32, 2, 5, 2048);
    cases.push_back(with(std::move(c), default_epsilon(DType::kFp32), 0, sms));
  }
  cases.push_back(random_fused("fused_random_bf16_w2_d7168", "random",
                               "D = 7168 (a FlashInfer test size): ONESHOT clusters of 8 blocks of 112 threads, "
                               "partial warps; weight bias 1, eps 1e-6",
                               ++seed, DType::kBf16, 2, 1, 7168));
  cases.back() = with(std::move(cases.back()), fp32_from_double(1e-6), kOne);
  cases.push_back(random_fused("fused_random_fp32_w2_d2880", "random",
                               "fp32, D = 2880 (a FlashInfer test size): ONESHOT sums with fp32 fmas too", ++seed,
                               DType::kFp32, 2, 1, 2880));
  cases.push_back(random_fused("fused_random_fp16_w8", "random", "fp16 at W = 8; weight bias 1, eps 1e-5", ++seed,
                               DType::kFp16, 8, 3, 512));
  cases.back() = with(std::move(cases.back()), fp32_from_double(1e-5), kOne);
  cases.push_back(adversarial_fused("fused_adversarial_bf16_w16",
                                    "the all-reduce's adversarial input at W = 16: ONESHOT folds chunks of 8, TWOSHOT "
                                    "one of 16, so pre (and residual_out) differ; token 0 holds a NaN (a NaN row)",
                                    ++seed, DType::kBf16, 16, 2, 256));
  cases.push_back(
      random_fused("fused_random_fp32_w32", "random", "fp32 at W = 32, eps 1e-6", ++seed, DType::kFp32, 32, 2, 128));
  cases.back() = with(std::move(cases.back()), fp32_from_double(1e-6), 0);
  cases.push_back(adversarial_fused("fused_adversarial_bf16_w64",
                                    "the all-reduce's adversarial input at W = 64: chunks of 8 against chunks of 16; "
                                    "token 0 holds a NaN (a NaN row)",
                                    ++seed, DType::kBf16, 64, 2, 64));
  return cases;
}

}  // namespace ar
