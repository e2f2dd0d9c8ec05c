// The fused golden cases (golden_cases.h): seeded all-reduce inputs, residuals and gammas, with the
// scenarios of SPEC section 7 written over chosen elements, and the quantised cases with those of SPEC section
// 13. The input is f(seed, index) as for the plain cases; the residual and gamma come from the same generator
// under the seed xor a constant of their own.
#include <cmath>
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

// The quantised cases' variants: static FP8 at output_scale 1 and 0.37, dynamic FP8, NVFP4 in both layouts at
// global scale 1 and 2688 (448 x 6, FlashInfer's usual g for an amax of 1: block scales saturate above it).
std::vector<GoldenQuantVariant> quant_variants(DType t, bool with_static_fp8) {
  std::vector<GoldenQuantVariant> v;
  if (with_static_fp8) {
    v.push_back({"fp8-scale1", {QuantMode::kFp8, kOne}});
    v.push_back({"fp8-scale0p37", {QuantMode::kFp8, fp32_from_double(0.37)}});
  }
  v.push_back({"fp8-dynamic", {QuantMode::kFp8Dynamic}});
  if (t == DType::kFp32) return v;  // NVFP4 takes bf16 and fp16 only
  for (std::uint32_t g : {kOne, fp32_from_double(2688.0)})
    for (ScaleLayout layout : {ScaleLayout::kSwizzled128x4, ScaleLayout::kLinear})
      v.push_back({fmt::format("nvfp4-{}-g{}", scale_layout_name(layout), g == kOne ? 1 : 2688),
                   {QuantMode::kNvfp4, g, layout}});
  return v;
}

