// The GPU side of `mnnvl-ar mufu --check`: the hardware's results of one MUFU operation (reference/
// mufu_sweep.h) over a run of inputs, in chunks that a device buffer holds, copied back for the host to
// compare with the model. Plain C++; callers need no CUDA headers.
#pragma once

#include <cstdint>
#include <span>

#include "reference/mufu_sweep.h"

namespace ar::cuda {

class MufuSweep {
 public:
  /// A device buffer and a pinned host buffer of `chunk` results each, on `device`. Throws CudaError.
  MufuSweep(int device, std::uint64_t chunk);
  ~MufuSweep();
  MufuSweep(const MufuSweep&) = delete;
  MufuSweep& operator=(const MufuSweep&) = delete;

  std::uint64_t chunk() const { return chunk_; }
  /// The hardware's result bits of `op` for the inputs (first + i) * stride, i < count (count <= chunk(),
  /// every input below 2^32); `divisor` is b's bits for MufuOp::kDiv. The view is valid until the next call.
  std::span<const std::uint32_t> run(MufuOp op, std::uint64_t first, std::uint64_t count, std::uint64_t stride,
                                     std::uint32_t divisor);

 private:
  int device_ = 0;
  std::uint64_t chunk_ = 0;
  std::uint32_t* device_results_ = nullptr;
  std::uint32_t* host_results_ = nullptr;
  void* stream_ = nullptr;  // cudaStream_t, kept out of this header
};

}  // namespace ar::cuda
