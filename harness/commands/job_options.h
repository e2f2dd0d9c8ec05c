// The options and the --help paragraph every command that runs as a job (`run`, `bench`, `probe`) shares:
// where the processes meet, the token, how long a peer may take.
#pragma once

#include "harness/commands/options.h"
#include "harness/job/job.h"

namespace ar {

/// Adds --rendezvous, --token-file and --rendezvous-timeout-ms to a command's options.
void add_job_options(po::options_description& options, JobOptions& job);

/// The paragraph every multi-process command's --help shares: launchers, --spawn, token, GPU choice.
extern const char* const kJobHelp;

}  // namespace ar
