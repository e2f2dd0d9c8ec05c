#include "harness/io/golden_cases.h"

#include <algorithm>

#include <fmt/format.h>

#include "reference/float_bits.h"

namespace ar {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Bits of T for the integer k (|k| small enough to be exact).
std::uint32_t integer_bits(int k, DType t) {
  if (k == 0) return 0;
  WideValue v{k < 0, static_cast<std::uint64_t>(k < 0 ? -k : k), 0, false};
  return round_to_format(v, float_format(t)).bits;
}

/// Random bits of T with exponent in [-spread, spread] and a random full mantissa.
std::uint32_t random_bits(std::uint64_t r, DType t, int spread) {
  const FloatFormat f = float_format(t);
  const std::uint32_t sign = (r >> 63) ? f.sign_mask() : 0u;
  const int exponent = static_cast<int>((r >> 32) % std::uint64_t(2 * spread + 1)) - spread;
  const std::uint32_t fraction = static_cast<std::uint32_t>(r) & f.fraction_mask();
  return sign | (std::uint32_t(exponent + f.bias()) << f.fraction_bits) | fraction;
}

HostTensor make_input(DType t, int world, std::int64_t tokens, std::int64_t hidden) {
  return HostTensor(t, {world, tokens, hidden});
}

/// An edge case: one scenario (W values, one per rank) per element column of a single-token input; the
/// remaining columns of the last pack repeat scenario 0.
HostTensor scenario_input(DType t, int world, const std::vector<std::vector<std::uint32_t>>& scenarios) {
  const std::int64_t pack = elements_per_pack(t);
  const std::int64_t hidden = (static_cast<std::int64_t>(scenarios.size()) + pack - 1) / pack * pack;
  HostTensor in = make_input(t, world, 1, hidden);
  for (std::int64_t col = 0; col < hidden; ++col) {
    const auto& s = scenarios[col < static_cast<std::int64_t>(scenarios.size()) ? col : 0];
    for (int r = 0; r < world; ++r) in.set_bits(r * hidden + col, s.at(r));
  }
  return in;
}

// Scenarios of SPEC section 10 at W = 2 (bits of each dtype), with what each checks.
std::vector<std::vector<std::uint32_t>> edge_scenarios_w2(DType t) {
  switch (t) {
    case DType::kBf16:
      return {
          {0x8000, 0x8000},  // -0 + -0: sanitised to +0 + +0 = +0
          {0x8000, 0x3F80},  // -0 + 1
          {0x8081, 0x0080},  // sum -2^-133 flushes to -0: ONESHOT 0x8000, TWOSHOT 0x0000
          {0x0080, 0x8081},  // the same, other order
          {0x7FC1, 0x3F80},  // qNaN with payload -> 0x7FFF
          {0xFF81, 0x3F80},  // negative sNaN -> 0x7FFF
          {0x7F80, 0xFF80},  // Inf + -Inf -> 0x7FFF
          {0x7F80, 0x3F80},  // Inf + 1 = Inf
          {0xFF80, 0xC000},  // -Inf + -2 = -Inf
          {0x7F7F, 0x7F7F},  // fp32 overflow of two bf16 max -> Inf
          {0x7F7F, 0x7B00},  // max + 2^119 = 0x7F7F8000 in fp32: RN-even narrowing overflows to Inf
          {0x0001, 0x0001},  // positive subnormals act as +0 under FTZ
          {0x8001, 0x807F},  // negative subnormals flush to -0, but the fold starts at +0: +0 (IEEE: 0x8080)
          {0x8001, 0x3F80},  // negative subnormal + 1
          {0x4B80, 0xCB80},  // cancellation: 2^24 - 2^24 = +0
          {0x3F81, 0x3B80},  // 1.0078125 + 2^-8: ties at narrowing (RN-even)
      };
    case DType::kFp16:
      return {
          {0x8000, 0x8000},  // -0 + -0 = +0
          {0x8000, 0x3C00},  // -0 + 1
          {0x8001, 0x0001},  // subnormals are exact in fp32: -2^-24 + 2^-24 = +0
          {0x8001, 0x8001},  // -2^-23 stays an fp16 subnormal 0x8002
          {0x7E01, 0x3C00},  // NaN payload -> 0x7FFF
          {0xFC01, 0x3C00},  // negative NaN -> 0x7FFF
          {0x7C00, 0xFC00},  // Inf + -Inf -> 0x7FFF
          {0x7C00, 0x3C00},  // Inf + 1 = Inf
          {0x7BFF, 0x4C00},  // 65504 + 16 = 65520: narrowing overflows to Inf
          {0x7BFF, 0x4800},  // 65504 + 8 = 65512: rounds down to 65504
          {0x7BFF, 0x7BFF},  // 131008 -> Inf
          {0x0400, 0x8001},  // smallest normal - smallest subnormal = 0x03FF
          {0x6400, 0xE400},  // 1024 - 1024 = +0
          {0x3C01, 0x1000},  // 1 + ulp + 2^-11: RN-even at narrowing
          {0x8400, 0x0400},  // -2^-14 + 2^-14 = +0
          {0xBC00, 0x8000},  // -1 + -0
      };
    case DType::kFp32: break;
  }
  return {
      {0x80000000, 0x80000000},  // -0 + -0 = +0
      {0x80000000, 0x3F800000},  // -0 + 1
      {0x80800001, 0x00800000},  // sum -2^-149 is subnormal: FTZ -> -0 (oneshot), +0 (twoshot)
      {0x00000001, 0x80000002},  // subnormal inputs flush: +0 + -0 = +0 (IEEE: -2^-149)
      {0x7FC00001, 0x3F800000},  // NaN payload -> 0x7FFFFFFF
      {0xFF800001, 0x3F800000},  // negative sNaN -> 0x7FFFFFFF
      {0x7F800000, 0xFF800000},  // Inf + -Inf -> 0x7FFFFFFF
      {0x7F7FFFFF, 0x7F7FFFFF},  // overflow -> Inf
      {0x7F7FFFFF, 0x73000000},  // max + half an ulp: a tie, rounds to even = 2^128 = Inf
      {0x3F800001, 0x33800000},  // 1 + ulp + half ulp: RN-even
      {0xC7000000, 0x47000000},  // cancellation = +0
      {0x807FFFFF, 0x007FFFFF},  // subnormals cancel or flush: +0
  };
}

// Scenarios at W = 4, where FTZ and sanitising interact across several adds.
std::vector<std::vector<std::uint32_t>> edge_scenarios_w4(DType t) {
  if (t == DType::kFp32)
    return {
        {0x00000000, 0x80800001, 0x00800000, 0x00000000},  // -0 mid-fold then +0: A(-0, +0) = +0
        {0x80800001, 0x00800000, 0x80000000, 0x80000000},  // -0 sum, then sanitised -0 inputs (+0): result +0
        {0x80800001, 0x00800000, 0x80000001, 0x80000001},  // -0 sum, then flushed negative subnormals: -0
        {0x4B800000, 0x3F800000, 0xCB800000, 0x3F800000},  // 2^24 + 1 rounds away: order-dependent result 1
    };
  if (t == DType::kFp16)
    return {
        {0x0000, 0x8001, 0x0001, 0x0000},  // exact subnormals
        {0x7BFF, 0x7BFF, 0xFBFF, 0xFBFF},  // 65504*2 - 65504*2 = 0 in fp32 (no overflow there)
        {0x6800, 0x1000, 0xE800, 0x1000},  // 2048 + 2^-11 - 2048 + 2^-11: fp32 keeps it
        {0x8000, 0x8000, 0x8000, 0x8000},  // all -0
    };
  return {
      {0x0000, 0x8081, 0x0080, 0x0000},  // -0 mid-fold then +0: A(-0, +0) = +0
      {0x8081, 0x0080, 0x8000, 0x8000},  // -0 sum, then -0 inputs sanitised to +0: result +0
      {0x8081, 0x0080, 0x8001, 0x8001},  // -0 sum, then negative subnormals (not sanitised): -0 stays
      {0x4B80, 0x3F80, 0xCB80, 0x3F80},  // 2^24 + 1 rounds away in fp32: order matters
  };
}

// bf16 words that look like the sentinel to a float compare: a +0 low half next to 0x8001..0x807F, so the
// 32-bit word is 0x80xx0000, a negative fp32 subnormal that FTZ turns into -0.
HostTensor sentinel_lookalike_input(int world, std::uint64_t seed) {
  const std::int64_t tokens = 2, hidden = 128;
  HostTensor in = make_input(DType::kBf16, world, tokens, hidden);
  for (std::int64_t i = 0; i < in.size(); ++i) {
    const std::uint64_t r = seeded_bits(seed, static_cast<std::uint64_t>(i));
    in.set_bits(i, i % 2 == 0 ? 0x0000u : 0x8001u + std::uint32_t(r % 0x7F));
  }
  return in;
}

}  // namespace

