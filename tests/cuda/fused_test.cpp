// [gpu] The fused kernels (all-reduce + residual add + RMSNorm) against reference/fused_rms_norm, bit for bit,
// through W virtual ranks on one GPU: both outputs of every rank, under both profiles, for every summation
// tree FlashInfer's launch gives the hidden sizes of real models (every distinct launch over N = 1..200 at
// the GPU's SM count and at others), every world size, fused and plain calls mixed on one workspace, and a
// peer that never arrives.
#include <catch2/catch.hpp>

#include <bit>
#include <cfenv>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "cuda/device.h"
#include "gpu_test_support.h"
#include "harness/io/golden_cases.h"
#include "harness/io/golden_manifest.h"
#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "reference/fused_launch.h"
#include "reference/fused_rms_norm.h"
#include "tests/support/rounding_pairs.h"

using ar::DType;
using ar::Profile;
using ar::Strategy;
using ar::cuda::VirtualGroup;
using ar::test::LaunchSweep;

namespace {

constexpr DType kDTypes[] = {DType::kBf16, DType::kFp16, DType::kFp32};
constexpr Profile kProfiles[] = {Profile::kFlashInfer, Profile::kIeee};
constexpr Strategy kStrategies[] = {Strategy::kOneShot, Strategy::kTwoShot};
constexpr std::uint32_t kWeightBiasOne = 0x3F800000u;

/// The smallest N in 1..max_tokens of each distinct launch (block size, cluster size, loads) at `sms`.
std::vector<std::int64_t> tokens_of_every_launch(Strategy s, std::int64_t hidden, DType t, int sms,
                                                 std::int64_t max_tokens) {
  std::set<std::tuple<int, int, int, bool>> seen;
  std::vector<std::int64_t> tokens;
  for (std::int64_t n = 1; n <= max_tokens; ++n) {
    const ar::NormLaunch l = ar::norm_launch(s, n, hidden, t, sms);
    if (seen.insert({l.block_size(), l.cluster_size(), l.loads_per_thread(), l.cluster_launch}).second)
      tokens.push_back(n);
  }
  return tokens;
}

VirtualGroup::Options fused_group_options(int world, const std::vector<ar::ProblemShape>& shapes) {
  VirtualGroup::Options o = ar::test::group_options(world, shapes);
  o.norm_io = true;
  return o;
}

/// Runs `call` on `input` plain, then fused with `norm`, and requires each to finish, give the models' bits
/// and leave the flags as the model does. `fused_label` names the fused call's inputs in a failure.
void require_plain_and_fused_exact(VirtualGroup& group, ar::test::FlagsModel& model, const ar::HostTensor& input,
                                   const ar::test::NormInputs& norm, const VirtualGroup::Call& call,
                                   const std::string& fused_label) {
  const auto plain = ar::test::run_and_check(group, input, call, &model);
  INFO(ar::test::label(call) << " plain: " << plain.describe());
  REQUIRE(!plain.wait);
  REQUIRE(plain.mismatches == 0);
  REQUIRE(plain.flags_match);
  const auto fused = ar::test::run_and_check_fused(group, input, norm, call, &model);
  INFO(ar::test::label(call) << " " << fused_label << ": " << fused.describe());
  REQUIRE(!fused.wait);
  REQUIRE(fused.mismatches == 0);
  REQUIRE(fused.flags_match);
}

/// At W = world, for each hidden size and dtype: every launch tree of N = 1..max_tokens (its smallest N) and
/// `also` tokens, both strategies and profiles, each fused call bit-exact with the model and its flags.
LaunchSweep check_every_launch(int world, std::initializer_list<std::int64_t> hiddens, std::int64_t max_tokens,
                               std::initializer_list<std::int64_t> also, std::uint64_t seed) {
  const int sms = ar::cuda::device_info(0).sm_count;
  LaunchSweep sweep;
  for (std::int64_t hidden : hiddens)
    for (DType t : kDTypes) {
      std::vector<ar::ProblemShape> shapes;
      std::map<Strategy, std::vector<std::int64_t>> tokens;
      for (Strategy s : kStrategies) {
        tokens[s] = tokens_of_every_launch(s, hidden, t, sms, max_tokens);
        tokens[s].insert(tokens[s].end(), also.begin(), also.end());
        for (std::int64_t n : tokens[s]) shapes.push_back({world, n, hidden, t});
      }
      VirtualGroup group(fused_group_options(world, shapes));
      ar::test::FlagsModel model(group);
      for (Strategy s : kStrategies)
        for (std::int64_t n : tokens[s])
          for (Profile p : kProfiles) {
            const int calls = sweep.calls++;
            const ar::ProblemShape shape{world, n, hidden, t};
            const auto input = ar::random_input(t, world, n, hidden, ++seed, 12);
            const auto norm = ar::test::random_norm_inputs(shape, seed, 4, calls % 2 ? kWeightBiasOne : 0u, sms);
            const VirtualGroup::Call call{shape, s, p, /*pdl=*/calls % 3 == 0};
            const ar::cuda::LaunchPlan plan = sweep.plan(group, call, norm);
            const bool registers = ar::cuda::in_registers(plan.row_blocks);
            const auto check = ar::test::run_and_check_fused(group, input, norm, call, &model);
            const std::string rows =
                registers ? " (register rows, " + std::to_string(plan.row_replicas) + " blocks a row)" : std::string();
            INFO(ar::test::label(call) << rows << " seed " << seed << ": " << check.describe());
            REQUIRE(!check.wait);
            REQUIRE(check.mismatches == 0);
            REQUIRE(check.flags_match);
          }
    }
  return sweep;
}

}  // namespace

