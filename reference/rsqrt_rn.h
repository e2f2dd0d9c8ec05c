// The correctly rounded fp32 reciprocal square root of the invariant profile (Profile::kInvariant), and the
// route the kernels take to it. The approximate MUFU rsqrt is undocumented and may differ between chips;
// the invariant profile needs none of it: its scale is 1/sqrt(x) rounded once to the nearest fp32, which
// any CPU computes without tables.
//
// - rsqrt_rn_fp32 is the definition, in integers: the nearest fp32 to 1/sqrt(x), decided exactly.
// - rsqrt_rn_by_correction is what the kernels compute, because it is short (sqrt.rn.f64 and rcp.rn.f64 took
//   a row's critical path about 0.15 us on an H200): the MUFU's rsqrt.approx.f32 as a first guess, then
//   stepped one ulp at a time while an exact test says the guess is not the nearest: for the midpoint m
//   between the guess and its neighbour, m^2 is exact in fp64 (m has 25 significant bits) and
//   fma.rn.f64(m^2, x, -1) has the sign of m^2 x - 1 (never zero: no ties), so each step is decided exactly
//   whatever the guess. The result is the definition's whenever the guess lies within kRsqrtCorrections - 1
//   ulps; tests/reference/rsqrt_rn_test.cpp shows that it does for every fp32 input on the GPU whose MUFU
//   reference/mufu.h models (and `mnnvl-ar mufu --check` tells whether another GPU's MUFU is that one). The
//   model itself needs no table.
#pragma once

#include <cstdint>

#include "reference/approx_math.h"

namespace ar {

/// The fp32 nearest to 1/sqrt(x) (no ties exist): +0 -> +Inf, -0 -> -Inf, +Inf -> +0, negative or NaN ->
/// 0x7FFFFFFF. Subnormal inputs are kept (no FTZ).
std::uint32_t rsqrt_rn_fp32(std::uint32_t x);

/// The most one-ulp steps the kernels take from the MUFU's guess.
inline constexpr int kRsqrtCorrections = 4;

/// The kernels' route (cuda/detail/norm_row.cuh rsqrt_rn): `guess` (rsqrt.approx.f32 of x) corrected by
/// exact midpoint tests, at most kRsqrtCorrections steps. Zeros, infinities, NaNs and negative inputs keep
/// the guess. `steps` (when given) gets the steps taken.
std::uint32_t rsqrt_rn_by_correction(std::uint32_t x, std::uint32_t guess, int* steps = nullptr);

/// The IEEE division 1 / x (div.rn.f32), the reciprocal the invariant profile would use (its scale divides
/// by D with div.rn, so only ApproxMath's completeness asks for it).
std::uint32_t reciprocal_rn_fp32(std::uint32_t x);

/// The invariant profile's "MUFU": correctly rounded operations, no hardware tables.
inline constexpr ApproxMath kCorrectlyRoundedMath{rsqrt_rn_fp32, reciprocal_rn_fp32};

}  // namespace ar
