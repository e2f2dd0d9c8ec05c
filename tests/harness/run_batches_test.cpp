// run --batches without a GPU: the plan (batch sizes on both sides of every boundary, every probe in every
// batch size, the probes' rows in the inputs), and the comparison, fed with the model's own whole-call
// outputs in place of the GPU's: it agrees with the paths, and a single flipped bit in one probe row is
// caught.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <sstream>

#include "harness/commands/run_batches.h"
#include "reference/all_reduce.h"
#include "reference/fused_quant.h"
#include "reference/fused_rms_norm.h"

using namespace ar;

namespace {

RunSettings settings(std::vector<Profile> profiles, std::int64_t hidden = 256, int sms = 132) {
  RunSettings s;
  s.dtypes = {DType::kBf16};
  s.profiles = std::move(profiles);
  s.pdls = {true};
  s.hidden = hidden;
  s.sms = sms;
  return s;
}

/// The model's options of a planned fused call.
FusedOptions fused_options_of(const PlannedCall& c) {
  return FusedOptions{.strategy = c.call.strategy,
                      .profile = c.expect,
                      .sm_count = c.call.norm->sm_count,
                      .epsilon = c.call.norm->epsilon,
                      .weight_bias = c.call.norm->weight_bias};
}

/// The whole call's model output of a planned call (what a bit-exact GPU gives).
HostTensor model_output(const PlannedCall& c) {
  if (c.norm) return reference_fused_rms_norm(c.input, c.norm->residual, c.norm->gamma, fused_options_of(c)).normalized;
  return reference_all_reduce(c.input, c.call.strategy, c.expect);
}

}  // namespace

TEST_CASE("run --batches plans both sides of every boundary and every probe in every batch size", "[cpu]") {
  BatchSettings b;
  b.max_tokens = 300;
  b.strategies = {Strategy::kAuto};
  const BatchPlan plan = plan_batches(settings({Profile::kFlashInfer, Profile::kInvariant}), b, 16);
  REQUIRE(plan.configs.size() == 4);  // 2 profiles x plain/fused
  REQUIRE(plan.planned.size() == plan.calls.size());
  for (std::size_t ci = 0; ci < plan.configs.size(); ++ci) {
    const BatchConfig& c = plan.configs[ci];
    INFO(profile_name(c.question.profile) << (c.question.fused ? " fused" : " plain"));
    CHECK(c.sizes.front() == 1);
    CHECK(c.sizes.back() == 300);
    for (std::size_t r = 0; r + 1 < c.ranges.size(); ++r) {
      CHECK(std::binary_search(c.sizes.begin(), c.sizes.end(), c.ranges[r].last));
      CHECK(std::binary_search(c.sizes.begin(), c.sizes.end(), c.ranges[r].last + 1));
    }
    if (c.question.profile == Profile::kInvariant) CHECK(c.ranges.size() == 1);
    // AUTO at W = 16 changes real bits at its 1 MiB switch: a witness probe besides the three built in.
    if (c.question.profile == Profile::kFlashInfer) CHECK(c.probes.size() >= 4);
    for (std::int64_t n : c.sizes)
      for (int p = 0; p < static_cast<int>(c.probes.size()); ++p) {
        bool placed = false;
        for (const BatchCall& call : plan.calls)
          if (call.config == ci && call.tokens == n)
            for (const auto& [k, row] : call.placed) {
              placed = placed || k == p;
              CHECK(row < n);
            }
        INFO("N = " << n << " probe " << p);
        CHECK(placed);
      }
  }
  // A filled call holds its probes' rows in every rank.
  const std::size_t i = plan.calls.size() / 2;
  PlannedCall call = plan.planned[i];
  fill_batch_call(plan, i, call);
  const BatchCall& bc = plan.calls[i];
  const BatchConfig& c = plan.configs[bc.config];
  for (const auto& [k, row] : bc.placed)
    for (int r = 0; r < 16; ++r)
      for (std::int64_t d = 0; d < 256; d += 37)
        CHECK(call.input.bits((r * bc.tokens + row) * 256 + d) ==
              c.probes[static_cast<std::size_t>(k)].input.bits(r * 256 + d));
}

