#include "cuda/detail/fill.h"

#include "cuda/detail/check.h"

namespace ar::cuda::detail {
namespace {

__global__ void fill_words_kernel(std::uint32_t* ptr, std::uint64_t words, std::uint32_t value) {
  const std::uint64_t stride = std::uint64_t(gridDim.x) * blockDim.x;
  for (std::uint64_t i = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < words; i += stride) ptr[i] = value;
}

}  // namespace

void fill_words(void* ptr, std::uint64_t words, std::uint32_t value, cudaStream_t stream) {
  if (words == 0) return;
  const std::uint64_t blocks = (words + 255) / 256;
  fill_words_kernel<<<static_cast<unsigned>(blocks < 4096 ? blocks : 4096), 256, 0, stream>>>(
      static_cast<std::uint32_t*>(ptr), words, value);
  AR_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ar::cuda::detail
