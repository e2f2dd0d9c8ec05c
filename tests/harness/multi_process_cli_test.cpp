// `run`, `bench` and `probe` as jobs of real processes (the mnnvl-ar executable, --spawn and launcher
// variables), on any machine: without a GPU every process must end with exit code 2 and one clear message,
// never hang; with one, the job must succeed. Bad launcher settings are usage errors before any process is
// started.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <sys/wait.h>

#include "harness/job/asio.h"
#include "test_support.h"

using namespace std::chrono_literals;

namespace {

struct Outcome {
  int code = -1;
  std::string output;  // stdout and stderr together
  std::chrono::duration<double> took{};
};

/// Runs `mnnvl-ar <arguments>` through the shell with `environment` prepended ("VAR=value ..."), under a
/// hard limit so a hang fails the test instead of stalling it.
Outcome mnnvl_ar(const std::string& arguments, const std::string& environment = "") {
  ar::test::ScratchDir dir;
  const std::string log = dir.file("log");
  // Launcher variables a --spawn test left in this process must not reach the command.
  const std::string clean = "env -u RANK -u LOCAL_RANK -u WORLD_SIZE -u LOCAL_WORLD_SIZE -u MASTER_ADDR -u MASTER_PORT "
                            "-u MNNVL_AR_TOKEN";
  const std::string command =
      fmt::format("{} {} timeout -k 5 90 {} {} >{} 2>&1", clean, environment, AR_CLI_PATH, arguments, log);
  const auto start = std::chrono::steady_clock::now();
  const int status = std::system(command.c_str());
  Outcome o;
  o.took = std::chrono::steady_clock::now() - start;
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  o.output = text.str();
  return o;
}

std::uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

bool no_gpu(const Outcome& o) { return o.code == 2 && o.output.find("no GPU") != std::string::npos; }

}  // namespace

TEST_CASE("run --spawn 2 ends on every rank with one code and one message, never hangs", "[cpu]") {
  const Outcome o = mnnvl_ar("run --spawn 2 --world 2 --dtype bf16 --profile flashinfer --pdl off "
                             "--calls oneshot:N=2,twoshot:N=4 --timeout-ms 2000 --rendezvous-timeout-ms 20000");
  INFO(o.output);
  CHECK(o.took < 60s);
  // "rank k exited with code c (rank 0: d)" appears only when the processes ended differently.
  CHECK_THAT(o.output, !Catch::Contains("exited with code"));
  if (no_gpu(o)) {
    CHECK_THAT(o.output, Catch::Contains("mnnvl-ar run: no GPU: ranks 0-1: "));
  } else {
    CHECK(o.code == 0);
    CHECK_THAT(o.output, Catch::Contains("every output bit-exact"));
  }
}

TEST_CASE("bench and probe as spawned jobs end cleanly too", "[cpu]") {
  for (const char* args : {"bench --spawn 2 -W 2 -b 4K -e 4K -n 2 -w 1 -d bf16 -s oneshot --rendezvous-timeout-ms 20000",
                           "probe --spawn 2 --no-peers --rendezvous-timeout-ms 20000"}) {
    const Outcome o = mnnvl_ar(args);
    INFO(args << "\n" << o.output);
    CHECK(o.took < 60s);
    CHECK_THAT(o.output, !Catch::Contains("exited with code"));
    if (!no_gpu(o)) CHECK(o.code == 0);
  }
}

TEST_CASE("usage mistakes stop the job before any process is started", "[cpu]") {
  const Outcome under_launcher = mnnvl_ar("run --spawn 2", "RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1");
  INFO(under_launcher.output);
  CHECK(under_launcher.code == 2);
  CHECK_THAT(under_launcher.output, Catch::Contains("--spawn 2 starts a job of its own") &&
                                        Catch::Contains("rank 0 of 2 started by torchrun"));

  const Outcome no_address = mnnvl_ar("run", "RANK=1 WORLD_SIZE=2");
  INFO(no_address.output);
  CHECK(no_address.code == 2);
  CHECK_THAT(no_address.output, Catch::Contains("nothing says where rank 0 listens"));

  const Outcome bad_spawn = mnnvl_ar("probe --spawn 0");
  CHECK(bad_spawn.code == 2);
  CHECK_THAT(bad_spawn.output, Catch::Contains("between 1 and 64"));

  const Outcome bad_handles = mnnvl_ar("run --spawn 2 --handles ipc");
  CHECK(bad_handles.code == 2);
  CHECK_THAT(bad_handles.output, Catch::Contains("--handles 'ipc': choose auto, posix or fabric"));
}

TEST_CASE("a process whose token is wrong is refused and both end within the timeout", "[cpu]") {
  // Two processes started by hand with torchrun's variables; rank 1 presents another token.
  ar::test::ScratchDir dir;
  const std::string common = "env -u MNNVL_AR_TOKEN -u MASTER_ADDR -u MASTER_PORT WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                             std::to_string(free_port());
  const std::string args = " run --world 2 --calls oneshot:N=1 --rendezvous-timeout-ms 3000";
  const std::string script = fmt::format(
      "({c} RANK=0 LOCAL_RANK=0 MNNVL_AR_TOKEN=right timeout -k 5 60 {cli}{a} >{d}/r0 2>&1; echo $? >{d}/c0) & "
      "({c} RANK=1 LOCAL_RANK=1 MNNVL_AR_TOKEN=wrong timeout -k 5 60 {cli}{a} >{d}/r1 2>&1; echo $? >{d}/c1) & wait",
      fmt::arg("c", common), fmt::arg("cli", AR_CLI_PATH), fmt::arg("a", args), fmt::arg("d", dir.path().string()));
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(std::system(("bash -c '" + script + "'").c_str()) == 0);
  CHECK(std::chrono::steady_clock::now() - start < 30s);
  const auto read = [&](const std::string& name) {
    std::ifstream in(dir.file(name));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  INFO("rank 0: " << read("r0") << "\nrank 1: " << read("r1"));
  CHECK(read("c0") == "1\n");
  CHECK(read("c1") == "1\n");
  CHECK_THAT(read("r1"), Catch::Contains("refused this process: rank 1 presented a proof that does not match"));
  CHECK_THAT(read("r0"), Catch::Contains("waiting for rank 1 to join") && Catch::Contains("1 connection refused"));
}
