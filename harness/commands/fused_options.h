// The fused residual-add + RMSNorm on the command line (`reference` and `explain`): its options, the checks
// that refuse a bad combination before any file is read, and the residual and gamma files, read in the
// input's dtype and checked against its shape before any work starts.
#pragma once

#include <string>

#include "harness/commands/options.h"
#include "harness/io/rank_inputs.h"
#include "reference/fused_rms_norm.h"

namespace ar {

/// What the fused options hold once parsed.
struct FusedArgs {
  std::string residual, gamma, residual_out;
  double eps = 0;  ///< used only when --eps is given; otherwise default_epsilon(dtype)
  double weight_bias = 0;
  int sms = kDefaultSmCount;
};

/// The most SMs --sms takes.
inline constexpr int kMaxSmCount = 1024;

/// FlashInfer narrows eps and the weight bias to fp32 on the host: `value` as that fp32 (UsageError naming
/// `flag` when it is not finite there).
std::uint32_t fp32_parameter(const char* flag, double value);

/// Refuses (UsageError naming `flag`) an SM count outside [1, kMaxSmCount].
void check_sm_count(const char* flag, int sms);

/// Adds --residual, --gamma, --eps, --weight-bias, --sms, and --residual-out when `with_output`.
void add_fused_options(po::options_description& options, FusedArgs& args, bool with_output);

/// Whether the fused call is asked for (--residual and --gamma). Throws UsageError when only one of them is
/// given, when another fused option comes without them, when --residual-out is missing (`with_output`), or
/// when --sms lies outside [1, 1024].
bool fused_requested(const po::variables_map& vm, const FusedArgs& args, bool with_output);

/// Refuses (UsageError) a profile whose fused norm is not modelled, before any file is read.
void check_fused_profile(Profile profile);

struct FusedInputs {
  HostTensor residual;  ///< [N, D]
  HostTensor gamma;     ///< [D]
  FusedOptions options;
};

/// Reads --residual and --gamma in the input's dtype and checks their shapes; eps and weight bias become
/// the fp32 the kernel holds (refused when that is not finite). Throws UsageError naming the file.
FusedInputs load_fused_inputs(const po::variables_map& vm, const FusedArgs& args, const RankInputs& in,
                              Strategy strategy, Profile profile);

/// reference_fused_rms_norm, with the model's refusal (a launch FlashInfer does not make) as a UsageError
/// naming `input_path` and its shape.
FusedResult fused_reference(const std::string& input_path, const RankInputs& in, const FusedInputs& fused);

/// explain_fused_element, refused the same way.
FusedElementExplanation fused_explanation(const std::string& input_path, const RankInputs& in, const FusedInputs& fused,
                                          std::int64_t token, std::int64_t col);

/// The stderr warning for a shape whose normalised output the GPU leaves undefined (NormLaunch::exited_threads).
std::string undefined_norm_warning(const NormLaunch& launch);

}  // namespace ar
