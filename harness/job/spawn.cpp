#include "harness/job/spawn.h"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <openssl/rand.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness/io/exit_codes.h"
#include "harness/job/asio.h"
#include "reference/strategy.h"

extern char** environ;

namespace ar {
namespace {

std::uint16_t free_loopback_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return probe.local_endpoint().port();
}

// 256 bits from libcrypto's generator, as hex: a token nobody can guess, even offline from a proof.
std::string random_token() {
  unsigned char bytes[32] = {};
  if (RAND_bytes(bytes, sizeof(bytes)) != 1)
    throw UsageError("cannot make a token for --spawn: libcrypto has no random bytes");
  std::string hex;
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  return hex;
}

int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

std::string current_executable() {
  std::string path(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (n <= 0) throw UsageError("cannot find this program's path (/proc/self/exe) to spawn ranks");
  path.resize(static_cast<std::size_t>(n));
  return path;
}

int take_spawn_option(std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string value;
    std::size_t erase = 0;
    if (args[i] == "--spawn") {
      if (i + 1 >= args.size()) throw UsageError("--spawn needs a number of ranks");
      value = args[i + 1];
      erase = 2;
    } else if (args[i].rfind("--spawn=", 0) == 0) {
      value = args[i].substr(8);
      erase = 1;
    } else {
      continue;
    }
    char* end = nullptr;
    const long k = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || k < 1 || k > kMaxWorldSize)
      throw UsageError(fmt::format("--spawn {} is not a number of ranks between 1 and {}", value, kMaxWorldSize));
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(i), args.begin() + static_cast<std::ptrdiff_t>(i + erase));
    return static_cast<int>(k);
  }
  return 0;
}

SpawnedRanks::SpawnedRanks(int count, const std::string& program, const std::vector<std::string>& args) {
  const std::string port = std::to_string(free_loopback_port());
  const char* given = std::getenv("MNNVL_AR_TOKEN");
  const std::string token = given && *given ? given : random_token();
  const auto set_job = [&](int rank) {
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
    ::setenv("WORLD_SIZE", std::to_string(count).c_str(), 1);
    ::setenv("LOCAL_WORLD_SIZE", std::to_string(count).c_str(), 1);
    ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    ::setenv("MASTER_PORT", port.c_str(), 1);
    ::setenv("MNNVL_AR_TOKEN", token.c_str(), 1);
    // Our kernels never use NVLink multicast; keep every library in the job from using it either.
    ::setenv("NCCL_NVLS_ENABLE", "0", 1);
    ::setenv("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1", 1);
    ::setenv("NVSHMEM_DISABLE_NVLS", "1", 1);
  };
  std::vector<std::string> argv_strings{program};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (int rank = 1; rank < count; ++rank) {
    set_job(rank);  // the child copies this environment at spawn
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv.data(), environ);
    if (rc != 0) {
      for (pid_t started : children_) ::kill(started, SIGTERM);
      throw UsageError(fmt::format("cannot start rank {} ('{}'): {}", rank, program, std::strerror(rc)));
    }
    children_.push_back(pid);
    started_.push_back(pid);
  }
  exit_codes_.assign(started_.size(), -1);
  set_job(0);
  self_ = detect_launch(process_environment());
}

int SpawnedRanks::wait(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  int first_failure = 0;
  const auto record = [&](pid_t pid, int code) {
    for (std::size_t i = 0; i < started_.size(); ++i)
      if (started_[i] == pid) exit_codes_[i] = code;
  };
  while (!children_.empty()) {
    for (auto it = children_.begin(); it != children_.end();) {
      int status = 0;
      if (::waitpid(*it, &status, WNOHANG) == *it) {
        record(*it, exit_status(status));
        if (first_failure == 0) first_failure = exit_status(status);
        it = children_.erase(it);
      } else {
        ++it;
      }
    }
    if (children_.empty()) break;
    if (std::chrono::steady_clock::now() >= until) {
      for (pid_t pid : children_) ::kill(pid, SIGKILL);
      for (pid_t pid : children_) {
        ::waitpid(pid, nullptr, 0);
        record(pid, 128 + SIGKILL);
      }
      children_.clear();
      return first_failure ? first_failure : 128 + SIGKILL;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return first_failure;
}

SpawnedRanks::~SpawnedRanks() {
  for (pid_t pid : children_) ::kill(pid, SIGTERM);
  for (pid_t pid : children_) ::waitpid(pid, nullptr, 0);
}

}  // namespace ar
