// --spawn: real processes on one host meet in the rendezvous; a dying or impostor rank ends the job cleanly.
#include <catch2/catch.hpp>

#include "harness/io/exit_codes.h"
#include "harness/job/rendezvous.h"
#include "harness/job/rendezvous_auth.h"
#include "harness/job/spawn.h"

using namespace ar;
using namespace std::chrono_literals;

namespace {

// This test process is rank 0 of a job whose other ranks run spawn_child in `mode`.
std::string run_job(int ranks, const std::string& mode, int& children_status) {
  SpawnedRanks job(ranks, AR_SPAWN_CHILD, {mode});
  std::string outcome = "ok";
  try {
    RendezvousOptions o;
    o.rank = job.self().rank;
    o.world_size = job.self().world_size;
    o.address = job.self().address;
    o.port = job.self().port;
    o.token = token_from_environment();
    o.timeout = 3000ms;
    Rendezvous rv(o);
    const auto all = rv.all_gather("0");
    rv.barrier();
    outcome = "gathered " + std::to_string(all.size());
  } catch (const RendezvousError& e) {
    outcome = e.what();
  }
  children_status = job.wait(10s);
  return outcome;
}

}  // namespace

TEST_CASE("take_spawn_option removes --spawn K from the arguments", "[cpu]") {
  std::vector<std::string> args{"run", "--spawn", "4", "--calls", "oneshot:N=1"};
  CHECK(take_spawn_option(args) == 4);
  CHECK(args == std::vector<std::string>{"run", "--calls", "oneshot:N=1"});
  std::vector<std::string> eq{"--spawn=2"};
  CHECK(take_spawn_option(eq) == 2);
  std::vector<std::string> none{"run"};
  CHECK(take_spawn_option(none) == 0);
  std::vector<std::string> bad{"--spawn", "0"};
  CHECK_THROWS_AS(take_spawn_option(bad), UsageError);
}

TEST_CASE("spawned ranks join the rendezvous", "[cpu]") {
  int status = -1;
  CHECK(run_job(4, "gather", status) == "gathered 4");
  CHECK(status == 0);
}

TEST_CASE("a spawned rank that dies is named and the job ends", "[cpu]") {
  int status = -1;
  const std::string outcome = run_job(3, "die", status);
  CHECK_THAT(outcome, Catch::Contains("rank 1 closed its connection"));
  CHECK(status != 0);
}

TEST_CASE("a rank with the wrong token is refused and the job times out cleanly", "[cpu]") {
  int status = -1;
  const std::string outcome = run_job(2, "wrong-token", status);
  CHECK_THAT(outcome, Catch::Contains("timed out") && Catch::Contains("refused"));
  CHECK(status == 1);
}
