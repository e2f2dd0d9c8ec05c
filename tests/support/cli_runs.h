// Running mnnvl-ar from a test: in this process through the command table (quick, stdout and stderr apart),
// or as child processes of the real executable (jobs, launchers, signals), each under a hard time limit so
// that a hang fails the test instead of stalling it. Child processes never inherit the test process's
// launcher variables (launcher_env.h): only the ones a test gives them.
#pragma once

#include <chrono>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "harness/commands/cli.h"
#include "harness/io/exit_codes.h"

namespace ar::test {

/// What an in-process run printed and returned.
struct CliResult {
  int code;
  std::string out, err;
};

/// Runs `mnnvl-ar args...` in this process (run_cli). Inline, so a test binary that does not link
/// ar_test_support can use it too.
inline CliResult run_in_process(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

/// The message of the UsageError that `f` throws; empty when it throws none (any other exception escapes).
inline std::string usage_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return {};
}

/// The mnnvl-ar executable the child processes run: $AR_CLI when set (the GPU suite runs binaries copied
/// away from the build tree), else the one this build made.
std::string cli_path();

/// One mnnvl-ar child process.
struct CliProcess {
  std::string arguments;    ///< mnnvl-ar's arguments, as shell words
  std::string environment;  ///< "VAR=value ..." set for it after the launcher variables are cleared
};

/// How a child process ended.
struct ProcessOutcome {
  int code = -1;       ///< its exit code (124 or 137: killed at the limit); -1 when it did not exit normally
  std::string output;  ///< stdout and stderr together
  std::chrono::duration<double> took{};  ///< from the start of all processes to its end
};

/// The default hard limit of a child process.
inline constexpr std::chrono::seconds kProcessLimit{90};

/// Runs one mnnvl-ar process and waits for it. It is killed (`timeout -k 5`) after `limit`.
ProcessOutcome run_process(const CliProcess& process, std::chrono::seconds limit = kProcessLimit);

/// Starts every process at once, as a launcher would start the ranks of a job, and waits for all of them;
/// each is killed after `limit`. Returns their outcomes in the order given.
std::vector<ProcessOutcome> run_processes(const std::vector<CliProcess>& processes,
                                          std::chrono::seconds limit = kProcessLimit);

}  // namespace ar::test
