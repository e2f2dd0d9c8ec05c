// The fused all-reduce + residual-add + RMSNorm against the best any implementation could give with its
// residual output in T: what `compare` and `accuracy` measure the strategies and profiles against.
//
// "Correctly rounded" means, for one token of D elements:
//   residual_out* = RN_T(sum over ranks of input + residual)                      (the exact sum, rounded once)
//   normalized*_i = RN_T(pre*_i / sqrt(sum_j pre*_j^2 / D + eps) * (wb + gamma_i))  with pre* = residual_out*
// where eps and wb are the fp32 values the kernel holds, gamma is in T, and RN_T is one round-to-nearest-even
// to T with subnormals and overflow to infinity (no flush-to-zero). Nothing before that one rounding is
// rounded: the sum of squares and wb + gamma are exact, and the rounding decision is made against T's
// rounding boundaries exactly (an estimate in long double settles all but the values within its error of a
// boundary; those are compared exactly in integers).
//
// Special values as IEEE arithmetic gives them for that expression: a NaN anywhere in the row (or a negative
// mean + eps) makes the row NaN; an infinite pre makes the root infinite, so finite pre give zeros and the
// infinite one NaN; a zero root gives infinities (NaN for 0/0); a NaN gamma gives NaN, an infinite one
// infinities (NaN against a zero ratio). A zero result is signed like pre * (wb + gamma), the exact zero sum
// wb + gamma being +0 unless both are -0.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "reference/fused_rms_norm.h"

namespace ar {

/// The correctly rounded outputs above, both [N, D] of the input's dtype.
struct CorrectlyRoundedFused {
  HostTensor normalized;
  HostTensor residual_out;
};

/// `input` [W, N, D], `residual` [N, D], `gamma` [D] of one dtype; `epsilon` and `weight_bias` as fp32 bits.
/// Throws std::invalid_argument naming the problem for shapes or dtypes that do not go together.
CorrectlyRoundedFused correctly_rounded_fused(const HostTensor& input, const HostTensor& residual,
                                              const HostTensor& gamma, std::uint32_t epsilon,
                                              std::uint32_t weight_bias);

/// How far one output is from its correctly rounded value, element by element.
struct UlpStats {
  std::int64_t elements = 0;
  std::int64_t correctly_rounded = 0;  ///< bits equal to the correctly rounded value (+0 and -0 differ)
  std::int64_t nan_outputs = 0;        ///< NaN outputs (a NaN against a NaN is no error)
  std::uint64_t max_ulp = 0;           ///< a NaN against a number counts 2^32 - 1
  double mean_ulp = 0;
  /// Elements by ULP distance, buckets as kUlpBucketNames (bit_diff.h); NaN vs number lands in the last.
  std::array<std::int64_t, 8> histogram{};
};

/// `got` against `best`, both of one dtype and shape.
UlpStats ulp_stats(const HostTensor& got, const HostTensor& best);

struct FusedAccuracyRow {
  Strategy strategy = Strategy::kOneShot;  ///< resolved
  Profile profile = Profile::kFlashInfer;
  FusedResult result;     ///< the model's outputs
  UlpStats normalized;    ///< against CorrectlyRoundedFused::normalized
  UlpStats residual_out;  ///< against CorrectlyRoundedFused::residual_out
};

struct FusedAccuracyReport {
  ProblemShape shape;
  CorrectlyRoundedFused best;
  std::vector<FusedAccuracyRow> rows;
};

/// Runs the fused model for every (strategy, profile) given, with `options`' epsilon, weight bias, SM count
/// and MUFU models, and measures each against the correctly rounded outputs. Throws std::invalid_argument as
/// reference_fused_rms_norm does.
FusedAccuracyReport fused_accuracy_report(const HostTensor& input, const HostTensor& residual, const HostTensor& gamma,
                                          const FusedOptions& options,
                                          const std::vector<std::pair<Strategy, Profile>>& runs);

}  // namespace ar
