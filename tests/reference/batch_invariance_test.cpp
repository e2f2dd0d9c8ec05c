// Batch invariance (reference/batch_invariance.h): the ranges of N with one path, and witnesses across their
// boundaries, checked against whole batches computed by the model: a token placed in two batches of one range
// gets the same bits, and a witness placed on the two sides of a boundary gets different ones.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "reference/all_reduce.h"
#include "reference/batch_invariance.h"
#include "reference/fused_rms_norm.h"

using namespace ar;

namespace {

/// Full-mantissa values of T with exponents within +-spread of 0, from (seed, index) by splitmix64.
HostTensor random_input(DType t, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed, int spread) {
  HostTensor x(t, {world, tokens, hidden});
  for (std::int64_t i = 0; i < x.size(); ++i) {
    std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(i) + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const int exponent = static_cast<int>(z % static_cast<std::uint64_t>(2 * spread + 1)) - spread;
    const std::uint32_t sign = static_cast<std::uint32_t>(z >> 63) << 31;
    const std::uint32_t f =
        sign | static_cast<std::uint32_t>(127 + exponent) << 23 | static_cast<std::uint32_t>(z >> 9) & 0x7FFFFFu;
    if (t == DType::kFp32) {
      x.set_bits(i, f);
    } else if (t == DType::kBf16) {
      x.set_bits(i, f >> 16);
    } else {  // fp16: exponent within its range, 10 mantissa bits
      const int e16 = std::clamp(exponent, -14, 15) + 15;
      x.set_bits(i, (sign >> 16) | static_cast<std::uint32_t>(e16) << 10 | ((f >> 13) & 0x3FFu));
    }
  }
  return x;
}

/// Every element's W values sum to a negative fp32 subnormal, which FTZ adds flush to -0 (bf16 and fp32).
HostTensor flushed_negative_sum(DType t, int world, std::int64_t hidden) {
  HostTensor x(t, {world, 1, hidden});
  for (std::int64_t d = 0; d < hidden; ++d) {
    x.set_bits((world - 2) * hidden + d, t == DType::kBf16 ? 0x80C0u : 0x80C00000u);
    x.set_bits((world - 1) * hidden + d, t == DType::kBf16 ? 0x0080u : 0x00800000u);
  }
  return x;
}

/// Candidates: a row whose sums flush to -0 (bf16 and fp32), then random rows.
TokenInputSource source_of(const BatchQuestion& q) {
  return [q](int i) {
    TokenInputs in;
    const auto s = static_cast<std::uint64_t>(100 + i);
    in.input = i == 0 && q.dtype != DType::kFp16 ? flushed_negative_sum(q.dtype, q.world_size, q.hidden)
                                                 : random_input(q.dtype, q.world_size, 1, q.hidden, s, 12);
    in.residual = random_input(q.dtype, 1, 1, q.hidden, s + 7, 4).reshaped({1, q.hidden});
    in.gamma = random_input(q.dtype, 1, 1, q.hidden, s + 9, 1).reshaped({q.hidden});
    in.source = "test";
    return in;
  };
}

/// Token 0 of a whole batch of `tokens` tokens whose token 0 is `in` and the rest seeded filler: its output
/// row under the model of the whole call (the all-reduce, or the fused call's normalised output).
std::vector<std::uint32_t> token_in_batch(const BatchQuestion& q, const TokenInputs& in, std::int64_t tokens) {
  HostTensor x = random_input(q.dtype, q.world_size, tokens, q.hidden, 5, 12);
  HostTensor residual = random_input(q.dtype, 1, tokens, q.hidden, 6, 4).reshaped({tokens, q.hidden});
  for (int r = 0; r < q.world_size; ++r)
    for (std::int64_t d = 0; d < q.hidden; ++d) {
      x.set_bits((r * tokens) * q.hidden + d, in.input.bits(r * q.hidden + d));
      if (q.fused && r == 0) residual.set_bits(d, in.residual.bits(d));
    }
  HostTensor out;
  if (q.fused) {
    const FusedOptions o{.strategy = q.strategy,
                         .profile = q.profile,
                         .sm_count = q.sm_count,
                         .epsilon = q.epsilon,
                         .weight_bias = q.weight_bias};
    out = reference_fused_rms_norm(x, residual, in.gamma, o).normalized;
  } else {
    out = reference_all_reduce(x, q.strategy, q.profile);
  }
  std::vector<std::uint32_t> row(static_cast<std::size_t>(q.hidden));
  for (std::int64_t d = 0; d < q.hidden; ++d) row[static_cast<std::size_t>(d)] = out.bits(d);
  return row;
}

}  // namespace

