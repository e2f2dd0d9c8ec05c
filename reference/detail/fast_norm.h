// The fast engine of reference_fused_rms_norm. Internal: callers use ar::reference_fused_rms_norm with
// FusedOptions::engine = Engine::kFast.
#pragma once

#include "reference/fused_rms_norm.h"

namespace ar::detail {

/// What fused_rms_norm_row computes on every row of `all_reduced` and `residual` ([N, D]) with `gamma`
/// ([D]), all of the launch's dtype, written into `normalized` and `residual_out` ([N, D]), each row's scale
/// into `row_scales` ([N]).
void fast_fused_rows(const NormLaunch& launch, const NormArithmetic& arithmetic, const HostTensor& all_reduced,
                     const HostTensor& residual, const HostTensor& gamma, HostTensor& normalized,
                     HostTensor& residual_out, std::span<std::uint32_t> row_scales);

}  // namespace ar::detail
