// The bring-up report of `mnnvl-ar probe`: what every GPU of the job is and allows, what NVML says about its
// NVLinks and fabric, the IMEX channels, P2P access and peer measurements, a short bit-exact all-reduce,
// what could not be checked with this setup, and the verdict of each check. The facts are gathered by
// harness/commands/probe_command.cpp; here they are judged (evaluate_probe, probe_checks.cpp), printed
// (render_probe, probe_render.cpp) and written as JSON (probe_json, probe_report.cpp; also the form a rank
// sends its GPU to rank 0 in). Pure, so the CPU tests cover it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/job/gpu_backend.h"

namespace ar {

/// One GPU of the job.
struct ProbeGpu {
  std::vector<int> ranks;  ///< the job's ranks on it (empty: a GPU this process sees, no rank yet)
  std::string host;
  GpuDevice device;
  GpuNvml nvml;
};

/// One all-reduce the probe ran.
struct ProbeAllReduce {
  std::string where;     ///< "GPU 0 of host-a, 2 virtual ranks" / "4 processes, one rank each"
  std::string strategy;  ///< oneshot / twoshot
  int world = 0;
  std::int64_t tokens = 0, hidden = 0;
  std::string dtype;
  std::int64_t elements = 0, mismatches = 0;
  std::string timeout;  ///< a wait that gave up, in words (empty: none)
};

enum class CheckStatus { kOk, kWarning, kFailed, kNotChecked };

struct ProbeCheck {
  std::string name;
  CheckStatus status = CheckStatus::kNotChecked;
  std::string detail;
};

struct ProbeReport {
  std::string launcher;  ///< "single", "torchrun", "--spawn", ...
  int processes = 1;
  std::vector<std::string> hosts;
  std::vector<ProbeGpu> gpus;
  std::string imex_host;  ///< where the IMEX channels were looked for
  GpuImex imex;
  std::optional<GpuPeers> peers;  ///< between the GPUs rank 0's process sees, when it sees 2 or more
  std::string peers_host;
  std::string handles;  ///< the handle decision (a job of several processes) or why none was needed
  bool handles_failed = false;
  std::vector<ProbeAllReduce> allreduce;
  std::string allreduce_note;            ///< why no all-reduce ran (empty when one did)
  std::vector<std::string> not_checked;  ///< what this setup cannot show
  std::vector<ProbeCheck> checks;        ///< filled by evaluate_probe
};

/// Judges the facts: VMM, shareable handles, NVLink state and error counters, fabric registration and
/// health, P2P access, peer measurements, the all-reduce. Fills report.checks; returns true when none failed.
bool evaluate_probe(ProbeReport& report);

/// The readable report (ends with the checks and the verdict).
std::string render_probe(const ProbeReport& report);

/// The whole report as JSON.
std::string probe_json(const ProbeReport& report);

/// One GPU as JSON and back (what ranks send to rank 0). from_json throws std::runtime_error when malformed.
std::string probe_gpu_to_json(const ProbeGpu& gpu);
ProbeGpu probe_gpu_from_json(const std::string& text);

/// "GPU 0 of host-a": how the checks and the report name a GPU.
std::string gpu_label(const ProbeGpu& gpu);
/// "00000000-0000-0000-0000-000000000000"
std::string uuid_text(const std::array<std::uint8_t, 16>& uuid);
/// The fabric health mask in words: "bandwidth not degraded, route recovery not in progress, ..." (fields the
/// driver does not report are left out).
std::string fabric_health_text(std::uint32_t mask);
std::string_view check_status_name(CheckStatus s);  ///< "ok", "warning", "FAILED", "not checked"

}  // namespace ar
