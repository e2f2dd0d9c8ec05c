// AR_CUDA_CHECK(expr): the one host error macro of the CUDA layer. It accepts a cudaError_t (runtime) or a
// CUresult (driver, reached through cudaGetDriverEntryPoint), clears the runtime's sticky last error and
// throws ar::CudaError with the code, its name and description, the expression text and file:line.
// AR_CUDA_CHECK_NOTHROW(expr) reports to stderr instead, for destructors.
#pragma once

#include <string>

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "cuda/error.h"

namespace ar::cuda::detail {

[[noreturn]] void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line);
[[noreturn]] void throw_cuda_error(CUresult e, const char* expr, const char* file, int line);
void report_cuda_error(cudaError_t e, const char* expr, const char* file, int line) noexcept;
void report_cuda_error(CUresult e, const char* expr, const char* file, int line) noexcept;

/// "CUDA_ERROR_NOT_PERMITTED (operation not permitted)", for messages that explain a refusal.
std::string describe_driver_result(CUresult e);

inline bool failed(cudaError_t e) { return e != cudaSuccess; }
inline bool failed(CUresult e) { return e != CUDA_SUCCESS; }

}  // namespace ar::cuda::detail

#define AR_CUDA_CHECK(expr)                                                                   \
  do {                                                                                        \
    const auto ar_cuda_check_result_ = (expr);                                                \
    if (::ar::cuda::detail::failed(ar_cuda_check_result_))                                    \
      ::ar::cuda::detail::throw_cuda_error(ar_cuda_check_result_, #expr, __FILE__, __LINE__); \
  } while (0)

#define AR_CUDA_CHECK_NOTHROW(expr)                                                            \
  do {                                                                                         \
    const auto ar_cuda_check_result_ = (expr);                                                 \
    if (::ar::cuda::detail::failed(ar_cuda_check_result_))                                     \
      ::ar::cuda::detail::report_cuda_error(ar_cuda_check_result_, #expr, __FILE__, __LINE__); \
  } while (0)
