// The fused residual-add + RMSNorm on the command line (`reference` and `explain`): its options, the checks
// that refuse a bad combination before any file is read, and the residual and gamma files, read in the
// input's dtype and checked against its shape before any work starts.
#pragma once

#include <string>

#include "harness/commands/options.h"
#include "harness/commands/fused_inputs.h"

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

}  // namespace ar