// The quantisations' edge cases at W = 2, N = 9, D = 64 (four NVFP4 blocks), eps 1e-6. Most rows hold |pre| = 16
// in every column (8 + 4 from the ranks, 4 from the residual): the sum of squares is 16384 in any order, the
// mean 256 (eps vanishes beside it) and the scale exactly 1/16, so the normalised output is gamma itself and
// gamma chooses the values the quantisations see:
//   block 0 (columns 0-15): gamma 0, an all-zero block in every row (SF = 0, the (SF != 0) guard);
//   block 1 (16-31): 6 and the e2m1 ties 0.25 .. 5 (with amax 6 and g = 1 the block scale is 1, so the products
//            are the values themselves), 5.5 and the code values;
//   block 2 (32-47): e4m3 ties (1.0625, 1.1875, 17, 248), e4m3 subnormals and their ties (2^-10, 3 x 2^-10,
//            5 x 2^-11), 464 and 480 beyond 448; columns 44-47 tiny (2^-14 .. 2^-11) for the floor rows;
//   block 3 (48-63): large values whose block scale saturates at 448, and T's largest finite at column 63
//            (TWOSHOT's (gamma x pre) overflows fp32 there for bf16 and fp32).
// Rows: 0 |pre| = 16; 1 the same with alternating signs; 2 all zero (dynamic FP8's floor, zero blocks); 3 a
// NaN in rank 0's column 20 (a NaN row); 4 +Inf in rank 1's column 40 (scale 0: zeros and one NaN); 5 pre = 1
// and -64 at column 63, whose output overflows T to -Inf; 6 pre = 64 at columns 44-46 only (an absmax below
// 2^-9: the floor with non-zero codes); 7 pre = 64 at columns 44-47 (absmax exactly 2^-9, the floor's
// boundary); 8 random values.
GoldenCase quant_edge(std::string name, std::uint64_t seed, DType t) {
  constexpr int kWorld = 2;
  constexpr std::int64_t kTokens = 9, kHidden = 64;
  GoldenCase c = random_fused(std::move(name), "edge",
                              "SPEC section 13 edge cases: an all-zero block and row, e2m1 and e4m3 ties, block scales "
                              "saturating at 448, a NaN row, an Inf input, an output overflowing to -Inf, dynamic "
                              "FP8's 2^-9/448 floor below and at its boundary",
                              seed, t, kWorld, kTokens, kHidden);
  const FloatFormat f = float_format(t);
  HostTensor& in = c.input;
  GoldenFusedInputs& fused = *c.fused;
  fused.epsilon = fp32_from_double(1e-6);
  const HostTensor random = c.input, random_residual = fused.residual;
  const auto set = [&](int rank, std::int64_t token, std::int64_t col, std::uint32_t v) {
    in.set_bits((rank * kTokens + token) * kHidden + col, v);
  };
  // pre = rank 0 + rank 1 + residual, each a small integer (exact in every order).
  const auto pre = [&](std::int64_t token, std::int64_t col, double r0, double r1, double residual) {
    set(0, token, col, bits_of(r0, t));
    set(1, token, col, bits_of(r1, t));
    fused.residual.set_bits(token * kHidden + col, bits_of(residual, t));
  };
  for (std::int64_t token = 0; token < kTokens; ++token)
    for (std::int64_t col = 0; col < kHidden; ++col) {
      switch (token) {
        case 0:
        case 3:
        case 4: pre(token, col, 8, 4, 4); break;
        case 1: col % 2 == 0 ? pre(token, col, 8, 4, 4) : pre(token, col, -8, -4, -4); break;
        case 5: col == kHidden - 1 ? pre(token, col, -32, -32, 0) : pre(token, col, 1, 0, 0); break;
        case 6: pre(token, col, col >= 44 && col < 47 ? 32 : 0, col >= 44 && col < 47 ? 32 : 0, 0); break;
        case 7: pre(token, col, col >= 44 && col < 48 ? 32 : 0, col >= 44 && col < 48 ? 32 : 0, 0); break;
        case 8:
          for (int rank = 0; rank < kWorld; ++rank)
            set(rank, token, col, random.bits((rank * kTokens + token) * kHidden + col));
          fused.residual.set_bits(token * kHidden + col, random_residual.bits(token * kHidden + col));
          break;
        default: pre(token, col, 0, 0, 0); break;  // token 2: all zero
      }
    }
  set(0, 3, 20, f.canonical_nan() ^ 0x1u);
  set(1, 4, 40, f.infinity());
  // Gamma, block by block (see above); column 63, after the 15 of block 3, is T's largest finite.
  const double tiny = std::ldexp(1.0, -14);
  const std::vector<std::vector<double>> gamma{
      std::vector<double>(16, 0.0),
      {6, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 0.5, 1, 1.5, 2, 3, 4, 0.125, 5.5},
      {1.0625, 1.1875, 17, std::ldexp(1.0, -10), std::ldexp(3.0, -10), 464, 480, 0.9375, std::ldexp(1.0, -9),
       std::ldexp(5.0, -11), 240, 248, tiny, 3 * tiny, 2 * tiny, 8 * tiny},
      {4096, 3000, 1000, 2800, 2784, 2688, -4096, 100, 50, 7, 1, -1, 0.5, 33, 2000}};
  std::int64_t col = 0;
  for (const std::vector<double>& block : gamma)
    for (double g : block) fused.gamma.set_bits(col++, bits_of(g, t));
  fused.gamma.set_bits(kHidden - 1, f.infinity() - 1);  // T's largest finite
  c.quant = quant_variants(t, /*with_static_fp8=*/true);
  return c;
}

}  // namespace

std::vector<GoldenCase> golden_quant_cases() {
  std::vector<GoldenCase> cases;
  std::uint64_t seed = 3000;  // apart from the fused cases' seeds
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32})
    cases.push_back(quant_edge(fmt::format("quant_edge_{}_w2", dtype_name(t)), ++seed, t));
  // Random rows over more than one 128-row tile and two tile columns of the swizzled layout (N = 130, D = 128:
  // rows in all four 32-row groups, a second tile row with two rows, block scales of k / 4 = 1); dynamic FP8,
  // whose ONESHOT and TWOSHOT codes part on such rows.
  GoldenCase random = random_fused("quant_random_fp16_w2_n130_d128", "random",
                                   "random rows across two tile rows and two tile columns of the swizzled layout; "
                                   "dynamic FP8's strategies part",
                                   ++seed, DType::kFp16, 2, 130, 128);
  random.quant = quant_variants(DType::kFp16, /*with_static_fp8=*/false);
  cases.push_back(std::move(random));
  return cases;
}

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
