// The correctly rounded fp32 reciprocal square root of the invariant profile (Profile::kInvariant), and the
// route the kernels take to it. The approximate MUFU rsqrt is undocumented and may differ between chips;
// the invariant profile needs none of it: its scale is 1/sqrt(x) rounded once to the nearest fp32, which
// any CPU computes without tables.
//
// - rsqrt_rn_fp32 is the definition, in integers: the nearest fp32 to 1/sqrt(x), decided exactly.
// - rsqrt_rn_by_correction is what the kernels compute, because it is short (sqrt.rn.f64 and rcp.rn.f64 took
//   a row's critical path about 0.15 us on an H200): the MUFU's rsqrt.approx.f32 as a first guess g, then
//   exact tests at the midpoints between the neighbours g - 3 .. g + 3 (ulps). For a midpoint m, m^2 is exact
//   in fp64 (m has 25 significant bits) and fma.rn.f64(m^2, x, -1) has the sign of m^2 x - 1 (never zero: no
//   ties), so each test is decided exactly whatever the guess. The six tests do not depend on each other (one
//   round of latency, not a step per ulp); the number of midpoints below 1/sqrt(x) names the answer among
//   g - 2 .. g + 2. Should a guess ever lie further off, one-ulp steps go on from the window's edge, at most
//   kRsqrtCorrections of them. tests/reference/rsqrt_rn_test.cpp shows that for every fp32 input the GPU's
//   MUFU (as reference/mufu.h models it) lands inside the window, and `mnnvl-ar mufu --check` tells whether
//   another GPU's MUFU is that one. The model itself needs no table.
#pragma once

#include <cstdint>

#include "reference/approx_math.h"

namespace ar {

/// The fp32 nearest to 1/sqrt(x) (no ties exist): +0 -> +Inf, -0 -> -Inf, +Inf -> +0, negative or NaN ->
/// 0x7FFFFFFF. Subnormal inputs are kept (no FTZ).
std::uint32_t rsqrt_rn_fp32(std::uint32_t x);

/// The guess's neighbours the one round of midpoint tests decides between: g - kRsqrtWindow .. g + kRsqrtWindow.
inline constexpr int kRsqrtWindow = 2;

/// The most one-ulp steps taken beyond the window (never, for the MUFU reference/mufu.h models).
inline constexpr int kRsqrtCorrections = 4;

/// The fp64 bits of the midpoint between the positive normal fp32 `below` and the next fp32 up: below's
/// significand and exponent moved into fp64's fields (exponent bias 1023 - 127 = 896) and half an fp32 ulp
/// (fp64 bit 28) added. Exact, also across a binade's end; shared by the model and the kernels.
constexpr std::uint64_t rsqrt_midpoint_fp64_bits(std::uint32_t below) {
  return (std::uint64_t{below} << 29) + (std::uint64_t{896} << 52) + (std::uint64_t{1} << 28);
}

/// The kernels' route (cuda/detail/norm_row.cuh rsqrt_rn): `guess` (rsqrt.approx.f32 of x) corrected by
/// exact midpoint tests, one round over the window, then (never needed so far) at most kRsqrtCorrections
/// one-ulp steps. Zeros, infinities, NaNs and negative inputs keep the guess. `ulps_off` (when given) gets
/// how far the answer lies from the guess, in ulps.
std::uint32_t rsqrt_rn_by_correction(std::uint32_t x, std::uint32_t guess, int* ulps_off = nullptr);

/// The IEEE division 1 / x (div.rn.f32): the invariant profile's 1/D, rounded once (its scale is
/// rsqrt_rn(fma(sum, 1/D, eps))).
std::uint32_t reciprocal_rn_fp32(std::uint32_t x);

/// The invariant profile's "MUFU": correctly rounded operations, no hardware tables.
inline constexpr ApproxMath kCorrectlyRoundedMath{rsqrt_rn_fp32, reciprocal_rn_fp32};

}  // namespace ar
