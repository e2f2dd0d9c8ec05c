// [gpu] The kernels against reference/, bit for bit, through W virtual ranks on one GPU: every golden case
// under every strategy, profile and PDL setting; full-mantissa inputs over several rounds; mixed strategies,
// shapes and dtypes on one workspace; CUDA-graph replay.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>

#include "gpu_test_support.h"
#include "harness/io/golden_cases.h"
#include "harness/io/golden_manifest.h"
#include "reference/all_reduce.h"
#include "reference/float_bits.h"

using ar::DType;
using ar::Profile;
using ar::Strategy;
using ar::cuda::VirtualGroup;

namespace {

constexpr Profile kProfiles[] = {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant};

}  // namespace

TEST_CASE("every golden case is bit-exact on the GPU for every strategy, profile and PDL setting", "[gpu]") {
  const int runs = ar::test::run_every_golden_case(ar::test::group_options);
  CHECK(runs == static_cast<int>(ar::golden_cases().size()) * 18);
}

TEST_CASE("the committed data/ golden outputs match the GPU bit for bit", "[gpu]") {
  const std::filesystem::path dir = std::filesystem::path(AR_SOURCE_DIR) / "data";
  const auto manifest_path = dir / ar::kGoldenManifestFile;
  INFO(manifest_path << " is committed; `mnnvl-ar data` writes it again");
  REQUIRE(std::filesystem::exists(manifest_path));
  const ar::GoldenManifest manifest = ar::read_golden_manifest(dir.string());
  int compared = 0;
  for (const ar::GoldenManifestCase& c : manifest.cases) {
    const ar::HostTensor input = manifest.load_input(c);
    const ar::ProblemShape& shape = c.shape;
    VirtualGroup group(ar::test::group_options(shape.world_size, {shape}));
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
      for (Profile p : kProfiles) {
        const ar::HostTensor expected = manifest.load_expected(c, s, p);
        group.upload(input);
        group.poison_outputs();
        const auto wait = group.run({shape, s, p, /*pdl=*/true});
        INFO(c.name << " " << ar::golden_output_key(s, p));
        REQUIRE(!wait);
        for (int r = 0; r < shape.world_size; ++r) {
          const ar::BitDiff d = ar::compare_bits(group.download(r, shape), expected);
          INFO("rank " << r << ": " << d.differing << " elements differ, first at " << d.first_index);
          REQUIRE(d.differing == 0);
        }
        ++compared;
      }
  }
  CHECK(compared > 0);
}

TEST_CASE("full-mantissa inputs over several rounds are bit-exact at every world size", "[gpu]") {
  for (int world : ar::kWorldSizes) {
    // round_bytes = 1 makes every round its minimum (16384 packs), so these calls take several rounds.
    const std::vector<ar::ProblemShape> shapes{
        {world, 300, 1024, DType::kBf16}, {world, 150, 1024, DType::kFp16}, {world, 140, 512, DType::kFp32}};
    auto options = ar::test::group_options(world, shapes);
    options.round_bytes = 1;
    VirtualGroup group(options);
    ar::test::FlagsModel model(group);
    std::uint64_t seed = 77;
    for (const auto& shape : shapes)
      for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
        for (Profile p : kProfiles) {
          const auto input = ar::random_input(shape.dtype, world, shape.tokens, shape.hidden, ++seed, 20);
          const VirtualGroup::Call call{shape, s, p, true};
          INFO(ar::test::label(call) << " seed " << seed << " rounds of " << group.plan(call).tokens_per_round
                                     << " tokens");
          CHECK(group.plan(call).tokens_per_round < shape.tokens);
          const auto check = ar::test::run_and_check(group, input, call, &model);
          INFO(check.describe());
          REQUIRE(!check.wait);
          REQUIRE(check.mismatches == 0);
          REQUIRE(check.flags_match);
        }
  }
}

