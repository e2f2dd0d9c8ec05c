// ExactSum: the exact real sum of fp32 values (a 320-bit fixed-point accumulator covering 2^-149 .. 2^283),
// with NaN and infinities tracked apart. Used for the accuracy report and for `explain`, which must compare
// partial sums as real numbers rather than as rounded floats.
#pragma once

#include <array>
#include <cstdint>

#include "reference/float_bits.h"

namespace ar {

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
