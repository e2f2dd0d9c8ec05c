#include "reference/fused_accuracy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "reference/all_reduce.h"
#include "reference/bit_diff.h"
#include "reference/exact_sum.h"
#include "reference/float_bits.h"

namespace ar {
namespace {

/// A non-negative integer of any size: little-endian 32-bit limbs, no leading zero limbs.
class BigUnsigned {
 public:
  BigUnsigned() = default;
  explicit BigUnsigned(std::uint64_t v) { add_shifted(v, 0); }

  /// *this += v * 2^shift.
  void add_shifted(std::uint64_t v, int shift) {
    if (v == 0) return;
    const auto limb = static_cast<std::size_t>(shift / 32);
    __extension__ unsigned __int128 w = static_cast<unsigned __int128>(v) << (shift % 32);
    if (limbs_.size() < limb + 3) limbs_.resize(limb + 3, 0);
    std::uint64_t carry = 0;
    for (std::size_t i = limb; i < limbs_.size() && (w != 0 || carry != 0); ++i) {
      const std::uint64_t s = std::uint64_t{limbs_[i]} + static_cast<std::uint32_t>(w) + carry;
      limbs_[i] = static_cast<std::uint32_t>(s);
      carry = s >> 32;
      w >>= 32;
      if (i + 1 == limbs_.size() && (w != 0 || carry != 0)) limbs_.push_back(0);
    }
    trim();
  }

  /// *this += b.
  void add(const BigUnsigned& b) {
    if (limbs_.size() < b.limbs_.size() + 1) limbs_.resize(b.limbs_.size() + 1, 0);
    std::uint64_t carry = 0;
    for (std::size_t i = 0; i < limbs_.size(); ++i) {
      const std::uint64_t s = std::uint64_t{limbs_[i]} + (i < b.limbs_.size() ? b.limbs_[i] : 0) + carry;
      limbs_[i] = static_cast<std::uint32_t>(s);
      carry = s >> 32;
    }
    if (carry != 0) limbs_.push_back(static_cast<std::uint32_t>(carry));
    trim();
  }

  /// *this -= b, for b <= *this.
  void subtract(const BigUnsigned& b) {
    std::int64_t borrow = 0;
    for (std::size_t i = 0; i < limbs_.size(); ++i) {
      std::int64_t d = std::int64_t{limbs_[i]} - (i < b.limbs_.size() ? b.limbs_[i] : 0) - borrow;
      borrow = d < 0 ? 1 : 0;
      limbs_[i] = static_cast<std::uint32_t>(d + (borrow << 32));
    }
    trim();
  }

  BigUnsigned times(const BigUnsigned& b) const {
    BigUnsigned p;
    if (is_zero() || b.is_zero()) return p;
    p.limbs_.assign(limbs_.size() + b.limbs_.size(), 0);
    for (std::size_t i = 0; i < limbs_.size(); ++i) {
      std::uint64_t carry = 0;
      for (std::size_t j = 0; j < b.limbs_.size(); ++j) {
        const std::uint64_t t = std::uint64_t{limbs_[i]} * b.limbs_[j] + p.limbs_[i + j] + carry;
        p.limbs_[i + j] = static_cast<std::uint32_t>(t);
        carry = t >> 32;
      }
      p.limbs_[i + b.limbs_.size()] = static_cast<std::uint32_t>(carry);
    }
    p.trim();
    return p;
  }

  BigUnsigned shifted_left(int bits) const {
    BigUnsigned r;
    if (is_zero()) return r;
    const auto whole = static_cast<std::size_t>(bits / 32);
    const int part = bits % 32;
    r.limbs_.assign(whole + limbs_.size() + 1, 0);
    for (std::size_t i = 0; i < limbs_.size(); ++i) {
      const std::uint64_t v = std::uint64_t{limbs_[i]} << part;
      r.limbs_[whole + i] |= static_cast<std::uint32_t>(v);
      r.limbs_[whole + i + 1] |= static_cast<std::uint32_t>(v >> 32);
    }
    r.trim();
    return r;
  }

  bool is_zero() const { return limbs_.empty(); }

  /// value * 2^exponent, from the top three limbs (relative error below 2^-63).
  long double to_long_double(int exponent) const {
    long double v = 0;
    const std::size_t n = limbs_.size();
    for (std::size_t i = n; i-- > 0 && i + 3 >= n;)
      v += std::ldexp(static_cast<long double>(limbs_[i]), static_cast<int>(32 * i) + exponent);
    return v;
  }

  friend int compare(const BigUnsigned& a, const BigUnsigned& b) {
    if (a.limbs_.size() != b.limbs_.size()) return a.limbs_.size() < b.limbs_.size() ? -1 : 1;
    for (std::size_t i = a.limbs_.size(); i-- > 0;)
      if (a.limbs_[i] != b.limbs_[i]) return a.limbs_[i] < b.limbs_[i] ? -1 : 1;
    return 0;
  }

