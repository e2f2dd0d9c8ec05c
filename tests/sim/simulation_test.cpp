// Whole simulated runs: the unmutated protocol passes seeded schedules at every world size and over mixed call
// sequences, its outputs equal reference_all_reduce bit for bit on every rank, failures reproduce from their
// seed, and a deadlock ends the run with a report instead of a hang.
#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "sim_test_support.h"

namespace ar::sim::test {
namespace {

TEST_CASE("the protocol passes seeded random and adversarial schedules at every world size", "[cpu]") {
  const int world = GENERATE(from_range(kWorldSizes));
  // Tokens per call vary around W so TWOSHOT has ranks that own no token and ranks that own several.
  const std::string calls = world <= 8 ? "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=9,oneshot:N=1,auto:N=4"
                                       : "twoshot:N=2,oneshot:N=1,twoshot:N=3,oneshot:N=2";
  const SimConfig config = config_of(world, calls, world <= 16 ? 16 : 8);
  require_seeded_passes(config, 100, world <= 16 ? 60 : 6, fmt::format("W = {}", world));
}

TEST_CASE("mixed sequences pass: strategy, N, D and dtype change between calls", "[cpu]") {
  const std::string calls = GENERATE(
      std::string("oneshot:N=4,twoshot:N=64,auto:N=11,oneshot:N=1"),
      std::string("twoshot:N=3:D=8:dtype=fp32,oneshot:N=5:D=32,twoshot:N=2:dtype=fp16,oneshot:N=1:D=8:dtype=fp32"),
      std::string("oneshot:N=2,oneshot:N=3,twoshot:N=1,twoshot:N=7,oneshot:N=2,twoshot:N=2,oneshot:N=1"));
  const int world = GENERATE(2, 4, 8);
  const Writer writer = GENERATE(Writer::kUnicast, Writer::kMulticast);
  const Arrival arrival = GENERATE(Arrival::kFlashInfer, Arrival::kAfterFlags);
  SimConfig config = config_of(world, calls, 16, DType::kBf16, Mutation::kNone, writer);
  config.arrival = arrival;
  for (int s = 0; s < 12; ++s) {
    const SeededRun run = run_once(config, 7 + s, s % 2 == 1);
    INFO(calls << " W = " << world << " " << writer_name(writer) << " arrival " << arrival_name(arrival) << " seed "
               << 7 + s);
    INFO(describe_failure(run.result));
    REQUIRE(run.result.finished);
  }
}

TEST_CASE("several packs per CTA and a larger workspace than needed pass", "[cpu]") {
  const int ppc = GENERATE(2, 3, 4);
  CallDefaults defaults{3, 64, DType::kBf16};
  const auto calls = resolve_calls(parse_call_sequence("oneshot,twoshot:N=6,oneshot:N=2,twoshot"), 4, defaults);
  const SimConfig config = make_sim_config(4, calls, 64 * 1024, ppc, Writer::kUnicast, Mutation::kNone);
  for (int s = 0; s < 10; ++s) {
    const SeededRun run = run_once(config, 40 + s, s % 2 == 1);
    INFO("packs per CTA " << ppc << " seed " << 40 + s << ": " << describe_failure(run.result));
    REQUIRE(run.result.finished);
  }
}

TEST_CASE("every rank's output of every call equals reference_all_reduce bit for bit", "[cpu]") {
  const int world = GENERATE(2, 4, 16);
  const SimConfig config =
      config_of(world, "oneshot:N=3,twoshot:N=5:dtype=fp32:D=8,auto:N=2:dtype=fp16,twoshot:N=4", 16);
  const SeededRun run = run_once(config, 2024, true, nullptr, /*record_outputs=*/true);
  INFO(describe_failure(run.result));
  REQUIRE(run.result.finished);
  check_outputs_equal_reference(config, run);
}

TEST_CASE("a failure reproduces exactly from its seed", "[cpu]") {
  const SimConfig config = config_of(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=3,oneshot:N=4", 16, DType::kBf16,
                                     Mutation::kTwoBuffers);
  std::optional<std::uint64_t> failing;
  for (std::uint64_t seed = 1; seed < 50 && !failing; ++seed)
    if (run_once(config, seed).result.failure) failing = seed;
  REQUIRE(failing);
  const SeededRun a = run_once(config, *failing);
  const SeededRun b = run_once(config, *failing);
  REQUIRE(a.result.failure);
  REQUIRE(b.result.failure);
  CHECK(a.result.steps == b.result.steps);
  CHECK(a.result.events == b.result.events);
  CHECK(a.result.failure->step == b.result.failure->step);
  CHECK(a.result.failure->message == b.result.failure->message);
}

TEST_CASE("a deadlock ends the run with who waits on which slot and what it sees", "[cpu]") {
  // No input sanitising: the first words of every call cycle through a +0/-0 pair, the sentinel itself.
  const SimConfig config = config_of(2, "oneshot:N=1:D=16", 16, DType::kBf16, Mutation::kNoInputSanitize);
  const SeededRun run = run_once(config, 3);
  REQUIRE(run.result.failure);
  const Failure& f = *run.result.failure;
  CHECK(f.kind == FailureKind::kDeadlock);
  CHECK(f.call == 0);
  CHECK_THAT(f.message, Catch::Contains("no CTA can make progress") && Catch::Contains("polls ONESHOT slot") &&
                            Catch::Contains("sees [") && Catch::Contains("is the sentinel itself"));
}

TEST_CASE("the arrival counter holds CTA 0 until every CTA arrived", "[cpu]") {
  // A livelock-free spin: with many CTAs per rank and the late-CTA adversary, CTA 0 always waits (blocked on
  // flag word 8) instead of rotating early, and the run completes.
  const SimConfig config = config_of(2, "oneshot:N=4,twoshot:N=4,oneshot:N=4", 64);
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    const SeededRun run = run_once(config, seed, true);
    INFO(describe_failure(run.result));
    REQUIRE(run.result.finished);
  }
}

TEST_CASE("the state hash is a function of the state", "[cpu]") {
  const SimConfig config = config_of(2, "oneshot:N=1:D=8,twoshot:N=1:D=8");
  const auto calls = make_call_contexts(config, 5);
  ReplayChooser a, b;
  Simulation sa(config, calls, a), sb(config, calls, b);
  CHECK(sa.state_hash() == sb.state_hash());
  sa.run(10);  // ten steps of the first schedule in each
  sb.run(10);
  CHECK(sa.state_hash() == sb.state_hash());
  ReplayChooser c;
  Simulation sc(config, calls, c);
  sc.run(11);
  CHECK(sc.state_hash() != sa.state_hash());
}

}  // namespace
}  // namespace ar::sim::test