TEST_CASE("run --batches compares probes as the model's paths say, and a flipped bit is caught", "[cpu]") {
  BatchSettings b;
  b.max_tokens = 40;
  b.strategies = {Strategy::kAuto, Strategy::kTwoShot};
  b.max_input_bytes = std::int64_t{2} * 40 * 2048 * 2;  // W = 2: N up to 40
  // D = 2048 on 16 SMs: FlashInfer's fused tree changes at N = 8 -> 9 (two-block clusters while 2N <= 16).
  const RunSettings s = settings({Profile::kFlashInfer, Profile::kInvariant}, 2048, 16);
  BatchPlan plan = plan_batches(s, b, 2);
  BatchObservations seen(plan), corrupted(plan);
  bool flipped = false;
  for (std::size_t i = 0; i < plan.calls.size(); ++i) {
    PlannedCall call = plan.planned[i];
    fill_batch_call(plan, i, call);
    HostTensor out = model_output(call);
    seen.record(i, out);
    // One bit of one probe row of one N = 16 call of the first config.
    if (!flipped && plan.calls[i].config == 0 && plan.calls[i].tokens == 16) {
      const std::int64_t row = plan.calls[i].placed.front().second;
      out.set_bits(row * 2048 + 5, out.bits(row * 2048 + 5) ^ 1u);
      flipped = true;
    }
    corrupted.record(i, out);
  }
  REQUIRE(flipped);
  std::ostringstream report;
  CHECK(print_batch_report(report, plan, seen.verdicts()));
  INFO(report.str());
  for (const auto& v : seen.verdicts()) {
    CHECK(v.pairs_disagreeing == 0);
    if (plan.configs[v.config].question.profile == Profile::kInvariant) CHECK(v.gpu_distinct == 1);
  }
  // The fused flashinfer tree changes inside 1..40: some probe's bits do change, as the model says.
  int changed = 0;
  for (const auto& v : seen.verdicts())
    if (plan.configs[v.config].question.profile == Profile::kFlashInfer && plan.configs[v.config].question.fused)
      changed = std::max(changed, v.gpu_distinct);
  CHECK(changed > 1);
  std::ostringstream bad;
  CHECK_FALSE(print_batch_report(bad, plan, corrupted.verdicts()));
  CHECK(bad.str().find("first disagreement") != std::string::npos);
}

TEST_CASE("run --batches compares quantised calls' codes and scales as the model's paths say", "[cpu]") {
  BatchSettings b;
  b.max_tokens = 24;
  b.strategies = {Strategy::kAuto};
  b.kinds = {{true, QuantMode::kFp8Dynamic}, {true, QuantMode::kNvfp4}};
  b.max_input_bytes = std::int64_t{2} * 24 * 2048 * 2;
  RunSettings s = settings({Profile::kFlashInfer, Profile::kInvariant}, 2048, 16);
  s.quant_scale = 0x40400000u;  // 3
  BatchPlan plan = plan_batches(s, b, 2);
  BatchObservations seen(plan), corrupted(plan);
  bool flipped = false;
  for (std::size_t i = 0; i < plan.calls.size(); ++i) {
    PlannedCall call = plan.planned[i];
    fill_batch_call(plan, i, call);
    REQUIRE(call.call.norm);
    REQUIRE(call.call.norm->quant != QuantMode::kNone);
    CHECK(call.call.norm->quant_scale == 0x40400000u);
    QuantizedOutput out = reference_fused_quant(call.input, call.norm->residual, call.norm->gamma, fused_options_of(call),
                                                QuantOptions{call.call.norm->quant, call.call.norm->quant_scale,
                                                             call.call.norm->layout})
                              .quant;
    seen.record_quant(i, out);
    if (!flipped && plan.calls[i].tokens == 16) {  // one code of one probe row
      const std::int64_t row = plan.calls[i].placed.front().second;
      out.quant_out[static_cast<std::size_t>(row * (out.quant_out.size() / 16) + 3)] ^= 1u;
      flipped = true;
    }
    corrupted.record_quant(i, out);
  }
  REQUIRE(flipped);
  std::ostringstream report;
  CHECK(print_batch_report(report, plan, seen.verdicts()));
  INFO(report.str());
  CHECK(report.str().find("fp8-dynamic") != std::string::npos);
  for (const auto& v : seen.verdicts()) {
    CHECK(v.pairs_disagreeing == 0);
    if (plan.configs[v.config].question.profile == Profile::kInvariant) CHECK(v.gpu_distinct == 1);
  }
  std::ostringstream bad;
  CHECK_FALSE(print_batch_report(bad, plan, corrupted.verdicts()));
  // What the model refuses is refused before anything runs.
  b.kinds = {{true, QuantMode::kNvfp4}};
  s.dtypes = {DType::kFp32};
  CHECK_THROWS_WITH(plan_batches(s, b, 2), Catch::Contains("--batch-kinds nvfp4") && Catch::Contains("bf16 or fp16"));
}
