// The fused call's operands once read and checked (the residual, gamma and the options of the model), and
// what the commands and the Python package do with them alike: narrowing eps and the weight bias as FlashInfer
// does, refusing an SM count or profile the model does not take, and the model's calls with its refusal
// turned into a message that names the input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "harness/io/rank_inputs.h"
#include "reference/fused_quant.h"
#include "reference/fused_rms_norm.h"

namespace ar {

/// What the fused options hold once parsed (fused_options.h parses them).
struct FusedArgs {
  std::string residual, gamma, residual_out;
  double eps = 0;  ///< used only when --eps is given; otherwise default_epsilon(dtype)
  double weight_bias = 0;
  int sms = kDefaultSmCount;
};

/// The operands beside the all-reduce's input.
struct FusedInputs {
  HostTensor residual;  ///< [N, D]
  HostTensor gamma;     ///< [D]
  FusedOptions options;
};

/// The most SMs --sms takes.
inline constexpr int kMaxSmCount = 1024;

/// FlashInfer narrows eps and the weight bias to fp32 on the host: `value` as that fp32 (UsageError naming
/// `flag` when it is not finite there).
std::uint32_t fp32_parameter(const char* flag, double value);

/// Refuses (UsageError naming `flag`) an SM count outside [1, kMaxSmCount].
void check_sm_count(const char* flag, int sms);

/// Refuses (UsageError) a profile whose fused norm is not modelled, before any file is read.
void check_fused_profile(Profile profile);

/// A fused call's options as users give them: the profile and the SM count checked (`sms_flag` names the
/// count in messages), eps (none: default_epsilon(t)) and the weight bias narrowed to fp32 as FlashInfer
/// does. Throws UsageError naming what is wrong.
FusedOptions fused_options(DType t, Strategy strategy, Profile profile, int sm_count, std::optional<double> eps,
                           double weight_bias, const char* sms_flag);

/// reference_fused_rms_norm, with the model's refusal (a launch FlashInfer does not make) as a UsageError
/// naming `input_path` and its shape.
FusedResult fused_reference(const std::string& input_path, const RankInputs& in, const FusedInputs& fused);

/// What names the quantisation's settings in messages: the CLI's flags, or the Python package's arguments.
struct QuantSettingNames {
  const char* mode = "--quant";
  const char* scale = "--quant-scale";
  const char* layout = "--scale-layout";
};

/// The quantisation a mode ("fp8", "fp8-dynamic", "nvfp4"), a scale (the output_scale, NVFP4's global scale;
/// none: 1) and a layout (NVFP4's; none: swizzled) ask for, the scale narrowed to the fp32 the kernel holds.
/// Throws UsageError naming the setting for an unknown mode or layout, a scale with fp8-dynamic or not finite
/// as that fp32, a layout with another mode than nvfp4.
QuantOptions quant_settings(const std::string& mode, std::optional<double> scale,
                            const std::optional<std::string>& layout, const QuantSettingNames& names = {});

/// "nvfp4, global scale 0x3F800000 (1), swizzled block scales": how a quantisation is described in output.
std::string describe_quant(const QuantOptions& quant);

/// Refuses (UsageError naming `input_path` and its shape, with the model's reason) a quantisation the model
/// does not run for the input's dtype or D (NVFP4 with fp32, or D % 16 != 0).
void check_quant_input(const std::string& input_path, const RankInputs& in, const QuantOptions& quant);

/// reference_fused_quant, refused the same way (also a quantisation the model refuses for the input's dtype
/// or D: NVFP4 with fp32, D % 16 != 0).
FusedQuantResult fused_quant_reference(const std::string& input_path, const RankInputs& in, const FusedInputs& fused,
                                       const QuantOptions& quant);

/// explain_fused_element, refused the same way.
FusedElementExplanation fused_explanation(const std::string& input_path, const RankInputs& in, const FusedInputs& fused,
                                          std::int64_t token, std::int64_t col);

/// The stderr warning for a shape whose normalised output the GPU leaves undefined (NormLaunch::exited_threads).
std::string undefined_norm_warning(const NormLaunch& launch);

}  // namespace ar
