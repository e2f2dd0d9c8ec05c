// [gpu] The quantised fused kernels (static FP8, dynamic FP8, NVFP4 in both scale layouts) against
// reference/fused_quant, bit for bit, through W virtual ranks on one GPU: every code byte, every token scale
// and every block scale of every rank, with the norm's outputs, under the flashinfer, ieee and invariant
// profiles, for every launch tree of the models' hidden sizes, every world size, global scales other than 1,
// edge values (NaN, Inf, all-zero rows and blocks, saturating scales) and the separate-norm route.
#include <catch2/catch.hpp>

#include <filesystem>
#include <initializer_list>
#include <iterator>
#include <set>
#include <tuple>

#include "cuda/device.h"
#include "gpu_test_support.h"
#include "harness/io/golden_cases.h"
#include "harness/io/golden_manifest.h"
#include "reference/float_ops.h"
#include "reference/fused_launch.h"
#include "reference/fused_quant.h"
#include "reference/fused_rms_norm.h"

using ar::DType;
using ar::Profile;
using ar::QuantMode;
using ar::ScaleLayout;
using ar::Strategy;
using ar::cuda::VirtualGroup;
using ar::test::LaunchSweep;

namespace {

constexpr Strategy kStrategies[] = {Strategy::kOneShot, Strategy::kTwoShot};
constexpr Profile kProfiles[] = {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant};

struct Mode {
  QuantMode quant;
  ScaleLayout layout;
};
constexpr Mode kModes[] = {{QuantMode::kFp8, ScaleLayout::kSwizzled128x4},
                           {QuantMode::kFp8Dynamic, ScaleLayout::kSwizzled128x4},
                           {QuantMode::kNvfp4, ScaleLayout::kSwizzled128x4},
                           {QuantMode::kNvfp4, ScaleLayout::kLinear}};
/// Output scales: 1 (FlashInfer's default and its tests' only one), and others upstream never tries.
const std::uint32_t kScales[] = {0x3F800000u, ar::fp32_from_double(0.37), ar::fp32_from_double(3.0),
                                 ar::fp32_from_double(2688.0)};

bool runs(Mode m, DType t) { return m.quant != QuantMode::kNvfp4 || t != DType::kFp32; }

VirtualGroup::Options quant_group_options(int world, const std::vector<ar::ProblemShape>& shapes) {
  VirtualGroup::Options o = ar::test::group_options(world, shapes);
  o.norm_io = true;
  return o;
}

ar::test::NormInputs quant_norm(const ar::ProblemShape& shape, std::uint64_t seed, Mode mode, std::uint32_t scale,
                                int sms) {
  auto norm = ar::test::random_norm_inputs(shape, seed, 4, 0u, sms);
  norm.arguments.quant = mode.quant;
  norm.arguments.scale_layout = mode.layout;
  norm.quant_scale = scale;
  return norm;
}

void require_exact(const ar::test::CallCheck& check, const VirtualGroup::Call& call, std::uint64_t seed) {
  INFO(ar::test::label(call) << " seed " << seed << ": " << check.describe());
  REQUIRE(!check.wait);
  REQUIRE(check.mismatches == 0);
  REQUIRE(check.flags_match);
}

/// At W = world, for each hidden size and dtype: every launch tree of N = 1..max_tokens (its smallest N) and
/// `also` tokens, both strategies, the given profiles and every mode and layout, each quantised call bit-exact
/// with the model.
LaunchSweep check_every_launch(int world, std::initializer_list<std::int64_t> hiddens, std::int64_t max_tokens,
                               std::initializer_list<std::int64_t> also, std::initializer_list<Profile> profiles,
                               std::uint64_t seed) {
  const int sms = ar::cuda::device_info(0).sm_count;
  LaunchSweep sweep;
  for (std::int64_t hidden : hiddens)
    for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
      std::vector<ar::ProblemShape> shapes;
      std::vector<std::pair<Strategy, std::int64_t>> launches;
      for (Strategy s : kStrategies) {
        std::set<std::tuple<int, int, int, bool>> seen;
        for (std::int64_t n = 1; n <= max_tokens; ++n) {
          const ar::NormLaunch l = ar::norm_launch(s, n, hidden, t, sms);
          if (seen.insert({l.block_size(), l.cluster_size(), l.loads_per_thread(), l.cluster_launch}).second) {
            launches.push_back({s, n});
            shapes.push_back({world, n, hidden, t});
          }
        }
        for (std::int64_t n : also) {
          launches.push_back({s, n});
          shapes.push_back({world, n, hidden, t});
        }
      }
      VirtualGroup group(quant_group_options(world, shapes));
      ar::test::FlagsModel model(group);
      for (const auto& [s, n] : launches)
        for (Profile p : profiles)
          for (const Mode& m : kModes) {
            if (!runs(m, t)) continue;
            const int calls = sweep.calls++;
            const ar::ProblemShape shape{world, n, hidden, t};
            const auto input = ar::random_input(t, world, n, hidden, ++seed, 12);
            const auto norm = quant_norm(shape, seed, m, kScales[calls % 4], sms);
            const VirtualGroup::Call call{shape, s, p, /*pdl=*/calls % 3 == 0};
            sweep.plan(group, call, norm);
            require_exact(ar::test::run_and_check_fused(group, input, norm, call, &model), call, seed);
          }
    }
  return sweep;
}

}  // namespace

