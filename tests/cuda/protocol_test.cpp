// [gpu] The Lamport protocol on hardware: sentinel look-alikes complete, a missing rank ends in a timeout
// that names it (never a hang), the workspace is laid out and initialised as reference/workspace.h says.
#include <catch2/catch.hpp>

#include <chrono>

#include "gpu_test_support.h"
#include "harness/io/golden_cases.h"
#include "reference/all_reduce.h"

using ar::DType;
using ar::Profile;
using ar::Strategy;
using ar::cuda::VirtualGroup;

TEST_CASE("bf16 words 0x80010000..0x807F0000 are never taken for the empty sentinel", "[gpu]") {
  // Regression for a float sentinel test under FTZ: a +0 low half next to a negative bf16 subnormal
  // 0x8001..0x807F makes the 32-bit word a negative fp32 subnormal that FTZ turns into -0. A float compare
  // would wait forever on it; the raw-word compare must not.
  for (int world : ar::kWorldSizes) {
    const ar::ProblemShape shape{world, 3, 512, DType::kBf16};
    VirtualGroup group(ar::test::group_options(world, {shape}));
    group.set_timeout_ns(2'000'000'000ull);
    ar::HostTensor input(DType::kBf16, {world, shape.tokens, shape.hidden});
    for (std::int64_t i = 0; i < input.size(); ++i)
      input.set_bits(i, i % 2 == 0 ? 0x0000u : 0x8001u + static_cast<std::uint32_t>(i / 2 % 0x7F));
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
      for (Profile p : {Profile::kFlashInfer, Profile::kIeee}) {
        const VirtualGroup::Call call{shape, s, p, true};
        const auto check = ar::test::run_and_check(group, input, call);
        INFO(ar::test::label(call) << ": " << check.describe());
        REQUIRE(!check.wait);
        REQUIRE(check.mismatches == 0);
      }
  }
}

TEST_CASE("a rank that is never launched makes the others time out, naming it", "[gpu]") {
  const int world = 4, missing = 2;
  const ar::ProblemShape shape{world, 8, 1024, DType::kBf16};
  VirtualGroup group(ar::test::group_options(world, {shape}));
  group.set_timeout_ns(200'000'000ull);  // 0.2 s
  const auto input = ar::random_input(DType::kBf16, world, shape.tokens, shape.hidden, 3, 8);
  group.upload(input);
  const std::vector<int> present{0, 1, 3};
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
    const VirtualGroup::Call call{shape, s, Profile::kFlashInfer, false};
    const std::uint32_t call_number = group.workspace().completed_calls(0) + 1;
    const auto start = std::chrono::steady_clock::now();
    const auto wait = group.run(call, present);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    INFO(ar::strategy_name(s) << (wait ? ": " + ar::cuda::describe_wait_error(*wait) : ": no timeout"));
    REQUIRE(wait.has_value());
    CHECK(wait->peer == missing);
    CHECK(wait->rank != missing);
    CHECK(wait->call == call_number);
    CHECK(wait->words[0] == ar::kLamportEmptyWord);
    CHECK(seconds < 5.0);
    CHECK(ar::cuda::describe_wait_error(*wait).find("waiting for rank 2") != std::string::npos);
    // The group was reset: a full call now works and is bit-exact.
    const auto check = ar::test::run_and_check(group, input, call);
    INFO(check.describe());
    REQUIRE(!check.wait);
    REQUIRE(check.mismatches == 0);
  }
}

TEST_CASE("the workspace is sized, initialised and advanced as reference/workspace.h says", "[gpu]") {
  const ar::ProblemShape max{8, 64, 7168, DType::kBf16};
  const ar::BufferRequest request = ar::request_buffer_bytes(max);
  REQUIRE(!request.error);
  ar::cuda::VirtualGroup::Options o;
  o.world_size = 8;
  o.buffer_bytes_request = request.bytes;
  o.io_bytes_per_rank = max.bytes_per_rank();
  VirtualGroup group(o);
  const auto& ws = group.workspace();
  CHECK(ws.allocation_bytes() % ws.granularity() == 0);
  CHECK(ws.buffer_bytes() == ar::buffer_bytes_from_usable(ws.allocation_bytes() - ar::kSignalPadBytes));
  CHECK(ws.buffer_bytes() >= request.bytes);
  for (int r = 0; r < 8; ++r) {
    CHECK(ws.flags(r) == ar::initial_flags(static_cast<std::uint32_t>(ws.buffer_bytes())));
    CHECK(ws.completed_calls(r) == 0);
  }
  ar::test::FlagsModel model(group);
  for (std::int64_t n : {9, 10, 64, 1}) {  // AUTO: 9 tokens ONESHOT (<= 1 MiB), 10 TWOSHOT
    const ar::ProblemShape shape{8, n, 7168, DType::kBf16};
    const auto input = ar::random_input(DType::kBf16, 8, n, 7168, 40 + n, 6);
    const auto check =
        ar::test::run_and_check(group, input, {shape, Strategy::kAuto, Profile::kFlashInfer, true}, &model);
    INFO("N = " << n << ": " << check.describe());
    REQUIRE(check.mismatches == 0);
    REQUIRE(check.flags_match);
  }
  CHECK(ws.completed_calls(0) == 4);
}

TEST_CASE("can_implement refuses what the kernels cannot run, with the reason", "[gpu]") {
  const ar::ProblemShape shape{2, 4, 64, DType::kBf16};
  VirtualGroup group(ar::test::group_options(2, {shape}));
  CHECK(group.can_run({shape, Strategy::kAuto, Profile::kFlashInfer, false}).ok());
  const auto trtllm = group.can_run({shape, Strategy::kAuto, Profile::kTrtllm, false});
  CHECK(trtllm.code == ar::cuda::StatusCode::kUnsupported);
  const auto wrong_world = group.can_run({{4, 4, 64, DType::kBf16}, Strategy::kAuto, Profile::kFlashInfer, false});
  CHECK(wrong_world.code == ar::cuda::StatusCode::kBadArguments);
  const auto bad_d = group.can_run({{2, 4, 60, DType::kBf16}, Strategy::kAuto, Profile::kFlashInfer, false});
  CHECK(bad_d.code == ar::cuda::StatusCode::kInvalidShape);
}
