// The approximate fp32 operations of the norm's scale under -use_fast_math: `rsqrtf(sum / D + eps)` is
// `rsqrt.approx.ftz.f32` of `div.approx.ftz.f32(sum, D)` + eps in PTX, and ptxas turns the division into
// `rcp.approx.ftz.f32` of D and a multiply that it fuses with the add: one `fma.rn.ftz.f32(sum, rcp(D),
// eps)` (measured on an H200 over every non-negative sum, docs/fused.md). The two MUFU operations are not
// IEEE operations, so the reference takes them as a parameter: the bit-exact models of the hardware are
// reference/mufu.h's (kGpuApproxMath), and tests may pass stand-ins that are exact where the inputs leave
// no doubt.
#pragma once

#include <bit>
#include <cstdint>

#include "reference/mufu.h"

namespace ar {

/// fp32 bits in, fp32 bits out. Both pointers must be set.
struct ApproxMath {
  std::uint32_t (*rsqrt)(std::uint32_t x) = nullptr;       ///< rsqrt.approx.ftz.f32
  std::uint32_t (*reciprocal)(std::uint32_t x) = nullptr;  ///< rcp.approx.ftz.f32, the first half of div.approx

  bool complete() const { return rsqrt != nullptr && reciprocal != nullptr; }
};

/// An ApproxMath from models written on floats (the form reference/mufu.h gives them in). Only the bits
/// travel through the float type; no host arithmetic touches them. For example
/// `approx_math_of<rsqrt_approx_ftz, rcp_approx_ftz>()`.
template <float (*Rsqrt)(float), float (*Reciprocal)(float)>
constexpr ApproxMath approx_math_of() {
  return {[](std::uint32_t x) { return std::bit_cast<std::uint32_t>(Rsqrt(std::bit_cast<float>(x))); },
          [](std::uint32_t x) { return std::bit_cast<std::uint32_t>(Reciprocal(std::bit_cast<float>(x))); }};
}

/// The GPU's own, as measured (reference/mufu.h), under fast-math (flashinfer profile) and without it (ieee:
/// rsqrt without FTZ; the reciprocal is then unused, the division being div.rn). What FusedOptions uses unless
/// a test passes stand-ins.
inline constexpr ApproxMath kGpuApproxMath{rsqrt_approx_ftz_bits, rcp_approx_ftz_bits};
inline constexpr ApproxMath kGpuApproxMathNoFtz{rsqrt_approx_bits, rcp_approx_ftz_bits};

}  // namespace ar
