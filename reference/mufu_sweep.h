// The inputs `mnnvl-ar mufu --check` runs through the GPU and the model (reference/mufu.h): which operation,
// which divisors, and the a paired with each b when every b is swept. The GPU kernel (cuda/) and the host
// comparison (harness/) both read them here, so the two sides cannot sweep different pairs.
#pragma once

#include <array>
#include <cstdint>

namespace ar {

enum class MufuOp : std::uint8_t {
  kRsqrt,       ///< rsqrt.approx.ftz.f32(x)
  kRsqrtNoFtz,  ///< rsqrt.approx.f32(x): the ieee profile's, without FTZ
  kRcp,         ///< rcp.approx.ftz.f32(x)
  kDiv,         ///< div.approx.ftz.f32(x, divisor): every a against one b
  kDivHashed,   ///< div.approx.ftz.f32(mufu_hashed_dividend(x), x): every b, each with its own a
  /// The quantised outputs' (reference/fused_quant.h): not MUFU, but conversions and a constant division
  /// whose bits the hardware decides the same way.
  kE4m3,         ///< cvt.rn.satfinite.e4m3x2.f32(x): the code, zero-extended
  kDivByE4m3Max, ///< div.approx.ftz.f32(x, 448) with 448 a constant, as dynamic FP8's absmax / 448 (ptxas may fold it)
  kE2m1,         ///< the kernels' e2m1 of x (computed: sm_90 has no cvt to e2m1), the code zero-extended
};

/// The divisors every a is divided by: FlashInfer's hidden sizes (the fused kernels divide by float(D)),
/// powers of two, small odd values, and values near both ends of the range, whose reciprocals underflow
/// or are subnormal (a 1e-39 divisor is a subnormal, so a zero).
inline constexpr std::array<float, 15> kMufuDivisors{2048.0f, 2880.0f,  4096.0f, 5120.0f, 7168.0f,
                                                     8192.0f, 16384.0f, 1024.0f, 256.0f,  3.0f,
                                                     1.0f,    1e30f,    2e38f,   1e-30f,  1e-39f};

/// The dividend paired with divisor bits `b` in the kDivHashed sweep: a multiplicative hash, so that every
/// b meets an a of unrelated sign, exponent and mantissa.
constexpr std::uint32_t mufu_hashed_dividend(std::uint32_t b) {
  std::uint32_t h = b * 2654435761u;
  h ^= h >> 15;
  h *= 2246822519u;
  h ^= h >> 13;
  return h;
}

}  // namespace ar
