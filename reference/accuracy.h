// What the reduction order costs: each strategy's and profile's output compared with the exact sum, rounded
// once to T (the best any order could give), in units in the last place.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "reference/strategy.h"
#include "reference/tensor.h"

namespace ar {

struct AccuracyRow {
  Strategy strategy = Strategy::kOneShot;  ///< resolved
  Profile profile = Profile::kFlashInfer;
  std::int64_t elements = 0;
  std::int64_t correctly_rounded = 0;  ///< bits equal to the exact sum rounded once to T
  std::int64_t nan_outputs = 0;        ///< NaN where the exact sum is NaN too are not errors
  std::uint64_t max_ulp = 0;
  double mean_ulp = 0;
  double max_abs_error = 0;  ///< |output - exact| in fp64 over finite outputs
  /// Elements by ULP distance, buckets as kUlpBucketNames (bit_diff.h); NaN vs number lands in the last.
  std::array<std::int64_t, 8> histogram{};
};

struct AccuracyReport {
  ProblemShape shape;
  std::vector<AccuracyRow> rows;
};

/// Compares every (strategy, profile) pair given with the exact sum of `input` ([W, N, D]). Throws
/// std::invalid_argument naming the problem for a shape validate_shape refuses (as reference_all_reduce).
AccuracyReport accuracy_report(const HostTensor& input, const std::vector<std::pair<Strategy, Profile>>& runs);

/// The exact per-element sums of `input` rounded once to its dtype (the same shape checks).
HostTensor correctly_rounded_sum(const HostTensor& input);

}  // namespace ar