TEST_CASE("fused calls are bit-exact for every launch tree of the models' hidden sizes", "[gpu]") {
  CHECK(check_every_launch(2, {2880, 5120, 7168, 8192, 16384}, 200, {}, 1000).calls > 5 * 3 * 2 * 2);
}

TEST_CASE("decode rows in registers are bit-exact, one row a block and several", "[gpu]") {
  // The register rows' kernels (cuda/params.h register_packs) take the rows whose FlashInfer threads hold a
  // pack each, one or two of them a thread of a block alone: decode rows of up to 1024 packs. Every launch
  // tree of N = 1..64 at these hidden sizes, at W = 2 (a row a block) and 8, where 200 tokens also give each
  // block several rows (narrow blocks). Unquantised rows take one block each (most_row_replicas).
  for (int world : {2, 8}) {
    const LaunchSweep sweep = check_every_launch(world, {384, 768, 1024, 2048, 4096, 8192}, 64,
                                                 world == 8 ? std::initializer_list<std::int64_t>{200}
                                                            : std::initializer_list<std::int64_t>{},
                                                 5000 + world);
    CHECK(sweep.register_calls > sweep.calls / 4);
    CHECK(sweep.replicated_calls == 0);
  }
}

TEST_CASE("fused calls reproduce the trees of other SM counts", "[gpu]") {
  const int world = 4;
  std::uint64_t seed = 2000;
  for (int sms : {1, 16, 78, 132, 148, 1000})
    for (DType t : kDTypes) {
      const std::vector<ar::ProblemShape> shapes{{world, 9, 8192, t}, {world, 40, 2880, t}};
      VirtualGroup group(fused_group_options(world, shapes));
      for (const ar::ProblemShape& shape : shapes)
        for (Strategy s : kStrategies)
          for (Profile p : kProfiles) {
            const auto input = ar::random_input(t, world, shape.tokens, shape.hidden, ++seed, 12);
            const auto norm = ar::test::random_norm_inputs(shape, seed, 4, 0u, sms);
            const VirtualGroup::Call call{shape, s, p, true};
            const auto check = ar::test::run_and_check_fused(group, input, norm, call);
            INFO(ar::test::label(call) << " seed " << seed << ": " << check.describe());
            REQUIRE(!check.wait);
            REQUIRE(check.mismatches == 0);
          }
    }
}

TEST_CASE("fused calls are bit-exact at every world size, mixed with plain calls on one workspace", "[gpu]") {
  std::uint64_t seed = 3000;
  for (int world : ar::kWorldSizes) {
    const std::vector<ar::ProblemShape> shapes{
        {world, 3, 8192, DType::kBf16}, {world, 17, 5120, DType::kFp16}, {world, 5, 2880, DType::kFp32}};
    VirtualGroup group(fused_group_options(world, shapes));
    ar::test::FlagsModel model(group);
    int i = 0;
    for (const ar::ProblemShape& shape : shapes)
      for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto})
        for (Profile p : kProfiles) {
          const auto input = ar::random_input(shape.dtype, world, shape.tokens, shape.hidden, ++seed, 12);
          const VirtualGroup::Call call{shape, s, p, ++i % 2 == 0};
          // A plain call between fused ones: the same flags and clears, so the next fused call must not care.
          const auto plain = ar::test::run_and_check(group, input, call, &model);
          INFO(ar::test::label(call) << " plain: " << plain.describe());
          REQUIRE(!plain.wait);
          REQUIRE(plain.mismatches == 0);
          REQUIRE(plain.flags_match);
          const auto norm = ar::test::random_norm_inputs(shape, seed, 4, i % 3 ? 0u : kWeightBiasOne, 132);
          const auto fused = ar::test::run_and_check_fused(group, input, norm, call, &model);
          INFO(ar::test::label(call) << " seed " << seed << ": " << fused.describe());
          REQUIRE(!fused.wait);
          REQUIRE(fused.mismatches == 0);
          REQUIRE(fused.flags_match);
        }
  }
}

