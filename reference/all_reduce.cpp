#include "reference/all_reduce.h"

#include <cstring>
#include <stdexcept>
#include <vector>

#include "reference/detail/fast_fold.h"
#include "reference/fold.h"

namespace ar {

void fold_planes(const std::byte* planes, int world, std::int64_t count, DType t, const ReductionOrder& order,
                 std::byte* out, Engine engine) {
  if (engine == Engine::kFast && detail::fast_fold_planes(planes, world, count, t, order, out)) return;
  const int e = dtype_bytes(t);
  std::vector<std::uint32_t> column(world);
  for (std::int64_t i = 0; i < count; ++i) {
    for (int r = 0; r < world; ++r) {
      std::uint32_t v = 0;
      std::memcpy(&v, planes + (r * count + i) * e, e);  // little-endian: 16-bit values land in the low half
      column[r] = v;
    }
    const std::uint32_t result = reduce_element(column, t, order);
    std::memcpy(out + i * e, &result, e);
  }
}

ProblemShape shape_of_input(const HostTensor& input) {
  if (input.shape().size() != 3)
    throw std::invalid_argument("the input must be 3-D [W, N, D] (every rank's [N, D] shard), got " +
                                std::to_string(input.shape().size()) + "-D");
  return {static_cast<int>(input.dim(0)), input.dim(1), input.dim(2), input.dtype()};
}

HostTensor reference_all_reduce(const HostTensor& input, Strategy strategy, Profile profile, Engine engine) {
  const ProblemShape shape = shape_of_input(input);
  if (auto why = validate_shape(shape)) throw std::invalid_argument(*why);
  const ReductionOrder order = reduction_order(resolve_strategy(strategy, shape), profile, shape.world_size);
  HostTensor out(shape.dtype, {shape.tokens, shape.hidden});
  fold_planes(input.bytes().data(), shape.world_size, shape.elements_per_rank(), shape.dtype, order,
              out.bytes().data(), engine);
  return out;
}

}  // namespace ar
