// Call sequences: the text form of "these all-reduce calls, in this order, on one workspace", shared by
// `mnnvl-ar sim --calls` and `mnnvl-ar run --calls`. It knows strategies and shapes, nothing about how the
// calls are executed.
//
// Grammar (whitespace around ',' and ':' is ignored; names are case-sensitive):
//
//   sequence := call ( ',' call )*
//   call     := strategy ( ':' param )*
//   strategy := 'oneshot' | 'twoshot' | 'auto'
//   param    := 'N=' count          tokens of this call
//             | 'D=' count          hidden size of this call
//             | 'dtype=' name       bf16 | fp16 | fp32 (and the aliases parse_dtype accepts)
//             | 'fused'             the fused residual-add + RMSNorm call (SPEC section 7) instead of the plain
//                                   all-reduce; the strategy (AUTO's rule included) is the same
//             | 'quant=' mode       fp8 | fp8-dynamic | nvfp4: the fused call with its quantised output too
//                                   (SPEC section 13; implies 'fused')
//             | 'layout=' name      swizzled | linear: NVFP4's block-scale layout (default swizzled)
//   count    := a decimal integer >= 1 that fits 64 bits, digits only (no sign, no suffix)
//
// A parameter may appear at most once per call; one left out takes the command's default (--tokens, --hidden,
// --dtype; a call without 'fused' is a plain all-reduce). Example:
// "oneshot:N=4,twoshot:N=64:D=256:fused,auto:N=11:dtype=fp32,oneshot:N=1:fused,auto:N=8:D=4096:quant=nvfp4".
// The world size belongs to the workspace, so it is not a per-call parameter.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "reference/fused_quant.h"
#include "reference/strategy.h"

namespace ar {

/// One call as written: its strategy and the parameters it sets.
struct CallSpec {
  Strategy strategy = Strategy::kAuto;
  std::optional<std::int64_t> tokens;
  std::optional<std::int64_t> hidden;
  std::optional<DType> dtype;
  bool fused = false;  ///< the fused residual-add + RMSNorm call
  std::optional<QuantMode> quant;     ///< its quantised output (sets `fused`)
  std::optional<ScaleLayout> layout;  ///< NVFP4's scale layout
  bool operator==(const CallSpec&) const = default;
};

/// What a call that does not set N, D or dtype gets.
struct CallDefaults {
  std::int64_t tokens = 1;
  std::int64_t hidden = 16;
  DType dtype = DType::kBf16;
};

/// A call with every parameter known: the requested strategy (AUTO kept) and its shape.
struct ResolvedCall {
  Strategy requested = Strategy::kAuto;
  ProblemShape shape;
  bool fused = false;  ///< the fused residual-add + RMSNorm call
  QuantMode quant = QuantMode::kNone;  ///< a fused call's quantised output
  ScaleLayout layout = ScaleLayout::kSwizzled128x4;
  /// ONESHOT or TWOSHOT: AUTO resolved by the 1 MiB rule.
  Strategy strategy() const { return resolve_strategy(requested, shape); }
};

/// A malformed sequence or an invalid call; what() names the call (1-based) and the problem.
class CallSequenceError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Parses the grammar above. Throws CallSequenceError.
std::vector<CallSpec> parse_call_sequence(std::string_view text);

/// Fills in defaults and checks every call's shape (validate_shape: the set, the pack, and W x N x D x E
/// within kMaxTensorBytes) at `world_size`. Throws CallSequenceError.
std::vector<ResolvedCall> resolve_calls(std::span<const CallSpec> calls, int world_size, const CallDefaults& defaults);

/// The text form of fully specified calls, which parse_call_sequence reads back to the same calls.
std::string format_call_sequence(std::span<const ResolvedCall> calls);

}  // namespace ar
