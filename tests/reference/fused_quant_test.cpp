// The quantised fused outputs (SPEC section 13): hand-worked elements and blocks for each mode, the edge
// cases the issue lists (all-zero blocks, a saturating block scale, e2m1 ties, NaN and Inf, the 2^-9/448
// floor), where ONESHOT and TWOSHOT part in dynamic FP8, and the invariant profile's independence of the batch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "reference/fused_quant.h"
#include "reference/mufu.h"
#include "reference/quant_formats.h"

using namespace ar;

namespace {

std::uint32_t f32(double v) { return fp32_from_double(v); }
std::uint32_t in_t(double v, DType t) { return narrow_from_fp32(fp32_from_double(v), t); }

const QuantArithmetic kFlashInferOneShot = quant_arithmetic(Profile::kFlashInfer, Strategy::kOneShot);
const QuantArithmetic kIeee = quant_arithmetic(Profile::kIeee, Strategy::kOneShot);

struct FusedInputs {
  HostTensor input, residual, gamma;
};

// [W, N, D] random bf16 (or fp16) values of magnitude about 1, a random residual and gamma around 1.
FusedInputs random_inputs(DType t, int world, std::int64_t tokens, std::int64_t hidden, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  FusedInputs in{HostTensor(t, {world, tokens, hidden}), HostTensor(t, {tokens, hidden}), HostTensor(t, {hidden})};
  for (std::int64_t i = 0; i < in.input.size(); ++i) in.input.set_bits(i, in_t(normal(rng), t));
  for (std::int64_t i = 0; i < in.residual.size(); ++i) in.residual.set_bits(i, in_t(normal(rng), t));
  for (std::int64_t i = 0; i < in.gamma.size(); ++i) in.gamma.set_bits(i, in_t(1.0 + 0.25 * normal(rng), t));
  return in;
}

FusedOptions options_for(Strategy s, Profile p, DType t) {
  FusedOptions o;
  o.strategy = s;
  o.profile = p;
  o.epsilon = default_epsilon(t);
  return o;
}

// One token's rows of a [W, N, D] input, as a [W, 1, D] input (and its residual as [1, D]).
FusedInputs token_of(const FusedInputs& in, std::int64_t token) {
  const std::int64_t world = in.input.dim(0), tokens = in.input.dim(1), hidden = in.input.dim(2);
  FusedInputs one{HostTensor(in.input.dtype(), {world, 1, hidden}), HostTensor(in.input.dtype(), {1, hidden}), in.gamma};
  for (std::int64_t r = 0; r < world; ++r)
    for (std::int64_t d = 0; d < hidden; ++d)
      one.input.set_bits(r * hidden + d, in.input.bits((r * tokens + token) * hidden + d));
  for (std::int64_t d = 0; d < hidden; ++d) one.residual.set_bits(d, in.residual.bits(token * hidden + d));
  return one;
}

}  // namespace

TEST_CASE("quant modes and layouts parse by name and refuse what FlashInfer refuses", "[cpu]") {
  CHECK(parse_quant_mode("fp8-dynamic") == QuantMode::kFp8Dynamic);
  CHECK(parse_quant_mode("nvfp4") == QuantMode::kNvfp4);
  CHECK_FALSE(parse_quant_mode("fp4").has_value());
  CHECK(parse_scale_layout("linear") == ScaleLayout::kLinear);
  CHECK_FALSE(parse_scale_layout("8x4").has_value());
  const QuantOptions nvfp4{QuantMode::kNvfp4};
  CHECK_THROWS_WITH(validate_quant(nvfp4, DType::kFp32, 64), Catch::Contains("bf16 or fp16"));
  CHECK_THROWS_WITH(validate_quant(nvfp4, DType::kBf16, 72), Catch::Contains("divisible by 16"));
  CHECK_NOTHROW(validate_quant(QuantOptions{QuantMode::kFp8Dynamic}, DType::kFp32, 72));
}

