// [gpu] TWOSHOT's direct path (docs/large-messages.md) on hardware, through W virtual ranks on one GPU: TWOSHOT's
// bits at every world size, dtype and profile, over one and several rounds; direct and Lamport calls of every
// kind and shape mixed on one workspace (the region laid out once, the Lamport clears carried across a direct
// call); a rank that never arrives ends in a timeout naming it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <optional>

#include "gpu_test_support.h"
#include "harness/io/golden_cases.h"
#include "reference/all_reduce.h"

using ar::DType;
using ar::Profile;
using ar::Strategy;
using ar::cuda::VirtualGroup;

namespace {

constexpr Profile kProfiles[] = {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant};

/// A group whose plain TWOSHOT calls of at least `direct_from` bytes a rank take the direct path, with a
/// workspace for every shape: the direct region for the direct ones, Lamport buffers under every strategy for
/// `lamport_shapes` (all of `shapes` when not given; ONESHOT's buffers grow with W^2, too large at W = 64 for
/// calls that only ever go direct).
VirtualGroup::Options direct_options(int world, const std::vector<ar::ProblemShape>& shapes, std::int64_t direct_from,
                                     const std::optional<std::vector<ar::ProblemShape>>& lamport_shapes = {}) {
  VirtualGroup::Options o = ar::test::group_options(world, lamport_shapes.value_or(shapes));
  o.direct_from_bytes = direct_from;
  for (ar::ProblemShape s : shapes) {
    s.world_size = world;
    o.io_bytes_per_rank = std::max(o.io_bytes_per_rank, s.bytes_per_rank());
    if (!ar::takes_direct_path(Strategy::kTwoShot, false, s, direct_from)) continue;
    o.direct_scatter_bytes = std::max(o.direct_scatter_bytes, ar::direct_scatter_bytes(s));
    o.direct_broadcast_bytes = std::max(o.direct_broadcast_bytes, ar::direct_broadcast_bytes(s));
  }
  return o;
}

/// Runs `call` and requires every rank's output bit-exact with the reference, and its flags with `model`'s.
void require_bit_exact(VirtualGroup& group, const ar::HostTensor& input, const VirtualGroup::Call& call,
                       ar::test::FlagsModel* model) {
  const auto check = ar::test::run_and_check(group, input, call, model);
  INFO(check.describe());
  REQUIRE(!check.wait);
  REQUIRE(check.mismatches == 0);
  REQUIRE(check.flags_match);
}

}  // namespace

TEST_CASE("direct calls give TWOSHOT's bits at every world size, dtype and profile", "[gpu]") {
  for (int world : ar::kWorldSizes) {
    // N not a multiple of W, a single token, a partial last row; D from one pack to many.
    const std::vector<ar::ProblemShape> shapes{{world, 1, 64, DType::kBf16},
                                               {world, 2 * world + 3, 1024, DType::kBf16},
                                               {world, world + 1, 2880, DType::kFp16},
                                               {world, 3 * world - 1, 512, DType::kFp32}};
    VirtualGroup group(direct_options(world, shapes, /*direct_from=*/1));
    ar::test::FlagsModel model(group);
    std::uint64_t seed = 900 + world;
    for (const auto& shape : shapes)
      for (Profile p : kProfiles)
        for (bool pdl : {false, true}) {
          const auto input = ar::random_input(shape.dtype, world, shape.tokens, shape.hidden, ++seed, 20);
          const VirtualGroup::Call call{shape, Strategy::kTwoShot, p, pdl};
          INFO(ar::test::label(call) << " seed " << seed);
          REQUIRE(group.plan(call).direct);
          require_bit_exact(group, input, call, &model);
        }
  }
}

TEST_CASE("direct calls over several rounds and many blocks stay bit-exact", "[gpu]") {
  for (int world : {2, 8, 64}) {
    // round_bytes = 1: every round its minimum (16384 packs), so these calls take several rounds, each with
    // its own flag value; D = 8192 gives a block more rows than one pack a thread.
    const std::vector<ar::ProblemShape> shapes{{world, 10 * world + 1, 8192, DType::kBf16},
                                               {world, 10 * world, 4096, DType::kFp32}};
    auto options = direct_options(world, shapes, 1, std::vector<ar::ProblemShape>{});
    options.round_bytes = 1;
    VirtualGroup group(options);
    ar::test::FlagsModel model(group);
    std::uint64_t seed = 31 * world;
    for (const auto& shape : shapes)
      for (Profile p : kProfiles) {
        const auto input = ar::random_input(shape.dtype, world, shape.tokens, shape.hidden, ++seed, 30);
        const VirtualGroup::Call call{shape, Strategy::kTwoShot, p, true};
        const ar::cuda::LaunchPlan plan = group.plan(call);
        INFO(ar::test::label(call) << " rounds of " << plan.tokens_per_round << " tokens, " << plan.blocks_per_rank
                                   << " blocks a rank");
        REQUIRE(plan.direct);
        CHECK(plan.tokens_per_round < shape.tokens);
        require_bit_exact(group, input, call, &model);
      }
  }
}

