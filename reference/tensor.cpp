#include "reference/tensor.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "reference/checked_math.h"

namespace ar {

HostTensor::HostTensor(DType dtype, std::vector<std::int64_t> shape, Uninitialized)
    : dtype_(dtype), shape_(std::move(shape)) {
  // The size is checked before the resize: an unchecked product of (2, 2**59 + 1, 8) wraps to 32 bytes of
  // fp16, and every loop over the shape would then run far past them.
  const auto what = [&] {
    return fmt::format("a tensor of shape ({}) of {}", fmt::join(shape_, ", "), dtype_name(dtype_));
  };
  for (std::int64_t d : shape_)
    if (d < 0) throw std::invalid_argument(fmt::format("{} has a negative dimension", what()));
  std::vector<std::int64_t> factors = shape_;
  factors.push_back(dtype_bytes(dtype_));
  const std::optional<std::int64_t> bytes = checked_product(factors);
  if (!bytes) throw std::invalid_argument(fmt::format("{}: its size in bytes overflows 64 bits", what()));
  if (*bytes > kMaxTensorBytes)
    throw std::invalid_argument(fmt::format("{} needs {} bytes, more than the {} (2^48) a host tensor may hold", what(),
                                            *bytes, kMaxTensorBytes));
  bytes_.resize(static_cast<std::size_t>(*bytes));
}

HostTensor::HostTensor(DType dtype, std::vector<std::int64_t> shape)
    : HostTensor(dtype, std::move(shape), kUninitialized) {
  std::fill(bytes_.begin(), bytes_.end(), std::byte{0});
}

HostTensor HostTensor::reshaped(std::vector<std::int64_t> shape) const {
  HostTensor out(dtype_, std::move(shape), kUninitialized);
  if (out.bytes_.size() != bytes_.size())
    throw std::invalid_argument(fmt::format("a tensor of shape ({}) cannot be viewed as ({})", fmt::join(shape_, ", "),
                                            fmt::join(out.shape_, ", ")));
  std::copy(bytes_.begin(), bytes_.end(), out.bytes_.begin());
  return out;
}

}  // namespace ar
