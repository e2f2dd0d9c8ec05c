// ExactSum: the exact real sum of fp32 values (a 320-bit fixed-point accumulator covering 2^-149 .. 2^283),
// with NaN and infinities tracked apart. Used for the accuracy report, for `explain`, which must compare
// partial sums as real numbers rather than as rounded floats, and for the invariant profile's exact order;
// and double_sum_is_exact: when a plain double sum is exact too (the host engine and the kernels use it).
#pragma once

#include <array>
#include <cstdint>

#include "reference/float_bits.h"

namespace ar {

/// Whether adding `world` values of format `f` (finite, widened to fp32 bits; `largest_bits` and
/// `smallest_bits` the largest and smallest non-zero magnitude, 0 when all are zeros) in doubles, in any
/// order, is exact: every value is a multiple of the smallest one's last bit 2^lsb (at T's precision, T's
/// subnormal step below its smallest normal), and every partial sum lies below world * 2^top with top the
/// largest one's binade, so a double holds them all when world * 2^top <= 2^(53 + lsb). constexpr, so the
/// kernels (cuda/detail/exact_fold.cuh) ask the same question as the host engine.
constexpr bool double_sum_is_exact(std::uint32_t largest_bits, std::uint32_t smallest_bits, int world,
                                   FloatFormat f) {
  const int smallest_normal_field = 127 + 1 - f.bias();  // the fp32 exponent field of T's smallest normal
  const int top_field = static_cast<int>(largest_bits >> 23);
  int low_field = static_cast<int>(smallest_bits >> 23);
  if (low_field < smallest_normal_field) low_field = smallest_normal_field;
  if (low_field < 1) low_field = 1;
  int log2_world = 0;
  while ((1 << log2_world) < world) ++log2_world;
  return top_field - low_field <= 52 - f.fraction_bits - log2_world;
}

class ExactSum {
 public:
  /// Adds an fp32 value exactly (subnormals included: nothing is flushed here).
  void add_fp32(std::uint32_t bits);

  /// The sum rounded once to `f` with RN-even; NaN (also +Inf + -Inf) gives f's canonical NaN.
  std::uint32_t round_to(FloatFormat f) const;
  /// The sum as a double (rounded; for printing and statistics).
  double to_double() const;

  bool is_nan() const { return nan_ || (positive_inf_ && negative_inf_); }
  bool is_zero() const;
  /// An infinity was added (and no NaN): the sum is that infinity, whatever the finite part.
  bool is_infinite() const { return !is_nan() && (positive_inf_ || negative_inf_); }
  /// Exact equality of the represented values (NaN equals NaN here: both are "no number").
  bool operator==(const ExactSum& o) const;

 private:
  static constexpr int kLimbs = 5;
  static constexpr int kLsbExponent = -149;  // 2^-149, the smallest fp32 subnormal
  bool negative() const { return (limbs_[kLimbs - 1] >> 63) != 0; }
  std::array<std::uint64_t, kLimbs> magnitude() const;

  std::array<std::uint64_t, kLimbs> limbs_{};  // two's complement, little-endian limbs
  bool nan_ = false;
  bool positive_inf_ = false;
  bool negative_inf_ = false;
};

}  // namespace ar