TEST_CASE("fused calls on edge values: the fp16 square overflow, -0 residuals, subnormal gamma", "[gpu]") {
  // Adversarial all-reduce inputs (flushed subnormals, -0 sums, NaN and Inf) with a residual of -0s, large
  // values and subnormals, and a gamma with subnormals, -0 and +0.
  std::uint64_t seed = 4000;
  for (DType t : kDTypes)
    for (int world : {2, 16}) {
      const ar::ProblemShape shape{world, 6, 2880, t};
      VirtualGroup group(fused_group_options(world, {shape}));
      const auto input = ar::adversarial_input(t, world, shape.tokens, shape.hidden, ++seed);
      auto norm = ar::test::random_norm_inputs(shape, seed, 4, 0u, 132);
      const std::uint32_t negative_zero = t == DType::kFp32 ? 0x80000000u : 0x8000u;
      const std::uint32_t big = t == DType::kFp32 ? 0x47800000u : (t == DType::kBf16 ? 0x4380u : 0x5C00u);  // 65536/256
      const std::uint32_t tiny = 1u;  // the smallest subnormal
      for (std::int64_t i = 0; i < norm.residual.size(); ++i) {
        const std::int64_t row = i / shape.hidden;
        if (row == 0) norm.residual.set_bits(i, negative_zero);
        if (row == 1 && i % 3 == 0) norm.residual.set_bits(i, big);  // fp16: squares overflow to Inf
        if (row == 2 && i % 5 == 0) norm.residual.set_bits(i, tiny);
      }
      for (std::int64_t d = 0; d < shape.hidden; d += 7) norm.gamma.set_bits(d, d % 2 ? tiny : negative_zero);
      for (Strategy s : kStrategies)
        for (Profile p : kProfiles)
          for (std::uint32_t bias : {0u, kWeightBiasOne}) {
            norm.arguments.weight_bias = bias;
            const VirtualGroup::Call call{shape, s, p, false};
            const auto check = ar::test::run_and_check_fused(group, input, norm, call);
            INFO(ar::test::label(call) << " seed " << seed << ": " << check.describe());
            REQUIRE(!check.wait);
            REQUIRE(check.mismatches == 0);
          }
    }
}

TEST_CASE("a fused call whose peer never arrives times out and names it", "[gpu]") {
  const ar::ProblemShape shape{4, 8, 2880, DType::kBf16};
  auto options = fused_group_options(4, {shape});
  options.timeout_ns = 200'000'000;  // 0.2 s
  for (Strategy s : kStrategies) {
    VirtualGroup group(options);
    const auto input = ar::random_input(shape.dtype, 4, shape.tokens, shape.hidden, 5, 4);
    const auto norm = ar::test::random_norm_inputs(shape, 5, 4, 0u, 132);
    group.upload(input);
    group.upload_norm_inputs(norm.residual, norm.gamma);
    VirtualGroup::Call call{shape, s, Profile::kFlashInfer, false};
    call.norm = norm.arguments;
    const int present[] = {0, 1, 2};  // rank 3 never runs
    const auto wait = group.run(call, present);
    INFO(ar::strategy_name(s));
    REQUIRE(wait.has_value());
    CHECK(wait->peer == 3);
    // The group resets its workspace after a timeout: a full call then works again.
    const auto check = ar::test::run_and_check_fused(group, input, norm, call);
    INFO(check.describe());
    REQUIRE(!check.wait);
    CHECK(check.mismatches == 0);
  }
}

