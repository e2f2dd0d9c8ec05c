#include "harness/commands/probe_report.h"

#include <map>
#include <set>
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

std::string yes_no(bool b) { return b ? "yes" : "no"; }

std::string gib(std::int64_t bytes) { return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1 << 30)); }

std::string counter(const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : "-"; }

/// The far end of a link: NVML answers FFFFFFFF:FF:FF.0 when it cannot name it (an NVSwitch, or a virtual
/// machine that hides the peer's PCI address).
std::string remote_text(const std::string& pci) {
  if (pci.empty()) return "-";
  if (pci.rfind("FFFFFFFF:FF:FF", 0) == 0 || pci.rfind("ffffffff:ff:ff", 0) == 0) return "unknown";
  return pci;
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
  for (std::size_t i = 0; i < 16; ++i) out[i] = static_cast<std::uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
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
    n.links.push_back(GpuLink{l.at("link").get<int>(), l.at("active").get<bool>(),
                              optional_from<unsigned>(l.at("version")),
                              optional_from<std::uint64_t>(l.at("speed_mbps")),
                              l.at("remote_pci_bus_id").get<std::string>(),
                              optional_from<std::uint64_t>(l.at("replay_errors")),
                              optional_from<std::uint64_t>(l.at("recovery_errors")),
                              optional_from<std::uint64_t>(l.at("crc_flit_errors")),
                              optional_from<std::uint64_t>(l.at("crc_data_errors"))});
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

std::string gpu_label(const ProbeGpu& g) { return fmt::format("GPU {} of {}", g.device.ordinal, g.host); }

bool uuid_zero(const std::array<std::uint8_t, 16>& u) {
  for (std::uint8_t b : u)
    if (b) return false;
  return true;
}

/// A matrix of optional numbers over the measured devices, as text rows.
std::string matrix_text(const std::string& title, const std::vector<int>& devices,
                        const std::vector<std::vector<std::optional<double>>>& m, const char* format) {
  std::string out = fmt::format("{}\n  {:>8}", title, "from\\to");
  for (int d : devices) out += fmt::format(" {:>9}", fmt::format("GPU {}", d));
  out += "\n";
  for (std::size_t i = 0; i < devices.size(); ++i) {
    out += fmt::format("  {:>8}", fmt::format("GPU {}", devices[i]));
    for (std::size_t j = 0; j < devices.size(); ++j)
      out += fmt::format(" {:>9}", i == j ? std::string("-")
                                          : m[i][j] ? fmt::format(fmt::runtime(format), *m[i][j]) : std::string("n/a"));
    out += "\n";
  }
  return out;
}

}  // namespace

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

