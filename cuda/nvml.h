// What NVML (the NVIDIA management library) says about a GPU's NVLinks and its place in an NVLink fabric.
// libnvidia-ml.so.1 is loaded with dlopen at run time and never linked, with our own declarations of the few
// functions and structs used, so binaries start where there is no driver (CI) and report NVML as missing.
//
// Raw facts only: the harness turns them into words (harness/probe_report.h) and decisions
// (harness/handle_choice.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ar::cuda {

/// One NVLink of a GPU.
struct NvLinkState {
  int link = 0;
  bool active = false;
  std::optional<unsigned> version;          ///< NVLink generation
  std::optional<std::uint64_t> speed_mbps;  ///< per direction, MB/s (NVML_FI_DEV_NVLINK_GET_SPEED)
  std::string remote_pci_bus_id;            ///< what the link reaches (a GPU or an NVSwitch), if known
  /// Error counters since the driver loaded: data-link replays and recoveries, flit and data CRC errors.
  std::optional<std::uint64_t> replay, recovery, crc_flit, crc_data;
};

/// NVML's fabric facts (nvmlDeviceGetGpuFabricInfoV or nvmlDeviceGetGpuFabricInfo).
struct FabricFacts {
  bool queried = false;  ///< false: NVML or the function is missing; `error` says why
  std::string error;
  int state = -1;           ///< 0 not supported, 1 not started, 2 in progress, 3 completed
  int status = -1;          ///< nvmlReturn_t of the registration; meaningful once completed (0 = success)
  std::string status_text;  ///< nvmlErrorString(status)
  std::uint32_t clique_id = 0;
  std::array<std::uint8_t, 16> cluster_uuid{};
  std::optional<std::uint32_t> health_mask;    ///< v2 and later
  std::optional<std::uint8_t> health_summary;  ///< v3 and later
  int struct_version = 0;                      ///< which layout answered (1 = the unversioned call)
};

struct NvmlReport {
  bool loaded = false;  ///< NVML initialised and the device found
  std::string error;    ///< why not
  std::string driver_version;
  std::optional<int> link_count;   ///< NVML_FI_DEV_NVLINK_LINK_COUNT
  std::vector<NvLinkState> links;  ///< empty when the GPU has no NVLink (links_note says so)
  std::string links_note;
  FabricFacts fabric;
};

/// NVML's view of the GPU at `pci_bus_id` ("0000:1b:00.0"). Never throws: what cannot be learnt is said in
/// the report.
NvmlReport nvml_report(const std::string& pci_bus_id);

}  // namespace ar::cuda
