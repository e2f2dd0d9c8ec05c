#include "cuda/mufu_sweep.h"

#include <stdexcept>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "cuda/detail/quant_row.cuh"
#include "cuda/ptx.cuh"

namespace ar::cuda {
namespace {

__global__ void mufu_kernel(MufuOp op, std::uint64_t first, std::uint64_t count, std::uint64_t stride,
                            std::uint32_t divisor, std::uint32_t* results) {
  const std::uint64_t step = std::uint64_t(gridDim.x) * blockDim.x;
  for (std::uint64_t i = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    const auto x = static_cast<std::uint32_t>((first + i) * stride);
    const float xf = __uint_as_float(x);
    float y = 0;
    switch (op) {
      case MufuOp::kRsqrt: y = ptx::rsqrt_approx_ftz_f32(xf); break;
      case MufuOp::kRsqrtNoFtz: y = ptx::rsqrt_approx_f32(xf); break;
      case MufuOp::kRcp: y = ptx::rcp_approx_ftz_f32(xf); break;
      case MufuOp::kDiv: y = ptx::div_approx_ftz_f32(xf, __uint_as_float(divisor)); break;
      case MufuOp::kDivHashed: y = ptx::div_approx_ftz_f32(__uint_as_float(mufu_hashed_dividend(x)), xf); break;
      case MufuOp::kE4m3: y = __uint_as_float(ptx::cvt_rn_satfinite_e4m3x2_f32(0.0f, xf) & 0xFFu); break;
      case MufuOp::kDivByE4m3Max: y = ptx::div_approx_ftz_f32(xf, 448.0f); break;
      case MufuOp::kE2m1: y = __uint_as_float(detail::e2m1_code(xf)); break;
    }
    results[i] = __float_as_uint(y);
  }
}

}  // namespace

MufuSweep::MufuSweep(int device, std::uint64_t chunk) : device_(device), chunk_(chunk) {
  detail::DeviceGuard guard(device_);
  cudaStream_t s = nullptr;
  AR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_ = s;
  try {
    AR_CUDA_CHECK(cudaMalloc(&device_results_, chunk_ * sizeof(std::uint32_t)));
    AR_CUDA_CHECK(cudaMallocHost(&host_results_, chunk_ * sizeof(std::uint32_t)));
  } catch (...) {
    if (device_results_) AR_CUDA_CHECK_NOTHROW(cudaFree(device_results_));
    AR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(s));
    throw;
  }
}

MufuSweep::~MufuSweep() {
  detail::DeviceGuard guard(device_);
  AR_CUDA_CHECK_NOTHROW(cudaFreeHost(host_results_));
  AR_CUDA_CHECK_NOTHROW(cudaFree(device_results_));
  AR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(static_cast<cudaStream_t>(stream_)));
}

std::span<const std::uint32_t> MufuSweep::run(MufuOp op, std::uint64_t first, std::uint64_t count, std::uint64_t stride,
                                              std::uint32_t divisor) {
  if (count > chunk_) throw std::invalid_argument("MufuSweep::run: more inputs than the buffers hold");
  if (count == 0) return {};
  detail::DeviceGuard guard(device_);
  const auto s = static_cast<cudaStream_t>(stream_);
  const std::uint64_t blocks = (count + 255) / 256;
  mufu_kernel<<<static_cast<unsigned>(blocks < 65536 ? blocks : 65536), 256, 0, s>>>(op, first, count, stride, divisor,
                                                                                     device_results_);
  AR_CUDA_CHECK(cudaGetLastError());
  AR_CUDA_CHECK(
      cudaMemcpyAsync(host_results_, device_results_, count * sizeof(std::uint32_t), cudaMemcpyDeviceToHost, s));
  AR_CUDA_CHECK(cudaStreamSynchronize(s));
  return {host_results_, count};
}

}  // namespace ar::cuda
