// `run`, `bench` and `probe` as jobs of real processes (the mnnvl-ar executable, --spawn and launcher
// variables), on any machine: without a GPU every process must end with exit code 2 and one clear message,
// never hang; with one, the job must succeed. Bad launcher settings are usage errors before any process is
// started.
#include <catch2/catch.hpp>

#include <string>

#include "tests/support/cli_runs.h"
#include "tests/support/launcher_env.h"

using namespace std::chrono_literals;
using ar::test::ProcessOutcome;
using ar::test::run_process;

namespace {

bool no_gpu(const ProcessOutcome& o) { return o.code == 2 && o.output.find("no GPU") != std::string::npos; }

}  // namespace

TEST_CASE("run --spawn 2 ends on every rank with one code and one message, never hangs", "[cpu]") {
  const ProcessOutcome o =
      run_process({"run --spawn 2 --world 2 --dtype bf16 --profile flashinfer --pdl off "
                   "--calls oneshot:N=2,twoshot:N=4 --timeout-ms 2000 "
                   "--rendezvous-timeout-ms 20000"});
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
  for (const char* args :
       {"bench --spawn 2 -W 2 -b 4K -e 4K -n 2 -w 1 -d bf16 -s oneshot --rendezvous-timeout-ms 20000",
        "probe --spawn 2 --no-peers --rendezvous-timeout-ms 20000"}) {
    const ProcessOutcome o = run_process({args});
    INFO(args << "\n" << o.output);
    CHECK(o.took < 60s);
    CHECK_THAT(o.output, !Catch::Contains("exited with code"));
    if (!no_gpu(o)) CHECK(o.code == 0);
  }
}

TEST_CASE("usage mistakes stop the job before any process is started", "[cpu]") {
  const ProcessOutcome under_launcher =
      run_process({"run --spawn 2", "RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1"});
  INFO(under_launcher.output);
  CHECK(under_launcher.code == 2);
  CHECK_THAT(under_launcher.output, Catch::Contains("--spawn 2 starts a job of its own") &&
                                        Catch::Contains("rank 0 of 2 started by torchrun"));

  const ProcessOutcome no_address = run_process({"run", "RANK=1 WORLD_SIZE=2"});
  INFO(no_address.output);
  CHECK(no_address.code == 2);
  CHECK_THAT(no_address.output, Catch::Contains("nothing says where rank 0 listens"));

  const ProcessOutcome bad_spawn = run_process({"probe --spawn 0"});
  CHECK(bad_spawn.code == 2);
  CHECK_THAT(bad_spawn.output, Catch::Contains("between 1 and 64"));

  const ProcessOutcome bad_handles = run_process({"run --spawn 2 --handles ipc"});
  CHECK(bad_handles.code == 2);
  CHECK_THAT(bad_handles.output, Catch::Contains("--handles 'ipc': choose auto, posix or fabric"));
}

TEST_CASE("a process whose token is wrong is refused and both end within the timeout", "[cpu]") {
  // Two processes started by hand with torchrun's variables; rank 1 presents another token.
  const std::uint16_t port = ar::test::free_port();
  const std::string args = "run --world 2 --calls oneshot:N=1 --rendezvous-timeout-ms 3000";
  const auto ranks =
      ar::test::run_processes({{args, ar::test::torchrun_environment(0, 2, port) + " MNNVL_AR_TOKEN=right"},
                               {args, ar::test::torchrun_environment(1, 2, port) + " MNNVL_AR_TOKEN=wrong"}},
                              60s);
  INFO("rank 0: " << ranks[0].output << "\nrank 1: " << ranks[1].output);
  CHECK(ranks[0].took < 30s);
  CHECK(ranks[1].took < 30s);
  CHECK(ranks[0].code == 1);
  CHECK(ranks[1].code == 1);
  CHECK_THAT(ranks[1].output, Catch::Contains("refused this process: rank 1 presented a proof that does not match"));
  CHECK_THAT(ranks[0].output, Catch::Contains("waiting for rank 1 to join") && Catch::Contains("1 connection refused"));
}