std::uint64_t seeded_bits(std::uint64_t seed, std::uint64_t index) { return splitmix64(splitmix64(seed) ^ index); }

HostTensor random_input(DType t, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed,
                        int exponent_spread) {
  HostTensor in = make_input(t, world, tokens, hidden);
  for (std::int64_t i = 0; i < in.size(); ++i)
    in.set_bits(i, random_bits(seeded_bits(seed, static_cast<std::uint64_t>(i)), t, exponent_spread));
  return in;
}

HostTensor exact_input(DType t, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed) {
  HostTensor in = make_input(t, world, tokens, hidden);
  for (std::int64_t i = 0; i < in.size(); ++i)
    in.set_bits(i, integer_bits(static_cast<int>(seeded_bits(seed, static_cast<std::uint64_t>(i)) % 9) - 4, t));
  return in;
}

HostTensor flushed_negative_sum_token(DType t, int world, std::int64_t hidden) {
  HostTensor x(t, {world, 1, hidden});
  const bool bf16 = t == DType::kBf16;
  for (std::int64_t d = 0; d < hidden; ++d) {
    x.set_bits((world - 2) * hidden + d, bf16 ? 0x80C0u : 0x80C00000u);
    x.set_bits((world - 1) * hidden + d, bf16 ? 0x0080u : 0x00800000u);
  }
  return x;
}

