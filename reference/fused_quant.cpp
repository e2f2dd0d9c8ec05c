#include "reference/fused_quant.h"

#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "reference/quant_formats.h"

namespace ar {
namespace {

// The order of two non-NaN values of format f as signed integers (both zeros map to 0).
std::int64_t ordered(std::uint32_t bits, FloatFormat f) {
  const auto magnitude = static_cast<std::int64_t>(bits & ~f.sign_mask());
  return sign_bit(bits, f) ? -magnitude : magnitude;
}

// PTX max / min on format f (no flushing here): a NaN operand gives the other, two NaNs the canonical NaN;
// between +0 and -0, max gives +0 and min -0.
std::uint32_t max_or_min(std::uint32_t a, std::uint32_t b, FloatFormat f, bool take_max) {
  const bool a_nan = is_nan(a, f), b_nan = is_nan(b, f);
  if (a_nan && b_nan) return f.canonical_nan();
  if (a_nan) return b;
  if (b_nan) return a;
  const std::int64_t oa = ordered(a, f), ob = ordered(b, f);
  if (oa == ob) return take_max ? (a & b) : (a | b);  // equal values differ at most in a zero's sign
  return (oa > ob) == take_max ? a : b;
}

std::uint32_t flush_if(const QuantArithmetic& q, std::uint32_t x) { return q.ftz ? flush_subnormal_fp32(x) : x; }

bool is_nonzero_fp32(std::uint32_t x) { return is_nan(x, kFp32Format) || !is_zero(x, kFp32Format); }

}  // namespace

std::optional<QuantMode> parse_quant_mode(std::string_view name) {
  for (std::size_t i = 0; i < kQuantModeNames.size(); ++i)
    if (kQuantModeNames[i] == name) return static_cast<QuantMode>(i);
  return std::nullopt;
}

std::optional<ScaleLayout> parse_scale_layout(std::string_view name) {
  for (std::size_t i = 0; i < kScaleLayoutNames.size(); ++i)
    if (kScaleLayoutNames[i] == name) return static_cast<ScaleLayout>(i);
  return std::nullopt;
}

QuantArithmetic quant_arithmetic(Profile profile, Strategy resolved, const ApproxMath& approx) {
  QuantArithmetic q;
  q.ftz = flushes_subnormals(profile);
  q.approx_division = profile == Profile::kFlashInfer || profile == Profile::kTrtllm;
  q.approx = approx;
  q.dynamic_from_fp32 = profile == Profile::kInvariant || resolved == Strategy::kTwoShot;
  return q;
}

std::uint32_t quant_mul(const QuantArithmetic& q, std::uint32_t a, std::uint32_t b) { return mul_fp32(a, b, q.ftz); }

std::uint32_t quant_divide(const QuantArithmetic& q, std::uint32_t a, std::uint32_t b) {
  // div.approx.ftz.f32 is MUFU.RCP of b and an FTZ multiply (reference/mufu.h, proven by `mufu --check`).
  if (q.approx_division) return mul_fp32(a, q.approx.reciprocal(b), /*ftz=*/true);
  return div_fp32(a, b);
}

std::uint32_t quant_reciprocal(const QuantArithmetic& q, std::uint32_t b) {
  if (q.approx_division) return q.approx.reciprocal(b);
  return div_fp32(kFp32One, b);
}

std::uint32_t quant_max(const QuantArithmetic& q, std::uint32_t a, std::uint32_t b) {
  return max_or_min(flush_if(q, a), flush_if(q, b), kFp32Format, true);
}

std::uint32_t quant_min(const QuantArithmetic& q, std::uint32_t a, std::uint32_t b) {
  return max_or_min(flush_if(q, a), flush_if(q, b), kFp32Format, false);
}

std::uint32_t quant_abs(const QuantArithmetic& q, std::uint32_t a) {
  return flush_if(q, a & ~kFp32Format.sign_mask());
}

std::uint8_t fp8_static_code(const QuantArithmetic& q, std::uint32_t value, std::uint32_t inverse_scale) {
  return e4m3_from_fp32(quant_mul(q, value, inverse_scale));
}

std::uint32_t fp8_dynamic_absmax(const QuantArithmetic& q, std::span<const std::uint32_t> values) {
  // fmaxf(threadMax, fabsf(x)) from 0.F, then the block's and the cluster's fmaxf folds (CUH:1051-1070,
  // 1481, 1500-1516). Every operand is +0 or more and NaNs are dropped, so any order gives these bits.
  std::uint32_t m = 0;
  for (const std::uint32_t x : values) m = quant_max(q, m, quant_abs(q, x));
  return m;
}

std::uint32_t fp8_dynamic_scale(const QuantArithmetic& q, std::uint32_t absmax) {
  return quant_max(q, quant_divide(q, absmax, kE4m3LargestFp32), kDynamicFp8MinScale);
}

std::uint8_t fp8_dynamic_code(const QuantArithmetic& q, std::uint32_t value, std::uint32_t token_scale) {
  // fminf(fmaxf(x / scale, -448), 448): max first, so a NaN quotient becomes -448.
  const std::uint32_t quotient = quant_divide(q, value, token_scale);
  const std::uint32_t clamped =
      quant_min(q, quant_max(q, quotient, kE4m3LargestFp32 | kFp32Format.sign_mask()), kE4m3LargestFp32);
  return e4m3_from_fp32(clamped);
}

Nvfp4Block nvfp4_block(const QuantArithmetic& q, DType t, std::span<const std::uint32_t, kNvfp4BlockElements> values,
                       std::uint32_t global_scale) {
  // cvt_warp_fp16_to_fp4 (ARF:724-805): |x| and their maximum in T (__habs2, __hmax2: no flushing, NaNs
  // dropped), the block scale from it in fp32, then each element times g / SF.
  const FloatFormat f = float_format(t);
  Nvfp4Block b;
  b.amax = values[0] & ~f.sign_mask();
  for (std::size_t i = 1; i < values.size(); ++i) b.amax = max_or_min(b.amax, values[i] & ~f.sign_mask(), f, true);
  b.scale_input = quant_mul(q, global_scale, quant_mul(q, widen_to_fp32(b.amax, t), kReciprocalOfSix));
  b.scale_code = e4m3_from_fp32(b.scale_input);
  const std::uint32_t scale = fp32_from_e4m3(b.scale_code);
  b.element_scale = is_nonzero_fp32(scale) ? quant_divide(q, global_scale, scale) : 0u;
  for (std::size_t i = 0; i < values.size(); ++i) b.products[i] = quant_mul(q, widen_to_fp32(values[i], t), b.element_scale);
  for (std::size_t i = 0; i < b.packed.size(); ++i)
    b.packed[i] = static_cast<std::uint8_t>(e2m1_from_fp32(b.products[2 * i]) |
                                            (e2m1_from_fp32(b.products[2 * i + 1]) << 4));
  return b;
}

void validate_quant(const QuantOptions& quant, DType t, std::int64_t hidden) {
  if (quant.mode != QuantMode::kNvfp4) return;
  if (t == DType::kFp32) throw std::invalid_argument("NVFP4 quantisation takes bf16 or fp16 input, not fp32");
  if (hidden % kNvfp4BlockElements != 0)
    throw std::invalid_argument("NVFP4 quantisation needs D divisible by 16; D = " + std::to_string(hidden));
}

QuantizedOutput quantize_fused(const FusedResult& fused, const HostTensor& gamma, const FusedOptions& options,
                               const QuantOptions& quant) {
  const DType t = fused.normalized.dtype();
  const std::int64_t n = fused.normalized.dim(0), width = fused.normalized.dim(1);
  validate_quant(quant, t, width);
  QuantizedOutput out;
  out.mode = quant.mode;
  out.layout = quant.layout;
  out.tokens = n;
  out.hidden = width;
  const NormArithmetic norm = norm_arithmetic(options);
  const QuantArithmetic q = quant_arithmetic(options.profile, fused.launch.strategy, norm.approx);
  switch (quant.mode) {
    case QuantMode::kNone: break;
    case QuantMode::kFp8: {
      out.quant_out.resize(static_cast<std::size_t>(n * width));
      const std::uint32_t inverse = quant_reciprocal(q, quant.scale);
      for (std::int64_t i = 0; i < n * width; ++i)
        out.quant_out[static_cast<std::size_t>(i)] = fp8_static_code(q, widen_to_fp32(fused.normalized.bits(i), t), inverse);
      break;
    }
    case QuantMode::kFp8Dynamic: {
      out.quant_out.resize(static_cast<std::size_t>(n * width));
      out.token_scales.resize(static_cast<std::size_t>(n));
      const std::vector<std::uint32_t> gamma_bits = gamma.bits_range(0, width);
      std::vector<std::uint32_t> values(static_cast<std::size_t>(width));
      for (std::int64_t token = 0; token < n; ++token) {
        const std::uint32_t row_scale = fused.row_scales.at(static_cast<std::size_t>(token));
        for (std::int64_t d = 0; d < width; ++d) {
          const std::int64_t i = token * width + d;
          values[static_cast<std::size_t>(d)] =
              q.dynamic_from_fp32 ? normalized_fp32(fused.launch, norm, fused.residual_out.bits(i),
                                                    gamma_bits[static_cast<std::size_t>(d)], row_scale)
                                  : widen_to_fp32(fused.normalized.bits(i), t);
        }
        const std::uint32_t scale = fp8_dynamic_scale(q, fp8_dynamic_absmax(q, values));
        out.token_scales[static_cast<std::size_t>(token)] = scale;
        for (std::int64_t d = 0; d < width; ++d)
          out.quant_out[static_cast<std::size_t>(token * width + d)] =
              fp8_dynamic_code(q, values[static_cast<std::size_t>(d)], scale);
      }
      break;
    }
    case QuantMode::kNvfp4: {
      out.quant_out.resize(static_cast<std::size_t>(n * width / 2));
      out.scale_out.assign(static_cast<std::size_t>(scale_bytes(quant.layout, n, width)), 0);
      std::array<std::uint32_t, kNvfp4BlockElements> values{};
      for (std::int64_t token = 0; token < n; ++token) {
        for (std::int64_t k = 0; k < scale_blocks(width); ++k) {
          const std::int64_t first = token * width + k * kNvfp4BlockElements;
          for (int i = 0; i < kNvfp4BlockElements; ++i) values[static_cast<std::size_t>(i)] = fused.normalized.bits(first + i);
          const Nvfp4Block b = nvfp4_block(q, t, values, quant.scale);
          out.scale_out[static_cast<std::size_t>(scale_offset(quant.layout, token, k, width))] = b.scale_code;
          for (std::size_t j = 0; j < b.packed.size(); ++j) out.quant_out[static_cast<std::size_t>(first / 2) + j] = b.packed[j];
        }
      }
      break;
    }
  }
  return out;
}

QuantDiff compare_quant(const QuantizedOutput& actual, const QuantizedOutput& expected) {
  if (actual.mode != expected.mode || actual.layout != expected.layout || actual.tokens != expected.tokens ||
      actual.hidden != expected.hidden || actual.quant_out.size() != expected.quant_out.size() ||
      actual.token_scales.size() != expected.token_scales.size() ||
      actual.scale_out.size() != expected.scale_out.size())
    throw std::invalid_argument("compare_quant: the two outputs are of different modes, layouts or shapes");
  QuantDiff d;
  const auto one = [&](const char* what, std::size_t at, std::uint32_t got, std::uint32_t want, int digits) {
    ++d.elements;
    if (got == want) return;
    if (d.differing++ == 0)
      d.first = fmt::format("{}[{}]: {:#0{}x}, expected {:#0{}x}", what, at, got, digits + 2, want, digits + 2);
  };
  for (std::size_t i = 0; i < expected.quant_out.size(); ++i) one("quant_out", i, actual.quant_out[i], expected.quant_out[i], 2);
  for (std::size_t i = 0; i < expected.token_scales.size(); ++i)
    one("scale_out", i, actual.token_scales[i], expected.token_scales[i], 8);
  if (expected.mode == QuantMode::kNvfp4)
    for (std::int64_t m = 0; m < expected.tokens; ++m)
      for (std::int64_t k = 0; k < scale_blocks(expected.hidden); ++k) {
        const auto at = static_cast<std::size_t>(scale_offset(expected.layout, m, k, expected.hidden));
        one("scale_out", at, actual.scale_out[at], expected.scale_out[at], 2);
      }
  return d;
}

std::vector<std::uint32_t> quant_row_words(const QuantizedOutput& q, std::int64_t row) {
  if (row < 0 || row >= q.tokens) throw std::out_of_range("quant_row_words: no row " + std::to_string(row));
  const auto per_row = static_cast<std::int64_t>(q.quant_out.size()) / q.tokens;
  std::vector<std::uint32_t> words(q.quant_out.begin() + row * per_row, q.quant_out.begin() + (row + 1) * per_row);
  if (q.mode == QuantMode::kFp8Dynamic) words.push_back(q.token_scales.at(static_cast<std::size_t>(row)));
  if (q.mode == QuantMode::kNvfp4)
    for (std::int64_t k = 0; k < scale_blocks(q.hidden); ++k)
      words.push_back(q.scale_out.at(static_cast<std::size_t>(scale_offset(q.layout, row, k, q.hidden))));
  return words;
}

FusedQuantResult reference_fused_quant(const HostTensor& input, const HostTensor& residual, const HostTensor& gamma,
                                       const FusedOptions& options, const QuantOptions& quant) {
  if (input.shape().size() == 3) validate_quant(quant, input.dtype(), input.dim(2));
  FusedQuantResult r;
  r.fused = reference_fused_rms_norm(input, residual, gamma, options);
  r.quant = quantize_fused(r.fused, gamma, options, quant);
  return r;
}

HostTensor dequantize(const QuantizedOutput& quant, std::uint32_t output_scale) {
  HostTensor out(DType::kFp32, {quant.tokens, quant.hidden});
  const double g = std::bit_cast<float>(output_scale);
  const auto value = [](std::uint32_t bits) { return static_cast<double>(std::bit_cast<float>(bits)); };
  for (std::int64_t token = 0; token < quant.tokens; ++token) {
    for (std::int64_t d = 0; d < quant.hidden; ++d) {
      const std::int64_t i = token * quant.hidden + d;
      double v = 0;
      switch (quant.mode) {
        case QuantMode::kNone: break;
        case QuantMode::kFp8: v = value(fp32_from_e4m3(quant.quant_out[static_cast<std::size_t>(i)])) * g; break;
        case QuantMode::kFp8Dynamic:
          v = value(fp32_from_e4m3(quant.quant_out[static_cast<std::size_t>(i)])) *
              value(quant.token_scales[static_cast<std::size_t>(token)]);
          break;
        case QuantMode::kNvfp4: {
          const std::uint8_t byte = quant.quant_out[static_cast<std::size_t>(i / 2)];
          const auto code = static_cast<std::uint8_t>(i % 2 == 0 ? byte & 0xF : byte >> 4);
          const std::uint8_t sf =
              quant.scale_out[static_cast<std::size_t>(scale_offset(quant.layout, token, d / kNvfp4BlockElements, quant.hidden))];
          v = value(fp32_from_e2m1(code)) * value(fp32_from_e4m3(sf)) / g;
          break;
        }
      }
      out.set_bits(i, fp32_from_double(v));
    }
  }
  return out;
}

}  // namespace ar
