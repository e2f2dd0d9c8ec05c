// The comparison of `mufu --check` (harness/job/mufu_check.h) against a stand-in GPU that answers with the
// model's bits except where a test plants a difference: every planted difference is counted, the first
// ones come back in input order whatever the chunks and threads, and the sweeps are the documented ones.
#include <catch2/catch.hpp>

#include <bit>
#include <set>
#include <vector>

#include "harness/job/mufu_check.h"
#include "reference/mufu.h"

using namespace ar;

namespace {

/// Answers like the model, flipping the last bit of the result for every input in `wrong`.
class PlantedGpu final : public GpuMufuSweep {
 public:
  PlantedGpu(std::uint64_t chunk, std::set<std::uint32_t> wrong) : chunk_(chunk), wrong_(std::move(wrong)) {}
  std::uint64_t chunk() const override { return chunk_; }
  std::span<const std::uint32_t> run(MufuOp op, std::uint64_t first, std::uint64_t count, std::uint64_t stride,
                                     std::uint32_t divisor) override {
    REQUIRE(count <= chunk_);
    results_.resize(count);
    for (std::uint64_t i = 0; i < count; ++i) {
      const auto x = static_cast<std::uint32_t>((first + i) * stride);
      results_[i] = mufu_model({op, divisor}, x) ^ (wrong_.count(x) ? 1u : 0u);
    }
    ++calls;
    return results_;
  }
  int calls = 0;

 private:
  std::uint64_t chunk_;
  std::set<std::uint32_t> wrong_;
  std::vector<std::uint32_t> results_;
};

}  // namespace

TEST_CASE("a check sweeps rsqrt with and without FTZ, rcp, div by every divisor, div over every b, e4m3 and /448",
          "[cpu]") {
  const std::vector<MufuSweepSpec> sweeps = mufu_check_sweeps();
  REQUIRE(sweeps.size() == 3 + kMufuDivisors.size() + 4);
  CHECK(mufu_sweep_name(sweeps[0]) == "rsqrt.approx.ftz.f32(x)");
  CHECK(mufu_sweep_name(sweeps[1]) == "rsqrt.approx.f32(x)");
  CHECK(mufu_sweep_name(sweeps[2]) == "rcp.approx.ftz.f32(x)");
  CHECK(mufu_sweep_name(sweeps[4]) == "div.approx.ftz.f32(a, 2880)");
  CHECK(mufu_model(sweeps[1], 0x00000002u) == rsqrt_approx_bits(0x00000002u));
  const MufuSweepSpec& hash = sweeps[sweeps.size() - 4];
  CHECK(mufu_sweep_name(hash) == "div.approx.ftz.f32(hash(b), b)");
  const MufuOperands hashed = mufu_operands(hash, 0x40400000u);
  CHECK(hashed.b == 0x40400000u);
  CHECK(hashed.a == mufu_hashed_dividend(0x40400000u));
  CHECK(mufu_model(hash, 0x40400000u) == div_approx_ftz_bits(hashed.a, 0x40400000u));
  CHECK(mufu_sweep_name(sweeps[sweeps.size() - 3]) == "cvt.rn.satfinite.e4m3x2.f32(x)");
  CHECK(mufu_model(sweeps[sweeps.size() - 3], 0x43E00000u) == 0x7Eu);  // 448
  CHECK(mufu_model(sweeps[sweeps.size() - 2], 0x43E00000u) == 0x3F800000u);  // 448 / 448
  CHECK(mufu_model(sweeps.back(), 0x40A00000u) == 0x6u);  // e2m1(5): the tie of 4 and 6, even: 4
  CHECK(mufu_model(sweeps[4], 0x45340000u) == div_approx_ftz_bits(0x45340000u, std::bit_cast<std::uint32_t>(2880.0f)));
}

TEST_CASE("every planted difference is counted and the first ones come back in input order", "[cpu]") {
  // Stride 65537: 65536 inputs, 0 and 65537 * k. Ten planted differences, spread over chunks and threads.
  constexpr std::uint64_t kStride = 65537;
  std::set<std::uint32_t> wrong;
  for (const std::uint64_t k : {65000u, 3u, 40000u, 17u, 1000u, 999u, 12345u, 54321u, 2u, 30000u})
    wrong.insert(static_cast<std::uint32_t>(k * kStride));
  PlantedGpu gpu(1000, wrong);
  const MufuSweepResult r = run_mufu_sweep(gpu, {MufuOp::kRsqrt, 0}, {kStride, 3});
  CHECK(r.inputs == 65536);
  CHECK(gpu.calls == 66);
  CHECK(r.differ == wrong.size());
  REQUIRE(r.first.size() == kMufuKeptDifferences);
  auto expected = wrong.begin();
  for (const MufuDifference& d : r.first) {
    CHECK(d.input == *expected++);
    CHECK(d.model == rsqrt_approx_ftz_bits(d.input));
    CHECK(d.hardware == (d.model ^ 1u));
  }
}

TEST_CASE("a GPU that agrees gives no difference, for every sweep", "[cpu]") {
  for (const MufuSweepSpec& spec : mufu_check_sweeps()) {
    PlantedGpu gpu(1 << 12, {});
    const MufuSweepResult r = run_mufu_sweep(gpu, spec, {1u << 20, 2});  // 4096 inputs
    INFO(mufu_sweep_name(spec));
    CHECK(r.inputs == 4096);
    CHECK(r.differ == 0);
    CHECK(r.first.empty());
  }
}
