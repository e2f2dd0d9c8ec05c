// Who am I in this job? Reads the variables that torchrun, Slurm, Open MPI, MPICH/PMI and our own
// `--spawn` set, so `run`, `bench` and `probe` work unchanged under each launcher.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace ar {

struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string address;     ///< rank 0's host for the rendezvous; empty when the launcher gives none
  std::uint16_t port = 0;  ///< where rank 0 listens; 0 when the launcher gives none
  std::string launcher;    ///< "torchrun", "slurm", "openmpi", "pmi", or "single" (no launcher)
};

/// Looks a variable up; the real one reads the process environment, tests pass a map.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_environment();

/// Detects the launcher from `env`. MASTER_ADDR / MASTER_PORT override the address and port under every
/// launcher; rank 0 listens on MASTER_PORT + 1 when torchrun's agent holds MASTER_PORT for its own store
/// (TORCHELASTIC_USE_AGENT_STORE=True). Throws UsageError naming the variable when one is set but malformed
/// (not a number, rank outside the world...).
LaunchInfo detect_launch(const EnvLookup& env);

/// The first host of a Slurm node list: "gpu-[003-005,010],cpu1" -> "gpu-003".
std::string first_host_of_nodelist(const std::string& nodelist);

/// The GPU a local rank uses when `device_count` GPUs are visible: local_rank % device_count. `shared` is set
/// when several local ranks share one GPU (the caller prints a notice).
struct DeviceChoice {
  int device = 0;
  bool shared = false;
};
DeviceChoice choose_device(const LaunchInfo& launch, int device_count);

}  // namespace ar