TEST_CASE("PTX max and min drop NaNs, order zeros and flush under FTZ", "[cpu]") {
  const std::uint32_t nan = 0x7FC00001u, one = f32(1), minus_two = f32(-2), subnormal = 0x00000010u;
  CHECK(quant_max(kIeee, nan, one) == one);
  CHECK(quant_max(kIeee, one, nan) == one);
  CHECK(quant_max(kIeee, nan, 0xFFC00000u) == 0x7FFFFFFFu);
  CHECK(quant_max(kIeee, minus_two, one) == one);
  CHECK(quant_min(kIeee, minus_two, one) == minus_two);
  CHECK(quant_max(kIeee, 0x80000000u, 0u) == 0u);
  CHECK(quant_min(kIeee, 0u, 0x80000000u) == 0x80000000u);
  CHECK(quant_max(kIeee, subnormal, 0u) == subnormal);
  CHECK(quant_max(kFlashInferOneShot, subnormal, 0u) == 0u);
  CHECK(quant_abs(kFlashInferOneShot, 0x80000010u) == 0u);
  CHECK(quant_abs(kIeee, 0x80000010u) == subnormal);
}

TEST_CASE("static FP8 multiplies by the reciprocal of the scale, then rounds to e4m3 with saturation", "[cpu]") {
  const QuantArithmetic& q = kFlashInferOneShot;
  // 1 / 2 and 1 / 0.25 are exact under any faithful reciprocal; rcp.approx of them is exact.
  CHECK(quant_reciprocal(q, f32(2)) == f32(0.5));
  CHECK(fp8_static_code(q, f32(3), quant_reciprocal(q, f32(2))) == 0x3C);      // 1.5 = 1.1b * 2^0
  CHECK(fp8_static_code(q, f32(-200), quant_reciprocal(q, f32(0.25))) == 0xFE);  // -800 saturates to -448
  CHECK(fp8_static_code(q, f32(1), quant_reciprocal(q, 0u)) == 0x7E);        // 1 * +Inf: 448
  CHECK(fp8_static_code(q, 0u, quant_reciprocal(q, 0u)) == kE4m3Nan);           // 0 * Inf: NaN
  // The reciprocal of a scale that is not a power of two is rcp.approx's, not the IEEE one, where they part.
  std::uint32_t parted = 0;
  for (std::uint32_t s = 0x3F800001u; s < 0x3F900000u && parted == 0; ++s)
    if (rcp_approx_ftz_bits(s) != div_fp32(f32(1), s)) parted = s;
  REQUIRE(parted != 0);
  CHECK(quant_reciprocal(q, parted) == rcp_approx_ftz_bits(parted));
  CHECK(quant_reciprocal(kIeee, parted) == div_fp32(f32(1), parted));
}

TEST_CASE("dynamic FP8: absmax, the 2^-9/448 floor, the clamp that sends a NaN to -448", "[cpu]") {
  const QuantArithmetic& q = kFlashInferOneShot;
  const std::vector<std::uint32_t> row{f32(1), f32(-2), f32(0.5), 0x7FC00000u, 0x80000000u};
  const std::uint32_t absmax = fp8_dynamic_absmax(q, row);
  CHECK(absmax == f32(2));
  const std::uint32_t scale = fp8_dynamic_scale(q, absmax);
  CHECK(scale == div_approx_ftz_bits(f32(2), kE4m3LargestFp32));
  CHECK(fp8_dynamic_code(q, f32(-2), scale) == 0xFE);        // the absmax element lands on -448
  CHECK(fp8_dynamic_code(q, 0x7FC00000u, scale) == 0xFE);   // a NaN: max(NaN, -448) = -448
  CHECK(fp8_dynamic_code(q, 0x80000000u, scale) == 0x80);   // -0 stays -0
  // A zero row, and under FTZ a row of subnormals, has absmax 0 and takes the floor.
  const std::vector<std::uint32_t> tiny{0u, 0x00000100u, 0x80000001u};
  CHECK(fp8_dynamic_scale(q, fp8_dynamic_absmax(q, tiny)) == kDynamicFp8MinScale);
  CHECK(fp8_dynamic_absmax(kIeee, tiny) == 0x00000100u);
  CHECK(fp8_dynamic_scale(kIeee, fp8_dynamic_absmax(kIeee, tiny)) == kDynamicFp8MinScale);
  // An infinite element: scale Inf, finite values quantise to +-0, the infinity itself (Inf * 0 = NaN) to -448.
  const std::vector<std::uint32_t> with_inf{f32(1), 0xFF800000u};
  const std::uint32_t inf_scale = fp8_dynamic_scale(q, fp8_dynamic_absmax(q, with_inf));
  CHECK(inf_scale == 0x7F800000u);
  CHECK(fp8_dynamic_code(q, f32(1), inf_scale) == 0x00);
  CHECK(fp8_dynamic_code(q, 0xFF800000u, inf_scale) == 0xFE);
  // The floor itself: 2^-9 / 448 rounded once.
  CHECK(kDynamicFp8MinScale == f32(std::ldexp(1.0, -9) / 448.0));
}

