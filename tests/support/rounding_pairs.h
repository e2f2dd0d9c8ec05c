// Partners of a value of bf16 or fp16 where a sum rounded twice (to fp32, then to T) could part from the sum
// rounded once: ties, near-ties, cancellation, overflow, the bits where fp32 starts to round. Shared by the
// model's test of that claim (tests/reference/exact_pair_fold_test.cpp, reference exact_pair_fold) and the
// kernels' (tests/cuda/fused_test.cpp).
// Header-only, plain C++.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "reference/float_bits.h"

namespace ar::test {

/// A seeded stream of 32-bit values (a 64-bit LCG's high half).
struct BitStream {
  std::uint64_t state = 1;
  std::uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(state >> 32);
  }
};

/// 64 partners of `a` (bits of format f, 16-bit): a itself (overflow at the top binade), -a (an exact zero),
/// a's neighbours, half a step of T at a's binade (a true tie) and values one step of their own beside it,
/// values 24 to 26 binades below a (where fp32 rounds a + b), then random values, mostly within 30 binades.
inline std::vector<std::uint32_t> rounding_partners(std::uint32_t a, FloatFormat f, BitStream& bits) {
  const std::uint32_t all = f.sign_mask() | f.exponent_mask() | f.fraction_mask();
  const int field = static_cast<int>((a & ~f.sign_mask()) >> f.fraction_bits);
  const auto with_field = [&](int e, std::uint32_t fraction, bool negative) {
    const std::uint32_t m = (std::uint32_t(std::clamp(e, 0, (1 << f.exponent_bits) - 1)) << f.fraction_bits) |
                            (fraction & f.fraction_mask());
    return m | (negative ? f.sign_mask() : 0u);
  };
  std::vector<std::uint32_t> b;
  b.push_back(a);
  b.push_back(a ^ f.sign_mask());
  for (int d : {-1, 1}) b.push_back((a + d) & all);
  for (bool negative : {false, true}) {
    const int half = field - f.fraction_bits - 1;
    for (std::uint32_t fraction : {0u, 1u, f.fraction_mask()}) b.push_back(with_field(half, fraction, negative));
    b.push_back(with_field(half - 1, f.fraction_mask(), negative));
    for (int gap = 24; gap <= 26; ++gap) b.push_back(with_field(field - gap, bits.next(), negative));
  }
  while (b.size() < 64) {
    const std::uint32_t r = bits.next();
    b.push_back(r % 4 == 0 ? r & all : with_field(field + int(r % 61) - 30, r >> 8, (r >> 7) & 1));
  }
  return b;
}

}  // namespace ar::test