HostTensor adversarial_input(DType t, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed) {
  // A wide exponent range (all of fp16's, 2^+-24 otherwise) makes fp32 partial sums inexact, so the
  // rounding of each order shows.
  HostTensor in = random_input(t, world, tokens, hidden, seed, t == DType::kFp16 ? 14 : 24);
  // On even columns rank 0 adds a large +B and rank W/2 the exact -B: the result is small, but the fp32 partial
  // sums that held B lost low bits, and which bits depends on where the chunks start. This is where ONESHOT
  // (chunks of 8) and TWOSHOT (chunks of 16) part at W >= 16.
  const FloatFormat f = float_format(t);
  const int big_exponent = t == DType::kFp16 ? 15 : 40;
  for (std::int64_t i = 0; i < tokens * hidden && world >= 4; i += 2) {
    const std::uint32_t fraction =
        static_cast<std::uint32_t>(seeded_bits(seed + 1, std::uint64_t(i))) & f.fraction_mask();
    const std::uint32_t big = (std::uint32_t(big_exponent + f.bias()) << f.fraction_bits) | fraction;
    in.set_bits(i, big);
    in.set_bits((world / 2) * tokens * hidden + i, big | f.sign_mask());
    if (t != DType::kFp16) continue;
    // fp16's range is narrow: keep the other ranks small (2^-14 .. 2^-7) so the result's last place lies
    // below the bits that 2^15 made the fp32 partial sums drop.
    for (int r = 1; r < world; ++r) {
      if (r == world / 2) continue;
      const std::int64_t at = r * tokens * hidden + i;
      const std::uint32_t v = in.bits(at);
      in.set_bits(at, (v & (f.sign_mask() | f.fraction_mask())) | (std::uint32_t(1 + v % 8) << f.fraction_bits));
    }
  }
  // Overlay the W = 2 / W = 4 edge scenarios on the first columns of token 0 (other ranks add +0).
  const auto overlay = [&](const std::vector<std::vector<std::uint32_t>>& scenarios, std::int64_t first_col) {
    for (std::size_t s = 0; s < scenarios.size() && first_col + std::int64_t(s) < hidden; ++s)
      for (int r = 0; r < world; ++r)
        in.set_bits(r * tokens * hidden + first_col + std::int64_t(s),
                    r < static_cast<int>(scenarios[s].size()) ? scenarios[s][r] : 0u);
  };
  overlay(edge_scenarios_w2(t), 0);
  overlay(edge_scenarios_w4(t), 16);
  return in;
}

