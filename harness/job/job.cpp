#include "harness/job/job.h"

#include <chrono>
#include <fstream>
#include <ostream>
#include <streambuf>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <unistd.h>

#include "harness/io/exit_codes.h"
#include "harness/job/rendezvous_auth.h"
#include "harness/job/spawn.h"

namespace ar {
namespace {

/// "host:port" -> (host, port); the host may be a bracketed IPv6 literal.
std::pair<std::string, std::uint16_t> parse_endpoint(const std::string& text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    throw UsageError(fmt::format("--rendezvous '{}' is not HOST:PORT", text));
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port_text = text.substr(colon + 1);
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (*end != '\0' || port < 1 || port > 65535)
    throw UsageError(fmt::format("--rendezvous '{}': the port must be a number from 1 to 65535", text));
  return {host, static_cast<std::uint16_t>(port)};
}

std::string hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

/// The host name plus the kernel's boot id: two containers of one machine share the boot id, two machines
/// that happen to share a host name do not.
std::string machine_id(const std::string& host) {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string boot;
  std::getline(in, boot);
  return host + "/" + boot;
}

class NullBuffer final : public std::streambuf {
 protected:
  int overflow(int c) override { return c == traits_type::eof() ? 0 : c; }
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

}  // namespace

std::ostream& null_stream() {
  static NullBuffer buffer;
  static std::ostream stream(&buffer);
  return stream;
}

Job::Job(int spawn, std::string_view command, const std::vector<std::string>& args, const JobOptions& options)
    : timeout_ms_(options.timeout_ms) {
  if (options.timeout_ms <= 0) throw UsageError("--rendezvous-timeout-ms must be positive");
  const LaunchInfo outer = detect_launch(process_environment());
  // Read before any rank is spawned, so a bad token file starts nothing.
  std::string token = options.token_file.empty()
                          ? std::string()
                          : read_token_file(options.token_file, "--token-file " + options.token_file);
  if (spawn > 0) {
    if (outer.world_size > 1)
      throw UsageError(
          fmt::format("--spawn {} starts a job of its own, but this process is already rank {} of {} "
                      "started by {}; drop --spawn",
                      spawn, outer.rank, outer.world_size, outer.launcher));
    std::vector<std::string> child_args{std::string(command)};
    child_args.insert(child_args.end(), args.begin(), args.end());
    spawned_ = std::make_unique<SpawnedRanks>(spawn, current_executable(), child_args);
    launch_ = spawned_->self();
  } else {
    launch_ = outer;
  }
  if (!options.rendezvous.empty()) std::tie(launch_.address, launch_.port) = parse_endpoint(options.rendezvous);
  host_ = hostname();
  host_id_ = machine_id(host_);

  RendezvousOptions r;
  r.rank = launch_.rank;
  r.world_size = launch_.world_size;
  r.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(options.timeout_ms));
  r.program_version = MNNVL_AR_VERSION;
  if (launch_.world_size > 1) {
    if (launch_.address.empty() || launch_.port == 0)
      throw UsageError(
          fmt::format("this process is rank {} of {} ({}), but nothing says where rank 0 listens: set MASTER_ADDR and "
                      "MASTER_PORT (rank 0's host and a free port) or pass --rendezvous HOST:PORT",
                      launch_.rank, launch_.world_size, launch_.launcher));
    r.token = token.empty() ? token_from_environment() : token;  // --spawn has put its own in the environment
    // Without a token any process that reaches the port could join the job, or pose as rank 0 and hand
    // the ranks its own plan; so a job of several processes refuses before it listens or connects.
    if (r.token.empty())
      throw UsageError(missing_token_message(launch_.rank, launch_.world_size, launch_.launcher,
                                             "pass --token-file FILE (--spawn makes its own)"));
    r.address = launch_.address;
    r.port = launch_.port;
  }
  rendezvous_ = std::make_unique<Rendezvous>(r);
}

Job::~Job() = default;

int Job::run(std::string_view command, std::ostream& err, const std::function<int()>& body) {
  const std::string who =
      multi_process() ? fmt::format("mnnvl-ar {} (rank {})", command, rank()) : fmt::format("mnnvl-ar {}", command);
  try {
    return body();
  } catch (const UsageError& e) {
    fmt::print(err, "{}: error: {}\n", who, e.what());
    rendezvous_->abort(e.what());
    return kExitUsage;
  } catch (const std::invalid_argument& e) {
    fmt::print(err, "{}: error: {}\n", who, e.what());
    rendezvous_->abort(e.what());
    return kExitUsage;
  } catch (const RendezvousError& e) {  // its message names the rank already
    fmt::print(err, "mnnvl-ar {}: {}\n", command, e.what());
    rendezvous_->abort(e.what());
    return kExitDifference;
  } catch (const std::exception& e) {
    fmt::print(err, "{}: error: {}\n", who, e.what());
    rendezvous_->abort(fmt::format("rank {} failed: {}", rank(), e.what()));
    return kExitDifference;
  }
}

int Job::finish(int code, std::ostream& err) {
  if (!spawned_) return code;
  // The spawned ranks end right after rank 0 in a normal job, or on their own timeouts otherwise.
  const auto limit = std::chrono::milliseconds(static_cast<std::int64_t>(timeout_ms_) + 30000);
  const int first_failure = spawned_->wait(limit);
  const std::vector<int>& codes = spawned_->exit_codes();
  for (std::size_t i = 0; i < codes.size(); ++i)
    if (codes[i] != code)
      fmt::print(err, "mnnvl-ar: rank {} exited with code {} (rank 0: {})\n", i + 1, codes[i], code);
  return code != 0 ? code : first_failure;
}

int run_as_job(int spawn, std::string_view command, const std::vector<std::string>& args, const JobOptions& options,
               std::ostream& out, std::ostream& err, const std::function<int(Job& job, std::ostream& out)>& body) {
  std::unique_ptr<Job> job;
  try {
    job = std::make_unique<Job>(spawn, command, args, options);
  } catch (const RendezvousError& e) {  // the processes never formed a job (spawned ones are stopped)
    fmt::print(err, "mnnvl-ar {}: {}\n", command, e.what());
    return kExitDifference;
  }
  const int code = job->run(command, err, [&] { return body(*job, job->leader() ? out : null_stream()); });
  return job->finish(code, err);
}

}  // namespace ar
