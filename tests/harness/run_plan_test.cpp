// What `run` plans before it touches a GPU: the golden calls come from the one manifest reader with the
// expected outputs the reference gives, and a sequence expands over dtypes, profiles, PDL and repeats.
#include <catch2/catch.hpp>

#include "harness/commands/run_plan.h"
#include "harness/io/golden_manifest.h"
#include "harness/job/host_reference.h"

using namespace ar;

TEST_CASE("golden calls: every case of the world size, under each strategy, expecting the reference's bits", "[cpu]") {
  RunSettings s;
  s.kind = InputKind::kGolden;
  s.data_dir = std::string(AR_SOURCE_DIR) + "/data";
  s.dtypes = {DType::kBf16, DType::kFp16, DType::kFp32};
  s.profiles = {Profile::kFlashInfer, Profile::kIeee};
  s.pdls = {false};
  const GoldenManifest manifest = read_golden_manifest(s.data_dir);
  for (int world : {2, 8, 16}) {
    std::size_t cases = 0;
    for (const GoldenManifestCase& c : manifest.cases) cases += c.shape.world_size == world;
    const std::vector<PlannedCall> planned = plan_calls(s, world);
    INFO("W = " << world);
    REQUIRE(planned.size() == cases * 3 * 2);
    for (const PlannedCall& c : planned) {
      CHECK(c.call.shape.world_size == world);
      CHECK(c.resolved == resolve_strategy(c.call.strategy, c.call.shape));
      REQUIRE(c.expected);
      CHECK(*c.expected == parallel_reference(c.input, c.resolved, c.expect));
    }
  }
}

TEST_CASE("a sequence expands over dtypes, profiles, PDL and repeats with a seed per call", "[cpu]") {
  RunSettings s;
  s.kind = InputKind::kExact;
  s.specs = parse_call_sequence("oneshot:N=4,auto:N=11");
  s.dtypes = {DType::kBf16, DType::kFp32};
  s.profiles = {Profile::kFlashInfer};
  s.pdls = {false, true};
  s.repeat = 2;
  const std::vector<PlannedCall> planned = plan_calls(s, 8);
  REQUIRE(planned.size() == 2 * 2 * 2 * 2);
  for (std::size_t i = 0; i < planned.size(); ++i) CHECK(planned[i].seed == s.seed + i + 1);
  CHECK(planned[1].call.strategy == Strategy::kAuto);
  CHECK(planned[1].resolved == Strategy::kOneShot);
  CHECK(planned[4].call.pdl);
  CHECK(planned[8].call.shape.dtype == DType::kFp32);
  s.specs = parse_call_sequence("oneshot:D=12");
  CHECK_THROWS_WITH(plan_calls(s, 8), Catch::Contains("--calls at W = 8"));
}
