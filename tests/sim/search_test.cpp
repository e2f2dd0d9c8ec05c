// The search drivers of sim/search.h: the exhaustive enumeration (complete, deterministic, counting the
// interleavings it covers) and the seeded legs (bounded, the shortest failing schedule kept).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "sim_test_support.h"

namespace ar::sim::test {
namespace {

TEST_CASE("the exhaustive search covers every schedule of a tiny configuration", "[cpu]") {
  // W = 2, one token, one pack, three calls with a strategy switch.
  const SimConfig config =
      config_of(2, "oneshot,twoshot,oneshot", 8, DType::kBf16, Mutation::kNone, Writer::kUnicast, 1, 1);
  const SearchResult r = search_one(config, ScheduleKind::kExhaustive, 1, 1'000'000);
  REQUIRE(r.passed);
  const LegStats& leg = r.legs.at(0);
  CHECK(leg.exhausted);
  CHECK(leg.states > 100);
  // Far more interleavings than states or runs: pruning at explored states is what makes it feasible.
  CHECK(leg.interleavings > 1e15);
  CHECK(static_cast<double>(leg.runs) < leg.interleavings);
  // Deterministic: the same search explores the same states.
  const SearchResult again = search_one(config, ScheduleKind::kExhaustive, 1, 1'000'000);
  CHECK(again.legs.at(0).states == leg.states);
  CHECK(again.legs.at(0).interleavings == leg.interleavings);
}

TEST_CASE("our kernels' arrival order passes every schedule of the tiny configuration", "[cpu]") {
  // cuda/ arrives right after reading the flags (SPEC keeps FlashInfer's later arrival); the counter still
  // holds the rotation back until every CTA has read the flags. Two packs: two CTAs per rank.
  SimConfig config = config_of(2, "oneshot,twoshot,oneshot", 16, DType::kBf16, Mutation::kNone, Writer::kUnicast, 1, 1);
  config.arrival = Arrival::kAfterFlags;
  const SearchResult r = search_one(config, ScheduleKind::kExhaustive, 1, 5'000'000);
  CHECK(r.passed);
  CHECK(r.legs.at(0).exhausted);
  config.mutation = Mutation::kNoArrivalWait;
  const SearchResult broken = search_one(config, ScheduleKind::kExhaustive, 1, 5'000'000);
  REQUIRE_FALSE(broken.passed);
  CHECK(broken.failure->failure.kind == FailureKind::kFlagsMismatch);
}

TEST_CASE("a bounded exhaustive search says so", "[cpu]") {
  const SimConfig config =
      config_of(2, "oneshot,twoshot,oneshot,oneshot", 16, DType::kBf16, Mutation::kNone, Writer::kUnicast, 1, 1);
  const SearchResult r = search_one(config, ScheduleKind::kExhaustive, 1, 200);
  REQUIRE(r.passed);
  CHECK(r.legs.at(0).runs == 200);
  CHECK_FALSE(r.legs.at(0).exhausted);
}

TEST_CASE("the exhaustive search of W = 2, two packs, four calls covers every schedule", "[cpu][slow]") {
  const SimConfig config =
      config_of(2, "oneshot,twoshot,oneshot,oneshot", 16, DType::kBf16, Mutation::kNone, Writer::kUnicast, 1, 1);
  const SearchResult r = search_one(config, ScheduleKind::kExhaustive, 1, 10'000'000);
  REQUIRE(r.passed);
  CHECK(r.legs.at(0).exhausted);
  CHECK(r.legs.at(0).states > 10'000);
}

TEST_CASE("the exhaustive search finds a bug and replays its failing schedule", "[cpu]") {
  const SimConfig config =
      config_of(2, "oneshot,oneshot,oneshot,oneshot", 8, DType::kBf16, Mutation::kNoClear, Writer::kUnicast, 1, 1);
  const SearchResult r = search_one(config, ScheduleKind::kExhaustive, 1, 1'000'000);
  REQUIRE_FALSE(r.passed);
  const FailureReport& f = *r.failure;
  CHECK(f.schedule == ScheduleKind::kExhaustive);
  CHECK(f.shortest_steps <= f.run_steps);
  CHECK_FALSE(f.schedule_lines.empty());
  CHECK_THAT(f.schedule_lines.back(), Catch::Contains("FAILURE"));
}

TEST_CASE("seeded legs stop at the first failure and keep the shortest failing schedule", "[cpu]") {
  const SimConfig config =
      config_of(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=3", 16, DType::kBf16, Mutation::kPollFirstWord);
  SearchOptions options;
  options.shortest_extra_runs = 30;
  const SearchResult r = run_search({SearchLeg{config, ScheduleKind::kRandom, 1, 1000}}, options);
  REQUIRE(r.failure);
  CHECK(r.legs.at(0).runs <= r.failure->runs_to_find + 30);
  CHECK(r.failure->shortest_steps <= r.failure->run_steps);
  // The shortest one, run alone from its seed, fails at its reported step.
  const SearchResult one = search_one(config, ScheduleKind::kRandom, r.failure->shortest_seed, 1);
  REQUIRE(one.failure);
  CHECK(one.failure->failure.step == r.failure->shortest_failure.step);
}

/// Elements of a trace document that are events, not names of processes and lanes.
std::size_t trace_event_count(const nlohmann::json& doc) {
  std::size_t n = 0;
  for (const auto& e : doc.at("traceEvents")) n += e.at("ph") != "M";
  return n;
}

TEST_CASE("the search streams the trace of the run it shows into the sink, started over", "[cpu]") {
  const SimConfig failing =
      config_of(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=3", 16, DType::kBf16, Mutation::kNoClear);
  const SimConfig tiny =
      config_of(2, "oneshot,oneshot,oneshot,oneshot", 8, DType::kBf16, Mutation::kNoClear, Writer::kUnicast, 1, 1);
  const SimConfig clean = config_of(4, "oneshot:N=3,twoshot:N=5");
  for (const SearchLeg& leg :
       {SearchLeg{failing, ScheduleKind::kRandom, 1, 100}, SearchLeg{tiny, ScheduleKind::kExhaustive, 1, 1'000'000},
        SearchLeg{clean, ScheduleKind::kAdversarial, 9, 3}}) {
    INFO(schedule_name(leg.schedule) << " " << describe(leg.config));
    StringTraceSink sink;
    sink.text = "left over from before";
    SearchOptions options;
    options.trace = &sink;
    const SearchResult r = run_search({leg}, options);
    const SearchResult untraced = run_search({leg}, SearchOptions{});
    REQUIRE(r.passed == untraced.passed);
    const nlohmann::json doc = nlohmann::json::parse(sink.text);
    CHECK(trace_event_count(doc) == r.trace_events);
    CHECK(r.trace_dropped_events == 0);
    const std::string title = doc.at("otherData").at("title");
    if (r.failure) {
      CHECK(title == "mnnvl-ar sim " + r.failure->reproduce);
      CHECK(r.failure->schedule_lines == untraced.failure->schedule_lines);
      CHECK(r.failure->schedule_lines.size() == SearchOptions{}.schedule_lines);
      bool failure_instant = false;
      for (const auto& e : doc.at("traceEvents")) failure_instant |= e.at("ph") == "i";
      CHECK(failure_instant);
    } else {
      CHECK_THAT(title, Catch::Contains("--seed 9 --runs 1"));  // the first schedule of the first leg
    }
  }
}

TEST_CASE("a clean search counts its events", "[cpu]") {
  const SimConfig config = config_of(4, "oneshot:N=3,twoshot:N=5");
  const SearchResult r = search_one(config, ScheduleKind::kAdversarial, 9, 20);
  REQUIRE(r.passed);
  CHECK(r.runs == 20);
  CHECK(r.events > r.steps);
  CHECK(r.events_per_second() > 0);
}

TEST_CASE("schedule names parse", "[cpu]") {
  CHECK(parse_schedule("random") == ScheduleKind::kRandom);
  CHECK(parse_schedule("adversarial") == ScheduleKind::kAdversarial);
  CHECK(parse_schedule("exhaustive") == ScheduleKind::kExhaustive);
  CHECK_FALSE(parse_schedule("fair"));
}

}  // namespace
}  // namespace ar::sim::test
