// The summary statistic of the probes' repeated measurements.
#pragma once

#include <algorithm>
#include <vector>

namespace ar::cuda::detail {

/// The median of `v` (not empty; the upper of the two middle values for an even count).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace ar::cuda::detail
