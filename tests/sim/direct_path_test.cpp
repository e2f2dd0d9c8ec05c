// The direct path of our TWOSHOT (sim/direct_kernels.cpp, docs/large-messages.md): which calls take it; that it
// passes seeded schedules at every world size with blocks, threads and rounds and gives TWOSHOT's bits; that it
// issues its own operations only (no poll of a data word, no clear, a flag a round and block to each other
// rank); and that the checker's overwrite-unread rule refuses data that lands on a row nobody has read.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <tuple>

#include "sim_test_support.h"

namespace ar::sim::test {
namespace {

SimConfig direct(int world, const std::string& calls, std::int64_t from_bytes, int max_blocks = 0, int threads = 1,
                 std::int64_t round_tokens = 0, DType dtype = DType::kBf16) {
  SimConfig c = config_of(world, calls, 16, dtype, Mutation::kNone, Writer::kUnicast, threads);
  c.protocol = Protocol::kOurs;
  c.max_blocks_per_rank = max_blocks;
  c.round_tokens = round_tokens;
  c.direct_from_bytes = from_bytes;
  return c;
}

TEST_CASE("the direct path takes the plain TWOSHOT calls of at least the threshold, and only ours", "[cpu]") {
  // bf16 D = 16: 32 bytes a token. AUTO resolves by the 1 MiB rule first, so these small ones are ONESHOT.
  const SimConfig c = direct(4, "twoshot:N=4,twoshot:N=3,twoshot:N=4:fused,oneshot:N=4,auto:N=4,twoshot:N=5", 128);
  const std::vector<CallContext> calls = make_call_contexts(c, 1);
  std::vector<bool> taken;
  for (const CallContext& k : calls) taken.push_back(k.takes_direct);
  CHECK(taken == std::vector<bool>{true, false, false, false, false, true});
  // A direct call records nothing for the next launch to clear; a Lamport one records its stages.
  CHECK(calls[0].record == ClearRecord{});
  CHECK(calls[1].record.stages == 2);
  CHECK(direct_region_bytes(calls) == round_up(calls[5].direct.bytes, kPackBytes));
  // No threshold, no direct call; and FlashInfer's protocol has no direct path.
  SimConfig none = c;
  none.direct_from_bytes = 0;
  for (const CallContext& k : make_call_contexts(none, 1)) CHECK_FALSE(k.takes_direct);
  SimConfig theirs = c;
  theirs.protocol = Protocol::kFlashInfer;
  REQUIRE(protocol_conflict(theirs));
  CHECK_THAT(*protocol_conflict(theirs), Catch::Contains("direct path belongs to our kernels"));
  SimConfig negative = c;
  negative.direct_from_bytes = -1;
  REQUIRE(protocol_conflict(negative));
  CHECK_THAT(*protocol_conflict(negative), Catch::Contains("got -1"));
}

TEST_CASE("the direct path passes seeded schedules at W = 2 to 64 and gives TWOSHOT's bits on every rank", "[cpu]") {
  const int world = GENERATE(2, 4, 8, 16, 64);
  // Tokens around W so some ranks own no token and some several; Lamport calls between direct ones, so a direct
  // call clears what a Lamport call left and a Lamport call starts on buffers a direct call did not touch.
  const std::string calls = world <= 8 ? "twoshot:N=9,oneshot:N=2,twoshot:N=5,twoshot:N=3:dtype=fp32:D=8,twoshot:N=9,"
                                         "twoshot:N=1,twoshot:N=7:dtype=fp16"
                                       : "twoshot:N=3,twoshot:N=20,oneshot:N=1,twoshot:N=2,twoshot:N=20";
  const std::int64_t from = world <= 8 ? 96 : 128;
  const int seeds = world <= 8 ? 12 : (world == 16 ? 4 : 1);
  for (const auto& [blocks, threads, rounds] : {std::tuple{0, 1, 0}, std::tuple{2, 2, 0}, std::tuple{3, 1, 2}}) {
    const SimConfig c = direct(world, calls, from, blocks, threads, rounds);
    const std::string what = fmt::format("W = {} blocks<={} threads={} tokens/round={}", world, blocks, threads, rounds);
    require_seeded_passes(c, 500, seeds, what);
    const SeededRun run = run_once(c, 99, true, nullptr, /*record_outputs=*/true);
    INFO(what << ": " << describe_failure(run.result));
    REQUIRE(run.result.finished);
    bool any_direct = false;
    for (const CallContext& k : run.calls) any_direct = any_direct || k.takes_direct;
    CHECK(any_direct);
    check_outputs_equal_reference(c, run);
  }
}

TEST_CASE("a direct call polls no data word, clears nothing, publishes one flag a round and block per peer, and "
          "resets each flag it takes",
          "[cpu]") {
  // W = 4, N = 8 bf16 D = 16 (two packs a token) in rounds of four tokens: two rounds, two blocks of two threads.
  const SimConfig c = direct(4, "twoshot:N=8,twoshot:N=8", 1, 2, 2, 4);
  TraceRecorder trace;
  const SeededRun run = run_once(c, 5, true, &trace);
  INFO(describe_failure(run.result));
  REQUIRE(run.result.finished);
  REQUIRE(trace.dropped() == 0);
  const CallContext& call = run.calls[0];
  REQUIRE(call.takes_direct);
  REQUIRE(call.rounds == 2);
  REQUIRE(call.grids[0].ctas == 2);
  const auto counts = op_counts(trace);
  const auto count = [&](int rank, int k, const char* op) {
    const auto it = counts.find({rank, k, op});
    return it == counts.end() ? 0 : it->second;
  };
  for (int k = 0; k < 2; ++k) {
    for (int r = 0; r < 4; ++r) {
      INFO("call " << k << " rank " << r);
      CHECK(count(r, k, "ld_volatile_v4") == 0);  // no poll: the flags say when the rows are there
      // Two publications a round and block (scatter, broadcast), each to the three other ranks.
      CHECK(count(r, k, "st_release_sys_u32") == 2 * 2 * 2 * 3);
      // Per round a rank owns one token (two packs); it sends its 8 - 2 = 6 packs of others' tokens to their owners,
      // and its 2 sums to 3 ranks: 12 row stores a round, plus the flag advance's two st_v4.
      CHECK(count(r, k, "st_v4") == 2 * 12 + 2);
      // It reads the 3 sources' rows of its 2 packs, and the 6 packs the others own, each once, with the flag
      // reads (4 ld_v4 of the flags at the start: two blocks, two halves).
      CHECK(count(r, k, "ld_v4") == 2 * (3 * 2 + 6) + 4);
      CHECK(count(r, k, "ld_acquire_sys_u32") >= 2 * 2 * 2 * 3);
      // Every flag it takes it resets (the initial fill, st_u32): one a round, block and phase per peer, besides
      // the flag advance's two (the arrival counter and the call counter, by the last block to arrive).
      CHECK(count(r, k, "st_u32") == 2 * 2 * 2 * 3 + 2);
    }
    // No clear stores: the only clears of the second call would be what the first recorded, which is nothing.
    for (int r = 0; r < 4; ++r) CHECK(bytes_written(trace, r, k, WriteKind::kClear).empty());
  }
}

TEST_CASE("rows and flags laid out per call collide across calls of other shapes, one region for all does not",
          "[cpu]") {
  // W = 8, one pack per thread (seed 500): laid out by each call's own shape, a reader's reset of a flag of call 3
  // lands on the flag a peer has already published for call 4, and call 4's readers wait for it forever. (Before
  // the readers reset their flags, the same seed found a SCATTER row of call 4 landing on a BROADCAST row of call
  // 3 that a slower rank had not read: the mutation is caught either way, by whatever the collision hits first.)
  SimConfig c = direct(8, "twoshot:N=9,oneshot:N=2,twoshot:N=5,twoshot:N=3:dtype=fp32:D=8,twoshot:N=9,twoshot:N=1,"
                          "twoshot:N=7:dtype=fp16",
                       96);
  REQUIRE(run_once(c, 500).result.finished);
  c.mutation = Mutation::kDirectPerCallLayout;
  const SeededRun run = run_once(c, 500);
  REQUIRE(run.result.failure);
  INFO(describe_failure(run.result));
  CHECK(run.result.failure->kind == FailureKind::kDeadlock);
  CHECK_THAT(run.result.failure->message,
             Catch::Contains("(call 4 twoshot, round 0) waits for") && Catch::Contains("(flags of r0 in call 3)"));
  // The layouts the mutation uses differ from call to call; the region does not.
  const std::vector<CallContext> calls = make_call_contexts(c, 500);
  CHECK(calls[0].direct.broadcast != calls[2].direct.broadcast);
  c.mutation = Mutation::kNone;
  const std::vector<CallContext> shared = make_call_contexts(c, 500);
  for (const CallContext& k : shared)
    if (k.takes_direct) CHECK(k.direct.broadcast == shared[0].direct.broadcast);
}

TEST_CASE("the checker refuses direct data that lands on a row its reader has not taken", "[cpu]") {
  const SimConfig c = direct(2, "twoshot:N=2,twoshot:N=2", 1);
  const std::uint32_t lamport_words = static_cast<std::uint32_t>(kLamportBufferCount * c.buffer_bytes / 4);
  const std::uint32_t direct_word = lamport_words + kFlagsBlockWords;
  PendingUnit u;
  u.word = direct_word + 8;
  u.dest = 1;
  u.issuer = 0;
  u.ghost = {WriteKind::kData, 0, 1};  // call 1's row
  const std::array<Ghost, 2> call0{Ghost{WriteKind::kData, 0, 0}, Ghost{WriteKind::kData, 0, 0}};
  {
    Checker checker(c, false);
    checker.on_delivery(u, call0, lamport_words, direct_word, 1, 1);
    REQUIRE(checker.failed());
    CHECK(checker.failure().kind == FailureKind::kOverwriteUnread);
    CHECK_THAT(checker.failure().message, Catch::Contains("overwrite of unread data") &&
                                              Catch::Contains("data from r0 in call 0") &&
                                              Catch::Contains("r1 direct region +32 B"));
  }
  {
    Checker checker(c, false);
    checker.on_direct_read(1, direct_word + 8, 0);  // r1 took call 0's row
    checker.on_delivery(u, call0, lamport_words, direct_word, 1, 1);
    CHECK_FALSE(checker.failed());
    // The flags are overwritten by design, and the initial fill is nobody's data.
    PendingUnit flag = u;
    flag.ghost.kind = WriteKind::kFlags;
    checker.on_delivery(flag, call0, lamport_words, direct_word, 1, 1);
    const std::array<Ghost, 2> initial{};
    checker.on_delivery(u, initial, lamport_words, direct_word, 1, 1);
    CHECK_FALSE(checker.failed());
  }
}

}  // namespace
}  // namespace ar::sim::test
