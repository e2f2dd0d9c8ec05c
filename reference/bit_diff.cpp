#include "reference/bit_diff.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "reference/float_bits.h"

namespace ar {

int ulp_bucket(std::uint64_t ulps) {
  if (ulps <= 3) return static_cast<int>(ulps);
  if (ulps < 8) return 4;
  if (ulps < 16) return 5;
  if (ulps < 256) return 6;
  return 7;
}

BitDiff compare_bits(const HostTensor& a, const HostTensor& b) {
  if (a.dtype() != b.dtype()) throw std::invalid_argument("cannot compare tensors of different dtypes");
  if (a.shape() != b.shape()) throw std::invalid_argument("cannot compare tensors of different shapes");
  // Equal shapes hold equal bytes (HostTensor checks its size); compared anyway, since a difference here
  // would let two different tensors compare as equal over the shorter one.
  if (a.bytes().size() != b.bytes().size()) throw std::invalid_argument("cannot compare tensors of different sizes");
  const DType t = a.dtype();
  const FloatFormat f = float_format(t);
  BitDiff d;
  d.elements = a.size();
  for (std::int64_t i = 0; i < a.size(); ++i) {
    const std::uint32_t x = a.bits(i), y = b.bits(i);
    if (x == y) continue;
    if (d.differing++ == 0) {
      d.first_index = i;
      d.first_a = x;
      d.first_b = y;
    }
    if (is_nan(x, f) || is_nan(y, f)) {
      ++d.nan_mismatches;
      ++d.histogram.back();
      continue;
    }
    const std::uint64_t ulps = ulp_distance(x, y, t);
    if (ulps == 0) ++d.zero_sign_only;
    d.max_ulp = std::max(d.max_ulp, ulps);
    ++d.histogram[ulp_bucket(ulps)];
  }
  return d;
}

}  // namespace ar