TEST_CASE("the norm as a separate kernel after the plain all-reduce gives the fused call's bits", "[gpu]") {
  std::uint64_t seed = 5000;
  for (DType t : kDTypes)
    for (int world : {2, 8}) {
      const std::vector<ar::ProblemShape> shapes{{world, 1, 8192, t}, {world, 33, 5120, t}};
      VirtualGroup group(fused_group_options(world, shapes));
      ar::test::FlagsModel model(group);
      for (const ar::ProblemShape& shape : shapes)
        for (Strategy s : kStrategies)
          for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant}) {
            const auto input = ar::random_input(t, world, shape.tokens, shape.hidden, ++seed, 12);
            const auto norm = ar::test::random_norm_inputs(shape, seed, 4, kWeightBiasOne, 132);
            VirtualGroup::Call call{shape, s, p, true};
            call.separate_norm = true;
            const auto check = ar::test::run_and_check_fused(group, input, norm, call, &model);
            INFO(ar::test::label(call) << " separate kernel, seed " << seed << ": " << check.describe());
            REQUIRE(!check.wait);
            REQUIRE(check.mismatches == 0);
            REQUIRE(check.flags_match);
          }
    }
}

TEST_CASE("the bit comparison tells summation trees and output orders apart", "[gpu]") {
  // The checks above could pass with a kernel that ignores the tree only if the model did too: here the GPU
  // runs one tree (or one strategy's order) and is compared with the model of another, which must differ.
  // fp32 outputs keep every ulp of the scale: a bf16 output would round most one-ulp differences away.
  const ar::ProblemShape shape{2, 9, 8192, DType::kFp32};
  VirtualGroup group(fused_group_options(2, {shape}));
  const auto input = ar::random_input(shape.dtype, 2, shape.tokens, shape.hidden, 6000, 12);
  auto norm = ar::test::random_norm_inputs(shape, 6000, 4, 0u, 132);
  REQUIRE(!(ar::norm_launch(Strategy::kOneShot, 9, 8192, DType::kFp32, 132).grid ==
            ar::norm_launch(Strategy::kOneShot, 9, 8192, DType::kFp32, 1).grid));
  const auto gpu_of = [&](const ar::test::NormInputs& n, Strategy s) {
    VirtualGroup::Call call{shape, s, Profile::kFlashInfer, false};
    call.norm = n.arguments;
    group.upload(input);
    group.upload_norm_inputs(n.residual, n.gamma);
    REQUIRE(!group.run(call));
    return group.download(0, shape);
  };
  const auto model_of = [&](int sms, Strategy s) {
    ar::FusedOptions o;
    o.strategy = s;
    o.sm_count = sms;
    o.epsilon = norm.arguments.epsilon;
    return ar::reference_fused_rms_norm(input, norm.residual, norm.gamma, o).normalized;
  };
  const ar::HostTensor on_132 = gpu_of(norm, Strategy::kOneShot);
  CHECK(ar::compare_bits(on_132, model_of(132, Strategy::kOneShot)).differing == 0);
  CHECK(ar::compare_bits(on_132, model_of(1, Strategy::kOneShot)).differing > 0);
  CHECK(ar::compare_bits(on_132, model_of(132, Strategy::kTwoShot)).differing > 0);
  norm.arguments.sm_count = 1;
  CHECK(ar::compare_bits(gpu_of(norm, Strategy::kOneShot), model_of(1, Strategy::kOneShot)).differing == 0);
}

TEST_CASE("the committed fused golden outputs match the GPU bit for bit", "[gpu]") {
  const std::filesystem::path dir = std::filesystem::path(AR_SOURCE_DIR) / "data";
  const ar::GoldenManifest manifest = ar::read_golden_manifest(dir.string());
  REQUIRE(!manifest.fused_cases.empty());
  int compared = 0;
  for (const ar::GoldenManifestCase& c : manifest.fused_cases) {
    const ar::ProblemShape& shape = c.shape;
    const ar::HostTensor input = manifest.load_input(c);
    const ar::HostTensor residual = manifest.load_residual(c), gamma = manifest.load_gamma(c);
    VirtualGroup group(fused_group_options(shape.world_size, {shape}));
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto})
      for (Profile p : kProfiles)
        for (bool separate : {false, true}) {
          const ar::GoldenFusedExpected expected = manifest.load_expected_fused(c, s, p);
          VirtualGroup::Call call{shape, s, p, /*pdl=*/true};
          call.norm = ar::cuda::NormArguments{c.fused->epsilon, c.fused->weight_bias, c.fused->sm_count};
          call.separate_norm = separate;
          group.upload(input);
          group.upload_norm_inputs(residual, gamma);
          group.poison_outputs();
          INFO(c.name << " " << ar::test::label(call) << (separate ? " separate kernel" : ""));
          REQUIRE(!group.run(call));
          for (int r = 0; r < shape.world_size; ++r) {
            const ar::BitDiff n = ar::compare_bits(group.download(r, shape), expected.normalized);
            const ar::BitDiff ro = ar::compare_bits(group.download_residual_out(r, shape), expected.residual_out);
            INFO("rank " << r << ": normalised " << n.differing << " differ (first " << n.first_index
                         << "), residual_out " << ro.differing << " differ");
            REQUIRE(n.differing == 0);
            REQUIRE(ro.differing == 0);
          }
          ++compared;
        }
  }
  CHECK(compared == static_cast<int>(manifest.fused_cases.size()) * 12);
}

