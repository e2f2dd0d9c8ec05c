// HostTensor: a dense, C-ordered tensor of bf16 / fp16 / fp32 storage on the host, addressed by raw bits.
// All-reduce inputs are [W, N, D] (every rank's shard), outputs [N, D].
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "reference/dtype.h"

namespace ar {

/// The most bytes a HostTensor holds, and so the largest input (W x N x D x E bytes) validate_shape accepts:
/// 2^48 bytes (256 TiB), the whole virtual address space of a 48-bit x86-64 or AArch64 host, so no larger
/// tensor could be allocated anyway. It leaves a factor of 2^15 below INT64_MAX: code that validated a shape
/// may multiply its sizes by the world size and small constants (TWOSHOT's 2 x round_up(N, W) x D x E,
/// indices r x N x D + i) without checking again.
inline constexpr std::int64_t kMaxTensorBytes = std::int64_t{1} << 48;

class HostTensor {
 public:
  HostTensor() = default;
  /// Zero-filled tensor of the given shape. Throws std::invalid_argument naming the shape when a dimension
  /// is negative or the size overflows or exceeds kMaxTensorBytes, before anything is allocated.
  HostTensor(DType dtype, std::vector<std::int64_t> shape);
  /// A tensor whose contents the caller overwrites at once (skips the zero fill of large inputs).
  enum Uninitialized { kUninitialized };
  HostTensor(DType dtype, std::vector<std::int64_t> shape, Uninitialized);

  /// The same elements under another shape of as many elements (a [1, N, D] row block as [N, D], say).
  /// Throws std::invalid_argument when the counts differ.
  HostTensor reshaped(std::vector<std::int64_t> shape) const;

  DType dtype() const { return dtype_; }
  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::int64_t dim(std::size_t i) const { return shape_.at(i); }
  std::int64_t size() const { return static_cast<std::int64_t>(bytes_.size()) / dtype_bytes(dtype_); }
  std::span<std::byte> bytes() { return bytes_; }
  std::span<const std::byte> bytes() const { return bytes_; }

  /// Raw bits of element i (16-bit types in the low half).
  std::uint32_t bits(std::int64_t i) const {
    if (dtype_bytes(dtype_) == 2) {
      std::uint16_t v;
      std::memcpy(&v, bytes_.data() + 2 * i, 2);
      return v;
    }
    std::uint32_t v;
    std::memcpy(&v, bytes_.data() + 4 * i, 4);
    return v;
  }
  /// Raw bits of elements [first, first + count) (a row of an [N, D] tensor, say).
  std::vector<std::uint32_t> bits_range(std::int64_t first, std::int64_t count) const {
    std::vector<std::uint32_t> out(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) out[static_cast<std::size_t>(i)] = bits(first + i);
    return out;
  }
  void set_bits(std::int64_t i, std::uint32_t v) {
    if (dtype_bytes(dtype_) == 2) {
      const auto h = static_cast<std::uint16_t>(v);
      std::memcpy(bytes_.data() + 2 * i, &h, 2);
    } else {
      std::memcpy(bytes_.data() + 4 * i, &v, 4);
    }
  }

  bool operator==(const HostTensor& o) const { return dtype_ == o.dtype_ && shape_ == o.shape_ && bytes_ == o.bytes_; }

 private:
  DType dtype_ = DType::kFp32;
  std::vector<std::int64_t> shape_;
  // Default-initialised bytes (no zero fill unless asked); byte storage implicitly creates the uint16/uint32
  // objects viewed above.
  struct DefaultInitAllocator : std::allocator<std::byte> {
    template <class U>
    struct rebind {
      using other = DefaultInitAllocator;
    };
    template <class U>
    void construct(U* p) {
      ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
  };
  std::vector<std::byte, DefaultInitAllocator> bytes_;
};

}  // namespace ar