TEST_CASE("quantised fused calls are bit-exact for every launch tree of the models' hidden sizes", "[gpu]") {
  const LaunchSweep sweep = check_every_launch(2, {2880, 5120, 7168, 8192, 16384}, 200, {},
                                               {kProfiles[0], kProfiles[1], kProfiles[2]}, 7000);
  CHECK(sweep.calls > 5 * 3 * 2 * 3 * 3);
}

TEST_CASE("quantised decode rows in registers are bit-exact", "[gpu]") {
  // The register rows' kernels (cuda/params.h register_packs), a pack and two packs a thread: every mode, both
  // layouts, every launch tree of N = 1..64 at six decode hidden sizes, W = 2 and 8, where 200 tokens also
  // give each block several rows (narrow blocks of D = 1024 and 2048: three and more, so that dynamic FP8's
  // maxima take each of their three words in turn). NVFP4 rows take up to four blocks (most_row_replicas);
  // those of 96 and 160 packs (D = 768 and 1280) split unevenly between two.
  for (int world : {2, 8}) {
    const LaunchSweep sweep = check_every_launch(
        world, {768, 1024, 1280, 2048, 4096, 8192}, 64,
        world == 8 ? std::initializer_list<std::int64_t>{200} : std::initializer_list<std::int64_t>{},
        {Profile::kFlashInfer, Profile::kIeee}, 11000 + world);
    CHECK(sweep.register_calls > sweep.calls / 4);
    CHECK(sweep.replicated_calls > 0);                     // rows computed by several blocks
    if (world == 8) CHECK(sweep.replicated_calls < sweep.register_calls);  // and by one: too few blocks for more
  }
}

TEST_CASE("a fused call in place (residual_out = residual) is bit-exact, each row by one block", "[gpu]") {
  // An engine's in-place residual add passes the residual as residual_out. A row's replicas each read its whole
  // residual but write only their part (replica_plan), so such a call keeps one block a row (plan_launch);
  // the same calls not in place take replicas. Decode rows, unquantised and every mode, both strategies.
  const int sms = ar::cuda::device_info(0).sm_count;
  constexpr int kWorld = 2;
  std::vector<ar::ProblemShape> shapes;
  for (std::int64_t hidden : {2048, 4096, 8192})
    for (std::int64_t n : {1, 3, 16}) shapes.push_back({kWorld, n, hidden, DType::kBf16});
  VirtualGroup group(quant_group_options(kWorld, shapes));
  ar::test::FlagsModel model(group);
  std::uint64_t seed = 13000;
  int replicated = 0, calls = 0;
  for (const ar::ProblemShape& shape : shapes)
    for (Strategy s : kStrategies)
      for (int m = -1; m < static_cast<int>(std::size(kModes)); ++m) {
        const auto input = ar::random_input(shape.dtype, kWorld, shape.tokens, shape.hidden, ++seed, 12);
        const auto norm = m < 0 ? ar::test::random_norm_inputs(shape, seed, 4, 0u, sms)
                                : quant_norm(shape, seed, kModes[m], kScales[calls % 4], sms);
        VirtualGroup::Call call{shape, s, Profile::kFlashInfer, /*pdl=*/calls++ % 2 == 0};
        call.norm = norm.arguments;
        replicated += group.plan(call).row_replicas > 1 ? 1 : 0;
        call.residual_in_place = true;
        INFO("in place, " << ar::quant_mode_name(norm.arguments.quant));
        REQUIRE(group.plan(call).row_replicas == 1);
        require_exact(ar::test::run_and_check_fused(group, input, norm, call, &model), call, seed);
      }
  CHECK(replicated > 0);  // the test is not vacuous: these calls do take replicas when not in place
}

