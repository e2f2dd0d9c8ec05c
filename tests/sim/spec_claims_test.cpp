// The [inferred] claims of SPEC sections 4 and 6, each confirmed or refuted by running the simulator. The
// docs/simulator.md cites these tests.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "reference/fold.h"
#include "sim/inputs.h"
#include "sim_test_support.h"

namespace ar::sim::test {
namespace {

TEST_CASE("SPEC 4.2 [inferred] why three buffers: confirmed", "[cpu]") {
  // With two buffers, a peer that finished call k+1 (it needs only my k+1 data) writes its k+2 data into the
  // buffer I am still clearing in k+1. The exhaustive search finds that race at W = 2 with one pack.
  const SimConfig two =
      config_of(2, "oneshot,oneshot,oneshot,oneshot", 8, DType::kBf16, Mutation::kTwoBuffers, Writer::kUnicast, 1, 1);
  const SearchResult broken = search_one(two, ScheduleKind::kExhaustive, 1, 1'000'000);
  REQUIRE_FALSE(broken.passed);
  const Failure& f = broken.failure->failure;
  INFO(f.message);
  CHECK((f.kind == FailureKind::kOverwriteUncleared || f.kind == FailureKind::kClearUnread));
  CHECK_THAT(f.message, Catch::Contains("one-launch-late clear") || Catch::Contains("clear of unread data"));
  // With three, every schedule of the same configuration passes.
  SimConfig three = two;
  three.mutation = Mutation::kNone;
  const SearchResult sound = search_one(three, ScheduleKind::kExhaustive, 1, 1'000'000);
  CHECK(sound.passed);
  CHECK(sound.legs.at(0).exhausted);
}

TEST_CASE("SPEC 4.2 [inferred] launch k uses buffer (k-1) mod 3 and clears (k-2) mod 3: confirmed", "[cpu]") {
  const SimConfig config = config_of(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=3,oneshot:N=4,oneshot:N=1");
  TraceRecorder trace;
  const SeededRun run = run_once(config, 5, true, &trace);
  REQUIRE(run.result.finished);
  const std::int64_t bpb = config.buffer_bytes;
  for (int k = 0; k < static_cast<int>(config.calls.size()); ++k) {
    for (int r = 0; r < config.world_size; ++r) {
      INFO("call " << k << " (launch " << k + 1 << "), rank " << r);
      const auto data = bytes_written(trace, r, k, WriteKind::kData);
      REQUIRE_FALSE(data.empty());  // every call stores into every rank's buffer
      for (std::int64_t b : data) CHECK(b / bpb == k % 3);
      const auto cleared = bytes_written(trace, r, k, WriteKind::kClear);
      if (k == 0) CHECK(cleared.empty());  // nothing is dirty on the first launch
      else REQUIRE_FALSE(cleared.empty());  // from the second on, an earlier call's stage is dirty
      for (std::int64_t b : cleared) CHECK(b / bpb == (k + 2) % 3);
    }
  }
}

TEST_CASE("SPEC 4.3 [inferred] mixed strategies clear the recorded layout: confirmed", "[cpu]") {
  // W = 4, D = 16 bf16: ONESHOT N=3 records {384}; TWOSHOT N=5 records {round_up(5,4)*32 = 256, 5*32 = 160}.
  const SimConfig config = config_of(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2");
  REQUIRE(config.buffer_bytes == 512);
  TraceRecorder trace;
  const SeededRun run = run_once(config, 11, false, &trace);
  REQUIRE(run.result.finished);
  const std::int64_t bpb = config.buffer_bytes;
  for (int r = 0; r < 4; ++r) {
    INFO("rank " << r);
    // ONESHOT -> TWOSHOT: TWOSHOT clears dirty stage 0 at dirty*BPB with the ONESHOT byte count, and skips
    // stage 1 because the ONESHOT launch recorded one stage.
    CHECK(bytes_written(trace, r, 1, WriteKind::kClear) == byte_range(0 * bpb, 384));
    // TWOSHOT -> ONESHOT: ONESHOT clears both dirty stages, at dirty*BPB and dirty*BPB + BPB/2.
    std::set<std::int64_t> want = byte_range(1 * bpb, 256);
    for (std::int64_t b : byte_range(1 * bpb + bpb / 2, 160)) want.insert(b);
    CHECK(bytes_written(trace, r, 2, WriteKind::kClear) == want);
  }
  // Clearing with the launch's own layout instead breaks exactly this switch.
  const SimConfig broken =
      config_of(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2", 16, DType::kBf16, Mutation::kClearCurrentLayout);
  CHECK_FALSE(search_one(broken, ScheduleKind::kRandom, 1, 50).passed);
}

TEST_CASE("SPEC 5 [inferred] a rank receives ceil((N-r)/W)*W*D*E of SCATTER: confirmed", "[cpu]") {
  const SimConfig config = config_of(4, "twoshot:N=5");
  TraceRecorder trace;
  REQUIRE(run_once(config, 3, false, &trace).result.finished);
  const std::int64_t row = 16 * 2;  // D * E
  for (int r = 0; r < 4; ++r) {
    std::int64_t received = 0;
    for (std::int64_t b : bytes_written(trace, r, 0, WriteKind::kData, /*deliveries=*/true))
      if (b < config.buffer_bytes / 2) ++received;  // stage 0 (SCATTER) of buffer 0
    INFO("rank " << r);
    CHECK(received == ceil_div(5 - r, 4) * 4 * row);
    CHECK(received <= round_up(5, 4) * row);  // within the recorded clear size
  }
}

TEST_CASE("SPEC 4.1 [inferred] only the high 16-bit halves need sanitising: confirmed", "[cpu]") {
  SimConfig config = config_of(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=3", 16);
  config.sanitize_even_elements = false;
  // The inputs do contain -0 in even (low-half) positions: every call's first words cycle through +0/-0 pairs
  // and specials, so sanitising is exercised.
  bool low_negative_zero = false;
  const auto calls = make_call_contexts(config, 1);
  for (std::int64_t i = 0; i < calls[0].input.size(); i += 2) low_negative_zero |= calls[0].input.bits(i) == 0x8000u;
  CHECK(low_negative_zero);
  CHECK(search_one(config, ScheduleKind::kRandom, 1, 40).passed);
  CHECK(search_one(config, ScheduleKind::kAdversarial, 1, 40).passed);
  SimConfig tiny =
      config_of(2, "oneshot,twoshot,oneshot,oneshot", 8, DType::kBf16, Mutation::kNone, Writer::kUnicast, 1, 1);
  tiny.sanitize_even_elements = false;
  CHECK(search_one(tiny, ScheduleKind::kExhaustive, 1, 1'000'000).passed);
  // Without any sanitising, the +0/-0 pair is the sentinel and the poll deadlocks.
  config.sanitize_even_elements = true;
  config.mutation = Mutation::kNoInputSanitize;
  const SearchResult broken = search_one(config, ScheduleKind::kRandom, 1, 40);
  REQUIRE_FALSE(broken.passed);
  CHECK(broken.failure->failure.kind == FailureKind::kDeadlock);
}

TEST_CASE("SPEC 4.1 a float sentinel test under FTZ deadlocks on 0x8001xxxx words: confirmed", "[cpu]") {
  const SimConfig config =
      config_of(2, "oneshot:N=1,twoshot:N=1,oneshot:N=1", 8, DType::kBf16, Mutation::kFloatSentinelCompare);
  const SearchResult r = search_one(config, ScheduleKind::kRandom, 1, 20);
  REQUIRE_FALSE(r.passed);
  CHECK(r.failure->failure.kind == FailureKind::kDeadlock);
  CHECK_THAT(r.failure->failure.message, Catch::Contains("compares equal to -0.0f as a float under flush-to-zero"));
}

TEST_CASE("SPEC 4.1 TWOSHOT's -0 -> +0 before the broadcast matters only at W >= 32: SPEC refined", "[cpu]") {
  // The arithmetic: the cancelling pair -(2^-126 + ulp) on rank 0 and 2^-126 on rank W-1 sums to a negative
  // subnormal that FTZ flushes to -0 inside the first chunk (W <= 16) or in the outer add (W >= 32). For
  // W <= 16 the chunk close A(+0, -0) = +0 already removes it; only two or more chunks of 16 can produce -0.
  for (int world : kWorldSizes) {
    std::vector<std::uint32_t> bits(static_cast<std::size_t>(world), 0u);
    bits.front() = 0x8081u;  // bf16 -(2^-126 + 2^-133)
    bits.back() = 0x0080u;   // bf16 2^-126
    ReductionOrder order = reduction_order(Strategy::kTwoShot, Profile::kFlashInfer, world);
    order.sanitize_result = false;
    INFO("W = " << world);
    CHECK(reduce_element(bits, DType::kBf16, order) == (world >= 32 ? 0x8000u : 0x0000u));
  }
  // The protocol: the same searches that catch no-result-sanitize at W = 32 pass at every W <= 16.
  const std::string calls = "twoshot:N=2,oneshot:N=1,twoshot:N=3,twoshot:N=2,oneshot:N=2,twoshot:N=1";
  for (int world : {2, 4, 8, 16}) {
    const SimConfig config = config_of(world, calls, 8, DType::kBf16, Mutation::kNoResultSanitize);
    INFO("W = " << world);
    CHECK(search_one(config, ScheduleKind::kRandom, 1, 12).passed);
    CHECK(search_one(config, ScheduleKind::kAdversarial, 1, 12).passed);
  }
  const SimConfig w32 = config_of(32, calls, 8, DType::kBf16, Mutation::kNoResultSanitize);
  const SearchResult caught = search_one(w32, ScheduleKind::kAdversarial, 1, 12);
  REQUIRE_FALSE(caught.passed);
  CHECK(caught.failure->failure.kind == FailureKind::kDeadlock);
  CHECK_THAT(caught.failure->failure.message, Catch::Contains("BROADCAST") && Catch::Contains("sentinel itself"));
}

TEST_CASE("SPEC 4.2 the arrival counter only proves every CTA has read the flags: confirmed", "[cpu]") {
  // Rotating without waiting for it lets a CTA that starts late read the next launch's flags.
  const SimConfig config =
      config_of(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=3", 16, DType::kBf16, Mutation::kNoArrivalWait);
  const SearchResult r = search_one(config, ScheduleKind::kAdversarial, 1, 100);
  REQUIRE_FALSE(r.passed);
  CHECK(r.failure->failure.kind == FailureKind::kFlagsMismatch);
}

TEST_CASE("SPEC 4.5 [inferred] progress beyond residency needs in-order CTA dispatch: confirmed", "[cpu]") {
  // Four CTAs per rank (two tokens, two packs), two resident at a time.
  SimConfig config = config_of(2, "oneshot:N=2,twoshot:N=2,oneshot:N=2,twoshot:N=2", 16);
  config.resident_ctas = 2;
  config.dispatch_in_order = true;
  CHECK(search_one(config, ScheduleKind::kRandom, 1, 40).passed);
  CHECK(search_one(config, ScheduleKind::kAdversarial, 1, 40).passed);
  // In any order, a rank can fill its slots with CTAs whose peers' data comes from CTAs its peer has not
  // dispatched yet: a cross-rank deadlock with nothing wrong in the protocol itself.
  config.dispatch_in_order = false;
  const SearchResult any = search_one(config, ScheduleKind::kRandom, 1, 200);
  REQUIRE_FALSE(any.passed);
  CHECK(any.failure->failure.kind == FailureKind::kDeadlock);
  CHECK_THAT(any.failure->failure.message, Catch::Contains("waiting for a slot"));
  // And CTA 0's spin on the arrival counter holds its slot: one resident CTA deadlocks even in order.
  SimConfig one = config_of(2, "oneshot:N=2", 16);
  one.resident_ctas = 1;
  const SearchResult single = search_one(one, ScheduleKind::kRandom, 1, 5);
  REQUIRE_FALSE(single.passed);
  CHECK_THAT(single.failure->failure.message, Catch::Contains("arrival counter"));
}

TEST_CASE("SPEC 4.1 [inferred] each 32-bit word is the sentinel or the final value, even under tearing: confirmed",
          "[cpu]") {
  // Every poll the kernels accept is checked word by word (stale-read); here stores stay in flight long and
  // every poll tears, and no run ever accepts a word that is not this call's data.
  const SimConfig config = config_of(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=3,oneshot:N=1", 16);
  SchedulePolicy policy;
  policy.see_pending = 0.1;
  policy.tear = 1.0;
  policy.late_ctas = true;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const auto calls = make_call_contexts(config, seed);
    RandomChooser chooser(seed, policy);
    Simulation sim(config, calls, chooser);
    const RunResult r = sim.run(default_max_steps(config));
    INFO("seed " << seed << (r.failure ? ": " + r.failure->message : std::string()));
    REQUIRE(r.finished);
  }
}

TEST_CASE(
    "SPEC 6 [inferred] rmsNormLamport reads the flags before its griddepcontrol.wait, safe because the "
    "all-reduce kernel does not modify them: confirmed",
    "[cpu]") {
  // W = 2, one pack: every schedule of a fused TWOSHOT after a TWOSHOT, then fused ONESHOT and fused TWOSHOT,
  // rmsNormLamport starting as soon as the all-reduce kernel has triggered (tests/sim/fused_test.cpp shows it
  // reading the flags while that kernel still runs).
  const SimConfig config = config_of(2, "twoshot,twoshot:fused,oneshot:fused,twoshot:fused", 8, DType::kBf16,
                                     Mutation::kNone, Writer::kUnicast, 1, 1);
  const SearchResult sound = search_one(config, ScheduleKind::kExhaustive, 1, 1'000'000);
  CHECK(sound.passed);
  CHECK(sound.legs.at(0).exhausted);
  // The safety rests on exactly that: once the all-reduce kernel arrives and rotates the flags too, the norm
  // reads flags it has already rotated (or the two kernels' arrivals mix on the one counter and the norm's CTA 0
  // waits forever).
  SimConfig both = config;
  both.mutation = Mutation::kFusedArUpdatesFlags;
  const SearchResult broken = search_one(both, ScheduleKind::kExhaustive, 1, 1'000'000);
  REQUIRE_FALSE(broken.passed);
  const Failure& f = broken.failure->failure;
  INFO(f.message);
  CHECK((f.kind == FailureKind::kFlagsMismatch || f.kind == FailureKind::kDeadlock));
  CHECK_THAT(f.message, Catch::Contains("rmsNormLamport"));
}

TEST_CASE(
    "SPEC 6 rmsNormLamport's griddepcontrol.wait is what keeps the next call behind the all-reduce kernel: "
    "confirmed",
    "[cpu]") {
  // Without it, the norm completes (and the next call's kernel starts) while the all-reduce kernel's clears of
  // the previous buffer are still to land: a later call's data lands on words that clear has not erased yet.
  const SimConfig config = config_of(2, "twoshot,twoshot:fused,oneshot:fused,twoshot:fused", 8, DType::kBf16,
                                     Mutation::kNormNoGridSync, Writer::kUnicast, 1, 1);
  const SearchResult r = search_one(config, ScheduleKind::kExhaustive, 1, 1'000'000);
  REQUIRE_FALSE(r.passed);
  const Failure& f = r.failure->failure;
  INFO(f.message);
  CHECK((f.kind == FailureKind::kOverwriteUncleared || f.kind == FailureKind::kClearUnread));
  CHECK_THAT(f.message, Catch::Contains("has a kernel that has not completed"));
}

}  // namespace
}  // namespace ar::sim::test
