// The readable report of `mnnvl-ar probe` (render_probe): a header line, then each GPU (device, memory
// sharing, fabric, NVLink table), the IMEX channels, the P2P and peer-measurement matrices, the handle
// decision, the all-reduce table, what this setup cannot show, and the checks with the verdict.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "harness/commands/probe_report.h"
#include "harness/job/handle_choice.h"

namespace ar {
namespace {

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

/// A matrix of optional numbers over the measured devices, as text rows.
std::string matrix_text(const std::string& title, const std::vector<int>& devices,
                        const std::vector<std::vector<std::optional<double>>>& m, const char* format) {
  std::string out = fmt::format("{}\n  {:>8}", title, "from\\to");
  for (int d : devices) out += fmt::format(" {:>9}", fmt::format("GPU {}", d));
  out += "\n";
  for (std::size_t i = 0; i < devices.size(); ++i) {
    out += fmt::format("  {:>8}", fmt::format("GPU {}", devices[i]));
    for (std::size_t j = 0; j < devices.size(); ++j)
      out += fmt::format(" {:>9}", i == j    ? std::string("-")
                                   : m[i][j] ? fmt::format(fmt::runtime(format), *m[i][j])
                                             : std::string("n/a"));
    out += "\n";
  }
  return out;
}

std::string header_text(const ProbeReport& r) {
  return fmt::format("# mnnvl-ar probe: {} process{} ({}) on {} host{} ({}), {} GPU{}\n", r.processes,
                     r.processes == 1 ? "" : "es", r.launcher == "single" ? "no launcher" : r.launcher, r.hosts.size(),
                     r.hosts.size() == 1 ? "" : "s", fmt::join(r.hosts, ", "), r.gpus.size(),
                     r.gpus.size() == 1 ? "" : "s");
}

/// What CUDA says about a GPU: name, architecture, driver and what memory it can share.
std::string device_text(const ProbeGpu& g) {
  const GpuDevice& d = g.device;
  std::string out = fmt::format("\n{}{}: {}, sm_{}, {} SMs, {}, PCI {}\n", gpu_label(g),
                                g.ranks.empty() ? std::string() : fmt::format(" ({})", ranks_text(g.ranks)), d.name,
                                d.compute_capability, d.sm_count, gib(d.memory_bytes), d.pci_bus_id);
  out += fmt::format("  driver {} (CUDA {}), runtime {}\n", d.driver.empty() ? "?" : d.driver, d.cuda_driver,
                     d.cuda_runtime);
  out += fmt::format(
      "  memory sharing (device attributes, nothing created): VMM {}, POSIX fd handles {}, fabric "
      "handles {}, multicast {} (never used)\n",
      yes_no(d.vmm), yes_no(d.posix_handles), yes_no(d.fabric_handles), yes_no(d.multicast));
  return out;
}

std::string fabric_text(const GpuFabric& f) {
  if (!f.queried) return fmt::format("  fabric (NVML): {}\n", f.error);
  return fmt::format("  fabric (NVML): state {}, registration {}, clique {}, cluster UUID {}{}\n",
                     fabric_state_name(f.state), f.status_text.empty() ? std::to_string(f.status) : f.status_text,
                     f.clique_id, uuid_text(f.cluster_uuid),
                     f.health_mask ? ", health: " + fabric_health_text(*f.health_mask) : std::string());
}

/// The NVLinks of a GPU: a count, then one row per link with its counters and far end.
std::string nvlink_text(const GpuNvml& n) {
  if (n.links.empty()) return fmt::format("  NVLink: {}\n", n.links_note.empty() ? "none reported" : n.links_note);
  int active = 0;
  for (const GpuLink& l : n.links) active += l.active;
  std::string out = fmt::format("  NVLink: {} links, {} active{}\n", n.links.size(), active,
                                n.links_note.empty() ? "" : " (" + n.links_note + ")");
  out += fmt::format("    {:>4} {:<8} {:>3} {:>10} {:>8} {:>8} {:>8} {:>8}  {}\n", "link", "state", "ver", "MB/s",
                     "replay", "recovery", "crc-flit", "crc-data", "remote");
  for (const GpuLink& l : n.links)
    out += fmt::format("    {:>4} {:<8} {:>3} {:>10} {:>8} {:>8} {:>8} {:>8}  {}\n", l.link,
                       l.active ? "active" : "inactive", l.version ? std::to_string(*l.version) : "-",
                       l.speed_mbps ? std::to_string(*l.speed_mbps) : "-", counter(l.replay), counter(l.recovery),
                       counter(l.crc_flit), counter(l.crc_data), remote_text(l.remote_pci_bus_id));
  return out;
}

std::string gpu_text(const ProbeGpu& g) {
  std::string out = device_text(g);
  if (!g.nvml.loaded) return out + fmt::format("  NVML: not available: {}\n", g.nvml.error);
  return out + fabric_text(g.nvml.fabric) + nvlink_text(g.nvml);
}

std::string imex_text(const ProbeReport& r) {
  std::string out =
      fmt::format("\nIMEX channels on {}: {}\n", r.imex_host,
                  !r.imex.directory ? std::string("none (/dev/nvidia-caps-imex-channels does not exist)")
                  : r.imex.channels.empty()
                      ? std::string("/dev/nvidia-caps-imex-channels exists but holds no channel this process can open")
                      : fmt::format("{}", fmt::join(r.imex.channels, ", ")));
  out += fmt::format("  the driver {} the IMEX channel device (/proc/devices)\n",
                     r.imex.driver_registered ? "registers" : "does not register");
  return out;
}

/// P2P access and the peer measurements, shown only when 2 or more GPUs were measured.
std::string peers_text(const ProbeReport& r) {
  if (!r.peers || r.peers->devices.size() < 2) return "";
  const GpuPeers& p = *r.peers;
  std::string out = fmt::format("\nP2P access on {} (row can access column):\n  {:>8}", r.peers_host, "from\\to");
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
  return out;
}

std::string allreduce_text(const ProbeReport& r) {
  if (r.allreduce.empty())
    return r.allreduce_note.empty() ? "" : fmt::format("\nall-reduce: not run: {}\n", r.allreduce_note);
  std::string out = "\nall-reduce, bit for bit against reference/ (adversarial inputs, flashinfer profile):\n";
  out += fmt::format("  {:<40} {:<8} {:>3} {:>5} {:>6} {:<5} {:>10} {:>10}  {}\n", "where", "strategy", "W", "N", "D",
                     "dtype", "elements", "mismatches", "result");
  for (const ProbeAllReduce& a : r.allreduce)
    out += fmt::format("  {:<40} {:<8} {:>3} {:>5} {:>6} {:<5} {:>10} {:>10}  {}\n", a.where, a.strategy, a.world,
                       a.tokens, a.hidden, a.dtype, a.elements, a.mismatches,
                       !a.timeout.empty() ? "TIMEOUT: " + a.timeout
                       : a.mismatches     ? "MISMATCH"
                                          : "bit-exact");
  return out;
}

std::string not_checked_text(const ProbeReport& r) {
  if (r.not_checked.empty()) return "";
  std::string out = "\nnot checked with this setup:\n";
  for (const std::string& n : r.not_checked) out += fmt::format("  - {}\n", n);
  return out;
}

/// The checks as evaluate_probe left them, and the verdict: the names of the failed ones, if any.
std::string checks_text(const ProbeReport& r) {
  std::string out = "\nchecks:\n";
  std::vector<std::string> failures;
  for (const ProbeCheck& c : r.checks) {
    out += fmt::format("  {:<18} {:<12} {}\n", c.name, check_status_name(c.status), c.detail);
    if (c.status == CheckStatus::kFailed) failures.push_back(c.name);
  }
  out += !failures.empty() ? fmt::format("\nresult: FAILED ({})\n", fmt::join(failures, ", "))
                           : std::string("\nresult: every check that could run passed\n");
  return out;
}

}  // namespace

std::string render_probe(const ProbeReport& r) {
  std::string out = header_text(r);
  for (const ProbeGpu& g : r.gpus) out += gpu_text(g);
  out += imex_text(r);
  out += peers_text(r);
  out += fmt::format("\nhandles: {}\n", r.handles);
  out += allreduce_text(r);
  out += not_checked_text(r);
  out += checks_text(r);
  return out;
}

}  // namespace ar
