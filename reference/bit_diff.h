// A bitwise comparison of two tensors as a value (nccl-tests style): how many elements differ, where the
// first one is, and how far apart they are in ULPs. Commands print it; tests REQUIRE(diff.differing == 0).
#pragma once

#include <array>
#include <cstdint>

#include "reference/tensor.h"

namespace ar {

/// Histogram buckets of ULP distances: 0, 1, 2, 3, 4-7, 8-15, 16-255, >= 256 (NaN vs number goes last).
inline constexpr std::array<const char*, 8> kUlpBucketNames{"0", "1", "2", "3", "4-7", "8-15", "16-255", ">=256"};
int ulp_bucket(std::uint64_t ulps);

struct BitDiff {
  std::int64_t elements = 0;
  std::int64_t differing = 0;     ///< elements whose bits differ (+0 vs -0 counts; any NaN vs any NaN too)
  std::int64_t first_index = -1;  ///< flat index of the first differing element
  std::uint32_t first_a = 0, first_b = 0;
  std::int64_t zero_sign_only = 0;          ///< differing only as +0 vs -0
  std::int64_t nan_mismatches = 0;          ///< NaN on one side only, or two NaNs with different bits
  std::uint64_t max_ulp = 0;                ///< over differing non-NaN pairs
  std::array<std::int64_t, 8> histogram{};  ///< of differing elements, by ulp_bucket
};

/// Compares `a` and `b` bit for bit. They must have the same dtype, shape and size (throws
/// std::invalid_argument): tensors that differ in any of these never compare as equal.
BitDiff compare_bits(const HostTensor& a, const HostTensor& b);

}  // namespace ar
