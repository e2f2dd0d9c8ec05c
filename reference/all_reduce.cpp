#include "reference/all_reduce.h"

#include <fmt/format.h>
#include <Eigen/Core>
#include <stdexcept>
#include <vector>

#include "reference/detail/fast_fold.h"
#include "reference/fold.h"

namespace ar {
namespace {

// The scalar engine: the [W, count] planes seen as a row-major W x count matrix, one column per output
// element, each reduced by the model.
template <class Word>
void scalar_fold(const std::byte* planes, int world, std::int64_t count, DType t, const ReductionOrder& order,
                 std::byte* out) {
  using Planes = Eigen::Map<const Eigen::Matrix<Word, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  const Planes ranks(reinterpret_cast<const Word*>(planes), world, count);
  Word* result = reinterpret_cast<Word*>(out);
  std::vector<std::uint32_t> column(world);
  for (std::int64_t i = 0; i < count; ++i) {
    for (int r = 0; r < world; ++r) column[r] = ranks(r, i);
    result[i] = static_cast<Word>(reduce_element(column, t, order));
  }
}

}  // namespace

void fold_planes(const std::byte* planes, int world, std::int64_t count, DType t, const ReductionOrder& order,
                 std::byte* out, Engine engine) {
  if (engine == Engine::kFast && detail::fast_fold_planes(planes, world, count, t, order, out)) return;
  if (dtype_bytes(t) == 2)
    scalar_fold<std::uint16_t>(planes, world, count, t, order, out);
  else
    scalar_fold<std::uint32_t>(planes, world, count, t, order, out);
}

ProblemShape shape_of_input(const HostTensor& input) {
  if (input.shape().size() != 3)
    throw std::invalid_argument("the input must be 3-D [W, N, D] (every rank's [N, D] shard), got " +
                                std::to_string(input.shape().size()) + "-D");
  // W is an int: a first dimension such as 2**32 + 2 would otherwise pass for W = 2.
  if (input.dim(0) < 0 || input.dim(0) > kMaxWorldSize)
    throw std::invalid_argument(fmt::format("world size {} (the first dimension) is not supported (supported: {})",
                                            input.dim(0), world_sizes_text()));
  return {static_cast<int>(input.dim(0)), input.dim(1), input.dim(2), input.dtype()};
}

HostTensor reference_all_reduce(const HostTensor& input, Strategy strategy, Profile profile, Engine engine) {
  const ProblemShape shape = shape_of_input(input);
  if (auto why = validate_shape(shape)) throw std::invalid_argument(*why);
  const ReductionOrder order = reduction_order(resolve_strategy(strategy, shape), profile, shape.world_size);
  HostTensor out(shape.dtype, {shape.tokens, shape.hidden});
  fold_planes(input.bytes().data(), shape.world_size, shape.elements_per_rank(), shape.dtype, order, out.bytes().data(),
              engine);
  return out;
}

}  // namespace ar
