// The narrow formats of the fused call's quantised outputs (SPEC section 13): FP8 e4m3 (OCP "fn": bias 7, no
// infinities, NaN only at S.1111.111, largest finite 448) for the FP8 outputs and NVFP4's block scales, and
// FP4 e2m1 (bias 1, no infinities or NaN, largest 6) for NVFP4's elements. Conversions from fp32 as the GPU's
// `cvt.rn.satfinite.{e4m3x2,e2m1x2}.f32` make them: one RN-even rounding (subnormals kept), a finite value
// beyond the largest, or an infinity, saturating to the largest of its sign. Decoding is exact.
//
// The e4m3 conversion exists on sm_89 and later, and `mnnvl-ar mufu --check` proves this model against it on
// every fp32 input. e2m1's exists only from sm_100 and the PTX manual leaves a NaN's result unsaid; the CUDA
// toolkit's own conversion for GPUs without the instruction (cuda_fp4.hpp's __nv_cvt_float_to_fp4) makes a
// NaN +6, and so do this model and our sm_90 kernels. Whether sm_100's instruction agrees is unverified.
#pragma once

#include <cstdint>

namespace ar {

inline constexpr std::uint8_t kE4m3Largest = 0x7E;  ///< 448 = 1.75 * 2^8
inline constexpr std::uint8_t kE4m3Nan = 0x7F;      ///< S.1111.111 with the sign clear
inline constexpr std::uint8_t kE2m1Largest = 0x7;   ///< 6 = 1.5 * 2^2, also a NaN's code

/// `cvt.rn.satfinite.e4m3x2.f32` of one fp32 value (bits): RN-even, subnormals kept (the smallest is 2^-9),
/// saturating to +-448; a NaN gives kE4m3Nan. A zero or a value that rounds to zero keeps its sign.
std::uint8_t e4m3_from_fp32(std::uint32_t fp32_bits);

/// `cvt.rn.satfinite.e2m1x2.f32` of one fp32 value: RN-even onto 0, 0.5, 1, 1.5, 2, 3, 4, 6 (and their
/// negatives), saturating to +-6; the sign of a zero is kept; a NaN gives +6 (see above).
std::uint8_t e2m1_from_fp32(std::uint32_t fp32_bits);

/// The exact fp32 value (bits) of an e4m3 code (its NaN codes give the fp32 canonical NaN).
std::uint32_t fp32_from_e4m3(std::uint8_t code);

/// The exact fp32 value (bits) of an e2m1 code (its low four bits).
std::uint32_t fp32_from_e2m1(std::uint8_t code);

}  // namespace ar
