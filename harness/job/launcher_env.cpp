#include "harness/job/launcher_env.h"

#include <cstdlib>
#include <vector>

#include <fmt/format.h>

#include "harness/io/exit_codes.h"

namespace ar {
namespace {

struct Scheme {
  const char* launcher;
  const char* rank;
  const char* world;
  const char* local_rank;
  const char* local_world;
};

// In order of precedence: an explicit torchrun-style setting wins over the MPI or Slurm variables that a
// wrapper may also have set.
constexpr Scheme kSchemes[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"},
};

int number(const EnvLookup& env, const char* name, int fallback, int min_value, long max_value = 1 << 20) {
  const auto v = env(name);
  if (!v) return fallback;
  // Slurm writes per-node counts like "4(x2)" or "4,2"; the first number is this node's.
  const std::string text = v->substr(0, v->find_first_of("(,"));
  char* end = nullptr;
  const long n = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || n < min_value || n > max_value)
    throw UsageError(fmt::format("environment variable {}='{}' is not a valid number (from {} to {})", name, *v,
                                 min_value, max_value));
  return static_cast<int>(n);
}

}  // namespace

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str())) return std::string(v);
    return std::nullopt;
  };
}

std::string first_host_of_nodelist(const std::string& nodelist) {
  const std::size_t bracket = nodelist.find('[');
  const std::size_t comma = nodelist.find(',');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) return nodelist.substr(0, comma);
  const std::string prefix = nodelist.substr(0, bracket);
  const std::size_t end = nodelist.find_first_of(",-]", bracket + 1);
  return prefix + nodelist.substr(bracket + 1, end - bracket - 1);
}

LaunchInfo detect_launch(const EnvLookup& env) {
  LaunchInfo info;
  info.launcher = "single";
  for (const Scheme& s : kSchemes) {
    if (!env(s.rank) || !env(s.world)) continue;
    info.launcher = s.launcher;
    info.world_size = number(env, s.world, 1, 1);
    info.rank = number(env, s.rank, 0, 0);
    info.local_rank = number(env, s.local_rank, info.rank, 0);
    info.local_world_size = number(env, s.local_world, info.world_size, 1);
    if (info.rank >= info.world_size)
      throw UsageError(fmt::format("{}={} is not below {}={}", s.rank, info.rank, s.world, info.world_size));
    if (info.local_rank >= info.local_world_size)
      throw UsageError(
          fmt::format("{}={} is not below {}={}", s.local_rank, info.local_rank, s.local_world, info.local_world_size));
    break;
  }
  if (info.launcher == "slurm") {
    if (const auto nodes = env("SLURM_JOB_NODELIST") ? env("SLURM_JOB_NODELIST") : env("SLURM_NODELIST"))
      info.address = first_host_of_nodelist(*nodes);
    if (const auto job = env("SLURM_JOB_ID")) {
      // A port of its own for each job (20000-39999), so two jobs on one node do not meet.
      char* end = nullptr;
      const unsigned long long id = std::strtoull(job->c_str(), &end, 10);
      if (job->empty() || *end != '\0' || (*job)[0] == '-')
        throw UsageError(fmt::format("environment variable SLURM_JOB_ID='{}' is not a job number", *job));
      info.port = static_cast<std::uint16_t>(20000 + id % 20000);
    }
  }
  if (const auto addr = env("MASTER_ADDR")) info.address = *addr;
  if (env("MASTER_PORT")) {
    const int port = number(env, "MASTER_PORT", 0, 1, 65535);
    // Under torchrun, MASTER_PORT normally belongs to torchrun itself: its agent serves the workers'
    // torch.distributed store there, and says so with TORCHELASTIC_USE_AGENT_STORE=True. Listening there
    // would fail, so rank 0 takes the next port, which every rank derives alike.
    const bool agent_store = env("TORCHELASTIC_USE_AGENT_STORE") == std::optional<std::string>("True");
    if (agent_store && port == 65535)
      throw UsageError(
          "MASTER_PORT=65535 is torchrun's own store, and the rendezvous would take the next port, which does not "
          "exist: choose another MASTER_PORT");
    info.port = static_cast<std::uint16_t>(agent_store ? port + 1 : port);
  }
  if (info.world_size == 1 && info.address.empty()) info.address = "127.0.0.1";
  return info;
}

DeviceChoice choose_device(const LaunchInfo& launch, int device_count) {
  if (device_count <= 0) return {0, false};
  return {launch.local_rank % device_count, launch.local_world_size > device_count};
}

}  // namespace ar
