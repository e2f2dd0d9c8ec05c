// The seeded golden cases behind data/: every input is a function of (seed, global element index), so any
// slice can be regenerated and `mnnvl-ar data` rebuilds data/ byte for byte. Three kinds (STYLE.md 14):
//   exact  - small integers whose sum is representable in any order: catch data-movement bugs;
//   random - full-mantissa values over a wide exponent range: catch order bugs;
//   edge   - the edge cases of SPEC section 10, one scenario per element column.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference/strategy.h"
#include "reference/tensor.h"

namespace ar {

struct GoldenCase {
  std::string name;         ///< file stem, e.g. "random_bf16_w16"
  std::string kind;         ///< "exact", "random" or "edge"
  std::string description;  ///< what it holds and what it catches
  std::uint64_t seed = 0;
  HostTensor input;  ///< [W, N, D]
};

/// Every golden case, in a fixed order.
std::vector<GoldenCase> golden_cases();

/// The counter-based generator: 64 random bits for (seed, index), the same on every platform.
std::uint64_t seeded_bits(std::uint64_t seed, std::uint64_t index);

/// Random full-mantissa values of `dtype`: sign random, exponent within +-`exponent_spread` of 0.
HostTensor random_input(DType dtype, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed,
                        int exponent_spread);

/// Small integers in [-4, 4] (exact in every order for every supported W, up to kMaxWorldSize).
HostTensor exact_input(DType dtype, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed);

/// The built-in adversarial input of `mnnvl-ar compare`: random values plus the edge scenarios that make
/// strategies and profiles disagree.
HostTensor adversarial_input(DType dtype, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed);

}  // namespace ar