TEST_CASE("the invariant profile's exact sums: double path, wide fallback, ties and specials", "[gpu]") {
  // Element values whose exponents spread over `spread` binades: from W = 16, where the invariant order is the
  // exact sum, narrow spreads take the kernels' double path, wide ones (past 2^39 for bf16, 2^23 for fp32) the
  // 320-bit fallback; few significant bits make ties of T common (a double rounding would break them); some
  // rows add NaN, +-Inf and values near T's largest. Below W = 16 the same inputs check the IEEE fold.
  for (int world : ar::kWorldSizes) {
    std::vector<ar::ProblemShape> shapes;
    for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) shapes.push_back({world, 6, 256, t});
    VirtualGroup group(ar::test::group_options(world, shapes));
    ar::test::FlagsModel model(group);
    std::uint64_t state = 4242 + world;
    for (const ar::ProblemShape& shape : shapes) {
      const ar::FloatFormat f = ar::float_format(shape.dtype);
      for (int spread : {6, 30, 60, 2 * f.bias()}) {
        ar::HostTensor input(shape.dtype, {world, shape.tokens, shape.hidden});
        for (std::int64_t i = 0; i < input.size(); ++i) {
          state = state * 6364136223846793005ull + 1442695040888963407ull;
          const auto bits = static_cast<std::uint32_t>(state >> 32);
          const int e = std::clamp(f.bias() + int((bits >> 8) % (spread + 1)) - spread / 2, 0, 2 * f.bias());
          std::uint32_t x = (std::uint32_t(e) << f.fraction_bits) | (bits & f.fraction_mask() & ~0x7u);
          if (bits & 0x80000000u) x |= f.sign_mask();
          const std::int64_t token = (i / shape.hidden) % shape.tokens;
          if (bits % 13 == 0) x = 0;
          if (token == 4 && bits % 61 == 0)
            x = (bits & 2) ? f.canonical_nan() : f.infinity() | (bits & 1 ? f.sign_mask() : 0);
          if (token == 5 && bits % 3 == 0)
            x = (f.exponent_mask() - (1u << f.fraction_bits)) | (bits & f.fraction_mask());
          input.set_bits(i, x);
        }
        for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
          const VirtualGroup::Call call{shape, s, Profile::kInvariant, true};
          const auto check = ar::test::run_and_check(group, input, call, &model);
          INFO(ar::test::label(call) << " spread " << spread << ": " << check.describe());
          REQUIRE(!check.wait);
          REQUIRE(check.mismatches == 0);
          REQUIRE(check.flags_match);
        }
      }
    }
  }
}

TEST_CASE("large plain ONESHOT calls of the invariant profile below W = 16 give its bits on the ieee kernels",
          "[gpu]") {
  // From 8 MiB a rank these calls run the ieee kernels with the -0 test off (cuda/all_reduce.cpp kernel_arith):
  // the same fold as the invariant kernels', so the same bits. The 1023-token bf16 call stays just below and
  // runs the invariant kernels on the same workspace. Every 7th element is a -0 on every rank, and every 5th
  // cancels (x on rank 0, -x on the last): both sums must come out +0 without the test.
  for (int world : {2, 4, 8}) {
    const std::vector<ar::ProblemShape> shapes{{world, 1024, 4096, DType::kBf16},
                                               {world, 1023, 4096, DType::kBf16},
                                               {world, 1024, 4096, DType::kFp16},
                                               {world, 512, 4096, DType::kFp32}};
    VirtualGroup group(ar::test::group_options(world, shapes));
    ar::test::FlagsModel model(group);
    std::uint64_t seed = 4100 + world;
    for (const auto& shape : shapes) {
      auto input = ar::random_input(shape.dtype, world, shape.tokens, shape.hidden, ++seed, 20);
      const ar::FloatFormat f = ar::float_format(shape.dtype);
      const std::int64_t elements = shape.tokens * shape.hidden;
      for (std::int64_t j = 0; j < elements; ++j) {
        if (j % 7 == 0)
          for (int r = 0; r < world; ++r) input.set_bits(r * elements + j, f.sign_mask());
        else if (j % 5 == 0)
          input.set_bits((world - 1) * elements + j, input.bits(j) ^ f.sign_mask());
      }
      const VirtualGroup::Call call{shape, Strategy::kOneShot, Profile::kInvariant, seed % 2 == 0};
      INFO(ar::test::label(call));
      const auto check = ar::test::run_and_check(group, input, call, &model);
      INFO(check.describe());
      REQUIRE(!check.wait);
      REQUIRE(check.mismatches == 0);
      REQUIRE(check.flags_match);
    }
  }
}

