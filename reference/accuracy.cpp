#include "reference/accuracy.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include <Eigen/Core>

#include "reference/all_reduce.h"
#include "reference/bit_diff.h"
#include "reference/exact_sum.h"
#include "reference/float_bits.h"

namespace ar {
namespace {

struct ExactColumns {
  HostTensor rounded;        // [N, D] in T
  Eigen::ArrayXd as_double;  // exact sums as doubles
};

ExactColumns exact_columns(const HostTensor& input) {
  const ProblemShape s = shape_of_input(input);
  if (auto why = validate_shape(s)) throw std::invalid_argument(*why);
  const std::int64_t count = s.elements_per_rank();
  ExactColumns cols{HostTensor(s.dtype, {s.tokens, s.hidden}), Eigen::ArrayXd(count)};
  const FloatFormat f = float_format(s.dtype);
  for (std::int64_t i = 0; i < count; ++i) {
    ExactSum sum;
    for (int r = 0; r < s.world_size; ++r) sum.add_fp32(widen_to_fp32(input.bits(r * count + i), s.dtype));
    cols.rounded.set_bits(i, sum.round_to(f));
    cols.as_double[i] = sum.to_double();
  }
  return cols;
}

}  // namespace

HostTensor correctly_rounded_sum(const HostTensor& input) { return exact_columns(input).rounded; }

AccuracyReport accuracy_report(const HostTensor& input, const std::vector<std::pair<Strategy, Profile>>& runs) {
  AccuracyReport report;
  report.shape = shape_of_input(input);
  const ExactColumns exact = exact_columns(input);
  const FloatFormat f = float_format(input.dtype());
  const std::int64_t count = report.shape.elements_per_rank();
  for (const auto& [strategy, profile] : runs) {
    const HostTensor out = reference_all_reduce(input, strategy, profile);
    AccuracyRow row;
    row.strategy = resolve_strategy(strategy, report.shape);
    row.profile = profile;
    row.elements = count;
    Eigen::ArrayXd ulps(count), abs_error = Eigen::ArrayXd::Zero(count);
    for (std::int64_t i = 0; i < count; ++i) {
      const std::uint32_t got = out.bits(i), best = exact.rounded.bits(i);
      std::uint64_t d = 0;
      if (is_nan(got, f) || is_nan(best, f)) {
        row.nan_outputs += is_nan(got, f) ? 1 : 0;
        d = (is_nan(got, f) && is_nan(best, f)) ? 0 : std::numeric_limits<std::uint32_t>::max();
      } else {
        d = ulp_distance(got, best, input.dtype());
        const double value = to_double(got, input.dtype());
        if (std::isfinite(value) && std::isfinite(exact.as_double[i]))
          abs_error[i] = std::abs(value - exact.as_double[i]);
      }
      row.correctly_rounded += got == best ? 1 : 0;
      row.max_ulp = std::max(row.max_ulp, d);
      ulps[i] = double(d);
      ++row.histogram[ulp_bucket(d)];
    }
    row.mean_ulp = count ? ulps.mean() : 0.0;
    row.max_abs_error = count ? abs_error.maxCoeff() : 0.0;
    report.rows.push_back(row);
  }
  return report;
}

}  // namespace ar
