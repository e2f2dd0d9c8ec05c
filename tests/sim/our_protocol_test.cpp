// Our kernels' protocol (Protocol::kOurs, sim/our_kernels.cpp): it passes seeded and exhaustive searches at
// every world size with mixed call sequences, block caps and rounds; its outputs equal reference_all_reduce
// bit for bit; it issues exactly its own operations (one relaxed atomic per block of a multi-block rank, one
// advance of the flags per launch, by the last block to arrive); rounds split the clears as the kernels do; the
// variant's own bug is found; and the protocol options that do not go together are refused.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "sim_test_support.h"

namespace ar::sim::test {
namespace {

/// Our kernels' grid: a block cap (0: one pack per thread), threads per block, tokens per round (0: one round).
struct Grid {
  int max_blocks = 0;
  int threads = 1;
  std::int64_t round_tokens = 0;
};
std::string grid_text(const Grid& g) {
  return fmt::format("blocks<={} threads={} tokens/round={}", g.max_blocks, g.threads, g.round_tokens);
}

SimConfig ours(int world, const std::string& calls, std::int64_t hidden = 16, Grid grid = {},
               Mutation m = Mutation::kNone, DType dtype = DType::kBf16, std::int64_t tokens = 2) {
  SimConfig c = config_of(world, calls, hidden, dtype, m, Writer::kUnicast, grid.threads, tokens);
  c.protocol = Protocol::kOurs;
  c.max_blocks_per_rank = grid.max_blocks;
  c.round_tokens = grid.round_tokens;
  return c;
}

TEST_CASE("our kernels' protocol passes seeded random and adversarial schedules at W = 2, 4, 8, 16, 64", "[cpu]") {
  const int world = GENERATE(2, 4, 8, 16, 64);
  // Tokens vary around W so TWOSHOT has ranks that own no token and ranks that own several; one pack per thread,
  // then threads striding over several packs, then rounds as well.
  const std::string calls = world <= 8    ? "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=9,oneshot:N=1,auto:N=4"
                            : world == 16 ? "twoshot:N=2,oneshot:N=1,twoshot:N=20,oneshot:N=3,twoshot:N=1"
                                          : "twoshot:N=2,oneshot:N=1,twoshot:N=3,oneshot:N=2";
  const int seeds = world <= 8 ? 30 : (world == 16 ? 8 : 2);
  for (const Grid grid : {Grid{}, Grid{2, 2, 0}, Grid{3, 1, 2}})
    require_seeded_passes(ours(world, calls, world <= 16 ? 16 : 8, grid), 300, seeds,
                          fmt::format("W = {} {}", world, grid_text(grid)));
}

TEST_CASE("our kernels' protocol passes mixed sequences: strategy, N, D and dtype change between calls", "[cpu]") {
  const std::string calls = GENERATE(
      std::string("oneshot:N=4,twoshot:N=64,auto:N=11,oneshot:N=1"),
      std::string("twoshot:N=3:D=8:dtype=fp32,oneshot:N=5:D=32,twoshot:N=2:dtype=fp16,oneshot:N=1:D=8:dtype=fp32"),
      std::string("oneshot:N=2,oneshot:N=3,twoshot:N=1,twoshot:N=7,oneshot:N=2,twoshot:N=2,oneshot:N=1"));
  const int world = GENERATE(2, 4, 8);
  for (const Grid grid : {Grid{}, Grid{1, 1, 0}, Grid{2, 3, 3}}) {
    const SimConfig config = ours(world, calls, 16, grid);
    for (int s = 0; s < 8; ++s) {
      const SeededRun run = run_once(config, 7 + s, s % 2 == 1);
      INFO(calls << " W = " << world << " " << grid_text(grid) << " seed " << 7 + s);
      INFO(describe_failure(run.result));
      REQUIRE(run.result.finished);
    }
  }
}

TEST_CASE("our kernels' outputs equal reference_all_reduce bit for bit on every rank", "[cpu]") {
  const int world = GENERATE(2, 4, 16, 64);
  const Grid grid = GENERATE(Grid{}, Grid{2, 2, 2});
  const SimConfig config =
      ours(world, "oneshot:N=3,twoshot:N=5:dtype=fp32:D=8,auto:N=2:dtype=fp16,twoshot:N=4,oneshot:N=1:dtype=fp32:D=4",
           16, grid);
  const SeededRun run = run_once(config, 2024, true, nullptr, /*record_outputs=*/true);
  INFO("W = " << world << " " << grid_text(grid) << ": " << describe_failure(run.result));
  REQUIRE(run.result.finished);
  check_outputs_equal_reference(config, run);
}

TEST_CASE("the default search of our kernels' protocol passes", "[cpu]") {
  const std::vector<SearchLeg> plan = default_plan(Mutation::kNone, Writer::kUnicast, 1, Protocol::kOurs);
  for (const SearchLeg& leg : plan) CHECK(leg.config.protocol == Protocol::kOurs);
  const SearchResult r = run_search(plan, SearchOptions{});
  INFO((r.failure ? r.failure->failure.message : std::string("passed")));
  CHECK(r.passed);
  REQUIRE(r.legs.size() == 14);
  for (std::size_t i = 9; i < 14; ++i) {
    CHECK(r.legs[i].schedule == ScheduleKind::kExhaustive);
    CHECK(r.legs[i].exhausted);
  }
}

TEST_CASE("our kernels' protocol passes every schedule of tiny configurations at W = 2 and 4", "[cpu]") {
  // W = 2 (in the default search too): one block per rank over four mixed calls; two blocks per rank (the
  // relaxed arrival, the last block advancing) in TWOSHOT, then one-block ONESHOT calls. W = 4: one TWOSHOT
  // call of one pack, exhausted; one ONESHOT call, bounded (its state space is far larger).
  struct Case {
    int world;
    const char* calls;
    bool exhaust;
  };
  for (const Case& k : {Case{2, "oneshot,twoshot,oneshot,oneshot", true}, Case{2, "twoshot:D=16,oneshot,oneshot", true},
                        Case{4, "twoshot", true}, Case{4, "oneshot", false}}) {
    const SimConfig config = ours(k.world, k.calls, 8, {}, Mutation::kNone, DType::kBf16, 1);
    const SearchResult r = search_one(config, ScheduleKind::kExhaustive, 1, k.exhaust ? 2'000'000 : 20'000);
    INFO(describe(config) << ": " << (r.failure ? r.failure->failure.message : std::string("passed")));
    CHECK(r.passed);
    CHECK(r.legs.at(0).exhausted == k.exhaust);
    CHECK(r.legs.at(0).states > 1000);
  }
}

TEST_CASE("the exhaustive search finds the last arriver off by one, and only with two or more blocks", "[cpu]") {
  // With one block per rank there is no count to get wrong (the shortcut advances at once): every schedule
  // passes. With two, the block that arrives first advances the flags after its work, and some schedule lets
  // the other block read them only then.
  const SimConfig one =
      ours(2, "oneshot,twoshot,oneshot,oneshot", 8, {}, Mutation::kLastArriverOffByOne, DType::kBf16, 1);
  const SearchResult sound = search_one(one, ScheduleKind::kExhaustive, 1, 1'000'000);
  CHECK(sound.passed);
  CHECK(sound.legs.at(0).exhausted);
  const SimConfig two = ours(2, "twoshot:D=16,oneshot,oneshot", 8, {}, Mutation::kLastArriverOffByOne, DType::kBf16, 1);
  const SearchResult broken = search_one(two, ScheduleKind::kExhaustive, 1, 1'000'000);
  REQUIRE_FALSE(broken.passed);
  const Failure& f = broken.failure->failure;
  INFO(f.message);
  CHECK(f.kind == FailureKind::kFlagsMismatch);
  CHECK(f.call == 0);
  CHECK_THAT(f.message, Catch::Contains("flags inconsistent in call 0"));
  // Block 0 taking the one-block shortcut (no-arrival-wait in our kernels) is found the same way.
  SimConfig early = two;
  early.mutation = Mutation::kNoArrivalWait;
  const SearchResult no_wait = search_one(early, ScheduleKind::kExhaustive, 1, 1'000'000);
  REQUIRE_FALSE(no_wait.passed);
  CHECK(no_wait.failure->failure.kind == FailureKind::kFlagsMismatch);
}

TEST_CASE("our kernels issue only their operations: one block per launch advances the flags, the last to arrive",
          "[cpu]") {
  // Three blocks per rank for the N = 3 ONESHOT call (one pack per thread), one for the one-pack calls.
  const SimConfig config = ours(4, "oneshot:N=3:D=8,twoshot:N=1:D=8,oneshot:N=1:D=8,twoshot:N=6:D=8", 8, {2, 1, 0});
  TraceRecorder trace;
  const SeededRun run = run_once(config, 17, true, &trace);
  INFO(describe_failure(run.result));
  REQUIRE(run.result.finished);
  REQUIRE(trace.dropped() == 0);
  std::set<std::string> names;
  for (const TraceEvent& e : trace.events())
    if (e.kind == TraceEvent::Kind::kOp) names.insert(e.name);
  CHECK(names == std::set<std::string>{"ld_v4", "ld_u32", "bar_cta_sync", "atom_relaxed_gpu_add_u32", "st_v4", "st_u32",
                                       "ld_volatile_v4"});
  const auto counts = op_counts(trace);
  const auto count = [&](int rank, int call, const char* op) {
    const auto it = counts.find({rank, call, op});
    return it == counts.end() ? 0 : it->second;
  };
  const std::uint32_t flags_word = static_cast<std::uint32_t>(kLamportBufferCount * config.buffer_bytes / 4);
  for (int k = 0; k < 4; ++k) {
    const int blocks = static_cast<int>(run.calls[static_cast<std::size_t>(k)].grids.at(0).ctas);
    CHECK(blocks == (k == 0 || k == 3 ? 2 : 1));  // the cap of two blocks, or a one-pack call
    for (int r = 0; r < 4; ++r) {
      INFO("call " << k << " rank " << r);
      CHECK(count(r, k, "bar_cta_sync") == blocks);
      CHECK(count(r, k, "atom_relaxed_gpu_add_u32") == (blocks > 1 ? blocks : 0));  // a one-block rank skips it
      CHECK(count(r, k, "st_u32") == 2);  // the counter reset and the call counter, once per launch
      // The call counter advances to k + 1, and the flag stores come from the block whose arrival saw
      // blocks - 1 (or from the only block).
      int advancer = -1;
      for (const TraceEvent& e : trace.events()) {
        if (e.kind != TraceEvent::Kind::kOp || e.rank != r || e.call != k) continue;
        if (e.name == "st_u32" && e.word == flags_word + kCallCounterWord)
          CHECK_THAT(e.detail, Catch::Contains(fmt::format("<- {:08x}", k + 1)));
        if (e.name == "st_v4" && e.word == flags_word) advancer = e.cta;
      }
      REQUIRE(advancer >= 0);
      if (blocks > 1) {
        bool last = false;
        for (const TraceEvent& e : trace.events())
          if (e.kind == TraceEvent::Kind::kOp && e.rank == r && e.call == k && e.cta == advancer &&
              e.name == "atom_relaxed_gpu_add_u32")
            last = e.detail.find(fmt::format(": {} -> {}", blocks - 1, blocks)) != std::string::npos;
        CHECK(last);
      }
    }
  }
  // FlashInfer's protocol issues neither of our kernels' own operations.
  TraceRecorder theirs;
  REQUIRE(run_once(config_of(4, "oneshot:N=3:D=8,twoshot:N=6:D=8", 8), 17, true, &theirs).result.finished);
  for (const TraceEvent& e : theirs.events()) {
    CHECK(e.name != "atom_relaxed_gpu_add_u32");
    CHECK(e.name != "ld_u32");
  }
}

TEST_CASE("our kernels clear the recorded layout, each round its share, exactly once", "[cpu]") {
  // W = 4, D = 16 bf16: ONESHOT N=3 records {384}; TWOSHOT N=5 records {256, 160}; rounds of one token (TWOSHOT:
  // four), at most two blocks of two threads.
  const SimConfig config = ours(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2", 16, {2, 2, 1});
  REQUIRE(config.buffer_bytes == 512);
  TraceRecorder trace;
  const SeededRun run = run_once(config, 11, false, &trace);
  REQUIRE(run.result.finished);
  CHECK(run.calls[0].rounds == 3);
  CHECK(run.calls[1].rounds == 2);
  const std::int64_t bpb = config.buffer_bytes;
  for (int r = 0; r < 4; ++r) {
    INFO("rank " << r);
    CHECK(bytes_written(trace, r, 0, WriteKind::kClear).empty());
    CHECK(bytes_written(trace, r, 1, WriteKind::kClear) == byte_range(0 * bpb, 384));
    std::set<std::int64_t> want = byte_range(1 * bpb, 256);
    for (std::int64_t b : byte_range(1 * bpb + bpb / 2, 160)) want.insert(b);
    CHECK(bytes_written(trace, r, 2, WriteKind::kClear) == want);
    // Exactly once: as many clear stores as 16-byte packs cleared.
    std::size_t stores = 0;
    for (const TraceEvent& e : trace.events())
      stores += e.kind == TraceEvent::Kind::kOp && e.rank == r && e.ghost.kind == WriteKind::kClear;
    CHECK(stores == (384 + 256 + 160) / 16);
  }
}

TEST_CASE("our kernels need every block resident: TWOSHOT deadlocks with fewer, even dispatched in order", "[cpu]") {
  // cuda/ plan_launch never makes more blocks per rank than the device holds at once. The simulator shows why
  // TWOSHOT needs that: an owner's reduce waits for SCATTER packs that blocks not yet dispatched store. ONESHOT
  // polls only the packs its own blocks' peers (same thread index) store, so in-order dispatch suffices there.
  SimConfig two = ours(2, "twoshot:N=2,twoshot:N=2");
  two.resident_ctas = 1;
  const SearchResult deadlock = search_one(two, ScheduleKind::kRandom, 1, 20);
  REQUIRE_FALSE(deadlock.passed);
  CHECK(deadlock.failure->failure.kind == FailureKind::kDeadlock);
  CHECK_THAT(deadlock.failure->failure.message, Catch::Contains("waiting for a slot"));
  SimConfig one = ours(2, "oneshot:N=2,oneshot:N=2,oneshot:N=1");
  one.resident_ctas = 1;
  CHECK(search_one(one, ScheduleKind::kRandom, 1, 40).passed);
  CHECK(search_one(one, ScheduleKind::kAdversarial, 1, 40).passed);
}

TEST_CASE("protocol options that do not go together are refused", "[cpu]") {
  SimConfig c = ours(2, "oneshot");
  CHECK_FALSE(protocol_conflict(c));
  c.writer = Writer::kMulticast;
  REQUIRE(protocol_conflict(c));
  CHECK_THAT(*protocol_conflict(c), Catch::Contains("unicast"));
  CHECK_THROWS_AS(make_call_contexts(c, 1), std::invalid_argument);
  c.writer = Writer::kUnicast;
  c.arrival = Arrival::kAfterFlags;
  CHECK(protocol_conflict(c));
  c.arrival = Arrival::kFlashInfer;
  c.max_blocks_per_rank = -1;
  CHECK(protocol_conflict(c));
  SimConfig theirs = config_of(2, "oneshot");
  theirs.round_tokens = 2;
  REQUIRE(protocol_conflict(theirs));
  CHECK_THAT(*protocol_conflict(theirs), Catch::Contains("our kernels' grid"));
  CHECK(parse_protocol("ours") == Protocol::kOurs);
  CHECK(parse_protocol("flashinfer") == Protocol::kFlashInfer);
  CHECK_FALSE(parse_protocol("nccl"));
}

}  // namespace
}  // namespace ar::sim::test
