// The timing resources of one GPU's stream in a timed region (start and stop events, the instantiated graph
// of a CUDA-graph replay), made current on their device and freed on every path. Used by the kernels'
// timing and by the NCCL baseline, so both are measured the same way.
#pragma once

#include <cuda_runtime_api.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"

namespace ar::cuda::detail {

struct StreamTimer {
  int device = 0;
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaGraphExec_t exec = nullptr;

  explicit StreamTimer(int d) : device(d) {
    DeviceGuard guard(device);
    AR_CUDA_CHECK(cudaEventCreate(&start));
    AR_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~StreamTimer() {
    DeviceGuard guard(device);
    if (exec) AR_CUDA_CHECK_NOTHROW(cudaGraphExecDestroy(exec));
    AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(start));
    AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(stop));
  }
  StreamTimer(const StreamTimer&) = delete;
  StreamTimer& operator=(const StreamTimer&) = delete;

  /// Milliseconds between the recorded start and stop (blocks until stop has completed).
  float elapsed_ms() const {
    DeviceGuard guard(device);
    AR_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    AR_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms;
  }
};

}  // namespace ar::cuda::detail
