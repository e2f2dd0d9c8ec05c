// The fast host engine of fold_planes. Internal: callers use ar::fold_planes with Engine::kFast.
#pragma once

#include <cstddef>
#include <cstdint>

#include "reference/reduction_order.h"

namespace ar::detail {

/// Computes what the scalar model computes, with vectorisable fp32 adds under a host FPU state set to
/// round-to-nearest with FTZ+DAZ (or neither, for the IEEE profile). Returns false where the host has no
/// such FPU control (then the caller uses the scalar model).
bool fast_fold_planes(const std::byte* planes, int world, std::int64_t count, DType t, const ReductionOrder& order,
                      std::byte* out);

}  // namespace ar::detail
