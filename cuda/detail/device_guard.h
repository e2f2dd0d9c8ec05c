// Makes a device current for a scope and restores the previous one.
#pragma once

#include <cuda_runtime_api.h>

#include "cuda/detail/check.h"

namespace ar::cuda::detail {

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    AR_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) AR_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { AR_CUDA_CHECK_NOTHROW(cudaSetDevice(previous_)); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace ar::cuda::detail
