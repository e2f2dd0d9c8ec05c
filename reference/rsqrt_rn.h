// The correctly rounded fp32 reciprocal square root of the invariant profile (Profile::kInvariant), and the
// route the kernels take to it. The approximate MUFU rsqrt is undocumented and may differ between chips;
// the invariant profile needs none of it: its scale is 1/sqrt(x) rounded once to the nearest fp32, which
// any CPU computes without tables.
//
// - rsqrt_rn_fp32 is the definition, in integers: the nearest fp32 to 1/sqrt(x), decided exactly.
// - rsqrt_rn_via_fp64 is what the kernels compute: sqrt.rn.f64 of the widened input, rcp.rn.f64 of that,
//   cvt.rn.f32.f64. Each is an IEEE operation that a CPU's double arithmetic does identically, and
//   tests/reference/rsqrt_rn_test.cpp shows that the route gives the definition's bits for every fp32 input
//   (so the kernels and the model agree without a GPU table, on any chip).
#pragma once

#include <cstdint>

#include "reference/approx_math.h"

namespace ar {

/// The fp32 nearest to 1/sqrt(x) (no ties exist): +0 -> +Inf, -0 -> -Inf, +Inf -> +0, negative or NaN ->
/// 0x7FFFFFFF. Subnormal inputs are kept (no FTZ).
std::uint32_t rsqrt_rn_fp32(std::uint32_t x);

/// The kernels' route: (float)(1.0 / sqrt((double)x)) with IEEE double operations; a NaN result is
/// 0x7FFFFFFF as on the GPU.
std::uint32_t rsqrt_rn_via_fp64(std::uint32_t x);

/// The IEEE division 1 / x (div.rn.f32), the reciprocal the invariant profile would use (its scale divides
/// by D with div.rn, so only ApproxMath's completeness asks for it).
std::uint32_t reciprocal_rn_fp32(std::uint32_t x);

/// The invariant profile's "MUFU": correctly rounded operations, no hardware tables.
inline constexpr ApproxMath kCorrectlyRoundedMath{rsqrt_rn_fp32, reciprocal_rn_fp32};

}  // namespace ar
