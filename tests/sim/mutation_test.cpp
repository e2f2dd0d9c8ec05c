// Every mutation of sim/mutation.h is caught by the default search of each protocol it applies to (exit 1 in
// `mnnvl-ar sim [--protocol ours]`), with a diagnosis of the expected kind that names the failure; without a
// mutation the same search passes.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "sim_test_support.h"

namespace ar::sim::test {
namespace {

using K = FailureKind;

/// What each bug may show as first, and a phrase the diagnosis must contain.
struct Expectation {
  std::set<FailureKind> kinds;
  std::string phrase;
};
const std::map<Mutation, Expectation>& expectations() {
  static const std::map<Mutation, Expectation> table{
      {Mutation::kTwoBuffers, {{K::kOverwriteUncleared, K::kClearUnread, K::kStaleRead, K::kDeadlock}, "call"}},
      {Mutation::kNoInputSanitize, {{K::kDeadlock}, "is the sentinel itself"}},
      {Mutation::kNoResultSanitize, {{K::kDeadlock, K::kWrongBits}, "BROADCAST"}},
      {Mutation::kPollFirstWord, {{K::kStaleRead}, "as full"}},
      {Mutation::kFloatSentinelCompare, {{K::kDeadlock}, "compares equal to -0.0f"}},
      {Mutation::kNoClear, {{K::kOverwriteUncleared, K::kStaleRead}, "call"}},
      {Mutation::kClearCurrentLayout,
       {{K::kClearUnread, K::kOverwriteUncleared, K::kOutOfBounds, K::kStaleRead}, "clear"}},
      {Mutation::kNoArrivalWait, {{K::kFlagsMismatch}, "rotated them"}},
      {Mutation::kRankOrder, {{K::kWrongBits}, "folded, in this order"}},
      {Mutation::kLastArriverOffByOne, {{K::kFlagsMismatch}, "flags inconsistent in call"}},
      // The fused path: both kinds of failure name rmsNormLamport (the CTA that read rotated flags, or the one
      // whose counter spin lost the arrivals the all-reduce kernel's reset erased).
      {Mutation::kFusedArUpdatesFlags, {{K::kFlagsMismatch, K::kDeadlock}, "rmsNormLamport"}},
      {Mutation::kNormReadsUnpolled, {{K::kStaleRead}, "rmsNormLamport's load"}},
      {Mutation::kNormNoGridSync, {{K::kOverwriteUncleared, K::kClearUnread}, "has a kernel that has not completed"}},
      {Mutation::kFusedOwnerSkipsOwnRow, {{K::kDeadlock}, "polls BROADCAST token"}},
      // The direct path: whichever read comes first takes a row that is not this call's data yet.
      {Mutation::kDirectPlainFlag, {{K::kStaleRead}, "direct"}},
      {Mutation::kDirectNoScatterWait, {{K::kStaleRead}, "direct SCATTER row"}},
      {Mutation::kDirectNoBroadcastWait, {{K::kStaleRead}, "direct BROADCAST row"}},
      {Mutation::kDirectAnyEpoch, {{K::kStaleRead}, "direct"}},
      {Mutation::kDirectPerCallLayout, {{K::kOverwriteUnread, K::kStaleRead, K::kDeadlock}, "direct region"}},
  };
  return table;
}

/// Our kernels: the arrival mutations may also show on the call counter (flag word 12), whose message shares
/// only its opening with the rotation's.
Expectation expectation(Mutation m, Protocol p) {
  Expectation e = expectations().at(m);
  if (p == Protocol::kOurs && m == Mutation::kNoArrivalWait) e.phrase = "flags inconsistent in call";
  // Our TWOSHOT owner writes its own tokens' sums straight to its output, so the unsanitised -0 shows there,
  // at the fold, before any BROADCAST store carries it.
  if (p == Protocol::kOurs && m == Mutation::kNoResultSanitize) e.phrase = "-0 result kept";
  return e;
}

TEST_CASE("the mutation table lists each bug once, with a unique name", "[cpu]") {
  std::set<std::string_view> names;
  for (const MutationInfo& m : kMutationTable) {
    CHECK(names.insert(m.name).second);
    CHECK(parse_mutation(m.name) == m.mutation);
    if (m.mutation != Mutation::kNone) CHECK(expectations().count(m.mutation) == 1);
    CHECK((m.flashinfer || m.ours));
  }
  CHECK_FALSE(parse_mutation("three-buffers"));
  // The variant's own bug has no meaning in FlashInfer's kernels (no block counts its arrival's result there).
  CHECK(mutation_applies(Mutation::kLastArriverOffByOne, Protocol::kOurs));
  CHECK_FALSE(mutation_applies(Mutation::kLastArriverOffByOne, Protocol::kFlashInfer));
  SimConfig config = config_of(2, "oneshot");
  config.mutation = Mutation::kLastArriverOffByOne;
  REQUIRE(protocol_conflict(config));
  CHECK_THAT(*protocol_conflict(config), Catch::Contains("does not apply to the flashinfer protocol"));
  config.protocol = Protocol::kOurs;
  CHECK_FALSE(protocol_conflict(config));
}

TEST_CASE("the default search catches every mutation and names the failure", "[cpu]") {
  const Writer writer = GENERATE(Writer::kUnicast, Writer::kMulticast);
  const Arrival arrival = GENERATE(Arrival::kFlashInfer, Arrival::kAfterFlags);
  for (const MutationInfo& m : kMutationTable) {
    if (m.mutation == Mutation::kNone || !m.flashinfer) continue;
    std::vector<SearchLeg> plan = default_plan(m.mutation, writer, 1);
    for (SearchLeg& leg : plan) leg.config.arrival = arrival;
    const SearchResult r = run_search(plan, SearchOptions{});
    INFO(m.name << " (" << writer_name(writer) << ", arrival " << arrival_name(arrival) << ")");
    REQUIRE_FALSE(r.passed);
    REQUIRE(r.failure);
    const Expectation& e = expectations().at(m.mutation);
    for (const Failure* f : {&r.failure->failure, &r.failure->shortest_failure}) {
      INFO(failure_kind_name(f->kind) << ": " << f->message);
      CHECK(e.kinds.count(f->kind) == 1);
      CHECK_THAT(f->message, Catch::Contains(e.phrase));
      CHECK(f->step > 0);
    }
    CHECK(r.failure->shortest_steps <= r.failure->run_steps);
    CHECK_FALSE(r.failure->schedule_lines.empty());
    CHECK_THAT(r.failure->reproduce, Catch::Contains(fmt::format("--mutation {}", m.name)));
  }
}

TEST_CASE("the default search of our kernels' protocol catches every mutation that applies to it", "[cpu]") {
  // Every FlashInfer mutation applies to our kernels too (no-arrival-wait as block 0 taking the one-block
  // shortcut), except the three that change FlashInfer's two kernels of a fused TWOSHOT call (ours is one
  // kernel); last-arriver-off-by-one and fused-owner-skips-own-row are theirs alone.
  std::set<Mutation> not_ours;
  for (const MutationInfo& m : kMutationTable) {
    if (m.mutation == Mutation::kNone) continue;
    if (!m.ours) {
      not_ours.insert(m.mutation);
      continue;
    }
    const SearchResult r = run_search(default_plan(m.mutation, Writer::kUnicast, 1, Protocol::kOurs), SearchOptions{});
    INFO(m.name << " (ours)");
    REQUIRE_FALSE(r.passed);
    REQUIRE(r.failure);
    const Expectation e = expectation(m.mutation, Protocol::kOurs);
    for (const Failure* f : {&r.failure->failure, &r.failure->shortest_failure}) {
      INFO(failure_kind_name(f->kind) << ": " << f->message);
      CHECK(e.kinds.count(f->kind) == 1);
      CHECK_THAT(f->message, Catch::Contains(e.phrase));
    }
    CHECK(r.failure->shortest_steps <= r.failure->run_steps);
    CHECK_THAT(r.failure->reproduce,
               Catch::Contains("--protocol ours") && Catch::Contains(fmt::format("--mutation {}", m.name)));
  }
  CHECK(not_ours ==
        std::set<Mutation>{Mutation::kFusedArUpdatesFlags, Mutation::kNormReadsUnpolled, Mutation::kNormNoGridSync});
}

TEST_CASE("without a mutation the default search passes", "[cpu][slow]") {
  const Arrival arrival = GENERATE(Arrival::kFlashInfer, Arrival::kAfterFlags);
  std::vector<SearchLeg> plan = default_plan(Mutation::kNone, Writer::kUnicast, 1);
  for (SearchLeg& leg : plan) leg.config.arrival = arrival;
  const SearchResult r = run_search(plan, SearchOptions{});
  INFO("arrival " << arrival_name(arrival));
  INFO((r.failure ? r.failure->failure.message : std::string("passed")));
  CHECK(r.passed);
  REQUIRE(r.legs.size() == 8);
  for (std::size_t i = 6; i < 8; ++i) {  // the fused exhaustive leg, then the plain one
    CHECK(r.legs[i].schedule == ScheduleKind::kExhaustive);
    CHECK(r.legs[i].exhausted);
  }
#if defined(NDEBUG) && !defined(AR_SANITIZED)
  // The speed target (at least a million simulated memory events a second), with a wide margin: optimised
  // builds measure about ten million on this project's 2-core machine (sanitized builds are not held to it).
  CHECK(r.events_per_second() > 1e6);
#endif
}

TEST_CASE("a reported failure replays from its reproduce arguments", "[cpu]") {
  // The seed and configuration the report names give the same failure at the same step.
  const SearchResult r = run_search(default_plan(Mutation::kTwoBuffers, Writer::kUnicast, 1), SearchOptions{});
  REQUIRE(r.failure);
  const FailureReport& f = *r.failure;
  const SearchResult again = search_one(f.config, f.schedule, f.shortest_seed, 1);
  REQUIRE(again.failure);
  CHECK(again.failure->failure.message == f.shortest_failure.message);
  CHECK(again.failure->failure.step == f.shortest_failure.step);
}

}  // namespace
}  // namespace ar::sim::test
