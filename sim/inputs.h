// The simulator's seeded inputs: every rank's shard of every call as a pure function of (seed, call, rank,
// element), so any failure is regenerated from its seed.
//
// Most words carry full-mantissa random values (they expose reduction-order bugs when compared bit for bit).
// The rest carry the patterns that break a careless Lamport protocol: a 32-bit word that is exactly the
// sentinel 0x80000000 before sanitising (+0 next to -0, or fp32 -0), words that a float compare under FTZ
// mistakes for -0 (negative subnormal high halves), cross-rank cancellations whose FTZ sum is -0, and specials
// (NaN, Inf, subnormals). The first eight words of every call cycle through all patterns, so even a one-pack
// problem meets each of them within two calls.
#pragma once

#include <cstdint>

#include "reference/tensor.h"

namespace ar::sim {

/// What a 32-bit word of the inputs holds (for 16-bit types a word is two neighbouring elements).
enum class InputPattern : std::uint8_t {
  kRandom,        ///< full-mantissa normals over a few binades
  kSentinelPair,  ///< 16-bit: +0 then -0 (the word is 0x80000000 unsanitised); fp32: -0; on some ranks
  kFtzWord,       ///< high element a negative subnormal (0x8001..0x807F): "-0.0f" to a float compare under FTZ
  kCancel,        ///< rank 0 holds -(2^-126 + ulp), rank W-1 holds 2^-126: the FTZ sum is -0
  kSpecial,       ///< NaN, +-Inf, subnormals, -0, the largest finite value
};

/// The pattern of word `word` of call `call`.
InputPattern input_pattern(std::uint64_t seed, int call, std::int64_t word);

/// Every rank's input for call `call`: a [W, N, D] tensor of `dtype` (shape from the arguments).
HostTensor make_call_inputs(std::uint64_t seed, int call, int world_size, std::int64_t tokens, std::int64_t hidden,
                            DType dtype);

/// splitmix64: the simulator's one integer hash (inputs, schedules, state hashing).
constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace ar::sim