 private:
  void trim() {
    while (!limbs_.empty() && limbs_.back() == 0) limbs_.pop_back();
  }
  std::vector<std::uint32_t> limbs_;
};

/// Sign of a * 2^ea - b * 2^eb.
int compare_scaled(const BigUnsigned& a, int ea, const BigUnsigned& b, int eb) {
  return ea >= eb ? compare(a.shifted_left(ea - eb), b) : compare(a, b.shifted_left(eb - ea));
}

// Every fp32 (and so every T) value is a multiple of 2^-149; squares of them are multiples of 2^-298.
constexpr int kValueLsb = -149;
constexpr int kSquareLsb = 2 * kValueLsb;

/// wb + f(gamma), exactly: a multiple of 2^-149 with a sign, or a NaN or an infinity.
struct GammaTerm {
  bool nan = false, infinite = false, negative = false;
  BigUnsigned magnitude;   ///< times 2^-149
  long double approx = 0;  ///< |wb + gamma|
  bool zero() const { return !nan && !infinite && magnitude.is_zero(); }
};

/// a - b with its sign (negative when b > a); an exact zero is +0.
BigUnsigned signed_difference(BigUnsigned a, const BigUnsigned& b, bool& negative) {
  const int c = compare(a, b);
  negative = c < 0;
  if (c < 0) {
    BigUnsigned r = b;
    r.subtract(a);
    return r;
  }
  a.subtract(b);
  return a;
}

/// |bits| of fp32 as a multiple of 2^-149.
BigUnsigned scaled_magnitude(std::uint32_t bits) {
  BigUnsigned v;
  if (!is_zero(bits, kFp32Format)) {
    const WideValue w = decode_finite(bits, kFp32Format);
    v.add_shifted(w.significand, w.exponent - kValueLsb);
  }
  return v;
}

GammaTerm gamma_term(std::uint32_t weight_bias, std::uint32_t gamma, DType t) {
  constexpr FloatFormat f = kFp32Format;
  const std::uint32_t g = widen_to_fp32(gamma, t);
  GammaTerm term;
  term.nan = is_nan(g, f);
  term.infinite = is_inf(g, f);
  if (term.nan || term.infinite) {
    term.negative = sign_bit(g, f);
    return term;
  }
  const bool wb_negative = sign_bit(weight_bias, f), g_negative = sign_bit(g, f);
  if (wb_negative == g_negative) {
    term.magnitude = scaled_magnitude(weight_bias);
    term.magnitude.add(scaled_magnitude(g));
    term.negative = wb_negative;  // -0 only for (-0) + (-0)
  } else {
    term.magnitude = signed_difference(scaled_magnitude(weight_bias), scaled_magnitude(g), term.negative);
    term.negative = term.negative ? g_negative : wb_negative;
    if (term.magnitude.is_zero()) term.negative = false;  // x + (-x) = +0
  }
  term.approx = term.magnitude.to_long_double(kValueLsb);
  return term;
}

/// The root sqrt(sum / D + eps) of one row, kept as D * (sum / D + eps) = sum + D * eps exactly.
struct Root {
  enum Kind : std::uint8_t { kFinite, kInfinite, kZero, kNan } kind = kFinite;
  BigUnsigned d_times_square;  ///< sum + D * eps, times 2^-298 (kFinite)
  std::int64_t hidden = 0;
  long double approx = 0;  ///< the root
};

Root row_root(const std::uint32_t* pre, std::int64_t hidden, DType t, std::uint32_t epsilon) {
  const FloatFormat f = float_format(t);
  Root root;
  root.hidden = hidden;
  BigUnsigned sum;
  for (std::int64_t d = 0; d < hidden; ++d) {
    const std::uint32_t x = pre[d];
    if (is_nan(x, f)) {
      root.kind = Root::kNan;
      return root;
    }
    if (is_inf(x, f)) root.kind = Root::kInfinite;
    if (root.kind == Root::kInfinite || is_zero(x, f)) continue;
    const WideValue v = decode_finite(x, f);
    sum.add_shifted(v.significand * v.significand, 2 * v.exponent - kSquareLsb);
  }
  if (root.kind == Root::kInfinite) return root;
  BigUnsigned d_eps = scaled_magnitude(epsilon).times(BigUnsigned(static_cast<std::uint64_t>(hidden)));
  d_eps = d_eps.shifted_left(kValueLsb - kSquareLsb);
  bool negative = false;
  if (sign_bit(epsilon, kFp32Format)) {
    root.d_times_square = signed_difference(sum, d_eps, negative);
  } else {
    root.d_times_square = sum;
    root.d_times_square.add(d_eps);
  }
  if (negative)
    root.kind = Root::kNan;  // the square root of a negative mean + eps
  else if (root.d_times_square.is_zero())
    root.kind = Root::kZero;
  else
    root.approx = std::sqrt(root.d_times_square.to_long_double(kSquareLsb) / static_cast<long double>(hidden));
  return root;
}

/// A finite value of T, or the power of two past the largest (the "next" of the largest finite value), as
/// significand * 2^exponent.
struct Dyadic {
  std::uint64_t significand = 0;
  int exponent = 0;
};

Dyadic dyadic_of(std::uint32_t magnitude, FloatFormat f) {
  if (magnitude == 0) return {0, 0};
  if (magnitude == f.infinity()) return {1, f.bias() + 1};
  const WideValue v = decode_finite(magnitude, f);
  return {v.significand, v.exponent};
}

/// The midpoint of the values of T with magnitudes k and k + 1.
Dyadic midpoint(std::uint32_t k, FloatFormat f) {
  const Dyadic a = dyadic_of(k, f), b = dyadic_of(k + 1, f);
  if (a.significand == 0) return {b.significand, b.exponent - 1};
  const int e = std::min(a.exponent, b.exponent);
  return {(a.significand << (a.exponent - e)) + (b.significand << (b.exponent - e)), e - 1};
}

long double value_of(std::uint32_t magnitude, FloatFormat f) {
  const Dyadic d = dyadic_of(magnitude, f);
  return std::ldexp(static_cast<long double>(d.significand), d.exponent);
}

/// The sign of |pre * g| / root - m, exactly: the sign of pre^2 g^2 D - m^2 (sum + D eps).
int compare_with(const WideValue& pre, const GammaTerm& g, const Root& root, const Dyadic& m) {
  const BigUnsigned lhs = BigUnsigned(pre.significand * pre.significand)
                              .times(BigUnsigned(static_cast<std::uint64_t>(root.hidden)))
                              .times(g.magnitude)
                              .times(g.magnitude);
  const BigUnsigned rhs = BigUnsigned(m.significand * m.significand).times(root.d_times_square);
  // lhs carries 2^(2 e_pre + 2 * -149), rhs 2^(2 e_m - 298): the same 2^-298 on both sides.
  return compare_scaled(lhs, 2 * pre.exponent, rhs, 2 * m.exponent);
}

/// RN_T(|pre * g| / root) for finite, non-zero pre and g and a finite root: the long double estimate's
/// rounding, checked exactly where the estimate lies within its error of a rounding boundary.
std::uint32_t rounded_magnitude(std::uint32_t pre, const GammaTerm& g, const Root& root, DType t) {
  const FloatFormat f = float_format(t);
  const WideValue p = decode_finite(pre & ~f.sign_mask(), f);
  const long double y = std::ldexp(static_cast<long double>(p.significand), p.exponent) * g.approx / root.approx;
  int e = 0;
  const long double m = std::frexp(y, &e);
  std::uint32_t k = round_to_format({false, static_cast<std::uint64_t>(std::ldexp(m, 64)), e - 64, false}, f).bits;
  // Each of the estimate's few operations errs by at most 2^-(digits - 1) relatively; 2^-(digits - 8) is
  // far beyond their sum, and far below T's spacing.
  const long double bound = std::ldexp(y, -(std::numeric_limits<long double>::digits - 8));
  const auto decide = [&](std::uint32_t low) {  // between low and low + 1, exactly
    const int c = compare_with(p, g, root, midpoint(low, f));
    return c > 0 ? low + 1 : c < 0 ? low : (low % 2 == 0 ? low : low + 1);  // a tie goes to the even pattern
  };
  if (k < f.infinity() && std::fabs(y - (value_of(k, f) + value_of(k + 1, f)) / 2) <= bound) return decide(k);
  if (k > 0 && std::fabs(y - (value_of(k - 1, f) + value_of(k, f)) / 2) <= bound) return decide(k - 1);
  return k;
}

std::uint32_t normalized_element(std::uint32_t pre, const GammaTerm& g, const Root& root, DType t) {
  const FloatFormat f = float_format(t);
  const std::uint32_t nan = f.canonical_nan(), inf = f.infinity();
  if (g.nan || root.kind == Root::kNan) return nan;
  const std::uint32_t sign = sign_bit(pre, f) != g.negative ? f.sign_mask() : 0u;
  const bool pre_zero = is_zero(pre, f);
  switch (root.kind) {
    case Root::kInfinite:  // pre / Inf: zeros, and NaN for the infinite pre; then times g
      return is_inf(pre, f) || g.infinite ? nan : sign;
    case Root::kZero:  // pre / 0: infinities, and NaN for 0 / 0; then times g
      return pre_zero || g.zero() ? nan : sign | inf;
    case Root::kFinite:
    case Root::kNan: break;
  }
  if (g.infinite) return pre_zero ? nan : sign | inf;
  if (pre_zero || g.zero()) return sign;
  return sign | rounded_magnitude(pre, g, root, t);
}

void check_operands(const HostTensor& input, const HostTensor& residual, const HostTensor& gamma) {
  const ProblemShape s = shape_of_input(input);
  if (auto why = validate_shape(s)) throw std::invalid_argument(*why);
  if (residual.dtype() != s.dtype || gamma.dtype() != s.dtype)
    throw std::invalid_argument("residual and gamma must have the input's dtype " + std::string(dtype_name(s.dtype)));
  if (residual.shape() != std::vector<std::int64_t>{s.tokens, s.hidden} ||
      gamma.shape() != std::vector<std::int64_t>{s.hidden})
    throw std::invalid_argument("the residual must be [N, D] and gamma [D] for the input's [W, N, D]");
}

}  // namespace

CorrectlyRoundedFused correctly_rounded_fused(const HostTensor& input, const HostTensor& residual,
                                              const HostTensor& gamma, std::uint32_t epsilon,
                                              std::uint32_t weight_bias) {
  check_operands(input, residual, gamma);
  const ProblemShape s = shape_of_input(input);
  const DType t = s.dtype;
  const FloatFormat f = float_format(t);
  const std::int64_t count = s.elements_per_rank(), width = s.hidden;
  CorrectlyRoundedFused best{HostTensor(t, {s.tokens, width}), HostTensor(t, {s.tokens, width})};
  for (std::int64_t i = 0; i < count; ++i) {
    ExactSum sum;
    for (int r = 0; r < s.world_size; ++r) sum.add_fp32(widen_to_fp32(input.bits(r * count + i), t));
    sum.add_fp32(widen_to_fp32(residual.bits(i), t));
    best.residual_out.set_bits(i, sum.round_to(f));
  }
  std::vector<GammaTerm> g;
  for (std::int64_t d = 0; d < width; ++d) g.push_back(gamma_term(weight_bias, gamma.bits(d), t));
  std::vector<std::uint32_t> pre(static_cast<std::size_t>(width));
  for (std::int64_t token = 0; token < s.tokens; ++token) {
    for (std::int64_t d = 0; d < width; ++d)
      pre[static_cast<std::size_t>(d)] = best.residual_out.bits(token * width + d);
    const Root root = row_root(pre.data(), width, t, epsilon);
    for (std::int64_t d = 0; d < width; ++d)
      best.normalized.set_bits(token * width + d, normalized_element(pre[static_cast<std::size_t>(d)],
                                                                     g[static_cast<std::size_t>(d)], root, t));
  }
  return best;
}

UlpStats ulp_stats(const HostTensor& got, const HostTensor& best) {
  const FloatFormat f = float_format(got.dtype());
  UlpStats s;
  s.elements = got.size();
  double total = 0;
  for (std::int64_t i = 0; i < got.size(); ++i) {
    const std::uint32_t a = got.bits(i), b = best.bits(i);
    std::uint64_t d = 0;
    if (is_nan(a, f) || is_nan(b, f))
      d = is_nan(a, f) && is_nan(b, f) ? 0 : std::numeric_limits<std::uint32_t>::max();
    else
      d = ulp_distance(a, b, got.dtype());
    s.nan_outputs += is_nan(a, f) ? 1 : 0;
    s.correctly_rounded += a == b ? 1 : 0;
    s.max_ulp = std::max(s.max_ulp, d);
    total += static_cast<double>(d);
    ++s.histogram[ulp_bucket(d)];
  }
  s.mean_ulp = s.elements != 0 ? total / static_cast<double>(s.elements) : 0.0;
  return s;
}

FusedAccuracyReport fused_accuracy_report(const HostTensor& input, const HostTensor& residual, const HostTensor& gamma,
                                          const FusedOptions& options,
                                          const std::vector<std::pair<Strategy, Profile>>& runs) {
  FusedAccuracyReport report;
  report.shape = shape_of_input(input);
  for (const auto& [strategy, profile] : runs) {
    FusedOptions o = options;
    o.strategy = strategy;
    o.profile = profile;
    FusedAccuracyRow row;
    row.result = reference_fused_rms_norm(input, residual, gamma, o);  // refuses what cannot run, first
    row.strategy = row.result.launch.strategy;
    row.profile = profile;
    report.rows.push_back(std::move(row));
  }
  report.best = correctly_rounded_fused(input, residual, gamma, options.epsilon, options.weight_bias);
  for (FusedAccuracyRow& row : report.rows) {
    row.normalized = ulp_stats(row.result.normalized, report.best.normalized);
    row.residual_out = ulp_stats(row.result.residual_out, report.best.residual_out);
  }
  return report;
}

}  // namespace ar
