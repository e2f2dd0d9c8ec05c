#include "harness/io/rank_inputs.h"

#include <fmt/format.h>

#include "harness/io/exit_codes.h"
#include "harness/io/npy.h"
#include "reference/all_reduce.h"

namespace ar {

RankInputs load_rank_inputs(const std::string& path, std::optional<DType> as_dtype) {
  RankInputs in{read_npy(path, as_dtype), {}};
  if (in.tensor.shape().size() != 3)
    throw UsageError(
        fmt::format("'{}' has {} dimensions; an all-reduce input is 3-D [W, N, D]: every rank's "
                    "[N, D] shard stacked along the first axis",
                    path, in.tensor.shape().size()));
  in.shape = shape_of_input(in.tensor);
  if (auto why = validate_shape(in.shape)) throw UsageError(fmt::format("'{}': {}", path, *why));
  return in;
}

}  // namespace ar