TEST_CASE("plain AUTO has one boundary, at the 1 MiB rule: a fixed strategy has none", "[cpu]") {
  BatchQuestion q{.world_size = 8, .hidden = 4096, .dtype = DType::kBf16};
  const auto ranges = token_ranges(q, 100);
  REQUIRE(ranges.size() == 2);
  CHECK(ranges[0].first == 1);
  CHECK(ranges[0].last == 16);  // 16 x 4096 x 8 x 2 bytes = 1 MiB, inclusive
  CHECK(ranges[0].path.strategy == Strategy::kOneShot);
  CHECK(ranges[1].last == 100);
  CHECK(ranges[1].path.strategy == Strategy::kTwoShot);
  q.strategy = Strategy::kTwoShot;
  CHECK(token_ranges(q, 100).size() == 1);
}

TEST_CASE("AUTO at W <= 8 changes only the sign of zero: from W = 16 ordinary tokens change", "[cpu]") {
  // fp32: a bf16 output would round most of the chunks' different fp32 sums to the same bits (the command's
  // adversarial rows find bf16 witnesses; these random ones rarely do).
  for (int world : {2, 4, 8, 16, 32}) {
    const BatchQuestion q{.world_size = world, .hidden = 256, .dtype = DType::kFp32};
    const auto ranges = token_ranges(q, 2000);
    REQUIRE(ranges.size() == 2);
    INFO("W = " << world);
    CHECK(differ_only_in_zero_sign(ranges[0].path, ranges[1].path) == (world <= 8));
    const Witness w = find_witness(q, ranges[0].path, ranges[1].path, source_of(q), 40);
    if (world <= 8) {
      REQUIRE(w.found);  // the flushed row
      CHECK(w.zero_sign_only);
      CHECK(w.tried == 1);
      // No random row shows any difference.
      const auto random_only = [&](int i) { return source_of(q)(i + 1); };
      CHECK_FALSE(find_witness(q, ranges[0].path, ranges[1].path, random_only, 40).found);
    } else {
      REQUIRE(w.found);
      CHECK_FALSE(w.zero_sign_only);
      CHECK(w.tried > 1);  // a random row: the chunks of 8 against 16 change ordinary sums
    }
  }
  // fp16 sums never flush (fp16 values are multiples of 2^-24): no candidate shows any difference.
  const BatchQuestion fp16{.world_size = 8, .hidden = 256, .dtype = DType::kFp16};
  const auto ranges = token_ranges(fp16, 2000);
  CHECK_FALSE(find_witness(fp16, ranges[0].path, ranges[1].path, source_of(fp16), 40).found);
}

TEST_CASE("inside a range a token's bits are the same in every batch: across a boundary a witness differs", "[cpu]") {
  for (bool fused : {false, true}) {
    BatchQuestion q{.world_size = fused ? 2 : 16, .hidden = fused ? 2048 : 128, .dtype = DType::kFp32};
    q.fused = fused;
    q.epsilon = default_epsilon(q.dtype);
    const auto ranges = token_ranges(q, 160);
    REQUIRE(ranges.size() >= 2);
    INFO((fused ? "fused" : "plain"));
    const TokenInputs token = source_of(q)(3);
    for (const TokenRange& r : ranges) {
      const auto first = token_in_batch(q, token, r.first);
      CHECK(token_in_batch(q, token, r.last) == first);
      CHECK(token_in_batch(q, token, (r.first + r.last) / 2) == first);
    }
    for (std::size_t i = 0; i + 1 < ranges.size(); ++i) {
      const Witness w = find_witness(q, ranges[i].path, ranges[i + 1].path, source_of(q), 200);
      INFO("boundary after N = " << ranges[i].last);
      REQUIRE(w.found);
      CHECK_FALSE(w.parts.empty());
      const auto before = token_in_batch(q, w.inputs, ranges[i].last),
                 after = token_in_batch(q, w.inputs, ranges[i].last + 1);
      CHECK(before != after);
      CHECK(before[static_cast<std::size_t>(w.index)] == w.before);
      CHECK(after[static_cast<std::size_t>(w.index)] == w.after);
    }
  }
}

TEST_CASE("the fused call's trees follow the SM count", "[cpu]") {
  BatchQuestion q{.world_size = 2, .hidden = 8192, .dtype = DType::kBf16, .strategy = Strategy::kOneShot};
  q.fused = true;
  const auto on_132 = token_ranges(q, 33);
  q.sm_count = 78;
  const auto on_78 = token_ranges(q, 33);
  REQUIRE(on_132.size() >= 2);
  REQUIRE(on_78.size() >= 2);
  CHECK(on_132[0].last != on_78[0].last);  // 8-block clusters while N x 8 <= SMs
  CHECK(on_132[0].last == 16);
  CHECK(on_78[0].last == 9);
}