TEST_CASE("quantised fused calls are bit-exact at every world size, mixed with plain and unquantised calls",
          "[gpu]") {
  std::uint64_t seed = 8000;
  for (int world : ar::kWorldSizes) {
    const std::vector<ar::ProblemShape> shapes{{world, 3, 8192, DType::kBf16}, {world, 130, 5120, DType::kFp16},
                                               {world, 5, 2880, DType::kFp32}};
    VirtualGroup group(quant_group_options(world, shapes));
    ar::test::FlagsModel model(group);
    int i = 0;
    for (const ar::ProblemShape& shape : shapes)
      for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto})
        for (const Mode& m : kModes) {
          if (!runs(m, shape.dtype)) continue;
          const Profile p = kProfiles[++i % 3];
          const auto input = ar::random_input(shape.dtype, world, shape.tokens, shape.hidden, ++seed, 12);
          const VirtualGroup::Call call{shape, s, p, i % 2 == 0};
          require_exact(ar::test::run_and_check(group, input, call, &model), call, seed);
          auto norm = quant_norm(shape, seed, m, kScales[i % 4], 132);
          require_exact(ar::test::run_and_check_fused(group, input, norm, call, &model), call, seed);
          norm.arguments.quant = QuantMode::kNone;
          require_exact(ar::test::run_and_check_fused(group, input, norm, call, &model), call, seed);
        }
  }
}

TEST_CASE("NVFP4 rows whose blocks' two packs lie in other lanes take the second pass, bit for bit", "[gpu]") {
  // D = 5152 (644 packs of bf16 or fp16): FlashInfer's ONESHOT tree at few tokens is 4 blocks of 161 threads,
  // so a block's two packs straddle lanes of different parity and our cluster of two blocks cannot pair them
  // by a shuffle; norm_row sends such rows to RowQuant::finish's second pass. Every other tree of these tests
  // pairs them in neighbouring lanes.
  const int sms = ar::cuda::device_info(0).sm_count;
  const int world = 2;
  const std::int64_t hidden = 5152;
  std::uint64_t seed = 8500;
  for (DType t : {DType::kBf16, DType::kFp16}) {
    const ar::NormLaunch odd = ar::norm_launch(Strategy::kOneShot, 1, hidden, t, sms);
    REQUIRE(odd.cluster_size() > 1);
    REQUIRE(odd.block_size() % 2 == 1);
    std::vector<ar::ProblemShape> shapes;
    for (std::int64_t n : {1, 2, 5, 16, 40, 100}) shapes.push_back({world, n, hidden, t});
    VirtualGroup group(quant_group_options(world, shapes));
    ar::test::FlagsModel model(group);
    int i = 0;
    for (const ar::ProblemShape& shape : shapes)
      for (Strategy s : kStrategies)
        for (const Mode& m : {kModes[2], kModes[3], kModes[1]}) {
          const Profile p = kProfiles[++i % 3];
          const auto input = ar::random_input(t, world, shape.tokens, hidden, ++seed, 12);
          const auto norm = quant_norm(shape, seed, m, kScales[i % 4], sms);
          const VirtualGroup::Call call{shape, s, p, i % 2 == 0};
          require_exact(ar::test::run_and_check_fused(group, input, norm, call, &model), call, seed);
        }
  }
}

