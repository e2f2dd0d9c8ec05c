// `--spawn K`: one command starts a K-rank job on this host. This process becomes rank 0; ranks 1..K-1 are
// fresh executions of the same program (posix_spawn + exec, never fork alone: CUDA is not fork-safe) with
// torchrun-style variables, a free loopback port and a token ($MNNVL_AR_TOKEN when set, else 256 random
// bits), so they meet in the rendezvous.
#pragma once

#include <sys/types.h>
#include <chrono>
#include <string>
#include <vector>

#include "harness/job/launcher_env.h"

namespace ar {

class SpawnedRanks {
 public:
  /// Starts ranks 1..count-1 running `program` with `args`; returns once they are started. Sets this
  /// process's own variables (RANK=0, ...) so detect_launch sees the job too.
  SpawnedRanks(int count, const std::string& program, const std::vector<std::string>& args);
  /// Kills the children that are still running.
  ~SpawnedRanks();
  SpawnedRanks(const SpawnedRanks&) = delete;
  SpawnedRanks& operator=(const SpawnedRanks&) = delete;

  /// This process as rank 0 of the job.
  const LaunchInfo& self() const { return self_; }

  /// Waits up to `timeout` for every child; kills those still running then. Returns the first non-zero
  /// exit status seen (a signal counts as 128 + its number), 0 when every child succeeded.
  int wait(std::chrono::milliseconds timeout);
  /// After wait(): each child's exit status, index 0 for rank 1 (128 + 9 for one killed at the timeout).
  const std::vector<int>& exit_codes() const { return exit_codes_; }

 private:
  std::vector<pid_t> children_;
  std::vector<pid_t> started_;  // every child, in rank order
  std::vector<int> exit_codes_;
  LaunchInfo self_;
};

/// Removes `--spawn K` / `--spawn=K` from `args`, returning K (0 when absent). Throws UsageError for a bad K.
int take_spawn_option(std::vector<std::string>& args);

/// The path of the running executable (/proc/self/exe).
std::string current_executable();

}  // namespace ar
