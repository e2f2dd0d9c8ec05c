// The fused residual-add + RMSNorm on the command line (`reference` and `explain`): its options, the checks
// that refuse a bad combination before any file is read, and the residual and gamma files, read in the
// input's dtype and checked against its shape before any work starts.
#pragma once

#include <optional>
#include <string>

#include "harness/commands/options.h"
#include "harness/commands/fused_inputs.h"
#include "reference/fused_quant.h"

namespace ar {

/// Adds --residual, --gamma, --eps, --weight-bias, --sms, and --residual-out when `with_output`.
void add_fused_options(po::options_description& options, FusedArgs& args, bool with_output);

/// Whether the fused call is asked for (--residual and --gamma). Throws UsageError when only one of them is
/// given, when another fused option comes without them, when --residual-out is missing (`with_output`), or
/// when --sms lies outside [1, 1024].
bool fused_requested(const po::variables_map& vm, const FusedArgs& args, bool with_output);

/// Reads --residual and --gamma in the input's dtype and checks their shapes; eps and weight bias become
/// the fp32 the kernel holds (refused when that is not finite). Throws UsageError naming the file.
FusedInputs load_fused_inputs(const po::variables_map& vm, const FusedArgs& args, const RankInputs& in,
                              Strategy strategy, Profile profile);

/// What the quantisation options hold once parsed.
struct QuantArgs {
  std::string mode;    ///< --quant: fp8, fp8-dynamic or nvfp4
  std::string layout;  ///< --scale-layout: swizzled or linear (NVFP4 only)
  double scale = 1;    ///< --quant-scale, used only when given
  std::string quant_out, scale_out;
};

/// Which of the quantised output's files a command names: `reference` writes them, `dequant` reads them,
/// `explain` takes none.
enum class QuantFiles { kNone, kWrites, kReads };

/// Adds --quant, --quant-scale, --scale-layout, and --quant-out and --scale-out unless `files` is kNone.
void add_quant_options(po::options_description& options, QuantArgs& args, QuantFiles files);

/// The quantisation --quant, --quant-scale and --scale-layout ask for (--quant given). Throws UsageError
/// for an unknown mode or layout, --quant-scale with fp8-dynamic or not finite as the fp32 the kernel holds,
/// --scale-layout without nvfp4.
QuantOptions quant_options(const po::variables_map& vm, const QuantArgs& args);

/// The quantisation asked for by a command that computes the fused call (`fused`: --residual and --gamma
/// given): none without --quant, when every other quantisation option is refused. With --quant, refused
/// without the fused call; with `files` kWrites, --quant-out is required and --scale-out required for
/// fp8-dynamic and nvfp4 and refused for fp8. Throws UsageError naming the problem.
std::optional<QuantOptions> quant_requested(const po::variables_map& vm, const QuantArgs& args, bool fused,
                                            QuantFiles files);

}  // namespace ar