TEST_CASE("the invariant profile: one order for both strategies at every W", "[cpu][invariant]") {
  for (int world : kWorldSizes) {
    INFO("W = " << world);
    const ReductionOrder one = reduction_order(Strategy::kOneShot, Profile::kInvariant, world);
    CHECK(one == reduction_order(Strategy::kTwoShot, Profile::kInvariant, world));
    CHECK_FALSE(one.ftz);
    CHECK(one.sanitize_result);
    CHECK(one.chunk == 0);
    // Below W = 16 FlashInfer's order, which both its strategies share; from there no order: the exact sum.
    CHECK(one.exact == (world >= kOneShotChunksFromWorld));
    if (!one.exact) {
      ReductionOrder flashinfer = reduction_order(Strategy::kOneShot, Profile::kFlashInfer, world);
      flashinfer.ftz = false;
      flashinfer.sanitize_result = true;
      CHECK(one == flashinfer);
    }
  }
  // Its launch depends on D and T alone.
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32})
    for (std::int64_t hidden : {128, 2880, 4096, 7168, 8192, 16384}) {
      const NormLaunch a = invariant_norm_launch(Strategy::kOneShot, hidden, t);
      const NormLaunch b = norm_launch_for(Profile::kInvariant, Strategy::kTwoShot, 4096, hidden, t, 16);
      INFO(dtype_name(t) << " D = " << hidden);
      CHECK(a.grid == b.grid);
      CHECK(a.packs_per_block == b.packs_per_block);
      CHECK(a.block_size() * a.cluster_size() * a.loads_per_thread() >= a.packs_per_row);
      CHECK(a.block_size() <= 512);
      CHECK(a.block_size() % 32 == 0);
      CHECK_FALSE(a.squares_in_t);
      CHECK(a.gamma_first);
      CHECK(a.exited_threads() == 0);
    }
  CHECK(invariant_norm_launch(Strategy::kOneShot, 8192, DType::kBf16).grid == GridConfig{512, 2, 1});
  CHECK(invariant_norm_launch(Strategy::kOneShot, 2880, DType::kBf16).grid == GridConfig{384, 1, 1});
  CHECK(invariant_norm_launch(Strategy::kOneShot, 65536, DType::kFp32).grid == GridConfig{512, 8, 4});
  CHECK_THROWS_WITH(invariant_norm_launch(Strategy::kOneShot, 8 * 512 * 8 * 8 + 8, DType::kBf16),
                    Catch::Contains("beyond"));
}

TEST_CASE("the invariant profile: one range for every N, plain and fused, any SM count", "[cpu][invariant]") {
  for (bool fused : {false, true})
    for (int world : {2, 8, 16, 64})
      for (int sms : {1, 78, 132}) {
        BatchQuestion q{.world_size = world, .hidden = 4096, .dtype = DType::kBf16, .profile = Profile::kInvariant};
        q.fused = fused;
        q.sm_count = sms;
        const auto ranges = token_ranges(q, 4096);
        INFO((fused ? "fused" : "plain") << " W = " << world << " SMs = " << sms);
        REQUIRE(ranges.size() == 1);
        CHECK(ranges[0].last == 4096);
        // AUTO switches strategy inside it (at 1 MiB), and says so.
        REQUIRE(ranges[0].strategy_switches.size() == 1);
        CHECK(ranges[0].strategy_switches[0].second == Strategy::kTwoShot);
        CHECK(ranges[0].describe().find("twoshot from") != std::string::npos);
      }
}

TEST_CASE("the invariant profile: a token's bits in whole batches of any N, strategy and SM count", "[cpu][invariant]") {
  // The model of whole calls (not the paths): the token at row 0 of batches that differ in N, strategy and
  // SM count, against the same token alone; and the flashinfer profile's bits do change over the same set
  // (so the comparison can see a difference).
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32})
    for (int world : {2, 8}) {
      BatchQuestion q{.world_size = world, .hidden = 2048, .dtype = t, .profile = Profile::kInvariant};
      q.fused = true;
      q.epsilon = default_epsilon(t);
      const TokenInputs token = source_of(q)(5);
      q.strategy = Strategy::kOneShot;
      q.sm_count = 132;
      const auto alone = token_in_batch(q, token, 1);
      std::set<std::vector<std::uint32_t>> flashinfer_rows;
      for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto})
        for (int sms : {1, 1000})  // FlashInfer's tree for 2048 elements: 1 block on 1 SM, 4 on 1000
          for (std::int64_t n : {1, 70}) {
            q.strategy = s;
            q.sm_count = sms;
            q.profile = Profile::kInvariant;
            INFO(dtype_name(t) << " W = " << world << " " << strategy_name(s) << " SMs = " << sms << " N = " << n);
            CHECK(token_in_batch(q, token, n) == alone);
            q.profile = Profile::kFlashInfer;
            flashinfer_rows.insert(token_in_batch(q, token, n));
          }
      INFO(dtype_name(t) << " W = " << world);
      CHECK(flashinfer_rows.size() > 1);
    }
}
