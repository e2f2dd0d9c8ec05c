// Loading an all-reduce input: a [W, N, D] .npy holding every rank's [N, D] shard, checked against the
// kernels' rules (world size, N, D multiple of a 16-byte pack) with messages that name the file.
#pragma once

#include <optional>
#include <string>

#include "reference/strategy.h"
#include "reference/tensor.h"

namespace ar {

struct RankInputs {
  HostTensor tensor;  ///< [W, N, D]
  ProblemShape shape;
};

/// Reads and validates `path`; throws UsageError naming the file and the problem.
RankInputs load_rank_inputs(const std::string& path, std::optional<DType> as_dtype);

}  // namespace ar
