#include "harness/commands/fused_inputs.h"

#include <stdexcept>
#include <string_view>

#include <fmt/format.h>

#include "harness/io/exit_codes.h"
#include "reference/explain.h"
#include "reference/float_bits.h"
#include "reference/float_ops.h"

namespace ar {

namespace {

// `value` as the fp32 the kernel holds, refused naming `name` when it is not finite there.
std::uint32_t finite_fp32(std::string_view name, double value) {
  const std::uint32_t bits = fp32_from_double(value);
  if (is_inf(bits, kFp32Format) || is_nan(bits, kFp32Format))
    throw UsageError(fmt::format("{} {} is not a finite number as the fp32 the kernel holds", name, value));
  return bits;
}

}  // namespace

// FlashInfer narrows eps (and the bias) to fp32 on the host, so a double beyond fp32's range becomes Inf.
std::uint32_t fp32_parameter(const char* flag, double value) { return finite_fp32(fmt::format("--{}", flag), value); }

// No GPU has more than a thousand SMs, and a typo such as 13200 should not pass as one.
void check_sm_count(const char* flag, int sms) {
  if (sms < 1 || sms > kMaxSmCount) throw UsageError(fmt::format("{} {} is outside [1, {}]", flag, sms, kMaxSmCount));
}

void check_fused_profile(Profile profile) {
  if (profile == Profile::kTrtllm)
    throw UsageError("the fused call is modelled for the flashinfer, ieee and invariant profiles, not trtllm");
}

FusedOptions fused_options(DType t, Strategy strategy, Profile profile, int sm_count, std::optional<double> eps,
                           double weight_bias, const char* sms_flag) {
  check_fused_profile(profile);
  check_sm_count(sms_flag, sm_count);
  FusedOptions o;
  o.strategy = strategy;
  o.profile = profile;
  o.sm_count = sm_count;
  o.epsilon = eps ? fp32_parameter("eps", *eps) : default_epsilon(t);
  o.weight_bias = fp32_parameter("weight-bias", weight_bias);
  return o;
}

namespace {

// The model refuses with std::invalid_argument what FlashInfer's dispatcher refuses (a row too wide for
// any launch); the user needs the file and the shape to act on it.
template <class Call>
auto refusing_as_usage(const std::string& input_path, const RankInputs& in, const FusedInputs& f, Call call) {
  try {
    return call();
  } catch (const std::invalid_argument& e) {
    const ProblemShape& s = in.shape;
    throw UsageError(fmt::format("'{}' ([{}, {}, {}] {}, {} SMs): the fused call cannot run: {}", input_path,
                                 s.world_size, s.tokens, s.hidden, dtype_name(s.dtype), f.options.sm_count, e.what()));
  }
}

}  // namespace

FusedResult fused_reference(const std::string& input_path, const RankInputs& in, const FusedInputs& f) {
  return refusing_as_usage(input_path, in, f,
                           [&] { return reference_fused_rms_norm(in.tensor, f.residual, f.gamma, f.options); });
}

QuantOptions quant_settings(const std::string& mode, std::optional<double> scale,
                            const std::optional<std::string>& layout, const QuantSettingNames& names) {
  QuantOptions q;
  const std::optional<QuantMode> parsed = parse_quant_mode(mode);
  if (!parsed || *parsed == QuantMode::kNone)
    throw UsageError(fmt::format("unknown {} '{}' (choose fp8, fp8-dynamic or nvfp4)", names.mode, mode));
  q.mode = *parsed;
  if (scale) {
    if (q.mode == QuantMode::kFp8Dynamic)
      throw UsageError(
          fmt::format("{} is for fp8 and nvfp4: fp8-dynamic computes each token's scale from its values", names.scale));
    // FlashInfer's output_scale is an fp32 tensor: the kernel reads that fp32.
    q.scale = finite_fp32(names.scale, *scale);
  }
  if (layout) {
    if (q.mode != QuantMode::kNvfp4)
      throw UsageError(fmt::format("{} is for nvfp4's block scales; {} has none", names.layout, mode));
    const std::optional<ScaleLayout> parsed_layout = parse_scale_layout(*layout);
    if (!parsed_layout)
      throw UsageError(fmt::format("unknown {} '{}' (choose swizzled or linear)", names.layout, *layout));
    q.layout = *parsed_layout;
  }
  return q;
}

std::string describe_quant(const QuantOptions& quant) {
  switch (quant.mode) {
    case QuantMode::kFp8: return fmt::format("fp8, output_scale {}", format_fp32(quant.scale));
    case QuantMode::kFp8Dynamic: return "fp8-dynamic";
    case QuantMode::kNvfp4:
      return fmt::format("nvfp4, global scale {}, {} block scales", format_fp32(quant.scale),
                         scale_layout_name(quant.layout));
    case QuantMode::kNone: break;
  }
  return "none";
}

void check_quant_input(const std::string& input_path, const RankInputs& in, const QuantOptions& quant) {
  try {
    validate_quant(quant, in.shape.dtype, in.shape.hidden);
  } catch (const std::invalid_argument& e) {
    const ProblemShape& s = in.shape;
    throw UsageError(fmt::format("'{}' ([{}, {}, {}] {}): --quant {} cannot run: {}", input_path, s.world_size,
                                 s.tokens, s.hidden, dtype_name(s.dtype), quant_mode_name(quant.mode), e.what()));
  }
}

FusedQuantResult fused_quant_reference(const std::string& input_path, const RankInputs& in, const FusedInputs& f,
                                       const QuantOptions& quant) {
  check_quant_input(input_path, in, quant);  // before the norm's work
  return refusing_as_usage(input_path, in, f,
                           [&] { return reference_fused_quant(in.tensor, f.residual, f.gamma, f.options, quant); });
}

FusedElementExplanation fused_explanation(const std::string& input_path, const RankInputs& in, const FusedInputs& f,
                                          std::int64_t token, std::int64_t col) {
  return refusing_as_usage(
      input_path, in, f, [&] { return explain_fused_element(in.tensor, f.residual, f.gamma, f.options, token, col); });
}

std::string undefined_norm_warning(const NormLaunch& launch) {
  return fmt::format(
      "the GPU's normalised output is undefined for this shape: ONESHOT launches {} block(s) of {} threads for "
      "{} packs a row, and the {} thread(s) beyond the row return before the block reduction, so the lanes and "
      "shared-memory slots they would fill are never written. The model counts them as +0; the residual output "
      "is exact (docs/fused.md)",
      launch.cluster_size(), launch.block_size(), launch.packs_per_row, launch.exited_threads());
}

}  // namespace ar
