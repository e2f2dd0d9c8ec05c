#include "sim/inputs.h"

#include <array>

#include "reference/float_bits.h"

namespace ar::sim {
namespace {

std::uint64_t hash4(std::uint64_t seed, std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  return mix64(mix64(mix64(seed ^ 0x5157A11Cull) + a) + (b << 20) + c);
}

/// A normal value of format `f` with a random sign, a random full mantissa and an exponent within +-6 of 1.0.
std::uint32_t random_normal(std::uint64_t h, FloatFormat f) {
  const std::uint32_t sign = (h & 1) ? f.sign_mask() : 0u;
  const int exponent = f.bias() - 6 + static_cast<int>((h >> 1) % 13);
  const std::uint32_t fraction = static_cast<std::uint32_t>(h >> 8) & f.fraction_mask();
  return sign | (static_cast<std::uint32_t>(exponent) << f.fraction_bits) | fraction;
}

std::uint32_t special_value(std::uint64_t h, FloatFormat f) {
  switch ((h >> 3) % 7) {
    case 0: return f.canonical_nan() ^ ((h & 1) ? f.sign_mask() : 0u) ^ 1u;  // a NaN with another payload
    case 1: return f.infinity();
    case 2: return f.infinity() | f.sign_mask();
    case 3: return 1u + static_cast<std::uint32_t>(h >> 12) % f.fraction_mask();  // positive subnormal
    case 4: return f.sign_mask();                                                 // -0
    case 5: return f.exponent_mask() - 1u;                                        // largest finite
    default: return random_normal(h >> 5, f);
  }
}

}  // namespace

InputPattern input_pattern(std::uint64_t seed, int call, std::int64_t word) {
  // The first eight words cycle through every pattern (with a seed- and call-dependent phase); the rest are
  // drawn: 70% random, 7.5% each special pattern.
  static constexpr std::array<InputPattern, 8> kCycle{
      InputPattern::kRandom, InputPattern::kSentinelPair, InputPattern::kRandom,  InputPattern::kFtzWord,
      InputPattern::kRandom, InputPattern::kCancel,       InputPattern::kSpecial, InputPattern::kRandom};
  if (word < 8) return kCycle[static_cast<std::size_t>((word + call + static_cast<std::int64_t>(seed % 8)) % 8)];
  const std::uint64_t h = hash4(seed, static_cast<std::uint64_t>(call), 0xFFFF, static_cast<std::uint64_t>(word));
  const std::uint64_t p = h % 40;
  if (p < 28) return InputPattern::kRandom;
  if (p < 31) return InputPattern::kSentinelPair;
  if (p < 34) return InputPattern::kFtzWord;
  if (p < 37) return InputPattern::kCancel;
  return InputPattern::kSpecial;
}

HostTensor make_call_inputs(std::uint64_t seed, int call, int world_size, std::int64_t tokens, std::int64_t hidden,
                            DType dtype) {
  HostTensor t(dtype, {world_size, tokens, hidden});
  const FloatFormat f = float_format(dtype);
  const int per_word = dtype_bytes(dtype) == 2 ? 2 : 1;
  const std::int64_t count = tokens * hidden;
  // The cancelling pair: -(min normal + 1 ulp) on rank 0 and +min normal on rank W-1.
  const std::uint32_t min_normal = 1u << f.fraction_bits;
  for (std::int64_t e = 0; e < count; ++e) {
    const std::int64_t word = e / per_word;
    const bool high = per_word == 2 && (e % 2) == 1;  // the element in the word's upper 16 bits
    const InputPattern pattern = input_pattern(seed, call, word);
    // Which ranks carry the pattern (sentinel and FTZ words): about half, never none.
    const std::uint64_t who = hash4(seed, static_cast<std::uint64_t>(call), 0xABCD, static_cast<std::uint64_t>(word));
    for (int r = 0; r < world_size; ++r) {
      const std::uint64_t h =
          hash4(seed, static_cast<std::uint64_t>(call), static_cast<std::uint64_t>(r), static_cast<std::uint64_t>(e));
      const bool carries = ((who >> (r % 64)) & 1) != 0 || r == static_cast<int>(who % world_size);
      std::uint32_t v = random_normal(h, f);
      switch (pattern) {
        case InputPattern::kRandom: break;
        case InputPattern::kSentinelPair:
          if (carries) v = (per_word == 1 || high) ? f.sign_mask() : 0u;
          break;
        case InputPattern::kFtzWord:
          if (carries && (per_word == 1 || high))
            v = f.sign_mask() |
                (1u + static_cast<std::uint32_t>(h >> 16) % (per_word == 1 ? f.fraction_mask() : 0x7Fu));
          break;
        case InputPattern::kCancel:
          if (per_word == 2 && !high)
            v = 0;
          else if (r == 0)
            v = f.sign_mask() | (min_normal + 1);
          else if (r == world_size - 1)
            v = min_normal;
          else
            v = 0;
          break;
        case InputPattern::kSpecial: v = special_value(h, f); break;
      }
      t.set_bits(static_cast<std::int64_t>(r) * count + e, v);
    }
  }
  return t;
}

}  // namespace ar::sim
