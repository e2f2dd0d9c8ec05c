#include "reference/tensor.h"

#include <numeric>
#include <stdexcept>

namespace ar {

HostTensor::HostTensor(DType dtype, std::vector<std::int64_t> shape) : dtype_(dtype), shape_(std::move(shape)) {
  std::int64_t elements = 1;
  for (std::int64_t d : shape_) {
    if (d < 0) throw std::invalid_argument("HostTensor: negative dimension");
    elements *= d;
  }
  bytes_.assign(static_cast<std::size_t>(elements * dtype_bytes(dtype_)), std::byte{0});
}

}  // namespace ar
