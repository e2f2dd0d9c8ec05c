// What GPU this process sees. Plain C++; callers need no CUDA headers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ar::cuda {

struct DeviceInfo {
  int ordinal = 0;
  int device_count = 0;            ///< CUDA devices visible to the process
  std::string name;                ///< "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;  ///< compute capability
  int sm_count = 0;
  std::int64_t memory_bytes = 0;
  std::int64_t l2_bytes = 0;
  int clock_mhz = 0;  ///< peak SM clock
  int memory_clock_mhz = 0;
  int driver_version = 0;  ///< e.g. 13000 (CUDA version the driver supports)
  int runtime_version = 0;
  std::string driver_string;  ///< "13.0"
  std::string kernel_driver;  ///< the kernel module version, e.g. "580.159.04" (empty if unknown)
  std::string pci_bus_id;     ///< "0000:1b:00.0"
  bool vmm_supported = false;
  bool posix_handles_supported = false;   ///< CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED
  bool fabric_handles_supported = false;  ///< CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED (an attribute:
                                          ///< creating one may still be refused, see cuda/fabric.h)
  bool multicast_supported = false;       ///< only reported; this project never uses multicast
};

/// Why no CUDA work can run here (no driver, no device, an error), or nullopt when device 0 is usable.
std::optional<std::string> unavailable_reason();

/// Number of CUDA devices (0 when there is no driver or device; never throws).
int device_count() noexcept;

/// Facts about `ordinal`. Throws CudaError.
DeviceInfo device_info(int ordinal = 0);

}  // namespace ar::cuda