TEST_CASE("quantised fused calls on edge values: NaN, Inf, zero rows and blocks, saturating scales", "[gpu]") {
  std::uint64_t seed = 9000;
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32})
    for (int world : {2, 8}) {
      const ar::ProblemShape shape{world, 6, 2880, t};
      VirtualGroup group(quant_group_options(world, {shape}));
      // Adversarial all-reduce inputs (NaN, Inf, -0 sums, subnormals); row 0 all zero (input and residual),
      // so dynamic FP8 takes its 2^-9/448 floor and NVFP4 has all-zero blocks; row 1 with huge residuals.
      auto input = ar::adversarial_input(t, world, shape.tokens, shape.hidden, ++seed);
      for (int r = 0; r < world; ++r)
        for (std::int64_t d = 0; d < shape.hidden; ++d) input.set_bits(r * shape.tokens * shape.hidden + d, 0u);
      for (const Mode& m : kModes) {
        if (!runs(m, t)) continue;
        // Global scales that saturate NVFP4's block scales (2^20) or underflow them (2^-20) and 0 (static
        // FP8: an infinite reciprocal), besides ordinary ones.
        for (std::uint32_t scale : {kScales[0], kScales[2], 0x49800000u, 0x35800000u, 0u}) {
          auto norm = quant_norm(shape, seed, m, scale, 132);
          for (std::int64_t d = 0; d < shape.hidden; ++d) {
            norm.residual.set_bits(d, 0u);
            if (d % 3 == 0) norm.residual.set_bits(shape.hidden + d, t == DType::kFp32 ? 0x7F000000u : 0x7B00u);
          }
          for (Strategy s : kStrategies)
            for (Profile p : kProfiles) {
              const VirtualGroup::Call call{shape, s, p, false};
              require_exact(ar::test::run_and_check_fused(group, input, norm, call), call, seed);
            }
        }
      }
    }
}

TEST_CASE("ONESHOT's dynamic FP8: rows with a dominant product and rows without, mixed in every block", "[gpu]") {
  // FlashInfer's ONESHOT (and the ieee profile's) take a row's maximum from its dominant product where it has
  // one, in a kernel launched with clusters (cuda/detail/quant_row.cuh, DominantProduct: here D = 8192), else
  // after the output pass (every row of D = 2880, a block a row). Random rows nearly all have one; here about
  // a third of the rows (a hash of the row picks them) have none: their two largest products tie with two
  // names, pre R at the first element against gamma 1 and R/2 at the last against gamma 2 (so in other warps,
  // and at D = 8192 in other blocks of the cluster), R a power of two from 2^21, another one each row, above
  // every other product, which stays below 2^20; their maximum goes the late way. Rounds of the minimum size
  // (round_bytes 1) make each block, and each cluster at D = 8192, compute a row of every round, so the two
  // ways alternate within a block and reuse each other's shared words, and a late row's maximum left in a word
  // the next late row finds would show as a wrong token scale (R differs row by row).
  const int sms = ar::cuda::device_info(0).sm_count;
  const int world = 2;
  const DType t = DType::kBf16;
  std::uint64_t seed = 9700;
  int tie_rows = 0, rows = 0;
  for (const std::int64_t hidden : {2880, 8192}) {
    const ar::ProblemShape shape{world, hidden == 2880 ? 1500 : 400, hidden, t};
    VirtualGroup::Options options = quant_group_options(world, {shape});
    options.round_bytes = 1;
    VirtualGroup group(options);
    ar::test::FlagsModel model(group);
    auto input = ar::random_input(t, world, shape.tokens, hidden, ++seed, 12);
    auto norm = quant_norm(shape, seed, kModes[1], kScales[0], sms);
    const std::int64_t last = hidden - 1;
    norm.gamma.set_bits(0, 0x3F80u);     // 1
    norm.gamma.set_bits(last, 0x4000u);  // 2
    for (std::int64_t row = 0; row < shape.tokens; ++row) {
      ++rows;
      if ((static_cast<std::uint32_t>(row) * 0x9E3779B1u) >> 29 >= 3) continue;  // 3 rows in 8
      ++tie_rows;
      const std::uint32_t r = 0x4A00u + static_cast<std::uint32_t>(row % 5) * 0x80u;  // 2^21 .. 2^25
      for (int rank = 0; rank < world; ++rank)
        for (std::int64_t d : {std::int64_t(0), last}) input.set_bits((rank * shape.tokens + row) * hidden + d, 0u);
      norm.residual.set_bits(row * hidden, r);
      norm.residual.set_bits(row * hidden + last, r - 0x80u);  // R / 2
    }
    for (Profile p : {Profile::kFlashInfer, Profile::kIeee})
      for (bool pdl : {false, true}) {
        const VirtualGroup::Call call{shape, Strategy::kOneShot, p, pdl};
        require_exact(ar::test::run_and_check_fused(group, input, norm, call, &model), call, seed);
      }
  }
  CHECK(tie_rows * 4 > rows);
  CHECK(tie_rows * 2 < rows);
}

