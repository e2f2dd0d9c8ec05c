#include "cuda/detail/driver_api.h"

#include <atomic>
#include <mutex>
#include <string>

#include <cuda_runtime_api.h>

#include "cuda/detail/check.h"

namespace ar::cuda::detail {
namespace {

std::atomic<const DriverApi*> g_loaded{nullptr};

template <class Fn>
void load(const char* symbol, Fn& fn) {
  void* ptr = nullptr;
  cudaDriverEntryPointQueryResult found{};
  // 12000: the ABI version of these functions as this code calls them (all unchanged since CUDA 10.2/11).
  AR_CUDA_CHECK(cudaGetDriverEntryPointByVersion(symbol, &ptr, 12000, cudaEnableDefault, &found));
  if (found != cudaDriverEntryPointSuccess || ptr == nullptr)
    throw CudaError(static_cast<int>(found), "cudaDriverEntryPointSymbolNotFound",
                    std::string("cudaGetDriverEntryPointByVersion(") + symbol + ")", __FILE__,
                    "the installed CUDA driver does not provide this function");
  fn = reinterpret_cast<Fn>(ptr);
}

}  // namespace

const DriverApi& driver_api() {
  static std::once_flag once;
  static DriverApi api;
  std::call_once(once, [] {
    load("cuGetErrorName", api.cuGetErrorName);
    load("cuGetErrorString", api.cuGetErrorString);
    load("cuDeviceGet", api.cuDeviceGet);
    load("cuDeviceGetAttribute", api.cuDeviceGetAttribute);
    load("cuMemCreate", api.cuMemCreate);
    load("cuMemRelease", api.cuMemRelease);
    load("cuMemAddressReserve", api.cuMemAddressReserve);
    load("cuMemAddressFree", api.cuMemAddressFree);
    load("cuMemMap", api.cuMemMap);
    load("cuMemUnmap", api.cuMemUnmap);
    load("cuMemSetAccess", api.cuMemSetAccess);
    load("cuMemGetAllocationGranularity", api.cuMemGetAllocationGranularity);
    load("cuMemExportToShareableHandle", api.cuMemExportToShareableHandle);
    load("cuMemImportFromShareableHandle", api.cuMemImportFromShareableHandle);
    g_loaded.store(&api);
  });
  return api;
}

const DriverApi* driver_api_if_loaded() noexcept { return g_loaded.load(); }

}  // namespace ar::cuda::detail
