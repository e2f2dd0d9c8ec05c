#include "cuda/nvml.h"

#include <cstring>
#include <mutex>

#include <dlfcn.h>
#include <fmt/format.h>

namespace ar::cuda {
namespace {

// Our own declarations of the NVML ABI (nvml.h is not needed to build). Layouts as the public header has them.
using NvmlReturn = int;
using NvmlDevice = void*;
constexpr NvmlReturn kSuccess = 0;
constexpr NvmlReturn kInvalidArgument = 2;
constexpr NvmlReturn kNotSupported = 3;
constexpr NvmlReturn kArgumentVersionMismatch = 25;
constexpr int kMaxLinks = 18;              // NVML_NVLINK_MAX_LINKS
constexpr unsigned kFieldLinkCount = 91;   // NVML_FI_DEV_NVLINK_LINK_COUNT
constexpr unsigned kFieldLinkSpeed = 164;  // NVML_FI_DEV_NVLINK_GET_SPEED (scopeId = link), MB/s

struct PciInfo {
  char bus_id_legacy[16];
  unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
  char bus_id[32];
};
static_assert(sizeof(PciInfo) == 68);

union FieldValueData {
  double d;
  unsigned ui;
  unsigned long ul;
  unsigned long long ull;
  long long sll;
  int si;
  unsigned short us;
};
struct FieldValue {
  unsigned field_id;
  unsigned scope_id;
  long long timestamp;
  long long latency_usec;
  unsigned value_type;  // 0 double, 1 uint, 2 ulong, 3 ulonglong, 4 slonglong, 5 sint, 6 ushort
  NvmlReturn nvml_return;
  FieldValueData value;
};
static_assert(sizeof(FieldValue) == 40);

struct FabricInfoV1 {  // nvmlGpuFabricInfo_t
  unsigned char cluster_uuid[16];
  NvmlReturn status;
  unsigned clique_id;
  unsigned char state;
};
struct FabricInfoV2 {  // nvmlGpuFabricInfo_v2_t
  unsigned version;
  unsigned char cluster_uuid[16];
  NvmlReturn status;
  unsigned clique_id;
  unsigned char state;
  unsigned health_mask;
};
struct FabricInfoV3 {  // nvmlGpuFabricInfo_v3_t (= nvmlGpuFabricInfoV_t)
  unsigned version;
  unsigned char cluster_uuid[16];
  NvmlReturn status;
  unsigned clique_id;
  unsigned char state;
  unsigned health_mask;
  unsigned char health_summary;
};
static_assert(sizeof(FabricInfoV2) == 0x24 && sizeof(FabricInfoV3) == 0x28);
// NVML_STRUCT_VERSION(GpuFabricInfo, v) = sizeof(struct) | v << 24.
constexpr unsigned kFabricInfoV2 = sizeof(FabricInfoV2) | (2u << 24);
constexpr unsigned kFabricInfoV3 = sizeof(FabricInfoV3) | (3u << 24);

struct Api {
  NvmlReturn (*init)() = nullptr;
  const char* (*error_string)(NvmlReturn) = nullptr;
  NvmlReturn (*system_driver_version)(char*, unsigned) = nullptr;
  NvmlReturn (*handle_by_pci)(const char*, NvmlDevice*) = nullptr;
  NvmlReturn (*link_state)(NvmlDevice, unsigned, unsigned*) = nullptr;
  NvmlReturn (*link_version)(NvmlDevice, unsigned, unsigned*) = nullptr;
  NvmlReturn (*link_error_counter)(NvmlDevice, unsigned, unsigned, unsigned long long*) = nullptr;
  NvmlReturn (*link_remote_pci)(NvmlDevice, unsigned, PciInfo*) = nullptr;
  NvmlReturn (*field_values)(NvmlDevice, int, FieldValue*) = nullptr;
  NvmlReturn (*fabric_info_v)(NvmlDevice, void*) = nullptr;
  NvmlReturn (*fabric_info)(NvmlDevice, FabricInfoV1*) = nullptr;
  std::string error;  // why NVML cannot be used (empty when it can)
};

template <class Fn>
void find(void* lib, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(::dlsym(lib, name));
}

const Api& api() {
  static Api a;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* why = ::dlerror();
      a.error = fmt::format("libnvidia-ml.so.1 could not be loaded ({})", why ? why : "not found");
      return;
    }
    find(lib, "nvmlInit_v2", a.init);
    find(lib, "nvmlErrorString", a.error_string);
    find(lib, "nvmlSystemGetDriverVersion", a.system_driver_version);
    find(lib, "nvmlDeviceGetHandleByPciBusId_v2", a.handle_by_pci);
    find(lib, "nvmlDeviceGetNvLinkState", a.link_state);
    find(lib, "nvmlDeviceGetNvLinkVersion", a.link_version);
    find(lib, "nvmlDeviceGetNvLinkErrorCounter", a.link_error_counter);
    find(lib, "nvmlDeviceGetNvLinkRemotePciInfo_v2", a.link_remote_pci);
    find(lib, "nvmlDeviceGetFieldValues", a.field_values);
    find(lib, "nvmlDeviceGetGpuFabricInfoV", a.fabric_info_v);
    find(lib, "nvmlDeviceGetGpuFabricInfo", a.fabric_info);
    if (!a.init || !a.error_string || !a.handle_by_pci) {
      a.error = "libnvidia-ml.so.1 lacks nvmlInit_v2 or nvmlDeviceGetHandleByPciBusId_v2 (too old)";
      return;
    }
    // Initialised once for the life of the process; NVML reference-counts nvmlInit, and nothing here needs
    // it shut down before exit.
    if (const NvmlReturn r = a.init(); r != kSuccess) a.error = fmt::format("nvmlInit failed: {}", a.error_string(r));
  });
  return a;
}

