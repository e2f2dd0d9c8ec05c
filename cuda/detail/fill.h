// A 32-bit fill of device memory (cuMemsetD32 without linking the driver library).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace ar::cuda::detail {

/// Enqueues `words` stores of `value` from `ptr` (4-byte aligned) on `stream`.
void fill_words(void* ptr, std::uint64_t words, std::uint32_t value, cudaStream_t stream);

}  // namespace ar::cuda::detail
