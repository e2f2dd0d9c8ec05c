#include "reference/tensor.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace ar {

HostTensor::HostTensor(DType dtype, std::vector<std::int64_t> shape, Uninitialized)
    : dtype_(dtype), shape_(std::move(shape)) {
  std::int64_t elements = 1;
  for (std::int64_t d : shape_) {
    if (d < 0) throw std::invalid_argument("HostTensor: negative dimension");
    elements *= d;
  }
  bytes_.resize(static_cast<std::size_t>(elements * dtype_bytes(dtype_)));
}

HostTensor::HostTensor(DType dtype, std::vector<std::int64_t> shape)
    : HostTensor(dtype, std::move(shape), kUninitialized) {
  std::fill(bytes_.begin(), bytes_.end(), std::byte{0});
}

}  // namespace ar
