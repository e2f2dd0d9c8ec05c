#include "harness/io/rank_inputs.h"

#include <stdexcept>

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
  // read_npy has checked the size of the data against the header; the shape must still be one the kernels
  // take (W in the set, D in packs), within the size every later product of N, D and W relies on.
  try {
    in.shape = shape_of_input(in.tensor);
  } catch (const std::invalid_argument& e) {
    throw UsageError(fmt::format("'{}': {}", path, e.what()));
  }
  if (auto why = validate_shape(in.shape)) throw UsageError(fmt::format("'{}': {}", path, *why));
  return in;
}

}  // namespace ar
