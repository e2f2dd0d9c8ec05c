// The judging of `mnnvl-ar probe` (evaluate_probe): one function per check, each turning the gathered facts
// into a verdict and the words that explain it. evaluate_probe runs them in the order the report lists them.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "harness/commands/probe_report.h"
#include "harness/job/handle_choice.h"

namespace ar {
namespace {

/// Why p2p and peer-measurements are not checked: the peers are measured between the GPUs of one process.
constexpr const char* kNeedsPeers = "needs 2 or more GPUs in one process";

bool uuid_zero(const std::array<std::uint8_t, 16>& u) {
  for (std::uint8_t b : u)
    if (b) return false;
  return true;
}

/// 1. VMM: the workspace is made with it.
ProbeCheck check_vmm(const ProbeReport& r) {
  std::vector<std::string> no_vmm;
  for (const ProbeGpu& g : r.gpus)
    if (!g.device.vmm) no_vmm.push_back(gpu_label(g));
  if (r.gpus.empty()) return {"vmm", CheckStatus::kNotChecked, "no GPU was reported"};
  if (no_vmm.empty()) return {"vmm", CheckStatus::kOk, "every GPU supports CUDA virtual memory management"};
  return {"vmm", CheckStatus::kFailed,
          fmt::format("{} lack virtual memory management, which the Lamport workspace needs", fmt::join(no_vmm, ", "))};
}

/// 2. Shareable handles: the job's decision when several processes share memory, else the device attribute.
ProbeCheck check_handles(const ProbeReport& r) {
  if (r.handles_failed) return {"handles", CheckStatus::kFailed, r.handles};
  if (r.processes > 1) return {"handles", CheckStatus::kOk, r.handles};
  std::vector<std::string> no_posix;
  for (const ProbeGpu& g : r.gpus)
    if (!g.device.posix_handles) no_posix.push_back(gpu_label(g));
  if (no_posix.empty())
    return {"handles", CheckStatus::kOk,
            "POSIX file-descriptor handles supported (device attribute; one process exports none: `probe --spawn 2` "
            "exercises them)"};
  return {"handles", CheckStatus::kWarning,
          fmt::format("{} cannot export POSIX file-descriptor handles: ranks as processes on one host would need "
                      "fabric handles",
                      fmt::join(no_posix, ", "))};
}

/// The NVLink problems of one GPU that reports links: inactive links next to active ones, and one line for
/// the links that count errors with the totals (the report's table has every link's counters).
void add_nvlink_problems(const ProbeGpu& g, std::vector<std::string>& problems) {
  int active = 0;
  for (const GpuLink& l : g.nvml.links) active += l.active;
  if (active == 0)
    problems.push_back(fmt::format("{}: none of its {} NVLinks is active", gpu_label(g), g.nvml.links.size()));
  else if (active < static_cast<int>(g.nvml.links.size()))
    problems.push_back(
        fmt::format("{}: {} of {} NVLinks inactive", gpu_label(g), g.nvml.links.size() - active, g.nvml.links.size()));
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
    problems.push_back(
        fmt::format("{}: {} of {} links count errors since the driver loaded (totals: {} replay, {} "
                    "recovery, {} flit-CRC, {} data-CRC)",
                    gpu_label(g), erring, g.nvml.links.size(), replay, recovery, crc_flit, crc_data));
}

/// 3. NVLink: inactive links next to active ones, and error counters.
ProbeCheck check_nvlink(const ProbeReport& r) {
  std::vector<std::string> problems, notes;
  int with_links = 0;
  for (const ProbeGpu& g : r.gpus) {
    if (!g.nvml.loaded) {
      notes.push_back(fmt::format("{}: NVML not available ({})", gpu_label(g), g.nvml.error));
      continue;
    }
    if (g.nvml.links.empty()) continue;
    ++with_links;
    add_nvlink_problems(g, problems);
  }
  if (with_links == 0)
    return {"nvlink", CheckStatus::kNotChecked,
            notes.empty() ? "no GPU reports NVLinks" : fmt::format("{}", fmt::join(notes, "; "))};
  if (!problems.empty()) return {"nvlink", CheckStatus::kWarning, fmt::format("{}", fmt::join(problems, "; "))};
  return {"nvlink", CheckStatus::kOk, "every reported link is active, no error counted"};
}

/// Whether any two-bit field of the fabric health mask reads 1 (true): degraded bandwidth, a route recovery
/// in progress, an unhealthy route or an access-timeout recovery in progress.
bool fabric_health_alarm(std::uint32_t mask) {
  return (mask & 3u) == 1 || ((mask >> 2) & 3u) == 1 || ((mask >> 4) & 3u) == 1 || ((mask >> 6) & 3u) == 1;
}

/// 4. Fabric registration and health, where a GPU takes part in one.
ProbeCheck check_fabric(const ProbeReport& r) {
  std::vector<std::string> problems, states;
  for (const ProbeGpu& g : r.gpus) {
    const GpuFabric& f = g.nvml.fabric;
    if (!f.queried) continue;
    const std::string cluster = uuid_zero(f.cluster_uuid) ? ", cluster UUID zero (no NVLink domain)"
                                                          : ", in cluster " + uuid_text(f.cluster_uuid);
    states.push_back(fmt::format("{}: {}{}", gpu_label(g), fabric_state_name(f.state), f.state == 3 ? cluster : ""));
    if (f.state == 3 && f.status != 0)
      problems.push_back(fmt::format("{}: fabric registration failed: {}", gpu_label(g), f.status_text));
    if (f.state == 1 || f.state == 2)
      problems.push_back(fmt::format("{}: fabric registration {}", gpu_label(g), fabric_state_name(f.state)));
    if (f.health_mask && fabric_health_alarm(*f.health_mask))
      problems.push_back(fmt::format("{}: fabric health: {}", gpu_label(g), fabric_health_text(*f.health_mask)));
  }
  if (states.empty()) return {"fabric", CheckStatus::kNotChecked, "NVML gave no fabric state"};
  if (!problems.empty()) return {"fabric", CheckStatus::kWarning, fmt::format("{}", fmt::join(problems, "; "))};
  return {"fabric", CheckStatus::kOk, fmt::format("{}", fmt::join(states, "; "))};
}

bool peers_measured(const ProbeReport& r) { return r.peers && r.peers->devices.size() >= 2; }

/// 5. P2P access between the GPUs one process sees.
ProbeCheck check_p2p(const ProbeReport& r) {
  if (!peers_measured(r)) return {"p2p", CheckStatus::kNotChecked, kNeedsPeers};
  std::vector<std::string> missing;
  const GpuPeers& p = *r.peers;
  for (std::size_t i = 0; i < p.devices.size(); ++i)
    for (std::size_t j = 0; j < p.devices.size(); ++j)
      if (i != j && !p.access[i][j]) missing.push_back(fmt::format("GPU {} -> GPU {}", p.devices[i], p.devices[j]));
  if (missing.empty())
    return {"p2p", CheckStatus::kOk, fmt::format("every GPU of {} reaches every other", r.peers_host)};
  return {
      "p2p", CheckStatus::kFailed,
      fmt::format("no P2P access {}: those ranks cannot store into each other's buffers", fmt::join(missing, ", "))};
}

/// 6. Peer latency and bandwidth between the same GPUs.
ProbeCheck check_peer_measurements(const ProbeReport& r) {
  if (!peers_measured(r)) return {"peer-measurements", CheckStatus::kNotChecked, kNeedsPeers};
  const GpuPeers& p = *r.peers;
  if (p.errors.empty()) return {"peer-measurements", CheckStatus::kOk, "latency and bandwidth measured for every pair"};
  return {"peer-measurements", CheckStatus::kFailed, fmt::format("{}", fmt::join(p.errors, "; "))};
}

/// 7. The all-reduce: every run bit-exact against reference/, no wait that gave up.
ProbeCheck check_allreduce(const ProbeReport& r) {
  if (r.allreduce.empty())
    return {"allreduce", CheckStatus::kNotChecked, r.allreduce_note.empty() ? "none ran" : r.allreduce_note};
  std::vector<std::string> bad;
  std::int64_t elements = 0;
  for (const ProbeAllReduce& a : r.allreduce) {
    elements += a.elements;
    if (!a.timeout.empty())
      bad.push_back(fmt::format("{} W={} on {}: {}", a.strategy, a.world, a.where, a.timeout));
    else if (a.mismatches)
      bad.push_back(fmt::format("{} W={} on {}: {} of {} elements differ from reference/", a.strategy, a.world, a.where,
                                a.mismatches, a.elements));
  }
  if (bad.empty())
    return {"allreduce", CheckStatus::kOk,
            fmt::format("{} runs, {} elements, every one bit-exact against reference/", r.allreduce.size(), elements)};
  return {"allreduce", CheckStatus::kFailed, fmt::format("{}", fmt::join(bad, "; "))};
}

}  // namespace

bool evaluate_probe(ProbeReport& r) {
  r.checks = {check_vmm(r), check_handles(r),           check_nvlink(r),   check_fabric(r),
              check_p2p(r), check_peer_measurements(r), check_allreduce(r)};
  for (const ProbeCheck& c : r.checks)
    if (c.status == CheckStatus::kFailed) return false;
  return true;
}

}  // namespace ar