TEST_CASE("the norm as a separate kernel quantises as the fused call does", "[gpu]") {
  std::uint64_t seed = 9500;
  const int world = 4;
  const std::vector<ar::ProblemShape> shapes{{world, 7, 4096, DType::kBf16}, {world, 1500, 2880, DType::kFp16}};
  VirtualGroup group(quant_group_options(world, shapes));
  for (const ar::ProblemShape& shape : shapes)
    for (const Mode& m : kModes)
      for (Profile p : kProfiles) {
        const auto input = ar::random_input(shape.dtype, world, shape.tokens, shape.hidden, ++seed, 12);
        const auto norm = quant_norm(shape, seed, m, kScales[seed % 4], 132);
        VirtualGroup::Call call{shape, Strategy::kAuto, p, true};
        call.separate_norm = true;
        require_exact(ar::test::run_and_check_fused(group, input, norm, call), call, seed);
      }
}

TEST_CASE("the committed quantised golden outputs match the GPU bit for bit", "[gpu]") {
  // Every quantised case of data/ (zero blocks and rows, e2m1 and e4m3 ties, saturating block scales, NaN and
  // Inf, the 2^-9/448 floor; both layouts, global scales 1 and 2688), every listed strategy and profile, fused
  // and through the separate norm kernel: the norm's outputs and every code and scale against the model, and
  // the codes and scales against the committed files.
  const std::filesystem::path dir = std::filesystem::path(AR_SOURCE_DIR) / "data";
  const ar::GoldenManifest manifest = ar::read_golden_manifest(dir.string());
  REQUIRE(!manifest.quant_cases.empty());
  int compared = 0, listed = 0;
  for (const ar::GoldenManifestCase& c : manifest.quant_cases) {
    const ar::ProblemShape& shape = c.shape;
    const ar::HostTensor input = manifest.load_input(c);
    ar::test::NormInputs norm;
    norm.residual = manifest.load_residual(c);
    norm.gamma = manifest.load_gamma(c);
    VirtualGroup group(quant_group_options(shape.world_size, {shape}));
    for (const ar::GoldenQuant& q : c.quant)
      for (const auto& [key, files] : q.outputs) {
        listed += 2;
        norm.arguments = ar::cuda::NormArguments{c.fused->epsilon, c.fused->weight_bias, c.fused->sm_count,
                                                 q.options.mode, q.options.layout};
        norm.quant_scale = q.options.scale;
        const ar::QuantizedOutput expected = manifest.load_expected_quant(c, q, key.strategy, key.profile);
        for (bool separate : {false, true}) {
          VirtualGroup::Call call{shape, key.strategy, key.profile, /*pdl=*/true};
          call.norm = norm.arguments;
          call.separate_norm = separate;
          const ar::test::CallCheck check = ar::test::run_and_check_fused(group, input, norm, call);
          INFO(c.name << " " << q.name << " " << ar::test::label(call) << (separate ? " separate kernel" : "") << ": "
                      << check.describe());
          REQUIRE(!check.wait);
          REQUIRE(check.mismatches == 0);
          for (int r = 0; r < shape.world_size; ++r) {
            const ar::QuantDiff d =
                ar::compare_quant(group.download_quant(r, shape, q.options.mode, q.options.layout), expected);
            INFO("rank " << r << " against the committed files: " << d.differing << " of " << d.elements
                         << " differ (first " << d.first << ")");
            REQUIRE(d.differing == 0);
          }
          ++compared;
        }
      }
  }
  CHECK(compared == listed);
  CHECK(compared >= 200);
}

