#include "cuda/error.h"

#include <cstdio>

#include <fmt/format.h>

#include "cuda/detail/check.h"
#include "cuda/detail/driver_api.h"

namespace ar {

CudaError::CudaError(int code, std::string name, std::string expression, std::string where, std::string detail)
    : std::runtime_error(fmt::format("{} failed with {} ({}): {} at {}", expression, name, code, detail, where)),
      code_(code),
      name_(std::move(name)),
      expression_(std::move(expression)),
      where_(std::move(where)) {}

namespace cuda::detail {
namespace {

std::string driver_name(CUresult e) {
  const char* name = nullptr;
  if (const DriverApi* api = driver_api_if_loaded();
      api && api->cuGetErrorName && api->cuGetErrorName(e, &name) == CUDA_SUCCESS && name)
    return name;
  return "CUresult";
}

std::string driver_text(CUresult e) {
  const char* text = nullptr;
  if (const DriverApi* api = driver_api_if_loaded();
      api && api->cuGetErrorString && api->cuGetErrorString(e, &text) == CUDA_SUCCESS && text)
    return text;
  return "driver error";
}

}  // namespace

std::string describe_driver_result(CUresult e) { return fmt::format("{} ({})", driver_name(e), driver_text(e)); }

void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line) {
  (void)cudaGetLastError();  // clear the sticky error so the next call does not report this one again
  throw CudaError(static_cast<int>(e), cudaGetErrorName(e), expr, fmt::format("{}:{}", file, line),
                  cudaGetErrorString(e));
}

void throw_cuda_error(CUresult e, const char* expr, const char* file, int line) {
  (void)cudaGetLastError();
  throw CudaError(static_cast<int>(e), driver_name(e), expr, fmt::format("{}:{}", file, line), driver_text(e));
}

void report_cuda_error(cudaError_t e, const char* expr, const char* file, int line) noexcept {
  (void)cudaGetLastError();
  std::fprintf(stderr, "warning: %s failed with %s (%d) at %s:%d\n", expr, cudaGetErrorName(e), static_cast<int>(e),
               file, line);
}

void report_cuda_error(CUresult e, const char* expr, const char* file, int line) noexcept {
  std::fprintf(stderr, "warning: %s failed with CUresult %d at %s:%d\n", expr, static_cast<int>(e), file, line);
}

}  // namespace cuda::detail
}  // namespace ar
