// The Chrome trace of a run: valid JSON that Perfetto opens, a process per rank, a thread per CTA and one for
// deliveries, operation slices with the words seen, and the failure as a global instant.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "sim_test_support.h"

namespace ar::sim::test {
namespace {

TEST_CASE("a failing run's trace has lanes per rank and CTA, the operations and the failure", "[cpu]") {
  const SimConfig config =
      config_of(2, "oneshot:N=2,twoshot:N=2,oneshot:N=1,oneshot:N=2", 16, DType::kBf16, Mutation::kNoClear);
  TraceRecorder trace;
  std::uint64_t seed = 1;
  for (; seed < 40; ++seed) {
    trace = TraceRecorder{};
    if (run_once(config, seed, false, &trace).result.failure) break;
  }
  REQUIRE(seed < 40);
  const nlohmann::json j = nlohmann::json::parse(trace.chrome_json("test", config.world_size));
  const auto& events = j.at("traceEvents");
  std::set<std::string> names, processes, threads;
  bool failure = false;
  for (const auto& e : events) {
    const std::string ph = e.at("ph");
    if (ph == "M" && e.at("name") == "process_name") processes.insert(e.at("args").at("name").get<std::string>());
    if (ph == "M" && e.at("name") == "thread_name") threads.insert(e.at("args").at("name").get<std::string>());
    if (ph == "X") names.insert(e.at("name").get<std::string>());
    if (ph == "i") failure = true;
  }
  CHECK(processes == std::set<std::string>{"rank 0", "rank 1"});
  CHECK(threads.count("CTA 0"));
  CHECK(threads.count("CTA 1"));
  CHECK(threads.count("memory (deliveries)"));
  for (const char* op : {"st_v4", "st_u32", "ld_v4", "ld_volatile_v4", "ld_volatile_u32", "red_release_gpu_add_u32",
                         "bar_cta_sync", "deliver"})
    CHECK(names.count(op));
  CHECK(failure);
  const auto lines = trace.text_lines(10);
  REQUIRE(lines.size() == 10);
  CHECK_THAT(lines.back(), Catch::Contains("FAILURE"));
}

TEST_CASE("the multicast writer shows as multimem_st_v4", "[cpu]") {
  const SimConfig config =
      config_of(4, "oneshot:N=1,twoshot:N=2", 8, DType::kBf16, Mutation::kNone, Writer::kMulticast);
  TraceRecorder trace;
  REQUIRE(run_once(config, 1, false, &trace).result.finished);
  bool multicast = false;
  for (const TraceEvent& e : trace.events()) multicast |= e.name == "multimem_st_v4";
  CHECK(multicast);
}

TEST_CASE("the recorder drops events past its limit and says so", "[cpu]") {
  TraceRecorder trace(3);
  for (int i = 0; i < 5; ++i)
    trace.record({TraceEvent::Kind::kOp, static_cast<std::uint64_t>(i), 0, 0, 0, "st_v4", "x"});
  CHECK(trace.events().size() == 3);
  CHECK(trace.dropped() == 2);
  const nlohmann::json j = nlohmann::json::parse(trace.chrome_json("t\"q", 1));
  CHECK(j.at("otherData").at("dropped_events") == 2);
}

}  // namespace
}  // namespace ar::sim::test
