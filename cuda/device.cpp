#include "cuda/device.h"

#include <fstream>
#include <regex>

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "cuda/detail/check.h"
#include "cuda/detail/driver_api.h"

namespace ar::cuda {
namespace {

/// "580.159.04" from /proc/driver/nvidia/version on Linux; empty elsewhere.
std::string kernel_module_version() {
  std::ifstream in("/proc/driver/nvidia/version");
  std::string line;
  if (!std::getline(in, line)) return {};
  std::smatch m;
  if (std::regex_search(line, m, std::regex(R"((\d+\.\d+(\.\d+)?))"))) return m[1];
  return {};
}

}  // namespace

std::optional<std::string> unavailable_reason() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return fmt::format("no usable CUDA device: cudaGetDeviceCount returned {} ({})", cudaGetErrorName(e),
                       cudaGetErrorString(e));
  }
  if (count == 0) return std::string("no CUDA device is visible to this process");
  return std::nullopt;
}

int device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

DeviceInfo device_info(int ordinal) {
  DeviceInfo d;
  d.ordinal = ordinal;
  AR_CUDA_CHECK(cudaGetDeviceCount(&d.device_count));
  cudaDeviceProp p{};
  AR_CUDA_CHECK(cudaGetDeviceProperties(&p, ordinal));
  d.name = p.name;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.sm_count = p.multiProcessorCount;
  d.memory_bytes = static_cast<std::int64_t>(p.totalGlobalMem);
  d.l2_bytes = p.l2CacheSize;
  char bus[32] = {};
  AR_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof(bus), ordinal));
  d.pci_bus_id = bus;
  int khz = 0;
  AR_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, ordinal));
  d.clock_mhz = khz / 1000;
  AR_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, ordinal));
  d.memory_clock_mhz = khz / 1000;
  AR_CUDA_CHECK(cudaDriverGetVersion(&d.driver_version));
  AR_CUDA_CHECK(cudaRuntimeGetVersion(&d.runtime_version));
  d.kernel_driver = kernel_module_version();
  d.driver_string = fmt::format("{}.{}", d.driver_version / 1000, (d.driver_version % 1000) / 10);
  const detail::DriverApi& api = detail::driver_api();
  CUdevice dev{};
  AR_CUDA_CHECK(api.cuDeviceGet(&dev, ordinal));
  int flag = 0;
  AR_CUDA_CHECK(api.cuDeviceGetAttribute(&flag, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev));
  d.vmm_supported = flag != 0;
  AR_CUDA_CHECK(api.cuDeviceGetAttribute(&flag, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, dev));
  d.posix_handles_supported = flag != 0;
  AR_CUDA_CHECK(api.cuDeviceGetAttribute(&flag, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED, dev));
  d.fabric_handles_supported = flag != 0;
  // Only a query of the attribute; no multicast object is ever created.
  AR_CUDA_CHECK(api.cuDeviceGetAttribute(&flag, CU_DEVICE_ATTRIBUTE_MULTICAST_SUPPORTED, dev));
  d.multicast_supported = flag != 0;
  return d;
}

}  // namespace ar::cuda
