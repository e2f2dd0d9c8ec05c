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

/// Element [token, col]'s path through the quantisation `quant` after the norm, under the chosen strategy:
/// static FP8 (the value, the reciprocal of the scale, the product, the e4m3 code), dynamic FP8 (which values
/// the strategy quantises, the token's absmax, its scale and the floor, the quotient, the clamp, the code) or
/// NVFP4 (the block, its amax, the scale's input, the block scale's code and value, the element scale, the
/// product, the e2m1 code, its nibble and the block scale's byte in the layout), each step one of the model's
/// operations; then the code the other strategy gives. Throws UsageError as fused_quant_reference does.
void print_quant_explanation(std::ostream& out, const std::string& input_path, const RankInputs& in,
                             const FusedInputs& fused, const QuantOptions& quant, std::int64_t token, std::int64_t col);

}  // namespace ar