TEST_CASE("under the invariant profile a token's quantised bits do not depend on the batch, the strategy or the SM "
          "count, on the GPU", "[gpu]") {
  // Two probe rows (a random one and an adversarial one, each with its own residual row) placed in batches of
  // many sizes among random rows, under ONESHOT, TWOSHOT and AUTO (which crosses to TWOSHOT inside the range)
  // and FlashInfer's trees of 16 and 132 SMs: each probe's codes, and its token scale or block scales, must be
  // one set of bits everywhere, and the model's (every call is checked against it too).
  const int world = 4;
  const std::int64_t hidden = 4096;
  const std::vector<std::int64_t> batches{1, 2, 3, 7, 16, 33, 64, 65, 130, 600};
  std::vector<ar::ProblemShape> shapes;
  for (std::int64_t n : batches) shapes.push_back({world, n, hidden, DType::kBf16});
  VirtualGroup group(quant_group_options(world, shapes));
  const ar::HostTensor probes = ar::adversarial_input(DType::kBf16, world, 2, hidden, 77);
  const ar::HostTensor probe_residuals =
      ar::random_input(DType::kBf16, 1, 2, hidden, 78, 4).reshaped({2, hidden});
  const ar::HostTensor gamma = ar::random_input(DType::kBf16, 1, 1, hidden, 79, 1).reshaped({hidden});
  std::uint64_t seed = 9900;
  int compared = 0;
  for (const Mode& m : kModes) {
    // The bytes of probe k: its codes, then its token scale or its block scales.
    std::vector<std::vector<std::uint8_t>> first(2);
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto})
      for (int sms : {16, 132})
        for (std::int64_t n : batches) {
          const ar::ProblemShape shape{world, n, hidden, DType::kBf16};
          auto input = ar::random_input(DType::kBf16, world, n, hidden, ++seed, 12);
          auto norm = quant_norm(shape, seed, m, kScales[2], sms);
          norm.gamma = gamma;  // one weight for every call
          const std::int64_t rows[2] = {0, n - 1};  // the first and last rows (one row: probe 0 only)
          const int count = n == 1 ? 1 : 2;
          for (int k = 0; k < count; ++k)
            for (std::int64_t d = 0; d < hidden; ++d) {
              for (int r = 0; r < world; ++r)
                input.set_bits((r * n + rows[k]) * hidden + d, probes.bits((r * 2 + k) * hidden + d));
              norm.residual.set_bits(rows[k] * hidden + d, probe_residuals.bits(k * hidden + d));
            }
          const VirtualGroup::Call call{shape, s, Profile::kInvariant, true};
          require_exact(ar::test::run_and_check_fused(group, input, norm, call), call, seed);
          for (int rank : {0, world - 1}) {
            const ar::QuantizedOutput q = group.download_quant(rank, shape, m.quant, m.layout);
            for (int k = 0; k < count; ++k) {
              const std::size_t per_row = q.quant_out.size() / static_cast<std::size_t>(n);
              std::vector<std::uint8_t> bytes(q.quant_out.begin() + rows[k] * per_row,
                                              q.quant_out.begin() + (rows[k] + 1) * per_row);
              if (m.quant == QuantMode::kFp8Dynamic) {
                const std::uint32_t scale = q.token_scales[static_cast<std::size_t>(rows[k])];
                for (int b = 0; b < 4; ++b) bytes.push_back(static_cast<std::uint8_t>(scale >> (8 * b)));
              }
              if (m.quant == QuantMode::kNvfp4)
                for (std::int64_t blk = 0; blk < ar::scale_blocks(hidden); ++blk)
                  bytes.push_back(q.scale_out[static_cast<std::size_t>(ar::scale_offset(m.layout, rows[k], blk, hidden))]);
              if (first[k].empty()) first[k] = bytes;
              INFO(ar::quant_mode_name(m.quant) << " probe " << k << " in " << ar::test::label(call) << " rank "
                                                << rank);
              REQUIRE(bytes == first[k]);
              ++compared;
            }
          }
        }
  }
  CHECK(compared == 4 * 3 * 2 * (2 * static_cast<int>(batches.size()) - 1) * 2);
}
