// The job around the GPU commands: a process alone is a job of one, launcher mistakes are usage errors,
// ranks split evenly over processes, and processes that plan different calls refuse before any kernel.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <future>
#include <sstream>

#include <sys/stat.h>

#include <fmt/format.h>

#include "harness/io/exit_codes.h"
#include "harness/job/asio.h"
#include "harness/job/gpu_job.h"
#include "harness/job/job.h"
#include "harness/job/rendezvous_auth.h"
#include "tests/support/cli_runs.h"
#include "tests/support/launcher_env.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using namespace std::chrono_literals;

namespace {

/// Sets environment variables for one test and removes them afterwards. Launcher variables left behind by
/// another test of this process (a --spawn test makes its process rank 0) are cleared first.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars = {}) : vars_(std::move(vars)) {
    for (const char* name : test::kLauncherVariables) ::unsetenv(name);
    for (const auto& [k, v] : vars_) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : vars_) ::unsetenv(k.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::string>> vars_;
};

}  // namespace

TEST_CASE("a process started alone is a job of one process", "[cpu]") {
  ScopedEnv alone;
  Job job(0, "run", {}, JobOptions{});
  CHECK(job.rank() == 0);
  CHECK(job.processes() == 1);
  CHECK(job.leader());
  CHECK_FALSE(job.multi_process());
  CHECK(job.launcher() == "single");
  CHECK(job.gather("mine") == std::vector<std::string>{"mine"});
  std::ostringstream err;
  CHECK(job.run("run", err, [] { return 0; }) == 0);
  CHECK(job.run("run", err, []() -> int { throw UsageError("bad flag"); }) == kExitUsage);
  CHECK_THAT(err.str(), Catch::Contains("mnnvl-ar run: error: bad flag"));
  CHECK(job.run("run", err, []() -> int { throw RendezvousError("rank 0: rank 1 closed its connection"); }) ==
        kExitDifference);
  CHECK(job.run("run", err, []() -> int { throw std::runtime_error("cuMemCreate failed"); }) == kExitDifference);
  CHECK(job.finish(1, err) == 1);
}

TEST_CASE("launcher mistakes are usage errors that say what to set", "[cpu]") {
  {
    ScopedEnv env({{"RANK", "1"}, {"WORLD_SIZE", "2"}});
    CHECK_THROWS_WITH(Job(0, "run", {}, JobOptions{}),
                      Catch::Contains("rank 1 of 2 (torchrun)") && Catch::Contains("MASTER_ADDR"));
    CHECK_THROWS_WITH(Job(2, "run", {}, JobOptions{}), Catch::Contains("--spawn 2 starts a job of its own"));
  }
  ScopedEnv alone;
  JobOptions bad;
  bad.rendezvous = "no-port-here";
  CHECK_THROWS_AS(Job(0, "run", {}, bad), UsageError);
  bad.rendezvous = "host:70000";
  CHECK_THROWS_WITH(Job(0, "run", {}, bad), Catch::Contains("from 1 to 65535"));
  JobOptions missing_token;
  missing_token.token_file = "/nonexistent/token";
  CHECK_THROWS_WITH(Job(0, "run", {}, missing_token), Catch::Contains("--token-file /nonexistent/token"));
}

