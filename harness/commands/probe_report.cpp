// The probe report's model in words and as JSON: the names of a GPU, a cluster UUID, a fabric health mask
// and a check status, and the JSON of one GPU (what a rank sends rank 0) and of the whole report. The
// judging is in probe_checks.cpp, the readable text in probe_render.cpp.
#include "harness/commands/probe_report.h"

#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/job/handle_choice.h"

namespace ar {
namespace {

using nlohmann::json;

template <class T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

template <class T>
std::optional<T> optional_from(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<T>();
}

json device_json(const GpuDevice& d) {
  return {{"ordinal", d.ordinal},
          {"devices_visible", d.device_count},
          {"name", d.name},
          {"compute_capability", d.compute_capability},
          {"sms", d.sm_count},
          {"memory_bytes", d.memory_bytes},
          {"l2_bytes", d.l2_bytes},
          {"clock_mhz", d.clock_mhz},
          {"driver", d.driver},
          {"cuda_driver", d.cuda_driver},
          {"cuda_runtime", d.cuda_runtime},
          {"pci_bus_id", d.pci_bus_id},
          {"vmm", d.vmm},
          {"posix_handles", d.posix_handles},
          {"fabric_handles", d.fabric_handles},
          {"multicast", d.multicast}};
}

GpuDevice device_from(const json& j) {
  GpuDevice d;
  d.ordinal = j.at("ordinal").get<int>();
  d.device_count = j.at("devices_visible").get<int>();
  d.name = j.at("name").get<std::string>();
  d.compute_capability = j.at("compute_capability").get<std::string>();
  d.sm_count = j.at("sms").get<int>();
  d.memory_bytes = j.at("memory_bytes").get<std::int64_t>();
  d.l2_bytes = j.at("l2_bytes").get<std::int64_t>();
  d.clock_mhz = j.at("clock_mhz").get<int>();
  d.driver = j.at("driver").get<std::string>();
  d.cuda_driver = j.at("cuda_driver").get<std::string>();
  d.cuda_runtime = j.at("cuda_runtime").get<std::string>();
  d.pci_bus_id = j.at("pci_bus_id").get<std::string>();
  d.vmm = j.at("vmm").get<bool>();
  d.posix_handles = j.at("posix_handles").get<bool>();
  d.fabric_handles = j.at("fabric_handles").get<bool>();
  d.multicast = j.at("multicast").get<bool>();
  return d;
}

json nvml_json(const GpuNvml& n) {
  json links = json::array();
  for (const GpuLink& l : n.links)
    links.push_back({{"link", l.link},
                     {"active", l.active},
                     {"version", optional_json(l.version)},
                     {"speed_mbps", optional_json(l.speed_mbps)},
                     {"remote_pci_bus_id", l.remote_pci_bus_id},
                     {"replay_errors", optional_json(l.replay)},
                     {"recovery_errors", optional_json(l.recovery)},
                     {"crc_flit_errors", optional_json(l.crc_flit)},
                     {"crc_data_errors", optional_json(l.crc_data)}});
  const GpuFabric& f = n.fabric;
  return {{"loaded", n.loaded},
          {"error", n.error},
          {"driver_version", n.driver_version},
          {"link_count", optional_json(n.link_count)},
          {"links", links},
          {"links_note", n.links_note},
          {"fabric",
           {{"queried", f.queried},
            {"error", f.error},
            {"state", f.state},
            {"state_name", fabric_state_name(f.state)},
            {"status", f.status},
            {"status_text", f.status_text},
            {"clique_id", f.clique_id},
            {"cluster_uuid", uuid_text(f.cluster_uuid)},
            {"health_mask", optional_json(f.health_mask)},
            {"health_summary", optional_json(f.health_summary)}}}};
}

std::array<std::uint8_t, 16> uuid_from(const std::string& text) {
  std::array<std::uint8_t, 16> out{};
  std::string hex;
  for (char c : text)
    if (c != '-') hex += c;
  if (hex.size() != 32) throw std::runtime_error("malformed cluster UUID '" + text + "'");
  for (std::size_t i = 0; i < 16; ++i)
    out[i] = static_cast<std::uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
  return out;
}

GpuNvml nvml_from(const json& j) {
  GpuNvml n;
  n.loaded = j.at("loaded").get<bool>();
  n.error = j.at("error").get<std::string>();
  n.driver_version = j.at("driver_version").get<std::string>();
  n.link_count = optional_from<int>(j.at("link_count"));
  n.links_note = j.at("links_note").get<std::string>();
  for (const json& l : j.at("links"))
    n.links.push_back(GpuLink{
        l.at("link").get<int>(), l.at("active").get<bool>(), optional_from<unsigned>(l.at("version")),
        optional_from<std::uint64_t>(l.at("speed_mbps")), l.at("remote_pci_bus_id").get<std::string>(),
        optional_from<std::uint64_t>(l.at("replay_errors")), optional_from<std::uint64_t>(l.at("recovery_errors")),
        optional_from<std::uint64_t>(l.at("crc_flit_errors")), optional_from<std::uint64_t>(l.at("crc_data_errors"))});
  const json& f = j.at("fabric");
  n.fabric.queried = f.at("queried").get<bool>();
  n.fabric.error = f.at("error").get<std::string>();
  n.fabric.state = f.at("state").get<int>();
  n.fabric.status = f.at("status").get<int>();
  n.fabric.status_text = f.at("status_text").get<std::string>();
  n.fabric.clique_id = f.at("clique_id").get<std::uint32_t>();
  n.fabric.cluster_uuid = uuid_from(f.at("cluster_uuid").get<std::string>());
  n.fabric.health_mask = optional_from<std::uint32_t>(f.at("health_mask"));
  n.fabric.health_summary = optional_from<std::uint8_t>(f.at("health_summary"));
  return n;
}

json gpu_json(const ProbeGpu& g) {
  return {{"ranks", g.ranks}, {"host", g.host}, {"device", device_json(g.device)}, {"nvml", nvml_json(g.nvml)}};
}

}  // namespace

std::string gpu_label(const ProbeGpu& g) { return fmt::format("GPU {} of {}", g.device.ordinal, g.host); }

std::string uuid_text(const std::array<std::uint8_t, 16>& u) {
  std::string hex;
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) hex += '-';
    hex += fmt::format("{:02x}", u[i]);
  }
  return hex;
}

