#include "python/src/bits.h"

#include <cstring>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/io/exit_codes.h"
#include "reference/all_reduce.h"

namespace ar::python {

HostTensor tensor_of(const BitsIn& array, DType t, const char* what) {
  const int bits = 8 * dtype_bytes(t);
  const nb::dlpack::dtype d = array.dtype();
  if (d.code != static_cast<std::uint8_t>(nb::dlpack::dtype_code::UInt) || d.bits != bits || d.lanes != 1)
    throw UsageError(fmt::format("{}: the model takes {} as raw uint{} words, not an array of {}-bit dtype code {}",
                                 what, dtype_name(t), bits, d.bits, d.code));
  std::vector<std::int64_t> shape(array.ndim());
  for (std::size_t i = 0; i < array.ndim(); ++i) shape[i] = static_cast<std::int64_t>(array.shape(i));
  HostTensor tensor(t, shape, HostTensor::kUninitialized);
  if (array.nbytes() != tensor.bytes().size())
    throw UsageError(fmt::format("{}: {} bytes for shape ({})", what, array.nbytes(), fmt::join(shape, ", ")));
  if (array.nbytes() != 0) std::memcpy(tensor.bytes().data(), array.data(), array.nbytes());
  return tensor;
}

RankInputs rank_inputs(const BitsIn& x, DType t) {
  RankInputs in;
  in.tensor = tensor_of(x, t, "x");
  in.shape = shape_of_input(in.tensor);
  if (auto why = validate_shape(in.shape)) throw UsageError(fmt::format("x: {}", *why));
  return in;
}

BitsOut array_of(HostTensor tensor) {
  auto* owned = new HostTensor(std::move(tensor));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<HostTensor*>(p); });
  std::vector<std::size_t> shape(owned->shape().begin(), owned->shape().end());
  const nb::dlpack::dtype d =
      dtype_bytes(owned->dtype()) == 2 ? nb::dtype<std::uint16_t>() : nb::dtype<std::uint32_t>();
  return BitsOut(owned->bytes().data(), shape.size(), shape.data(), owner, nullptr, d);
}

ByteArray bytes_of(const BitsIn& array, const char* what) {
  const nb::dlpack::dtype d = array.dtype();
  if (d.code != static_cast<std::uint8_t>(nb::dlpack::dtype_code::UInt) || d.bits != 8 || d.lanes != 1)
    throw UsageError(
        fmt::format("{}: the model takes bytes (uint8), not an array of {}-bit dtype code {}", what, d.bits, d.code));
  ByteArray bytes;
  for (std::size_t i = 0; i < array.ndim(); ++i) bytes.shape.push_back(static_cast<std::int64_t>(array.shape(i)));
  bytes.bytes.resize(array.nbytes());
  if (array.nbytes() != 0) std::memcpy(bytes.bytes.data(), array.data(), array.nbytes());
  return bytes;
}

BitsOut array_of_bytes(std::vector<std::uint8_t> bytes, const std::vector<std::int64_t>& shape) {
  auto* owned = new std::vector<std::uint8_t>(std::move(bytes));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<std::uint8_t>*>(p); });
  std::vector<std::size_t> extent(shape.begin(), shape.end());
  return BitsOut(owned->data(), extent.size(), extent.data(), owner, nullptr, nb::dtype<std::uint8_t>());
}

}  // namespace ar::python