std::vector<GoldenCase> golden_cases() {
  std::vector<GoldenCase> cases;
  // Each case takes the next seed; `make` builds its input from that seed.
  std::uint64_t next_seed = 1000;
  const auto add = [&cases, &next_seed](std::string name, std::string kind, std::string description, bool seeded,
                                        const auto& make) {
    const std::uint64_t seed = seeded ? ++next_seed : 0;
    cases.push_back({std::move(name), std::move(kind), std::move(description), seed, make(seed)});
  };
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    const std::string dt(dtype_name(t));
    const std::int64_t pack = elements_per_pack(t);
    for (int w : kWorldSizes) {
      add(fmt::format("exact_{}_w{}", dt, w), "exact",
          "small integers in [-4, 4]: every order gives the exact sum, so any wrong bit is a data-movement bug", true,
          [&](std::uint64_t seed) { return exact_input(t, w, 3, 4 * pack, seed); });
      add(fmt::format("random_{}_w{}", dt, w), "random",
          "full-mantissa values, exponents in [-12, 12]: bit-exact only in the right order", true,
          [&](std::uint64_t seed) { return random_input(t, w, 5, 4 * pack, seed, 12); });
    }
    add(fmt::format("edge_{}_w2", dt), "edge", "SPEC section 10 scenarios at W = 2, one per element column", false,
        [&](std::uint64_t) { return scenario_input(t, 2, edge_scenarios_w2(t)); });
    add(fmt::format("edge_{}_w4", dt), "edge", "FTZ and sanitising interacting across four adds, one per column", false,
        [&](std::uint64_t) { return scenario_input(t, 4, edge_scenarios_w4(t)); });
    for (int w : {16, 32, 64})
      add(fmt::format("adversarial_{}_w{}", dt, w), "edge",
          fmt::format("cancelling large values plus the edge scenarios on token 0: ONESHOT (chunks of 8) and "
                      "TWOSHOT (chunks of {}) differ at W = {}",
                      std::min(w, 16), w),
          true, [&](std::uint64_t seed) { return adversarial_input(t, w, 4, 4 * pack, seed); });
  }
  // AUTO's threshold: N*D*W*E = 1 MiB exactly is ONESHOT (inclusive rule); the GPU runs add a token.
  add("auto_threshold_bf16_w8", "random", "W = 8, N*D*W*E = 1 MiB exactly: the largest ONESHOT call", true,
      [&](std::uint64_t seed) { return random_input(DType::kBf16, 8, 64, 1024, seed, 4); });
  add("sentinel_lookalike_bf16_w8", "edge",
      "bf16 pairs (0x0000, 0x8001..0x807F): 32-bit words 0x80xx0000 that a float sentinel test under FTZ "
      "mistakes for empty",
      true, [&](std::uint64_t seed) { return sentinel_lookalike_input(8, seed); });
  return cases;
}

}  // namespace ar