std::string fabric_health_text(std::uint32_t mask) {
  // Two-bit fields (0 not reported, 1 true, 2 false) at the shifts the NVML header gives them.
  struct Field {
    int shift;
    const char* if_true;
    const char* if_false;
  };
  constexpr Field kFields[] = {{0, "bandwidth DEGRADED", "bandwidth not degraded"},
                               {2, "route recovery IN PROGRESS", "no route recovery"},
                               {4, "route UNHEALTHY", "routes healthy"},
                               {6, "access-timeout recovery IN PROGRESS", "no access-timeout recovery"}};
  std::vector<std::string> parts;
  for (const Field& f : kFields) {
    const std::uint32_t v = (mask >> f.shift) & 3u;
    if (v == 1) parts.push_back(f.if_true);
    if (v == 2) parts.push_back(f.if_false);
  }
  if (parts.empty()) return fmt::format("not reported (mask {:#x})", mask);
  return fmt::format("{} (mask {:#x})", fmt::join(parts, ", "), mask);
}

std::string_view check_status_name(CheckStatus s) {
  switch (s) {
    case CheckStatus::kOk: return "ok";
    case CheckStatus::kWarning: return "warning";
    case CheckStatus::kFailed: return "FAILED";
    case CheckStatus::kNotChecked: break;
  }
  return "not checked";
}

std::string probe_gpu_to_json(const ProbeGpu& gpu) { return gpu_json(gpu).dump(); }

ProbeGpu probe_gpu_from_json(const std::string& text) {
  try {
    const json j = json::parse(text);
    ProbeGpu g;
    g.ranks = j.at("ranks").get<std::vector<int>>();
    g.host = j.at("host").get<std::string>();
    g.device = device_from(j.at("device"));
    g.nvml = nvml_from(j.at("nvml"));
    return g;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("malformed GPU report from a peer: {}", e.what()));
  }
}

std::string probe_json(const ProbeReport& r) {
  json j;
  j["command"] = "probe";
  j["launcher"] = r.launcher;
  j["processes"] = r.processes;
  j["hosts"] = r.hosts;
  j["gpus"] = json::array();
  for (const ProbeGpu& g : r.gpus) j["gpus"].push_back(gpu_json(g));
  j["imex"] = {{"host", r.imex_host},
               {"directory", r.imex.directory},
               {"channels", r.imex.channels},
               {"driver_registered", r.imex.driver_registered}};
  if (r.peers) {
    const GpuPeers& p = *r.peers;
    const auto matrix = [](const std::vector<std::vector<std::optional<double>>>& m) {
      json rows = json::array();
      for (const auto& row : m) {
        json out = json::array();
        for (const auto& v : row) out.push_back(optional_json(v));
        rows.push_back(out);
      }
      return rows;
    };
    json access = json::array();
    for (const auto& row : p.access) access.push_back(json(std::vector<bool>(row.begin(), row.end())));
    j["peers"] = {{"host", r.peers_host},
                  {"devices", p.devices},
                  {"access", access},
                  {"round_trip_us", matrix(p.round_trip_us)},
                  {"oneway_gbps", matrix(p.oneway_gbps)},
                  {"twoway_gbps", matrix(p.twoway_gbps)},
                  {"errors", p.errors}};
  } else {
    j["peers"] = nullptr;
  }
  j["handles"] = r.handles;
  j["allreduce"] = json::array();
  for (const ProbeAllReduce& a : r.allreduce)
    j["allreduce"].push_back({{"where", a.where},
                              {"strategy", a.strategy},
                              {"world_size", a.world},
                              {"tokens", a.tokens},
                              {"hidden", a.hidden},
                              {"dtype", a.dtype},
                              {"elements", a.elements},
                              {"mismatches", a.mismatches},
                              {"timeout", a.timeout}});
  j["allreduce_note"] = r.allreduce_note;
  j["not_checked"] = r.not_checked;
  j["checks"] = json::array();
  bool failed = false;
  for (const ProbeCheck& c : r.checks) {
    j["checks"].push_back({{"name", c.name}, {"status", check_status_name(c.status)}, {"detail", c.detail}});
    failed = failed || c.status == CheckStatus::kFailed;
  }
  j["result"] = failed ? "failed" : "ok";
  return j.dump(2) + "\n";
}

}  // namespace ar