std::string text(const Api& a, NvmlReturn r) { return a.error_string ? a.error_string(r) : fmt::format("error {}", r); }

std::optional<std::uint64_t> field_as_u64(const FieldValue& f) {
  if (f.nvml_return != kSuccess) return std::nullopt;
  switch (f.value_type) {
    case 1: return f.value.ui;
    case 2: return f.value.ul;
    case 3: return f.value.ull;
    case 4: return f.value.sll < 0 ? std::nullopt : std::optional<std::uint64_t>(f.value.sll);
    case 5: return f.value.si < 0 ? std::nullopt : std::optional<std::uint64_t>(f.value.si);
    case 6: return f.value.us;
    default: return std::nullopt;
  }
}

std::optional<std::uint64_t> field(const Api& a, NvmlDevice dev, unsigned id, unsigned scope) {
  if (!a.field_values) return std::nullopt;
  FieldValue f{};
  f.field_id = id;
  f.scope_id = scope;
  if (a.field_values(dev, 1, &f) != kSuccess) return std::nullopt;
  return field_as_u64(f);
}

FabricFacts fabric_facts(const Api& a, NvmlDevice dev) {
  FabricFacts f;
  const auto fill = [&f](const unsigned char* uuid, NvmlReturn status, unsigned clique, unsigned char state) {
    f.queried = true;
    std::memcpy(f.cluster_uuid.data(), uuid, 16);
    f.status = status;
    f.clique_id = clique;
    f.state = state;
  };
  // The versioned query of one struct version (`info` value-initialised); v3 adds the health summary.
  const auto query_versioned = [&](auto info, unsigned version, int struct_version) {
    info.version = version;
    const NvmlReturn r = a.fabric_info_v(dev, &info);
    if (r == kSuccess) {
      fill(info.cluster_uuid, info.status, info.clique_id, info.state);
      f.health_mask = info.health_mask;
      if constexpr (requires { info.health_summary; }) f.health_summary = info.health_summary;
      f.struct_version = struct_version;
    }
    return r;
  };
  if (a.fabric_info_v) {
    NvmlReturn r = query_versioned(FabricInfoV3{}, kFabricInfoV3, 3);
    // A driver that knows only v2.
    if (r == kArgumentVersionMismatch) r = query_versioned(FabricInfoV2{}, kFabricInfoV2, 2);
    if (!f.queried) f.error = fmt::format("nvmlDeviceGetGpuFabricInfoV: {}", text(a, r));
  } else if (a.fabric_info) {
    FabricInfoV1 v1{};
    const NvmlReturn r = a.fabric_info(dev, &v1);
    if (r == kSuccess) {
      fill(v1.cluster_uuid, v1.status, v1.clique_id, v1.state);
      f.struct_version = 1;
    } else {
      f.error = fmt::format("nvmlDeviceGetGpuFabricInfo: {}", text(a, r));
    }
  } else {
    f.error = "this NVML has no nvmlDeviceGetGpuFabricInfo (driver older than the fabric API)";
  }
  if (f.queried) f.status_text = text(a, f.status);
  return f;
}

}  // namespace

NvmlReport nvml_report(const std::string& pci_bus_id) {
  NvmlReport report;
  const Api& a = api();
  if (!a.error.empty()) {
    report.error = a.error;
    report.fabric.error = a.error;
    return report;
  }
  if (a.system_driver_version) {
    char version[96] = {};
    if (a.system_driver_version(version, sizeof(version)) == kSuccess) report.driver_version = version;
  }
  NvmlDevice dev = nullptr;
  if (const NvmlReturn r = a.handle_by_pci(pci_bus_id.c_str(), &dev); r != kSuccess) {
    report.error = fmt::format("NVML does not know the GPU at PCI {}: {}", pci_bus_id, text(a, r));
    report.fabric.error = report.error;
    return report;
  }
  report.loaded = true;
  if (auto n = field(a, dev, kFieldLinkCount, 0)) report.link_count = static_cast<int>(*n);

  if (!a.link_state) {
    report.links_note = "this NVML has no nvmlDeviceGetNvLinkState";
  } else {
    for (int link = 0; link < kMaxLinks; ++link) {
      unsigned active = 0;
      const NvmlReturn r = a.link_state(dev, static_cast<unsigned>(link), &active);
      if (r == kInvalidArgument) break;  // past the device's last link
      if (r == kNotSupported) {
        if (link == 0) report.links_note = "no NVLink on this GPU (NVML: not supported)";
        break;
      }
      if (r != kSuccess) {
        report.links_note = fmt::format("NVLink {} state: {}", link, text(a, r));
        break;
      }
      NvLinkState s;
      s.link = link;
      s.active = active != 0;
      unsigned version = 0;
      if (a.link_version && a.link_version(dev, link, &version) == kSuccess) s.version = version;
      s.speed_mbps = field(a, dev, kFieldLinkSpeed, static_cast<unsigned>(link));
      if (a.link_remote_pci) {
        PciInfo pci{};
        if (a.link_remote_pci(dev, link, &pci) == kSuccess) s.remote_pci_bus_id = pci.bus_id;
      }
      if (a.link_error_counter) {
        std::optional<std::uint64_t>* counters[] = {&s.replay, &s.recovery, &s.crc_flit, &s.crc_data};
        for (unsigned c = 0; c < 4; ++c) {
          unsigned long long v = 0;
          if (a.link_error_counter(dev, link, c, &v) == kSuccess) *counters[c] = v;
        }
      }
      report.links.push_back(s);
    }
  }
  report.fabric = fabric_facts(a, dev);
  return report;
}

}  // namespace ar::cuda
