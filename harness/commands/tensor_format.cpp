#include "harness/commands/tensor_format.h"

#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "reference/explain.h"

namespace ar {

std::string format_index(const std::vector<std::int64_t>& shape, std::int64_t flat) {
  std::vector<std::int64_t> idx(shape.size());
  for (std::size_t k = shape.size(); k-- > 0;) {
    idx[k] = shape[k] ? flat % shape[k] : 0;
    flat = shape[k] ? flat / shape[k] : 0;
  }
  return fmt::format("[{}]", fmt::join(idx, ", "));
}

void print_bit_diff(std::ostream& out, const BitDiff& d, const HostTensor& t, const std::string& name_a,
                    const std::string& name_b) {
  if (d.differing == 0) {
    fmt::print(out, "identical: all {} elements have the same bits\n", d.elements);
    return;
  }
  fmt::print(out, "{} of {} elements differ ({:.4g}%)\n", d.differing, d.elements,
             100.0 * double(d.differing) / double(d.elements));
  fmt::print(out, "first at {}: {} = {}, {} = {}\n", format_index(t.shape(), d.first_index), name_a,
             format_value(d.first_a, t.dtype()), name_b, format_value(d.first_b, t.dtype()));
  fmt::print(out, "max ULP distance {} (NaN mismatches {}, +0/-0 only {})\n", d.max_ulp, d.nan_mismatches,
             d.zero_sign_only);
  fmt::print(out, "ULP histogram of the differing elements:\n");
  for (std::size_t b = 0; b < d.histogram.size(); ++b)
    if (d.histogram[b]) fmt::print(out, "  {:>7} ULP: {}\n", kUlpBucketNames[b], d.histogram[b]);
}

}  // namespace ar
