// [gpu] The MUFU model (reference/mufu.h) against this GPU: hand-picked inputs (the specials, the ends of
// the exponent shift, FlashInfer's divisors) through cuda::MufuSweep, and a slice of `mnnvl-ar mufu --check`.
// The full proof over every input is the command itself (docs/mufu.md).
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <thread>
#include <vector>

#include "cuda/mufu_sweep.h"
#include "harness/job/gpu_backend.h"
#include "harness/job/mufu_check.h"
#include "reference/mufu.h"
#include "tests/support/cli_runs.h"

using namespace ar;

TEST_CASE("hand-picked inputs give the model's bits on the GPU", "[gpu]") {
  // Inputs are (first + i) * stride: stride 1 from `first` covers a run; the runs below cover zeros and
  // subnormals, 1.0 and its neighbours, the largest normals, Inf and NaN, of both signs.
  cuda::MufuSweep sweep(0, 1 << 16);
  for (const std::uint32_t start : {0x00000000u, 0x007FF000u, 0x3F7FF800u, 0x7F7FF000u, 0x7F800000u, 0x80000000u,
                                    0x807FF000u, 0xBF7FF800u, 0xFF7FF000u, 0xFF800000u}) {
    for (const MufuSweepSpec& spec : mufu_check_sweeps()) {
      const auto hardware = sweep.run(spec.op, start, 1 << 12, 1, spec.divisor);
      for (std::uint32_t i = 0; i < hardware.size(); ++i) {
        INFO(mufu_sweep_name(spec) << " input " << std::hex << start + i);
        REQUIRE(hardware[i] == mufu_model(spec, start + i));
      }
    }
  }
}

TEST_CASE("a capture on this GPU gives the built-in tables", "[gpu]") {
  const auto gpu = make_gpu_backend()->open_mufu_sweep(0, kRsqrtDeltaEntries);
  const MufuCapture c = capture_mufu_tables(*gpu);
  std::uint64_t differ = 0;
  for (std::uint32_t i = 0; i < kRsqrtDeltaEntries; ++i) differ += c.rsqrt[i] != rsqrt_delta(i);
  for (std::uint32_t i = 0; i < kRcpDeltaEntries; ++i) differ += c.rcp[i] != rcp_delta(i);
  CHECK(differ == 0);
}

TEST_CASE("mufu --check passes on a slice of every sweep", "[gpu]") {
  const auto r = test::run_in_process({"mufu", "--check", "--stride", "65537"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("the model equals this GPU"));
}

TEST_CASE("the kernels' computed e2m1 equals the model on every fp32 input", "[gpu]") {
  // sm_90 has no conversion to e2m1: the kernels compute it (cuda/detail/quant_row.cuh e2m1_code). All 2^32
  // inputs through that device function, against reference e2m1_from_fp32 (mufu --check runs it too).
  const auto gpu = make_gpu_backend()->open_mufu_sweep(0, std::uint64_t{1} << 28);
  const MufuSweepResult r = run_mufu_sweep(*gpu, {MufuOp::kE2m1, 0}, {1, std::max(1u, std::thread::hardware_concurrency())});
  INFO(r.differ << " differ; first at input " << std::hex << (r.first.empty() ? 0u : r.first.front().input));
  CHECK(r.inputs == std::uint64_t{1} << 32);
  CHECK(r.differ == 0);
}