TEST_CASE("an NVFP4 block: amax in T, the e4m3 block scale, e2m1 elements, element 2i in the low nibble", "[cpu]") {
  const QuantArithmetic& q = kFlashInferOneShot;
  const DType t = DType::kBf16;
  // amax 6: 6 * RECIPROCAL_6 rounds to 1, SF = 1.0 (0x38), the element scale 1 / 1 = 1: every e2m1 value exact.
  std::array<std::uint32_t, 16> v{};
  const std::array<double, 16> values{0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.5, -1, -1.5, -2, -3, -4, -6, -0.0};
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = in_t(values[i], t);
  const Nvfp4Block b = nvfp4_block(q, t, v, kFp32One);
  CHECK(b.amax == in_t(6, t));
  CHECK(b.scale_input == kFp32One);
  CHECK(b.scale_code == 0x38);
  CHECK(b.element_scale == kFp32One);
  const std::array<std::uint8_t, 8> want{0x10, 0x32, 0x54, 0x76, 0xA9, 0xCB, 0xED, 0x8F};
  CHECK(b.packed == want);

  SECTION("ties of e2m1 round to even after the element scale") {
    // amax 3: 3 * RECIPROCAL_6 is 0.5, SF = 0.5 (0x30), the element scale 1 / 0.5 = 2: x = 1.25 gives 2.5, the
    // tie of 2 and 3 (even: 2); 0.125 gives 0.25, the tie of 0 and 0.5 (even: 0); 1.75 gives 3.5 (even: 4).
    std::array<std::uint32_t, 16> w{};
    w[0] = in_t(3, t);
    w[1] = in_t(1.25, t);
    w[2] = in_t(0.125, t);
    w[3] = in_t(1.75, t);
    const Nvfp4Block c = nvfp4_block(q, t, w, kFp32One);
    CHECK(c.scale_code == 0x30);
    CHECK(c.element_scale == f32(2));
    CHECK(c.packed[0] == (0x7 | 0x4 << 4));  // 6, 2
    CHECK(c.packed[1] == (0x0 | 0x6 << 4));  // 0, 4
  }
  SECTION("an all-zero block has SF 0 and element scale +0; a -0 element keeps its sign") {
    std::array<std::uint32_t, 16> z{};
    z[1] = 0x8000u;
    const Nvfp4Block c = nvfp4_block(q, t, z, kFp32One);
    CHECK(c.scale_code == 0);
    CHECK(c.element_scale == 0u);
    CHECK(c.packed[0] == 0x80);
  }
  SECTION("a block whose scale saturates e4m3: SF 448, the largest elements below 6") {
    std::array<std::uint32_t, 16> big{};
    big[0] = in_t(1e6, t);
    big[1] = in_t(-1e6, t);
    const Nvfp4Block c = nvfp4_block(q, t, big, kFp32One);
    CHECK(c.scale_code == kE4m3Largest);
    CHECK(c.element_scale == div_approx_ftz_bits(kFp32One, kE4m3LargestFp32));
    CHECK(c.packed[0] == (kE2m1Largest | (kE2m1Largest | 0x8) << 4));  // 1e6 / 448 still saturates to +-6
  }
  SECTION("NaN and Inf elements") {
    std::array<std::uint32_t, 16> w{};
    w[0] = in_t(2, t);
    w[1] = 0x7FC0u;  // NaN: dropped by the max, then e2m1(NaN) = +6
    w[2] = 0xFF80u;  // -Inf: amax Inf, SF saturates to 448, the element -Inf * (1/448) saturates to -6
    const Nvfp4Block c = nvfp4_block(q, t, w, kFp32One);
    CHECK(c.amax == 0x7F80u);
    CHECK(c.scale_code == kE4m3Largest);
    CHECK(c.packed[0] == (0x0 | kE2m1Largest << 4));  // 2 / 448 rounds to 0
    CHECK(c.packed[1] == (kE2m1Largest | 0x8));
    std::array<std::uint32_t, 16> nans{};
    nans.fill(0x7FC0u);
    const Nvfp4Block d = nvfp4_block(q, t, nans, kFp32One);
    CHECK(d.scale_code == kE4m3Nan);
    for (const std::uint8_t byte : d.packed) CHECK(byte == 0x77);
  }
  SECTION("a global scale other than 1 scales SF up and the elements back") {
    // g = 64: SF = e4m3(64 * 1) = 64 (0x68), element scale 64 / 64 = 1: the same elements as with g = 1.
    const Nvfp4Block c = nvfp4_block(q, t, v, f32(64));
    CHECK(c.scale_code == 0x68);
    CHECK(c.element_scale == kFp32One);
    CHECK(c.packed == want);
  }
}

