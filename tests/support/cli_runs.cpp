#include "tests/support/cli_runs.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/launcher_env.h"
#include "tests/support/scratch_dir.h"

namespace ar::test {
namespace {

/// The shell command of one process: launcher variables cleared, its own set, output to `log`.
std::string shell_command(const CliProcess& p, std::chrono::seconds limit, const std::string& log) {
  std::string command = "env";
  for (const char* name : kLauncherVariables) command += fmt::format(" -u {}", name);
  return fmt::format("{} {} timeout -k 5 {} {} {} >{} 2>&1", command, p.environment, limit.count(), cli_path(),
                     p.arguments, log);
}

/// Starts `/bin/sh -c command`; returns its pid, or -1 with errno set.
pid_t start_shell(const std::string& command) {
  const char* argv[] = {"sh", "-c", command.c_str(), nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return pid;
}

}  // namespace

std::string cli_path() {
  const char* over = std::getenv("AR_CLI");
  return over ? over : AR_CLI_PATH;
}

ProcessOutcome run_process(const CliProcess& process, std::chrono::seconds limit) {
  return run_processes({process}, limit).front();
}

std::vector<ProcessOutcome> run_processes(const std::vector<CliProcess>& processes, std::chrono::seconds limit) {
  using Clock = std::chrono::steady_clock;
  const ScratchDir logs;
  const auto log = [&](std::size_t i) { return logs.file(fmt::format("process{}.log", i)); };
  std::vector<ProcessOutcome> outcomes(processes.size());
  std::vector<pid_t> running(processes.size(), -1);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < processes.size(); ++i) {
    running[i] = start_shell(shell_command(processes[i], limit, log(i)));
    if (running[i] < 0) outcomes[i].output = fmt::format("cannot start /bin/sh: {}\n", std::strerror(errno));
  }
  // Polled rather than waited for in turn, so that each process's `took` is its own.
  for (bool any = true; any;) {
    any = false;
    for (std::size_t i = 0; i < processes.size(); ++i) {
      if (running[i] < 0) continue;
      int status = 0;
      const pid_t r = ::waitpid(running[i], &status, WNOHANG);
      if (r == 0 || (r < 0 && errno == EINTR)) {
        any = true;
        continue;
      }
      outcomes[i].took = Clock::now() - start;
      outcomes[i].code = r > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      running[i] = -1;
    }
    if (any) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (std::size_t i = 0; i < processes.size(); ++i)
    if (std::filesystem::exists(log(i))) outcomes[i].output += read_text(log(i));
  return outcomes;
}

}  // namespace ar::test