TEST_CASE("the invariant profile is bit-exact, plain and fused, whatever the launch", "[gpu]") {
  // Every strategy, SM count and batch size: the model says the token's bits do not move (tests/reference),
  // and the kernels give the model's bits; `run --batches` compares the rows across batches on the GPU.
  std::uint64_t seed = 9000;
  for (int world : {2, 16})
    for (DType t : kDTypes) {
      std::vector<ar::ProblemShape> shapes;
      for (std::int64_t hidden : {2880, 4096, 8192, 16384})
        for (std::int64_t n : {1, 5, 40, 130}) shapes.push_back({world, n, hidden, t});
      VirtualGroup group(fused_group_options(world, shapes));
      ar::test::FlagsModel model(group);
      int i = 0;
      for (const ar::ProblemShape& shape : shapes)
        for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto}) {
          const int sms = i % 3 == 0 ? 16 : i % 3 == 1 ? 132 : 1000;
          const auto input = ar::random_input(t, world, shape.tokens, shape.hidden, ++seed, 12);
          const VirtualGroup::Call call{shape, s, Profile::kInvariant, ++i % 2 == 0};
          const auto norm = ar::test::random_norm_inputs(shape, seed, 4, i % 4 ? 0u : kWeightBiasOne, sms);
          require_plain_and_fused_exact(group, model, input, norm, call,
                                        "SMs " + std::to_string(sms) + " seed " + std::to_string(seed));
        }
    }
}

namespace {

/// Whether the invariant kernels' first pass at W >= 16 leaves an element undecided (cuda/detail/exact_fold.cuh,
/// way 1; tests/reference/interval_rule_test.cpp replays the same rule): its W values folded in rank order from +0
/// in fp32 rounding down and rounding up, both ends narrowed to T, and the two narrowings differ (other than
/// -0 and +0). volatile keeps each add between its mode's calls.
bool undecided(const std::vector<std::uint32_t>& values, DType t) {
  const auto fold = [&](int mode) {
    volatile float acc = 0.0f;
    std::fesetround(mode);
    for (std::uint32_t v : values) {
      volatile float x = std::bit_cast<float>(ar::widen_to_fp32(v, t));
      acc = acc + x;
    }
    std::fesetround(FE_TONEAREST);
    return ar::narrow_from_fp32(std::bit_cast<std::uint32_t>(static_cast<float>(acc)), t);
  };
  const std::uint32_t low = fold(FE_DOWNWARD), high = fold(FE_UPWARD);
  return low != high && !(low == ar::float_format(t).sign_mask() && high == 0u);
}

}  // namespace

