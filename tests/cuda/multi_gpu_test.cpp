// [gpu] One process driving the ranks on several GPUs (2 or more; with fewer the binary reports its tests
// skipped): the ranks in contiguous blocks over the GPUs, so W = 2 is one rank per GPU with every Lamport
// store to the peer crossing NVLink, and W = 16 is 2 GPUs x 8 virtual ranks. Outputs and flags against
// reference/, bit for bit; a rank missing on the other GPU times out, named; graph timing over both GPUs.
#include <catch2/catch.hpp>

#include <chrono>

#include "cuda/device.h"
#include "gpu_test_support.h"
#include "harness/io/golden_cases.h"
#include "reference/all_reduce.h"

using ar::DType;
using ar::Profile;
using ar::Strategy;
using ar::cuda::VirtualGroup;

namespace {

/// The first two GPUs of the machine.
const std::vector<int> kTwoGpus{0, 1};

VirtualGroup::Options on_two_gpus(int world, const std::vector<ar::ProblemShape>& shapes) {
  VirtualGroup::Options o = ar::test::group_options(world, shapes);
  o.devices = kTwoGpus;
  return o;
}

}  // namespace

TEST_CASE("the ranks are split over the GPUs in contiguous blocks", "[gpu]") {
  for (int world : {2, 16}) {
    VirtualGroup group(on_two_gpus(world, {{world, 1, 8, DType::kBf16}}));
    CHECK(group.devices() == kTwoGpus);
    for (int r = 0; r < world; ++r) CHECK(group.device_of(r) == (r < world / 2 ? 0 : 1));
  }
  // Ranks that do not split evenly, and a GPU named twice, are refused before anything is allocated.
  auto uneven = ar::test::group_options(2, {{2, 1, 8, DType::kBf16}});
  uneven.devices = {0, 1, 0};
  CHECK_THROWS_WITH(VirtualGroup(uneven), Catch::Contains("cannot be split evenly over 3 GPUs"));
  auto twice = ar::test::group_options(4, {{4, 1, 8, DType::kBf16}});
  twice.devices = {1, 1};
  CHECK_THROWS_WITH(VirtualGroup(twice), Catch::Contains("named twice"));
}

TEST_CASE("every golden case is bit-exact with the ranks on two GPUs", "[gpu]") {
  const int runs = ar::test::run_every_golden_case(on_two_gpus);
  CHECK(runs == static_cast<int>(ar::golden_cases().size()) * 18);
}

TEST_CASE("full-mantissa inputs across GPUs stay bit-exact in one round and in several", "[gpu]") {
  for (int world : {2, 16}) {
    for (std::int64_t round_bytes : {std::int64_t(0), std::int64_t(1)}) {
      const std::vector<ar::ProblemShape> shapes{{world, 300, 1024, DType::kBf16}, {world, 140, 512, DType::kFp32}};
      auto options = on_two_gpus(world, shapes);
      options.round_bytes = round_bytes;
      VirtualGroup group(options);
      ar::test::FlagsModel model(group);
      std::uint64_t seed = 900;
      for (const auto& shape : shapes)
        for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
          const auto input = ar::random_input(shape.dtype, world, shape.tokens, shape.hidden, ++seed, 20);
          const VirtualGroup::Call call{shape, s, Profile::kFlashInfer, true};
          const auto check = ar::test::run_and_check(group, input, call, &model);
          INFO(ar::test::label(call) << " round_bytes " << round_bytes << " seed " << seed << ": " << check.describe());
          REQUIRE(!check.wait);
          REQUIRE(check.mismatches == 0);
          REQUIRE(check.flags_match);
        }
    }
  }
}

TEST_CASE("a rank on the other GPU that is never launched makes its peer time out, naming it", "[gpu]") {
  const int world = 2, missing = 1;
  const ar::ProblemShape shape{world, 8, 1024, DType::kBf16};
  VirtualGroup group(on_two_gpus(world, {shape}));
  group.set_timeout_ns(200'000'000ull);  // 0.2 s
  const auto input = ar::random_input(DType::kBf16, world, shape.tokens, shape.hidden, 3, 8);
  const std::vector<int> present{0};
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
    group.upload(input);
    const VirtualGroup::Call call{shape, s, Profile::kFlashInfer, false};
    const auto start = std::chrono::steady_clock::now();
    const auto wait = group.run(call, present);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    INFO(ar::strategy_name(s) << (wait ? ": " + ar::cuda::describe_wait_error(*wait) : ": no timeout"));
    REQUIRE(wait.has_value());
    CHECK(wait->rank == 0);
    CHECK(wait->peer == missing);
    CHECK(seconds < 5.0);
    // The group was reset on both GPUs: a full call now works and is bit-exact.
    const auto check = ar::test::run_and_check(group, input, call);
    INFO(check.describe());
    REQUIRE(!check.wait);
    REQUIRE(check.mismatches == 0);
  }
}

TEST_CASE("CUDA-graph timing over two GPUs replays both lanes and stays bit-exact", "[gpu]") {
  for (int world : {2, 16}) {
    const ar::ProblemShape shape{world, 8, 4096, DType::kBf16};
    VirtualGroup group(on_two_gpus(world, {shape}));
    const auto input = ar::random_input(DType::kBf16, world, shape.tokens, shape.hidden, 9, 12);
    group.upload(input);
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
      const VirtualGroup::Call call{shape, s, Profile::kFlashInfer, true};
      group.poison_outputs();
      const std::uint32_t before = group.workspace().completed_calls(0);
      const double us = group.time_us(call, /*warmup=*/3, /*iterations=*/7, /*graph_launches=*/5);
      CHECK(us > 0);
      const ar::HostTensor expected = ar::reference_all_reduce(input, s, Profile::kFlashInfer);
      for (int r = 0; r < world; ++r) {
        INFO("rank " << r << " on GPU " << group.device_of(r));
        REQUIRE(ar::compare_bits(group.download(r, shape), expected).differing == 0);
        // 3 warm-up calls, one warming replay of 7 and 5 timed replays of 7, on every rank of both GPUs.
        CHECK(group.workspace().completed_calls(r) == before + 3 + 7 + 35);
      }
    }
  }
}