TEST_CASE("direct and Lamport calls of every kind mixed on one workspace stay bit-exact", "[gpu]") {
  struct Step {
    Strategy strategy;
    std::int64_t tokens, hidden;
    DType dtype;
  };
  // From 64 KiB a rank (bf16: N * D >= 32768) plain TWOSHOT calls go direct. Direct calls of other shapes follow
  // each other (rows straddling earlier calls' rows: the region is laid out once), and Lamport calls of every
  // strategy come between them (a direct launch clears what the Lamport launch before it left, and records
  // nothing for the next to clear).
  const std::int64_t direct_from = 64 * 1024;
  const std::vector<Step> steps{
      {Strategy::kTwoShot, 64, 1024, DType::kBf16},  {Strategy::kTwoShot, 9, 7168, DType::kBf16},
      {Strategy::kOneShot, 4, 256, DType::kBf16},    {Strategy::kTwoShot, 37, 2048, DType::kBf16},
      {Strategy::kTwoShot, 5, 512, DType::kBf16},    {Strategy::kAuto, 200, 4096, DType::kBf16},
      {Strategy::kTwoShot, 33, 1024, DType::kFp16},  {Strategy::kOneShot, 64, 1024, DType::kBf16},
      {Strategy::kTwoShot, 64, 1024, DType::kFp32},  {Strategy::kTwoShot, 3, 512, DType::kFp32},
      {Strategy::kTwoShot, 100, 2880, DType::kBf16}, {Strategy::kTwoShot, 100, 2880, DType::kBf16}};
  for (int world : {2, 4, 8}) {
    std::vector<ar::ProblemShape> shapes;
    for (const Step& s : steps) shapes.push_back({world, s.tokens, s.hidden, s.dtype});
    VirtualGroup group(direct_options(world, shapes, direct_from));
    ar::test::FlagsModel model(group);
    int direct = 0, lamport = 0;
    std::uint64_t seed = 5000 + world;
    for (int pass = 0; pass < 2; ++pass)
      for (std::size_t i = 0; i < steps.size(); ++i) {
        const VirtualGroup::Call call{shapes[i], steps[i].strategy, kProfiles[(i + pass) % 3], (i + pass) % 2 == 0};
        const auto input = ar::random_input(call.shape.dtype, world, call.shape.tokens, call.shape.hidden, ++seed, 20);
        const bool takes = group.plan(call).direct;
        INFO(ar::test::label(call) << (takes ? " (direct)" : " (Lamport)") << " step " << i << " pass " << pass);
        CHECK(takes ==
              ar::takes_direct_path(ar::resolve_strategy(call.strategy, call.shape), false, call.shape, direct_from));
        (takes ? direct : lamport) += 1;
        require_bit_exact(group, input, call, &model);
      }
    CHECK(direct >= 8);
    CHECK(lamport >= 8);
  }
}

TEST_CASE("a rank that never arrives makes a direct call time out, naming it", "[gpu]") {
  const int world = 4, missing = 1;
  const ar::ProblemShape shape{world, 64, 1024, DType::kBf16};
  VirtualGroup group(direct_options(world, {shape}, 1));
  group.set_timeout_ns(200'000'000ull);  // 0.2 s
  const auto input = ar::random_input(DType::kBf16, world, shape.tokens, shape.hidden, 12, 8);
  group.upload(input);
  const VirtualGroup::Call call{shape, Strategy::kTwoShot, Profile::kFlashInfer, false};
  REQUIRE(group.plan(call).direct);
  const std::vector<int> present{0, 2, 3};
  const auto start = std::chrono::steady_clock::now();
  const auto wait = group.run(call, present);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO((wait ? ar::cuda::describe_wait_error(*wait) : std::string("no timeout")));
  REQUIRE(wait.has_value());
  CHECK(wait->peer == missing);
  CHECK(wait->rank != missing);
  CHECK(wait->site == static_cast<std::uint32_t>(ar::cuda::WaitSite::kDirectScatterFlag));
  CHECK(wait->words[0] == ar::kLamportEmptyWord);  // the flag was never published
  CHECK(wait->words[1] == ar::direct_flag_value(1, 0));
  CHECK(seconds < 5.0);
  CHECK(ar::cuda::describe_wait_error(*wait).find("waiting for rank 1: the direct path's SCATTER flag") !=
        std::string::npos);
  // The group was reset: a full call now works and is bit-exact.
  require_bit_exact(group, input, call, nullptr);
}

TEST_CASE("a direct call whose rows exceed the direct region is refused, naming the sizes", "[gpu]") {
  const int world = 2;
  const ar::ProblemShape fits{world, 16, 1024, DType::kBf16}, larger{world, 64, 1024, DType::kBf16};
  auto options = direct_options(world, {fits}, 1);
  options.io_bytes_per_rank = larger.bytes_per_rank();
  VirtualGroup group(options);
  const ar::cuda::Status s = group.can_run({larger, Strategy::kTwoShot, Profile::kFlashInfer, false});
  INFO(s.message);
  CHECK(!s.ok());
  CHECK(s.message.find("exceed the workspace's direct region") != std::string::npos);
  // No direct region at all.
  VirtualGroup plain(ar::test::group_options(world, {fits}));
  VirtualGroup::Options o = ar::test::group_options(world, {fits});
  o.direct_from_bytes = 1;
  VirtualGroup no_region(o);
  const ar::cuda::Status none = no_region.can_run({fits, Strategy::kTwoShot, Profile::kFlashInfer, false});
  INFO(none.message);
  CHECK(!none.ok());
  CHECK(none.message.find("no direct region") != std::string::npos);
  CHECK(plain.can_run({fits, Strategy::kTwoShot, Profile::kFlashInfer, false}).ok());
}