TEST_CASE("mixed strategies, shapes and dtypes on one workspace stay bit-exact", "[gpu]") {
  struct Step {
    Strategy strategy;
    std::int64_t tokens, hidden;
    DType dtype;
  };
  // oneshot -> twoshot -> auto -> oneshot ... : every transition of the dirty-stage bookkeeping (SPEC 4.3),
  // N not a multiple of W, and dtype changes between calls.
  const std::vector<Step> steps{
      {Strategy::kOneShot, 4, 256, DType::kBf16}, {Strategy::kTwoShot, 64, 256, DType::kBf16},
      {Strategy::kAuto, 11, 2880, DType::kBf16},  {Strategy::kOneShot, 1, 256, DType::kFp32},
      {Strategy::kTwoShot, 3, 512, DType::kFp16}, {Strategy::kTwoShot, 27, 128, DType::kFp32},
      {Strategy::kAuto, 256, 2880, DType::kBf16}, {Strategy::kOneShot, 24, 64, DType::kFp16},
      {Strategy::kAuto, 2, 8, DType::kBf16},      {Strategy::kTwoShot, 1, 8, DType::kBf16},
  };
  for (int world : ar::kWorldSizes) {
    std::vector<ar::ProblemShape> shapes;
    for (const Step& s : steps) shapes.push_back({world, s.tokens, s.hidden, s.dtype});
    VirtualGroup group(ar::test::group_options(world, shapes));
    ar::test::FlagsModel model(group);
    std::uint64_t seed = 500;
    for (int repeat = 0; repeat < 2; ++repeat)
      for (const Step& s : steps) {
        const ar::ProblemShape shape{world, s.tokens, s.hidden, s.dtype};
        const auto input = ar::adversarial_input(s.dtype, world, s.tokens, s.hidden, ++seed);
        const VirtualGroup::Call call{shape, s.strategy, Profile::kFlashInfer, repeat == 0};
        const auto check = ar::test::run_and_check(group, input, call, &model);
        INFO(ar::test::label(call) << " seed " << seed << ": " << check.describe());
        REQUIRE(!check.wait);
        REQUIRE(check.mismatches == 0);
        REQUIRE(check.flags_match);
      }
  }
}

TEST_CASE("CUDA-graph replay with PDL rotates the buffers and stays bit-exact", "[gpu]") {
  for (int world : {2, 8}) {
    const ar::ProblemShape shape{world, 8, 4096, DType::kBf16};
    VirtualGroup group(ar::test::group_options(world, {shape}));
    const auto input = ar::random_input(DType::kBf16, world, shape.tokens, shape.hidden, 9, 12);
    group.upload(input);
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
      const VirtualGroup::Call call{shape, s, Profile::kFlashInfer, true};
      group.poison_outputs();
      // 7 calls per graph, replayed 5 times plus once to warm: 42 calls, buffers rotate through all three.
      const double us = group.time_us(call, /*warmup=*/3, /*iterations=*/7, /*graph_launches=*/5);
      CHECK(us > 0);
      const ar::HostTensor expected = ar::reference_all_reduce(input, s, Profile::kFlashInfer);
      for (int r = 0; r < world; ++r) REQUIRE(ar::compare_bits(group.download(r, shape), expected).differing == 0);
      const std::uint32_t calls = group.workspace().completed_calls(0);
      CHECK(group.workspace().flags(0).current_buffer() == calls % 3);
    }
  }
}