bool evaluate_probe(ProbeReport& r) {
  r.checks.clear();
  const auto add = [&](std::string name, CheckStatus s, std::string detail) {
    r.checks.push_back({std::move(name), s, std::move(detail)});
  };
  // 1. VMM: the workspace is made with it.
  std::vector<std::string> no_vmm;
  for (const ProbeGpu& g : r.gpus)
    if (!g.device.vmm) no_vmm.push_back(gpu_label(g));
  if (r.gpus.empty())
    add("vmm", CheckStatus::kNotChecked, "no GPU was reported");
  else if (no_vmm.empty())
    add("vmm", CheckStatus::kOk, "every GPU supports CUDA virtual memory management");
  else
    add("vmm", CheckStatus::kFailed,
        fmt::format("{} lack virtual memory management, which the Lamport workspace needs", fmt::join(no_vmm, ", ")));

  // 2. Shareable handles.
  if (r.handles_failed) {
    add("handles", CheckStatus::kFailed, r.handles);
  } else if (r.processes > 1) {
    add("handles", CheckStatus::kOk, r.handles);
  } else {
    std::vector<std::string> no_posix;
    for (const ProbeGpu& g : r.gpus)
      if (!g.device.posix_handles) no_posix.push_back(gpu_label(g));
    if (no_posix.empty())
      add("handles", CheckStatus::kOk,
          "POSIX file-descriptor handles supported (device attribute; one process exports none: `probe --spawn 2` "
          "exercises them)");
    else
      add("handles", CheckStatus::kWarning,
          fmt::format("{} cannot export POSIX file-descriptor handles: ranks as processes on one host would need "
                      "fabric handles", fmt::join(no_posix, ", ")));
  }

  // 3. NVLink: inactive links next to active ones, and error counters.
  {
    std::vector<std::string> problems, notes;
    int with_links = 0;
    for (const ProbeGpu& g : r.gpus) {
      if (!g.nvml.loaded) {
        notes.push_back(fmt::format("{}: NVML not available ({})", gpu_label(g), g.nvml.error));
        continue;
      }
      if (g.nvml.links.empty()) continue;
      ++with_links;
      int active = 0;
      for (const GpuLink& l : g.nvml.links) active += l.active;
      if (active == 0)
        problems.push_back(fmt::format("{}: none of its {} NVLinks is active", gpu_label(g), g.nvml.links.size()));
      else if (active < static_cast<int>(g.nvml.links.size()))
        problems.push_back(fmt::format("{}: {} of {} NVLinks inactive", gpu_label(g), g.nvml.links.size() - active,
                                       g.nvml.links.size()));
      // One line per GPU: which links count errors and the totals (the table above has every link's counters).
      int erring = 0;
      std::uint64_t replay = 0, recovery = 0, crc_flit = 0, crc_data = 0;
      for (const GpuLink& l : g.nvml.links) {
        replay += l.replay.value_or(0);
        recovery += l.recovery.value_or(0);
        crc_flit += l.crc_flit.value_or(0);
        crc_data += l.crc_data.value_or(0);
        erring += (l.replay.value_or(0) + l.recovery.value_or(0) + l.crc_flit.value_or(0) + l.crc_data.value_or(0)) > 0;
      }
      if (erring)
        problems.push_back(fmt::format("{}: {} of {} links count errors since the driver loaded (totals: {} replay, {} "
                                       "recovery, {} flit-CRC, {} data-CRC)",
                                       gpu_label(g), erring, g.nvml.links.size(), replay, recovery, crc_flit, crc_data));
    }
    if (with_links == 0)
      add("nvlink", CheckStatus::kNotChecked,
          notes.empty() ? "no GPU reports NVLinks" : fmt::format("{}", fmt::join(notes, "; ")));
    else if (!problems.empty())
      add("nvlink", CheckStatus::kWarning, fmt::format("{}", fmt::join(problems, "; ")));
    else
      add("nvlink", CheckStatus::kOk, "every reported link is active, no error counted");
  }

  // 4. Fabric registration and health, where a GPU takes part in one.
  {
    std::vector<std::string> problems, states;
    for (const ProbeGpu& g : r.gpus) {
      const GpuFabric& f = g.nvml.fabric;
      if (!f.queried) continue;
      states.push_back(fmt::format("{}: {}{}", gpu_label(g), fabric_state_name(f.state),
                                   f.state == 3 ? (uuid_zero(f.cluster_uuid) ? ", cluster UUID zero (no NVLink domain)"
                                                                             : ", in cluster " + uuid_text(f.cluster_uuid))
                                                : ""));
      if (f.state == 3 && f.status != 0)
        problems.push_back(fmt::format("{}: fabric registration failed: {}", gpu_label(g), f.status_text));
      if (f.state == 1 || f.state == 2)
        problems.push_back(fmt::format("{}: fabric registration {}", gpu_label(g), fabric_state_name(f.state)));
      if (f.health_mask && (((*f.health_mask) & 3u) == 1 || ((*f.health_mask >> 2) & 3u) == 1 ||
                            ((*f.health_mask >> 4) & 3u) == 1 || ((*f.health_mask >> 6) & 3u) == 1))
        problems.push_back(fmt::format("{}: fabric health: {}", gpu_label(g), fabric_health_text(*f.health_mask)));
    }
    if (states.empty())
      add("fabric", CheckStatus::kNotChecked, "NVML gave no fabric state");
    else if (!problems.empty())
      add("fabric", CheckStatus::kWarning, fmt::format("{}", fmt::join(problems, "; ")));
    else
      add("fabric", CheckStatus::kOk, fmt::format("{}", fmt::join(states, "; ")));
  }

  // 5. P2P access and peer measurements.
  if (!r.peers || r.peers->devices.size() < 2) {
    add("p2p", CheckStatus::kNotChecked, "needs 2 or more GPUs in one process");
    add("peer-measurements", CheckStatus::kNotChecked, "needs 2 or more GPUs in one process");
  } else {
    std::vector<std::string> missing;
    const GpuPeers& p = *r.peers;
    for (std::size_t i = 0; i < p.devices.size(); ++i)
      for (std::size_t j = 0; j < p.devices.size(); ++j)
        if (i != j && !p.access[i][j]) missing.push_back(fmt::format("GPU {} -> GPU {}", p.devices[i], p.devices[j]));
    if (missing.empty())
      add("p2p", CheckStatus::kOk, fmt::format("every GPU of {} reaches every other", r.peers_host));
    else
      add("p2p", CheckStatus::kFailed,
          fmt::format("no P2P access {}: those ranks cannot store into each other's buffers", fmt::join(missing, ", ")));
    if (p.errors.empty())
      add("peer-measurements", CheckStatus::kOk, "latency and bandwidth measured for every pair");
    else
      add("peer-measurements", CheckStatus::kFailed, fmt::format("{}", fmt::join(p.errors, "; ")));
  }

  // 6. The all-reduce.
  if (r.allreduce.empty()) {
    add("allreduce", CheckStatus::kNotChecked, r.allreduce_note.empty() ? "none ran" : r.allreduce_note);
  } else {
    std::vector<std::string> bad;
    std::int64_t elements = 0;
    for (const ProbeAllReduce& a : r.allreduce) {
      elements += a.elements;
      if (!a.timeout.empty())
        bad.push_back(fmt::format("{} W={} on {}: {}", a.strategy, a.world, a.where, a.timeout));
      else if (a.mismatches)
        bad.push_back(fmt::format("{} W={} on {}: {} of {} elements differ from reference/", a.strategy, a.world,
                                  a.where, a.mismatches, a.elements));
    }
    if (bad.empty())
      add("allreduce", CheckStatus::kOk,
          fmt::format("{} runs, {} elements, every one bit-exact against reference/", r.allreduce.size(), elements));
    else
      add("allreduce", CheckStatus::kFailed, fmt::format("{}", fmt::join(bad, "; ")));
  }
  for (const ProbeCheck& c : r.checks)
    if (c.status == CheckStatus::kFailed) return false;
  return true;
}

