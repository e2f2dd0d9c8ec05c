// `mnnvl-ar explain` with --residual and --gamma: one element of the fused residual-add + RMSNorm, step by
// step under the chosen strategy, then under the other one, and where the two part.
#pragma once

#include <iosfwd>
#include <string>

#include "harness/commands/fused_inputs.h"

namespace ar {

/// Prints the explanation of element [token, col] (checked by the caller to lie in the input) and returns the
/// chosen strategy's. Throws UsageError when FlashInfer makes no launch for the chosen strategy; the other
/// strategy's refusal is printed instead.
FusedElementExplanation print_fused_explanation(std::ostream& out, const std::string& input_path, const RankInputs& in,
                             const FusedInputs& fused, std::int64_t token, std::int64_t col);

}  // namespace ar
