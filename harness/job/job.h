// The processes of one `run`, `bench` or `probe`: where this process stands (launcher variables, or
// `--spawn K`), the rendezvous that joins it to the others, and how the job ends with one exit code.
// A process started alone is a job of one process: the rendezvous then needs no network, and the commands
// run the same code either way.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "harness/job/launcher_env.h"
#include "harness/job/rendezvous.h"

namespace ar {

class SpawnedRanks;

struct JobOptions {
  std::string rendezvous;     ///< --rendezvous HOST:PORT: overrides the launcher's address and port
  std::string token_file;     ///< --token-file FILE: overrides $MNNVL_AR_TOKEN and $MNNVL_AR_TOKEN_FILE
  double timeout_ms = 60000;  ///< --rendezvous-timeout-ms: every wait for a peer
};

class Job {
 public:
  /// Detects the launch (detect_launch); with `spawn` > 0 starts ranks 1..spawn-1 as fresh runs of this
  /// program with `command` and `args` (this process becomes rank 0); then joins the rendezvous. Throws
  /// UsageError (bad launcher variables, --spawn under a launcher, no address to meet at, no token for a job
  /// of several processes, an unreadable token file) before listening or connecting, or RendezvousError (a
  /// peer never came, was refused, failed to prove the token, or differs in version).
  Job(int spawn, std::string_view command, const std::vector<std::string>& args, const JobOptions& options);
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  int rank() const { return launch_.rank; }
  int processes() const { return launch_.world_size; }
  bool leader() const { return launch_.rank == 0; }
  bool multi_process() const { return launch_.world_size > 1; }
  const LaunchInfo& launch() const { return launch_; }
  Rendezvous& rendezvous() { return *rendezvous_; }
  const std::string& host() const { return host_; }        ///< host name
  const std::string& host_id() const { return host_id_; }  ///< host name and boot id: one per machine
  /// "--spawn" for a job this process started, else the launcher detect_launch found.
  std::string launcher() const { return spawned_ ? "--spawn" : launch_.launcher; }

  /// Every process contributes `mine`; all contributions, index = rank.
  std::vector<std::string> gather(const std::string& mine) { return rendezvous_->all_gather(mine); }

  /// Runs a command's body and turns what it throws into an exit code, telling the peers why it stopped:
  /// UsageError -> 2, anything else (a dead peer, a CUDA error) -> 1. The message goes to `err`.
  int run(std::string_view command, std::ostream& err, const std::function<int()>& body);

  /// The end of the job for this process. Rank 0 of a --spawn job waits for its ranks (up to the
  /// rendezvous timeout and a margin), says on `err` which ended with another code, and returns the first
  /// failure when it had none itself. Other processes return `code`.
  int finish(int code, std::ostream& err);

 private:
  std::unique_ptr<SpawnedRanks> spawned_;
  LaunchInfo launch_;
  std::unique_ptr<Rendezvous> rendezvous_;
  std::string host_, host_id_;
  double timeout_ms_ = 60000;
};

/// A stream that drops everything: what the ranks other than 0 print their tables to.
std::ostream& null_stream();

/// The whole life of a command's job: start or join it (a failure to meet the peers -> exit 1 with the
/// message; bad launcher settings -> UsageError), run `body` with this job and the stream its results go
/// to (`out` on rank 0, null_stream() elsewhere) through Job::run, and finish.
int run_as_job(int spawn, std::string_view command, const std::vector<std::string>& args, const JobOptions& options,
               std::ostream& out, std::ostream& err, const std::function<int(Job& job, std::ostream& out)>& body);

}  // namespace ar