TEST_CASE("quantize_fused writes every mode from the fused outputs, in place and layout", "[cpu]") {
  const DType t = DType::kBf16;
  const std::int64_t tokens = 5, hidden = 256;
  const FusedInputs in = random_inputs(t, 2, tokens, hidden, 17);
  for (const Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
    const FusedOptions options = options_for(s, Profile::kFlashInfer, t);
    const FusedResult fused = reference_fused_rms_norm(in.input, in.residual, in.gamma, options);
    const QuantArithmetic q = quant_arithmetic(Profile::kFlashInfer, s);
    INFO("strategy " << strategy_name(s));

    const QuantizedOutput fp8 = quantize_fused(fused, in.gamma, options, {QuantMode::kFp8, f32(0.75)});
    REQUIRE(fp8.quant_out.size() == static_cast<std::size_t>(tokens * hidden));
    const std::uint32_t inverse = rcp_approx_ftz_bits(f32(0.75));
    for (std::int64_t i = 0; i < tokens * hidden; ++i)
      REQUIRE(fp8.quant_out[static_cast<std::size_t>(i)] ==
              e4m3_from_fp32(mul_fp32(widen_to_fp32(fused.normalized.bits(i), t), inverse, true)));

    const QuantizedOutput dyn = quantize_fused(fused, in.gamma, options, {QuantMode::kFp8Dynamic});
    REQUIRE(dyn.token_scales.size() == static_cast<std::size_t>(tokens));
    for (std::int64_t token = 0; token < tokens; ++token) {
      // The token's largest element lands on +-448 whichever values the strategy quantises.
      std::int64_t largest = 0;
      for (std::int64_t d = 1; d < hidden; ++d)
        if (std::fabs(to_double(fused.normalized.bits(token * hidden + d), t)) >
            std::fabs(to_double(fused.normalized.bits(token * hidden + largest), t)))
          largest = d;
      CHECK((dyn.quant_out[static_cast<std::size_t>(token * hidden + largest)] & 0x7F) == kE4m3Largest);
      CHECK(dyn.token_scales[static_cast<std::size_t>(token)] != kDynamicFp8MinScale);
    }

    for (const ScaleLayout layout : {ScaleLayout::kSwizzled128x4, ScaleLayout::kLinear}) {
      const QuantizedOutput fp4 = quantize_fused(fused, in.gamma, options, {QuantMode::kNvfp4, f32(3), layout});
      REQUIRE(fp4.quant_out.size() == static_cast<std::size_t>(tokens * hidden / 2));
      REQUIRE(fp4.scale_out.size() == static_cast<std::size_t>(scale_bytes(layout, tokens, hidden)));
      std::size_t written = 0;
      for (std::int64_t token = 0; token < tokens; ++token) {
        for (std::int64_t k = 0; k < hidden / 16; ++k) {
          std::array<std::uint32_t, 16> block{};
          for (int i = 0; i < 16; ++i) block[static_cast<std::size_t>(i)] = fused.normalized.bits(token * hidden + k * 16 + i);
          const Nvfp4Block b = nvfp4_block(q, t, block, f32(3));
          REQUIRE(fp4.scale_out[static_cast<std::size_t>(scale_offset(layout, token, k, hidden))] == b.scale_code);
          for (std::size_t j = 0; j < 8; ++j)
            REQUIRE(fp4.quant_out[static_cast<std::size_t>((token * hidden + k * 16) / 2) + j] == b.packed[j]);
          written += b.scale_code != 0;
        }
      }
      CHECK(written == static_cast<std::size_t>(tokens * hidden / 16));
    }
  }
}

