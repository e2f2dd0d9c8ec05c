#include "reference/exact_sum.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace ar {

void ExactSum::add_fp32(std::uint32_t bits) {
  constexpr FloatFormat f = kFp32Format;
  if (ar::is_nan(bits, f)) {
    nan_ = true;
    return;
  }
  if (is_inf(bits, f)) {
    (sign_bit(bits, f) ? negative_inf_ : positive_inf_) = true;
    return;
  }
  if (ar::is_zero(bits, f)) return;
  const WideValue v = decode_finite(bits, f);
  const int offset = v.exponent - kLsbExponent;  // 0 .. 253
  std::array<std::uint64_t, kLimbs> term{};
  const int limb = offset / 64, shift = offset % 64;
  term[limb] = v.significand << shift;
  if (shift != 0 && limb + 1 < kLimbs) term[limb + 1] = v.significand >> (64 - shift);
  if (v.negative) {  // two's complement negation
    bool carry = true;
    for (auto& w : term) {
      w = ~w;
      if (carry) carry = (++w == 0);
    }
  }
  std::uint64_t carry = 0;
  for (int i = 0; i < kLimbs; ++i) {
    const std::uint64_t a = limbs_[i], b = term[i];
    const std::uint64_t s = a + b;
    const std::uint64_t s2 = s + carry;
    carry = (s < a) || (s2 < s) ? 1 : 0;
    limbs_[i] = s2;
  }
}

std::array<std::uint64_t, ExactSum::kLimbs> ExactSum::magnitude() const {
  auto m = limbs_;
  if (negative()) {
    bool carry = true;
    for (auto& w : m) {
      w = ~w;
      if (carry) carry = (++w == 0);
    }
  }
  return m;
}

bool ExactSum::is_zero() const {
  for (auto w : limbs_)
    if (w) return false;
  return !nan_ && !positive_inf_ && !negative_inf_;
}

bool ExactSum::operator==(const ExactSum& o) const {
  if (is_nan() || o.is_nan()) return is_nan() && o.is_nan();
  return limbs_ == o.limbs_ && positive_inf_ == o.positive_inf_ && negative_inf_ == o.negative_inf_;
}

std::uint32_t ExactSum::round_to(FloatFormat f) const {
  if (is_nan()) return f.canonical_nan();
  if (positive_inf_) return f.infinity();
  if (negative_inf_) return f.sign_mask() | f.infinity();
  const auto m = magnitude();
  int top = -1;
  for (int i = kLimbs - 1; i >= 0 && top < 0; --i)
    if (m[i]) top = i * 64 + 63 - std::countl_zero(m[i]);
  if (top < 0) return 0;  // an exact zero sum is +0, as x + (-x) is under round-to-nearest
  // Take the 64 bits from `top` down as the significand; anything lower is sticky.
  const int low = std::max(top - 63, 0);
  const auto bits_at = [&m](int pos) -> std::uint64_t {  // 64 bits starting at bit `pos`
    const int limb = pos / 64, shift = pos % 64;
    std::uint64_t v = m[limb] >> shift;
    if (shift != 0 && limb + 1 < kLimbs) v |= m[limb + 1] << (64 - shift);
    return v;
  };
  bool sticky = false;
  for (int i = 0; i < low / 64; ++i) sticky = sticky || m[i] != 0;
  if (low % 64 != 0) sticky = sticky || (m[low / 64] & ((std::uint64_t{1} << (low % 64)) - 1)) != 0;
  WideValue v{negative(), bits_at(low), low + kLsbExponent, sticky};
  return round_to_format(v, f).bits;
}

double ExactSum::to_double() const {
  if (is_nan()) return std::numeric_limits<double>::quiet_NaN();
  if (positive_inf_) return HUGE_VAL;
  if (negative_inf_) return -HUGE_VAL;
  const auto m = magnitude();
  double value = 0;
  for (int i = kLimbs - 1; i >= 0; --i) value += std::ldexp(double(m[i]), 64 * i + kLsbExponent);
  return negative() ? -value : value;
}

}  // namespace ar
