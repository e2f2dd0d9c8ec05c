// What `run` plans before it touches a GPU: the golden calls come from the one manifest reader with the
// expected outputs the reference gives, and a sequence expands over dtypes, profiles, PDL and repeats.
#include <catch2/catch.hpp>

#include "harness/commands/run_plan.h"
#include "harness/io/golden_manifest.h"
#include "harness/job/host_reference.h"
#include "harness/job/gpu_job.h"
#include "reference/fused_quant.h"
#include "reference/fused_rms_norm.h"

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
    std::size_t cases = 0, fused_cases = 0;
    for (const GoldenManifestCase& c : manifest.cases) cases += c.shape.world_size == world;
    for (const GoldenManifestCase& c : manifest.fused_cases) fused_cases += c.shape.world_size == world;
    const std::vector<PlannedCall> planned = plan_calls(s, world);
    INFO("W = " << world);
    REQUIRE(planned.size() == (cases + fused_cases) * 3 * 2);
    std::size_t fused = 0;
    for (const PlannedCall& c : planned) {
      CHECK(c.call.shape.world_size == world);
      CHECK(c.resolved == resolve_strategy(c.call.strategy, c.call.shape));
      if (c.norm) {  // a fused case: the manifest's files are the model's outputs for its SM count
        ++fused;
        REQUIRE(c.call.norm);
        REQUIRE(c.norm->expected);
        const FusedResult model = reference_fused_rms_norm(c.input, c.norm->residual, c.norm->gamma,
                                                           fused_options(*c.call.norm, c.resolved, c.expect));
        CHECK(c.norm->expected->normalized == model.normalized);
        CHECK(c.norm->expected->residual_out == model.residual_out);
        continue;
      }
      REQUIRE(c.expected);
      CHECK(*c.expected == parallel_reference(c.input, c.resolved, c.expect));
    }
    CHECK(fused == fused_cases * 3 * 2);
  }
  CHECK(!manifest.fused_cases.empty());
}

TEST_CASE("fused calls of a sequence carry their residual, gamma and arithmetic", "[cpu]") {
  RunSettings s;
  s.kind = InputKind::kRandom;
  s.specs = parse_call_sequence("oneshot:N=3:D=64:fused,twoshot:N=4:D=64,auto:N=2:D=32:fused");
  s.dtypes = {DType::kBf16};
  s.profiles = {Profile::kFlashInfer, Profile::kIeee};
  s.pdls = {true};
  s.repeat = 1;
  s.sms = 78;
  s.weight_bias = 0x3F800000u;
  const std::vector<PlannedCall> planned = plan_calls(s, 2);
  REQUIRE(planned.size() == 6);
  for (const PlannedCall& c : planned) {
    const bool fused = c.call.shape.tokens != 4;
    REQUIRE(c.norm.has_value() == fused);
    REQUIRE(c.call.norm.has_value() == fused);
    if (!fused) continue;
    CHECK(c.call.norm->sm_count == 78);
    CHECK(c.call.norm->weight_bias == 0x3F800000u);
    CHECK(c.call.norm->epsilon == default_epsilon(DType::kBf16));
    CHECK(c.norm->residual.shape() == std::vector<std::int64_t>{c.call.shape.tokens, c.call.shape.hidden});
    CHECK(c.norm->gamma.shape() == std::vector<std::int64_t>{c.call.shape.hidden});
    // The expected outputs are the model's, for the SM count asked for.
    const FusedExpectation e = expected_fused_outputs(c);
    GpuNorm on_78 = *c.call.norm;
    on_78.sm_count = 78;
    CHECK(e.normalized == reference_fused_rms_norm(c.input, c.norm->residual, c.norm->gamma,
                                                   fused_options(on_78, c.resolved, c.expect))
                              .normalized);
  }
}

TEST_CASE("quantised calls of a sequence carry their mode, layout and scale, and expect the quantised model",
          "[cpu]") {
  RunSettings s;
  s.kind = InputKind::kAdversarial;
  s.specs = parse_call_sequence("oneshot:N=3:D=64:quant=fp8-dynamic,twoshot:N=2:D=32:quant=nvfp4:layout=linear");
  s.dtypes = {DType::kBf16};
  s.profiles = {Profile::kFlashInfer, Profile::kInvariant};
  s.pdls = {false};
  s.repeat = 1;
  s.sms = 132;
  s.quant_scale = 0x40400000u;  // 3
  const std::vector<PlannedCall> planned = plan_calls(s, 2);
  REQUIRE(planned.size() == 4);
  for (const PlannedCall& c : planned) {
    REQUIRE(c.call.norm);
    REQUIRE(c.norm);
    const bool nvfp4 = c.call.shape.tokens == 2;
    CHECK(c.call.norm->quant == (nvfp4 ? QuantMode::kNvfp4 : QuantMode::kFp8Dynamic));
    CHECK(c.call.norm->layout == (nvfp4 ? ScaleLayout::kLinear : ScaleLayout::kSwizzled128x4));
    CHECK(c.call.norm->quant_scale == 0x40400000u);
    const FusedExpectation e = expected_fused_outputs(c);
    REQUIRE(e.quant);
    const FusedOptions options = fused_options(*c.call.norm, c.resolved, c.expect);
    const FusedQuantResult model = reference_fused_quant(
        c.input, c.norm->residual, c.norm->gamma, options,
        QuantOptions{c.call.norm->quant, c.call.norm->quant_scale, c.call.norm->layout});
    CHECK(e.quant->quant_out == model.quant.quant_out);
    CHECK(e.quant->scale_out == model.quant.scale_out);
    CHECK(e.quant->token_scales == model.quant.token_scales);
  }
  // A plan line names the quantised output, so the processes of a job agree on it.
  CHECK_THAT(plan_line(1, "seq", planned[0].call, Strategy::kOneShot, Profile::kFlashInfer, 1),
             Catch::Contains("quant=fp8-dynamic layout=swizzled scale=0x40400000"));
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