TEST_CASE("dynamic FP8: ONESHOT quantises the T outputs, TWOSHOT the fp32 values, and their bits part", "[cpu]") {
  const DType t = DType::kBf16;
  const std::int64_t tokens = 8, hidden = 512;
  const FusedInputs in = random_inputs(t, 2, tokens, hidden, 5);
  std::int64_t parted = 0;
  for (const Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
    const FusedOptions options = options_for(s, Profile::kFlashInfer, t);
    const FusedResult fused = reference_fused_rms_norm(in.input, in.residual, in.gamma, options);
    const QuantizedOutput dyn = quantize_fused(fused, in.gamma, options, {QuantMode::kFp8Dynamic});
    const QuantArithmetic q = quant_arithmetic(Profile::kFlashInfer, s);
    REQUIRE(q.dynamic_from_fp32 == (s == Strategy::kTwoShot));
    const NormArithmetic norm = norm_arithmetic(options);
    for (std::int64_t token = 0; token < tokens; ++token) {
      std::vector<std::uint32_t> from_t, from_fp32;
      for (std::int64_t d = 0; d < hidden; ++d) {
        const std::int64_t i = token * hidden + d;
        from_t.push_back(widen_to_fp32(fused.normalized.bits(i), t));
        from_fp32.push_back(normalized_fp32(fused.launch, norm, fused.residual_out.bits(i), in.gamma.bits(d),
                                            fused.row_scales[static_cast<std::size_t>(token)]));
        // The fp32 value narrows to the T output.
        REQUIRE(narrow_from_fp32(from_fp32.back(), t) == fused.normalized.bits(i));
      }
      const std::vector<std::uint32_t>& used = s == Strategy::kTwoShot ? from_fp32 : from_t;
      const std::vector<std::uint32_t>& other = s == Strategy::kTwoShot ? from_t : from_fp32;
      const std::uint32_t scale = fp8_dynamic_scale(q, fp8_dynamic_absmax(q, used));
      REQUIRE(dyn.token_scales[static_cast<std::size_t>(token)] == scale);
      const std::uint32_t other_scale = fp8_dynamic_scale(q, fp8_dynamic_absmax(q, other));
      for (std::int64_t d = 0; d < hidden; ++d) {
        const auto i = static_cast<std::size_t>(token * hidden + d);
        REQUIRE(dyn.quant_out[i] == fp8_dynamic_code(q, used[static_cast<std::size_t>(d)], scale));
        parted += dyn.quant_out[i] != fp8_dynamic_code(q, other[static_cast<std::size_t>(d)], other_scale);
      }
    }
  }
  CHECK(parted > 0);  // SPEC 13: the strategies can give different FP8 bits
}

