// The seeded golden cases behind data/: every input is a function of (seed, global element index), so any
// slice can be regenerated and `mnnvl-ar data` rebuilds data/ byte for byte. Three kinds (STYLE.md 14):
//   exact  - small integers whose sum is representable in any order: catch data-movement bugs;
//   random - full-mantissa values over a wide exponent range: catch order bugs;
//   edge   - the edge cases of SPEC section 10, one scenario per element column.
// The fused cases (golden_fused_cases) add a residual, gamma, epsilon, weight bias and SM count to an input:
// FlashInfer's fused all-reduce + residual-add + RMSNorm (SPEC section 7, docs/fused.md). The quantised
// cases (golden_quant_cases) are fused inputs with the quantisations of SPEC section 13 applied to their
// normalised output (docs/quant.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "reference/fused_launch.h"
#include "reference/fused_quant.h"
#include "reference/strategy.h"
#include "reference/tensor.h"

namespace ar {

/// What the fused call takes besides the all-reduce input.
struct GoldenFusedInputs {
  HostTensor residual;             ///< [N, D], the input's dtype
  HostTensor gamma;                ///< [D], the input's dtype
  std::uint32_t epsilon = 0;       ///< fp32 bits, as the kernel holds it
  std::uint32_t weight_bias = 0;   ///< fp32 bits
  int sm_count = kDefaultSmCount;  ///< the SM count the launch shape (and so the sum of squares) is for
};

/// One quantisation of a quantised golden case.
struct GoldenQuantVariant {
  std::string name;  ///< unique within its case, e.g. "nvfp4-swizzled-g1"
  QuantOptions options;
};

struct GoldenCase {
  std::string name;         ///< file stem, e.g. "random_bf16_w16"
  std::string kind;         ///< "exact", "random" or "edge"
  std::string description;  ///< what it holds and what it catches
  std::uint64_t seed = 0;
  HostTensor input;                        ///< [W, N, D]
  std::optional<GoldenFusedInputs> fused;  ///< set for the fused and the quantised cases
  std::vector<GoldenQuantVariant> quant;   ///< set for the quantised cases only
};

/// Every all-reduce golden case, in a fixed order (none has a fused part).
std::vector<GoldenCase> golden_cases();

/// Every fused golden case, in a fixed order (each has a fused part). Their shapes are launches FlashInfer
/// makes for both strategies, with no ONESHOT thread beyond the row (norm_launch, exited_threads() == 0).
std::vector<GoldenCase> golden_fused_cases();

/// Every quantised golden case, in a fixed order: fused inputs (each has a fused part) and the quantisations
/// applied to their normalised output. Their shapes are launches FlashInfer makes for both strategies, with no
/// ONESHOT thread beyond the row.
std::vector<GoldenCase> golden_quant_cases();

/// The counter-based generator: 64 random bits for (seed, index), the same on every platform.
std::uint64_t seeded_bits(std::uint64_t seed, std::uint64_t index);

/// Random full-mantissa values of `dtype`: sign random, exponent within +-`exponent_spread` of 0.
HostTensor random_input(DType dtype, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed,
                        int exponent_spread);

/// Small integers in [-4, 4] (exact in every order for every supported W, up to kMaxWorldSize).
HostTensor exact_input(DType dtype, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed);

/// One token ([W, 1, D], bf16 or fp32) whose every element sums to a negative fp32 subnormal, which FTZ adds
/// flush to -0: the last two ranks hold -1.5 * 2^-126 and +2^-126, the others +0, which come first (a later
/// +0 would turn the -0 back into +0). What separates ONESHOT's kept -0 from TWOSHOT's +0 (fp16 sums never
/// fall below 2^-24, so fp16 has no such token).
HostTensor flushed_negative_sum_token(DType dtype, int world, std::int64_t hidden);

/// The built-in adversarial input of `mnnvl-ar compare`: random values plus the edge scenarios that make
/// strategies and profiles disagree.
HostTensor adversarial_input(DType dtype, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed);

}  // namespace ar
