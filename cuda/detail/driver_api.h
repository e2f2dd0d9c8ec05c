// The CUDA driver functions the workspace needs (virtual memory management), reached through
// cudaGetDriverEntryPointByVersion rather than linked: binaries then start on machines without a driver
// (CI), where they report "no CUDA device" instead of failing to load libcuda.
#pragma once

#include <cuda.h>

namespace ar::cuda::detail {

struct DriverApi {
  decltype(&::cuGetErrorName) cuGetErrorName = nullptr;
  decltype(&::cuGetErrorString) cuGetErrorString = nullptr;
  decltype(&::cuDeviceGet) cuDeviceGet = nullptr;
  decltype(&::cuDeviceGetAttribute) cuDeviceGetAttribute = nullptr;
  decltype(&::cuMemCreate) cuMemCreate = nullptr;
  decltype(&::cuMemRelease) cuMemRelease = nullptr;
  decltype(&::cuMemAddressReserve) cuMemAddressReserve = nullptr;
  decltype(&::cuMemAddressFree) cuMemAddressFree = nullptr;
  decltype(&::cuMemMap) cuMemMap = nullptr;
  decltype(&::cuMemUnmap) cuMemUnmap = nullptr;
  decltype(&::cuMemSetAccess) cuMemSetAccess = nullptr;
  decltype(&::cuMemGetAllocationGranularity) cuMemGetAllocationGranularity = nullptr;
  decltype(&::cuMemExportToShareableHandle) cuMemExportToShareableHandle = nullptr;
  decltype(&::cuMemImportFromShareableHandle) cuMemImportFromShareableHandle = nullptr;
};

/// Loads the entry points once (thread-safe); throws CudaError if the driver lacks one.
const DriverApi& driver_api();
/// The table if driver_api() has succeeded before, else nullptr (for error messages).
const DriverApi* driver_api_if_loaded() noexcept;

/// The properties of a pinned allocation in `device`'s memory, exportable as `handle_type`: the workspace's
/// buffers, and the trial allocation that tells whether fabric handles work (cuda/fabric.h).
inline CUmemAllocationProp allocation_prop(int device, CUmemAllocationHandleType handle_type) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  prop.requestedHandleTypes = handle_type;
  return prop;
}

}  // namespace ar::cuda::detail