TEST_CASE("the invariant profile's quantised bits of a token do not depend on the batch or the strategy", "[cpu]") {
  for (const DType t : {DType::kBf16, DType::kFp16}) {
    const std::int64_t tokens = 37, hidden = 2880;
    const FusedInputs in = random_inputs(t, 4, tokens, hidden, 23);
    for (const QuantMode mode : {QuantMode::kFp8, QuantMode::kFp8Dynamic, QuantMode::kNvfp4}) {
      const QuantOptions quant{mode, f32(1.5), ScaleLayout::kLinear};
      std::vector<QuantizedOutput> batch;
      for (const Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
        batch.push_back(reference_fused_quant(in.input, in.residual, in.gamma, options_for(s, Profile::kInvariant, t), quant).quant);
      const std::size_t per_token = batch[0].quant_out.size() / tokens;
      for (const std::int64_t token : {std::int64_t{0}, std::int64_t{36}}) {
        const FusedInputs one = token_of(in, token);
        const QuantizedOutput alone =
            reference_fused_quant(one.input, one.residual, one.gamma, options_for(Strategy::kAuto, Profile::kInvariant, t), quant).quant;
        for (const QuantizedOutput& b : batch) {
          INFO("dtype " << dtype_name(t) << ", mode " << quant_mode_name(mode) << ", token " << token);
          CHECK(std::equal(alone.quant_out.begin(), alone.quant_out.end(), b.quant_out.begin() + token * per_token));
          if (mode == QuantMode::kFp8Dynamic) CHECK(alone.token_scales[0] == b.token_scales[static_cast<std::size_t>(token)]);
          if (mode == QuantMode::kNvfp4)
            CHECK(std::equal(alone.scale_out.begin(), alone.scale_out.end(),
                             b.scale_out.begin() + token * scale_blocks(hidden)));
        }
      }
    }
  }
}

TEST_CASE("dequantize decodes each mode's bytes back to values", "[cpu]") {
  QuantizedOutput fp8{QuantMode::kFp8, ScaleLayout::kLinear, 1, 2, {0x38, 0xC4}, {}, {}};
  HostTensor v = dequantize(fp8, f32(0.5));
  CHECK(v.bits(0) == f32(0.5));
  CHECK(v.bits(1) == f32(-1.5));
  QuantizedOutput dyn{QuantMode::kFp8Dynamic, ScaleLayout::kLinear, 2, 1, {0x7E, 0x38}, {}, {f32(0.25), f32(2)}};
  v = dequantize(dyn, kFp32One);
  CHECK(v.bits(0) == f32(112));
  CHECK(v.bits(1) == f32(2));
  QuantizedOutput fp4{QuantMode::kNvfp4, ScaleLayout::kLinear, 1, 16, std::vector<std::uint8_t>(8, 0), {0x40}, {}};
  fp4.quant_out[0] = 0xF2;  // element 0: code 2 (1.0), element 1: code 0xF (-6)
  v = dequantize(fp4, f32(4));  // SF 0x40 = 2: q * 2 / 4
  CHECK(v.bits(0) == f32(0.5));
  CHECK(v.bits(1) == f32(-3));
}

TEST_CASE("compare_quant counts every code, token scale and block scale, and names the first difference", "[cpu]") {
  QuantizedOutput a{QuantMode::kNvfp4, ScaleLayout::kSwizzled128x4, 2, 32, std::vector<std::uint8_t>(32, 0x11), {}, {}};
  a.scale_out.assign(static_cast<std::size_t>(scale_bytes(a.layout, 2, 32)), 0x38);
  QuantizedOutput b = a;
  CHECK(compare_quant(a, b).differing == 0);
  CHECK(compare_quant(a, b).elements == 32 + 2 * 2);  // codes, then one scale per block (not the padding)
  b.scale_out.back() = 0;  // padding of the tile: no block's
  CHECK(compare_quant(a, b).differing == 0);
  b.quant_out[5] = 0x12;
  b.scale_out[static_cast<std::size_t>(scale_offset(a.layout, 1, 1, 32))] = 0x39;
  const QuantDiff d = compare_quant(b, a);
  CHECK(d.differing == 2);
  CHECK(d.first == "quant_out[5]: 0x12, expected 0x11");
  QuantizedOutput dyn{QuantMode::kFp8Dynamic, ScaleLayout::kSwizzled128x4, 1, 4, {1, 2, 3, 4}, {}, {0x3F800000u}};
  QuantizedOutput dyn2 = dyn;
  dyn2.token_scales[0] = 0x3F800001u;
  CHECK(compare_quant(dyn2, dyn).first == "scale_out[0]: 0x3f800001, expected 0x3f800000");
  CHECK_THROWS_AS(compare_quant(dyn, a), std::invalid_argument);
}
