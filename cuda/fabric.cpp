#include "cuda/fabric.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <cuda.h>
#include <unistd.h>

#include "cuda/detail/check.h"
#include "cuda/detail/driver_api.h"

namespace ar::cuda {

std::optional<std::string> try_fabric_allocation(int device) {
  try {
    const detail::DriverApi& api = detail::driver_api();
    const CUmemAllocationProp prop = detail::allocation_prop(device, CU_MEM_HANDLE_TYPE_FABRIC);
    std::size_t granularity = 0;
    if (const CUresult r = api.cuMemGetAllocationGranularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
        r != CUDA_SUCCESS)
      return "cuMemGetAllocationGranularity(FABRIC): " + detail::describe_driver_result(r);
    CUmemGenericAllocationHandle handle = 0;
    if (const CUresult r = api.cuMemCreate(&handle, granularity, &prop, 0); r != CUDA_SUCCESS)
      return "cuMemCreate(FABRIC): " + detail::describe_driver_result(r);
    AR_CUDA_CHECK_NOTHROW(api.cuMemRelease(handle));
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
}

ImexChannels imex_channels() {
  namespace fs = std::filesystem;
  ImexChannels c;
  const fs::path dir = "/dev/nvidia-caps-imex-channels";
  std::error_code ec;
  c.directory = fs::is_directory(dir, ec);
  if (c.directory) {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("channel", 0) == 0 && ::access(entry.path().c_str(), R_OK | W_OK) == 0) c.channels.push_back(name);
    }
    std::sort(c.channels.begin(), c.channels.end());
  }
  std::ifstream devices("/proc/devices");
  std::string line;
  while (std::getline(devices, line))
    if (line.find("nvidia-caps-imex-channels") != std::string::npos) c.driver_registered = true;
  return c;
}

}  // namespace ar::cuda