TEST_CASE("a job of several processes with no token refuses before it listens or connects, saying how to set one",
          "[cpu]") {
  // The test holds the port: rank 0 could not listen there and rank 1's connection would wait here, so the
  // usage error shows that neither tried.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor port_holder(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const std::string port = std::to_string(port_holder.local_endpoint().port());
  for (const char* rank : {"0", "1"}) {
    ScopedEnv env({{"RANK", rank}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", port}});
    CHECK_THROWS_AS(Job(0, "run", {}, JobOptions{}), UsageError);
    CHECK_THROWS_WITH(Job(0, "run", {}, JobOptions{}),
                      Catch::Contains(fmt::format("rank {} of 2 (torchrun), but no token is set", rank)) &&
                          Catch::Contains("export MNNVL_AR_TOKEN=$(openssl rand -hex 16)") &&
                          Catch::Contains("$MNNVL_AR_TOKEN_FILE, or pass --token-file FILE"));
    // Through the command line: exit 2 with that message, before the GPU is looked at.
    const auto cli = test::run_in_process({"run", "--world", "2", "--calls", "oneshot:N=1"});
    CHECK(cli.code == kExitUsage);
    CHECK_THAT(cli.err, Catch::Contains("no token is set") && !Catch::Contains("GPU"));
  }
  port_holder.non_blocking(true);
  boost::asio::ip::tcp::socket never(io);
  boost::system::error_code nothing_waiting;
  port_holder.accept(never, nothing_waiting);
  CHECK(nothing_waiting == boost::asio::error::would_block);
  // An empty MNNVL_AR_TOKEN counts as none.
  ScopedEnv empty({{"RANK", "1"},
                   {"WORLD_SIZE", "2"},
                   {"MASTER_ADDR", "127.0.0.1"},
                   {"MASTER_PORT", port},
                   {"MNNVL_AR_TOKEN", ""}});
  CHECK_THROWS_WITH(Job(0, "run", {}, JobOptions{}), Catch::Contains("no token is set"));
}

TEST_CASE("token files: a FIFO, a device, a folder or a huge file is refused, not read forever", "[cpu]") {
  test::ScratchDir dir;
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(read_token_file(fifo, "--token-file fifo"),
                    Catch::Contains("--token-file fifo: token file") && Catch::Contains("is not a regular file"));
  CHECK_THROWS_WITH(read_token_file("/dev/zero", "--token-file /dev/zero"), Catch::Contains("is not a regular file"));
  CHECK_THROWS_WITH(read_token_file(dir.path(), "--token-file dir"), Catch::Contains("is not a regular file"));
  std::ofstream(dir.file("huge")) << std::string(70'000, 'x') << "\n";
  CHECK_THROWS_WITH(read_token_file(dir.file("huge"), "--token-file huge"), Catch::Contains("holds 70001 bytes"));
  std::ofstream(dir.file("no newline")) << "s3cret";
  CHECK(read_token_file(dir.file("no newline"), "--token-file x") == "s3cret");
}

TEST_CASE("token files: the first line, refused when unreadable or empty", "[cpu]") {
  test::ScratchDir dir;
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.file(name)) << text;
    return dir.file(name);
  };
  CHECK(read_token_file(write("crlf", "s3cret\r\nsecond line\n"), "--token-file crlf") == "s3cret");
  CHECK_THROWS_WITH(read_token_file(write("empty", "\nnot the first line\n"), "--token-file empty"),
                    Catch::Contains("--token-file empty: its first line is empty"));
  JobOptions empty_file;
  empty_file.token_file = dir.file("empty");
  {
    ScopedEnv alone;
    CHECK_THROWS_AS(Job(0, "run", {}, empty_file), UsageError);
  }
  ScopedEnv env({{"MNNVL_AR_TOKEN_FILE", dir.file("missing")}});
  CHECK_THROWS_WITH(token_from_environment(),
                    Catch::Contains("$MNNVL_AR_TOKEN_FILE=" + dir.file("missing") + ": cannot open token file"));
  ::setenv("MNNVL_AR_TOKEN", "from the variable", 1);  // the variable wins over the file
  CHECK(token_from_environment() == "from the variable");
  ::unsetenv("MNNVL_AR_TOKEN");
}

TEST_CASE("W ranks split evenly over the processes, in blocks", "[cpu]") {
  CHECK(local_ranks_of(4, 1, 0) == std::vector<int>{0, 1, 2, 3});
  CHECK(local_ranks_of(8, 4, 1) == std::vector<int>{2, 3});
  CHECK(local_ranks_of(2, 2, 1) == std::vector<int>{1});
  CHECK_THROWS_WITH(local_ranks_of(2, 4, 0), Catch::Contains("cannot be split evenly over 4 processes"));
  CHECK_THROWS_AS(local_ranks_of(8, 3, 0), UsageError);
}

TEST_CASE("the devices option names the GPUs one process spreads its ranks over, and refuses what cannot be", "[cpu]") {
  ScopedEnv alone;
  Job job(0, "run", {}, JobOptions{});
  CHECK(devices_option("", job, 2).empty());
  CHECK(devices_option("all", job, 4) == std::vector<int>{0, 1, 2, 3});
  CHECK(devices_option("1,0", job, 2) == std::vector<int>{1, 0});
  CHECK_THROWS_WITH(devices_option("0,2", job, 2), Catch::Contains("GPU 2 is not visible (this process sees 2 GPUs)"));
  CHECK_THROWS_WITH(devices_option("0,0", job, 2), Catch::Contains("GPU 0 is named twice"));
  CHECK_THROWS_WITH(devices_option("0,x", job, 2), Catch::Contains("'x' is not a GPU number"));
  CHECK_THROWS_WITH(devices_option("0,", job, 2), Catch::Contains("'' is not a GPU number"));
  CHECK_THROWS_WITH(devices_option("all", job, 1), Catch::Contains("needs at least 2 GPUs (this process sees 1)"));
  CHECK_THROWS_AS(devices_option("0", job, 2), UsageError);
}

TEST_CASE("world sizes that do not split over the GPUs are refused when named, dropped from all", "[cpu]") {
  ScopedEnv alone;
  Job job(0, "run", {}, JobOptions{});
  std::ostringstream err;
  CHECK(splittable_worlds({2, 4, 8}, 2, false, "the 2 GPUs", job, err) == std::vector<int>{2, 4, 8});
  CHECK_THROWS_WITH(splittable_worlds({2, 4, 8}, 4, false, "the 4 GPUs", job, err),
                    Catch::Contains("W = 2 cannot be split evenly over the 4 GPUs"));
  CHECK(splittable_worlds({2, 4, 8, 16, 32, 64}, 8, true, "the 8 GPUs", job, err) == std::vector<int>{8, 16, 32, 64});
  CHECK_THAT(err.str(), Catch::Contains("W = 2, 4 skipped: not a multiple of the 8 GPUs"));
  CHECK_THROWS_WITH(splittable_worlds({2}, 4, true, "the 4 GPUs", job, err),
                    Catch::Contains("no supported world size splits evenly over the 4 GPUs"));
  // The commands' wording: over the processes, or over the GPUs of --devices.
  CHECK(runnable_worlds(job, {2, 4}, {}, false, err) == std::vector<int>{2, 4});
  CHECK_THROWS_WITH(runnable_worlds(job, {2, 4}, {0, 1, 2, 3}, false, err),
                    Catch::Contains("W = 2 cannot be split evenly over the 4 GPUs of --devices"));
  CHECK(runnable_worlds(job, {2, 4, 8}, {0, 1, 2, 3}, true, err) == std::vector<int>{4, 8});
}

TEST_CASE("processes that plan different calls refuse before any kernel, naming the difference", "[cpu]") {
  const GpuCall base{{2, 64, 1024, DType::kBf16}, Strategy::kTwoShot, Profile::kFlashInfer, true};
  GpuCall other = base;
  other.shape.tokens = 8;
  CHECK(plan_line(2, "seq", base, Strategy::kTwoShot, Profile::kFlashInfer, 3) ==
        "call 2: seq twoshot N=64 D=1024 bf16 W=2 flashinfer expect=flashinfer pdl=on seed=3");
  const auto plan = [&](const GpuCall& second) {
    return plan_line(1, "seq", base, Strategy::kOneShot, Profile::kFlashInfer, 2) + "\n" +
           plan_line(2, "seq", second, Strategy::kTwoShot, Profile::kFlashInfer, 3) + "\n";
  };
  const std::uint16_t port = test::free_port();
  const auto rank = [&](int r) -> std::string {
    RendezvousOptions o;
    o.rank = r;
    o.world_size = 2;
    o.port = port;
    o.token = "t";
    o.program_version = "test";
    o.timeout = 5000ms;
    try {
      Rendezvous rv(o);
      rv.agree("plan at W = 2", plan(r == 1 ? other : base));
      return "launched";
    } catch (const RendezvousError& e) {
      return e.what();
    }
  };
  auto a = std::async(std::launch::async, rank, 0), b = std::async(std::launch::async, rank, 1);
  for (const std::string& outcome : {a.get(), b.get()}) {
    CHECK_THAT(outcome, Catch::Contains("disagree on the plan at W = 2") &&
                            Catch::Contains("rank 1 has 'call 2: seq "
                                            "twoshot N=8") &&
                            Catch::Contains("where rank 0 has 'call 2: seq twoshot N=64") &&
                            Catch::Contains("nothing was launched"));
  }
}

TEST_CASE("a long plan is compared item by item up to a bound, the rest by its digest", "[cpu]") {
  std::string plan;
  for (int i = 1; i <= 1000; ++i) plan += fmt::format("call {}: oneshot N=1\n", i);
  CHECK(bounded_plan(plan, plan.size()) == plan);
  const std::string cut = bounded_plan(plan, 100);
  CHECK(cut.size() < 200);
  CHECK_THAT(cut, Catch::StartsWith("call 1: oneshot N=1\ncall 2:") && Catch::Contains("the remaining"));
  std::string late = plan;
  late.replace(late.rfind("N=1"), 3, "N=2");  // the last call differs
  CHECK(bounded_plan(late, 100) != cut);
  CHECK(bounded_plan(late, 100).substr(0, 60) == cut.substr(0, 60));
}
