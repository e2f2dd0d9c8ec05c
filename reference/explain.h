// Why two all-reduce results differ, for one output element: the fold of every (strategy, profile) pair,
// and for each pair that disagrees with the chosen one, the first step where their partial sums part as
// real numbers (or the sanitising step, when only the sign of zero differs). `mnnvl-ar explain` prints it.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "reference/fold.h"

namespace ar {

struct ExplainedFold {
  Strategy strategy = Strategy::kOneShot;  ///< resolved
  Profile profile = Profile::kFlashInfer;
  ReductionOrder order;
  FoldTrace trace;
  std::string label() const;  ///< "oneshot/flashinfer"
};

struct FoldComparison {
  const ExplainedFold* other = nullptr;
  bool same_bits = true;
  int first_rank = -1;     ///< the rank after which partial sums first differ; -1 if they never do
  std::string difference;  ///< one paragraph for people; empty when the bits agree
};

struct ElementExplanation {
  DType dtype = DType::kBf16;
  int world_size = 0;
  std::uint32_t correctly_rounded = 0;      ///< exact sum rounded once to T
  std::vector<ExplainedFold> folds;         ///< [0] is the requested one, then every other pair
  std::vector<FoldComparison> comparisons;  ///< folds[0] against folds[1..]
};

/// Explains one element whose per-rank bits are `per_rank`, for `strategy` (already resolved) and `profile`.
ElementExplanation explain_element(std::span<const std::uint32_t> per_rank, DType t, Strategy strategy,
                                   Profile profile);

/// "0x3F800000 (1)": fp32 bits in hex and their exact decimal value.
std::string format_fp32(std::uint32_t bits);
/// The same for a value of type T ("0x3F80 (1)").
std::string format_value(std::uint32_t bits, DType t);
/// One step in words, e.g. "rank 3: 0x... (x) + 0x... (y) = 0x... (z), rounded".
std::string describe_step(const FoldStep& step, DType t);

}  // namespace ar