TEST_CASE("elements the invariant profile's first pass leaves undecided are settled exactly", "[gpu]") {
  // Each element of these inputs is a tie of T broken by values below the fp32 folds' reach: a big value B,
  // B's half ulp of T (so that B plus it is a midpoint of T), and one or two +-tiny values (2^-30 B for bf16,
  // 2^-24 B for fp16, whose B lies at 2^10..2^14 to keep them normal) at random ranks, zeros elsewhere. The
  // fp32 folds rounded down and up then mostly narrow to the two T values either side of the midpoint, so
  // the first pass leaves the element to the later ways, which read its slots again (W = 16 and 32, where the
  // invariant order is the exact sum). Two tiny values of opposite sign make a true tie (to even); one, or two
  // of one sign, decide it. At W = 8 the invariant order is FlashInfer's fold with IEEE adds, and the same
  // ties check that fold's bits, which the model gives, against the kernels'.
  std::uint64_t state = 777;
  const auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(state >> 32);
  };
  for (int world : {8, 16, 32})
    for (DType t : {DType::kBf16, DType::kFp16}) {
      const ar::FloatFormat f = ar::float_format(t);
      std::vector<ar::ProblemShape> shapes;
      for (std::int64_t hidden : {2880, 4096}) shapes.push_back({world, 3, hidden, t});
      VirtualGroup group(fused_group_options(world, shapes));
      ar::test::FlagsModel model(group);
      int i = 0;
      for (const ar::ProblemShape& shape : shapes) {
        ar::HostTensor input(t, {world, shape.tokens, shape.hidden});
        const std::int64_t elements = shape.tokens * shape.hidden;
        const int tiny_exponent = t == DType::kBf16 ? -30 : -24;
        std::int64_t left_undecided = 0;
        for (std::int64_t j = 0; j < elements; ++j) {
          const int exponent = int(next() % 5) - 2 + (t == DType::kFp16 ? 12 : 0);  // B = +-2^exponent
          const std::uint32_t sign = (next() & 1) ? f.sign_mask() : 0u;
          const auto power = [&](int e) { return sign | (std::uint32_t(e + f.bias()) << f.fraction_bits); };
          std::vector<std::uint32_t> values(world, 0u);
          std::vector<int> ranks(world);
          for (int r = 0; r < world; ++r) ranks[r] = r;
          for (int r = world - 1; r > 0; --r) std::swap(ranks[r], ranks[next() % (r + 1)]);
          values[ranks[0]] = power(exponent);
          values[ranks[1]] = power(exponent - f.fraction_bits - 1);
          const std::uint32_t tiny = power(exponent + tiny_exponent);
          values[ranks[2]] = tiny ^ ((next() & 1) ? f.sign_mask() : 0u);
          if (world >= 4 && next() % 2 == 0) values[ranks[3]] = tiny ^ ((next() & 1) ? f.sign_mask() : 0u);
          for (int r = 0; r < world; ++r) input.set_bits(r * elements + j, values[r]);
          left_undecided += undecided(values, t) ? 1 : 0;
        }
        INFO("W = " << world << ", " << ar::dtype_name(t) << ", D = " << shape.hidden);
        // Not every element: tiny values of opposite sign that meet before B cancel exactly in both folds.
        REQUIRE(left_undecided > elements / 4);
        for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
          const VirtualGroup::Call call{shape, s, Profile::kInvariant, ++i % 2 == 0};
          const auto norm = ar::test::random_norm_inputs(shape, state, 4, 0u, 132);
          require_plain_and_fused_exact(group, model, input, norm, call, "fused");
        }
      }
    }
}

TEST_CASE("at W = 2 the invariant kernels' one fp32 add gives the exact sum's bits where two roundings could part",
          "[gpu]") {
  // At W = 2 the invariant kernels fold as reference exact_pair_fold does: one IEEE fp32 add, the narrowing; the
  // model is that fold, which tests/reference/exact_pair_fold_test.cpp proves equal to the exact sum.
  // Each element here pairs a random value of T (any bits) with one of its rounding partners
  // (tests/support/rounding_pairs.h): ties, near-ties, cancellation, overflow, sums that fp32 rounds. The
  // model sums them exactly. Both strategies, plain and fused, a decode size and 4.7 MiB a rank. (TWOSHOT's
  // direct path folds with the same function: tests/cuda/direct_path_test.cpp runs it at W = 2 too.)
  ar::test::BitStream bits{2024};
  for (DType t : {DType::kBf16, DType::kFp16}) {
    const ar::FloatFormat f = ar::float_format(t);
    const std::vector<ar::ProblemShape> shapes{{2, 5, 4096, t}, {2, 300, 8192, t}};
    VirtualGroup group(fused_group_options(2, shapes));
    ar::test::FlagsModel model(group);
    int i = 0;
    for (const ar::ProblemShape& shape : shapes) {
      ar::HostTensor input(t, {2, shape.tokens, shape.hidden});
      const std::int64_t elements = shape.tokens * shape.hidden;
      for (std::int64_t j = 0; j < elements; ++j) {
        const std::uint32_t a = bits.next() & 0xFFFFu;
        const std::uint32_t b = ar::test::rounding_partners(a, f, bits)[bits.next() % 64];
        const bool swap = (bits.next() & 1) != 0;
        input.set_bits(j, swap ? b : a);
        input.set_bits(elements + j, swap ? a : b);
      }
      INFO(ar::dtype_name(t) << ", N = " << shape.tokens << ", D = " << shape.hidden);
      for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
        const VirtualGroup::Call call{shape, s, Profile::kInvariant, ++i % 2 == 0};
        std::uint64_t seed = bits.next();
        const auto norm = ar::test::random_norm_inputs(shape, seed, 4, 0u, 132);
        require_plain_and_fused_exact(group, model, input, norm, call, "fused");
      }
    }
  }
}