std::string render_probe(const ProbeReport& r) {
  std::string out = fmt::format("# mnnvl-ar probe: {} process{} ({}) on {} host{} ({}), {} GPU{}\n", r.processes,
                                r.processes == 1 ? "" : "es", r.launcher == "single" ? "no launcher" : r.launcher,
                                r.hosts.size(), r.hosts.size() == 1 ? "" : "s", fmt::join(r.hosts, ", "), r.gpus.size(),
                                r.gpus.size() == 1 ? "" : "s");
  for (const ProbeGpu& g : r.gpus) {
    const GpuDevice& d = g.device;
    out += fmt::format("\n{}{}: {}, sm_{}, {} SMs, {}, PCI {}\n", gpu_label(g),
                       g.ranks.empty() ? std::string() : fmt::format(" ({})", ranks_text(g.ranks)), d.name,
                       d.compute_capability, d.sm_count, gib(d.memory_bytes), d.pci_bus_id);
    out += fmt::format("  driver {} (CUDA {}), runtime {}\n", d.driver.empty() ? "?" : d.driver, d.cuda_driver,
                       d.cuda_runtime);
    out += fmt::format("  memory sharing (device attributes, nothing created): VMM {}, POSIX fd handles {}, fabric "
                       "handles {}, multicast {} (never used)\n",
                       yes_no(d.vmm), yes_no(d.posix_handles), yes_no(d.fabric_handles), yes_no(d.multicast));
    const GpuNvml& n = g.nvml;
    if (!n.loaded) {
      out += fmt::format("  NVML: not available: {}\n", n.error);
      continue;
    }
    const GpuFabric& f = n.fabric;
    if (f.queried)
      out += fmt::format("  fabric (NVML): state {}, registration {}, clique {}, cluster UUID {}{}\n",
                         fabric_state_name(f.state), f.status_text.empty() ? std::to_string(f.status) : f.status_text,
                         f.clique_id, uuid_text(f.cluster_uuid),
                         f.health_mask ? ", health: " + fabric_health_text(*f.health_mask) : std::string());
    else
      out += fmt::format("  fabric (NVML): {}\n", f.error);
    if (n.links.empty()) {
      out += fmt::format("  NVLink: {}\n", n.links_note.empty() ? "none reported" : n.links_note);
      continue;
    }
    int active = 0;
    for (const GpuLink& l : n.links) active += l.active;
    out += fmt::format("  NVLink: {} links, {} active{}\n", n.links.size(), active,
                       n.links_note.empty() ? "" : " (" + n.links_note + ")");
    out += fmt::format("    {:>4} {:<8} {:>3} {:>10} {:>8} {:>8} {:>8} {:>8}  {}\n", "link", "state", "ver", "MB/s",
                       "replay", "recovery", "crc-flit", "crc-data", "remote");
    for (const GpuLink& l : n.links)
      out += fmt::format("    {:>4} {:<8} {:>3} {:>10} {:>8} {:>8} {:>8} {:>8}  {}\n", l.link,
                         l.active ? "active" : "inactive", l.version ? std::to_string(*l.version) : "-",
                         l.speed_mbps ? std::to_string(*l.speed_mbps) : "-", counter(l.replay), counter(l.recovery),
                         counter(l.crc_flit), counter(l.crc_data),
                         remote_text(l.remote_pci_bus_id));
  }
  out += fmt::format("\nIMEX channels on {}: {}\n", r.imex_host,
                     !r.imex.directory ? std::string("none (/dev/nvidia-caps-imex-channels does not exist)")
                     : r.imex.channels.empty()
                         ? std::string("/dev/nvidia-caps-imex-channels exists but holds no channel this process can open")
                         : fmt::format("{}", fmt::join(r.imex.channels, ", ")));
  out += fmt::format("  the driver {} the IMEX channel device (/proc/devices)\n",
                     r.imex.driver_registered ? "registers" : "does not register");
  if (r.peers && r.peers->devices.size() >= 2) {
    const GpuPeers& p = *r.peers;
    out += fmt::format("\nP2P access on {} (row can access column):\n  {:>8}", r.peers_host, "from\\to");
    for (int d : p.devices) out += fmt::format(" {:>9}", fmt::format("GPU {}", d));
    out += "\n";
    for (std::size_t i = 0; i < p.devices.size(); ++i) {
      out += fmt::format("  {:>8}", fmt::format("GPU {}", p.devices[i]));
      for (std::size_t j = 0; j < p.devices.size(); ++j)
        out += fmt::format(" {:>9}", i == j ? "-" : p.access[i][j] ? "yes" : "NO");
      out += "\n";
    }
    out += matrix_text("flag ping-pong round trip (us):", p.devices, p.round_trip_us, "{:.2f}");
    out += matrix_text("copy-engine peer copy, one way (GB/s):", p.devices, p.oneway_gbps, "{:.0f}");
    out += matrix_text("copy-engine peer copies, both ways at once (GB/s, sum):", p.devices, p.twoway_gbps, "{:.0f}");
    for (const std::string& e : p.errors) out += fmt::format("  error: {}\n", e);
  }
  out += fmt::format("\nhandles: {}\n", r.handles);
  if (!r.allreduce.empty()) {
    out += "\nall-reduce, bit for bit against reference/ (adversarial inputs, flashinfer profile):\n";
    out += fmt::format("  {:<40} {:<8} {:>3} {:>5} {:>6} {:<5} {:>10} {:>10}  {}\n", "where", "strategy", "W", "N", "D",
                       "dtype", "elements", "mismatches", "result");
    for (const ProbeAllReduce& a : r.allreduce)
      out += fmt::format("  {:<40} {:<8} {:>3} {:>5} {:>6} {:<5} {:>10} {:>10}  {}\n", a.where, a.strategy, a.world,
                         a.tokens, a.hidden, a.dtype, a.elements, a.mismatches,
                         !a.timeout.empty() ? "TIMEOUT: " + a.timeout : a.mismatches ? "MISMATCH" : "bit-exact");
  } else if (!r.allreduce_note.empty()) {
    out += fmt::format("\nall-reduce: not run: {}\n", r.allreduce_note);
  }
  if (!r.not_checked.empty()) {
    out += "\nnot checked with this setup:\n";
    for (const std::string& n : r.not_checked) out += fmt::format("  - {}\n", n);
  }
  out += "\nchecks:\n";
  bool failed = false;
  for (const ProbeCheck& c : r.checks) {
    out += fmt::format("  {:<18} {:<12} {}\n", c.name, check_status_name(c.status), c.detail);
    failed = failed || c.status == CheckStatus::kFailed;
  }
  std::vector<std::string> failures;
  for (const ProbeCheck& c : r.checks)
    if (c.status == CheckStatus::kFailed) failures.push_back(c.name);
  out += failed ? fmt::format("\nresult: FAILED ({})\n", fmt::join(failures, ", "))
                : std::string("\nresult: every check that could run passed\n");
  return out;
}

std::string probe_json(const ProbeReport& r) {
  json j;
  j["command"] = "probe";
  j["launcher"] = r.launcher;
  j["processes"] = r.processes;
  j["hosts"] = r.hosts;
  j["gpus"] = json::array();
  for (const ProbeGpu& g : r.gpus) j["gpus"].push_back(gpu_json(g));
  j["imex"] = {{"host", r.imex_host}, {"directory", r.imex.directory}, {"channels", r.imex.channels},
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
    j["allreduce"].push_back({{"where", a.where}, {"strategy", a.strategy}, {"world_size", a.world},
                              {"tokens", a.tokens}, {"hidden", a.hidden}, {"dtype", a.dtype},
                              {"elements", a.elements}, {"mismatches", a.mismatches}, {"timeout", a.timeout}});
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
