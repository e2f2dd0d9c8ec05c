// The Chrome trace of a run: valid JSON that Perfetto opens, a process per rank, a thread per CTA and one for
// deliveries, operation slices with the words seen, and the failure as a global instant. Streamed to a sink as
// the run goes, it is byte for byte the in-memory rendering, and the recorder holds only the last few events.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

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

TEST_CASE("the recorder drops events past its limit and says so, but keeps the failure", "[cpu]") {
  TraceRecorder trace(3);
  for (int i = 0; i < 5; ++i)
    trace.record({TraceEvent::Kind::kOp, static_cast<std::uint64_t>(i), 0, 0, 0, "st_v4", "x"});
  trace.record({TraceEvent::Kind::kFailure, 5, 0, 0, 0, "deadlock", "stuck"});
  CHECK(trace.events().size() == 4);
  CHECK(trace.traced() == 4);
  CHECK(trace.dropped() == 2);
  const nlohmann::json j = nlohmann::json::parse(trace.chrome_json("t\"q", 1));
  CHECK(j.at("otherData").at("dropped_events") == 2);
  CHECK(j.at("otherData").at("title") == "t\"q");
  CHECK(j.at("traceEvents").back().at("name") == "thread_sort_index");  // lane names close the array
  bool failure = false;
  for (const auto& e : j.at("traceEvents")) failure |= e.at("ph") == "i";
  CHECK(failure);
  // The schedule shown is the last steps that happened, dropped or not.
  const auto lines = trace.text_lines(3);
  REQUIRE(lines.size() == 3);
  CHECK_THAT(lines[0], Catch::Contains("step      3"));
  CHECK_THAT(lines[2], Catch::Contains("FAILURE deadlock"));
}

/// A sink that keeps only counts, and how many events its recorder held at each write: the file of a long run
/// without the file.
class CountingSink final : public TraceSink {
 public:
  const TraceRecorder* recorder = nullptr;
  std::size_t writes = 0, bytes = 0, restarts = 0, most_resident = 0;
  void restart() override { ++restarts; }
  void write(std::string_view piece) override {
    ++writes;
    bytes += piece.size();
    if (recorder) most_resident = std::max(most_resident, recorder->resident());
  }
};

TEST_CASE("a streamed trace is byte for byte the in-memory rendering of the same run", "[cpu]") {
  struct Case {
    const char* what;
    SimConfig config;
    std::uint64_t seed;
    bool adversarial;
  };
  SimConfig ours = config_of(4, "oneshot:N=3:D=8,twoshot:N=1:D=8,oneshot:N=1:D=8,twoshot:N=6:D=8", 8);
  ours.protocol = Protocol::kOurs;
  ours.max_blocks_per_rank = 2;
  const std::vector<Case> cases{
      {"no-clear, fails",
       config_of(2, "oneshot:N=2,twoshot:N=2,oneshot:N=1,oneshot:N=2", 16, DType::kBf16, Mutation::kNoClear), 3, false},
      {"clean, adversarial", config_of(4, "oneshot:N=3,twoshot:N=5,auto:N=2", 16), 7, true},
      {"multicast", config_of(4, "oneshot:N=1,twoshot:N=2", 8, DType::kBf16, Mutation::kNone, Writer::kMulticast), 1,
       false},
      {"our kernels", ours, 17, true},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    TraceRecorder kept;
    const SeededRun in_memory = run_once(c.config, c.seed, c.adversarial, &kept);
    StringTraceSink sink;
    sink.text = "a document of another run";  // started over by the recorder
    TraceRecorder streamed(sink, "the title", c.config.world_size);
    const SeededRun streaming = run_once(c.config, c.seed, c.adversarial, &streamed);
    streamed.finish();
    CHECK(streaming.result.steps == in_memory.result.steps);
    CHECK(sink.text == kept.chrome_json("the title", c.config.world_size));
    CHECK(streamed.traced() == kept.events().size());
    CHECK(streamed.text_lines(40) == kept.text_lines(40));
    CHECK(nlohmann::json::parse(sink.text).at("traceEvents").size() > kept.events().size());
  }
}

TEST_CASE("a streaming recorder holds the last few events however long the run, and keeps no list", "[cpu]") {
  // W = 8, six calls: tens of thousands of events, written to the sink in pieces as they happen.
  const SimConfig config = config_of(8, "oneshot:N=4,twoshot:N=9,oneshot:N=3,twoshot:N=4,oneshot:N=5,twoshot:N=8", 16);
  CountingSink sink;
  TraceRecorder trace(sink, "long", config.world_size, kTraceEventCap, /*recent_events=*/64);
  sink.recorder = &trace;
  REQUIRE(run_once(config, 2, false, &trace).result.finished);
  const std::size_t writes_during_run = sink.writes;
  trace.finish();
  trace.finish();  // once only
  INFO(trace.traced() << " events, " << sink.bytes << " bytes in " << sink.writes << " writes");
  CHECK(sink.restarts == 1);
  CHECK(trace.traced() > 20'000);  // hundreds of times what it holds
  CHECK(writes_during_run > 10);   // streamed while the run went on, not at its end
  CHECK(sink.writes == writes_during_run + 1);
  CHECK(sink.bytes > trace.traced() * 100);
  CHECK(sink.most_resident <= 64);
  CHECK(trace.resident() <= 64);
  CHECK(trace.dropped() == 0);
  CHECK(trace.text_lines(100).size() == 64);
  CHECK_THROWS_AS(trace.events(), std::logic_error);
  CHECK_THROWS_AS(trace.chrome_json("long", config.world_size), std::logic_error);
}

TEST_CASE("a streamed trace past its cap leaves the rest out but ends with the failure", "[cpu]") {
  const SimConfig config =
      config_of(2, "oneshot:N=2,twoshot:N=2,oneshot:N=1,oneshot:N=2", 16, DType::kBf16, Mutation::kNoClear);
  StringTraceSink sink;
  TraceRecorder trace(sink, "capped", config.world_size, /*max_events=*/50);
  TraceRecorder kept(/*max_events=*/50);
  std::uint64_t seed = 1;
  for (; seed < 40; ++seed)
    if (run_once(config, seed, false).result.failure) break;
  REQUIRE(seed < 40);
  REQUIRE(run_once(config, seed, false, &trace).result.failure);
  REQUIRE(run_once(config, seed, false, &kept).result.failure);
  trace.finish();
  CHECK(sink.text == kept.chrome_json("capped", config.world_size));
  const nlohmann::json j = nlohmann::json::parse(sink.text);
  CHECK(j.at("otherData").at("dropped_events").get<std::size_t>() == trace.dropped());
  CHECK(trace.dropped() > 0);
  CHECK(trace.traced() == 51);
  std::size_t instants = 0;
  for (const auto& e : j.at("traceEvents")) instants += e.at("ph") == "i";
  CHECK(instants == 1);
  CHECK_THAT(trace.text_lines(1).at(0), Catch::Contains("FAILURE"));
}

}  // namespace
}  // namespace ar::sim::test
