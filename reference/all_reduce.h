// The reference all-reduce of a whole tensor: every rank's [N, D] shard in, the [N, D] sum out, exactly as
// FlashInfer's kernels compute it for a strategy and profile. Two engines compute the same bits: the scalar
// model (reduce_element per element, the definition) and a fast host fold (SIMD fp32 with the FPU set to
// FTZ/DAZ, canonical NaN once at the end) that the tests prove equal to it.
#pragma once

#include "reference/reduction_order.h"
#include "reference/tensor.h"

namespace ar {

enum class Engine : std::uint8_t { kScalar, kFast };

/// Folds `world` contiguous planes of `count` elements each (plane r = rank r) into `out` (`count`
/// elements) in `order`. Storage is T's (uint16 for bf16/fp16, uint32 for fp32).
void fold_planes(const std::byte* planes, int world, std::int64_t count, DType t, const ReductionOrder& order,
                 std::byte* out, Engine engine = Engine::kFast);

/// `input` is [W, N, D]; returns [N, D]. AUTO is resolved by the 1 MiB rule. Throws std::invalid_argument
/// with a message naming the problem for an unsupported shape.
HostTensor reference_all_reduce(const HostTensor& input, Strategy strategy, Profile profile,
                                Engine engine = Engine::kFast);

/// The ProblemShape of a [W, N, D] input tensor. Throws std::invalid_argument when it is not 3-D or W is
/// above the largest world size (it would not fit the int).
ProblemShape shape_of_input(const HostTensor& input);

}  // namespace ar
