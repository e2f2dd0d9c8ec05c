// The GPU's approximate fp32 operations that the fused residual-add + RMSNorm uses (SPEC section 7:
// `rsqrt.approx.ftz(div.approx.ftz(sum, float(D)) + eps)`), bit for bit, as measured on the hardware.
//
// MUFU results are not documented, so the model is a measurement: a predictor everyone can compute exactly
// (the correctly rounded reciprocal or reciprocal square root, each step in IEEE double, then rounded to
// float) plus a per-mantissa correction of -2..+1 ulp read from tables captured on a GPU over every input
// (data/mufu/, docs/mufu.md). Special inputs follow rules, and a normal input reaches its table entry
// through an exponent shift: the hardware's result depends only on the mantissa (and, for rsqrt, the
// exponent's parity). `mnnvl-ar mufu --check` proves the whole model against a GPU on all 2^32 inputs.
//
// Like float_bits, everything is integer arithmetic on raw bits: the same results whatever the host's
// rounding or FTZ/DAZ modes are. The float overloads only reinterpret bits.
#pragma once

#include <bit>
#include <cstdint>
#include <span>

namespace ar {

/// rsqrt.approx.ftz.f32. +0 and positive subnormals give +Inf, -0 and negative subnormals -Inf, +Inf gives
/// +0; negative normals, -Inf and every NaN give 0x7FFFFFFF.
std::uint32_t rsqrt_approx_ftz_bits(std::uint32_t x);
/// rsqrt.approx.f32, without FTZ (what rsqrtf compiles to without fast-math): the .ftz result for every input
/// but the subnormals; a positive subnormal x gives rsqrt(x * 2^64) * 2^32 exactly, a negative one 0x7FFFFFFF
/// (measured on all 2^23 of each sign on an H200, docs/mufu.md).
std::uint32_t rsqrt_approx_bits(std::uint32_t x);
/// rcp.approx.ftz.f32: odd in x (rcp(-x) = -rcp(x)). Zeros and subnormals give an Inf of their sign, Infs a
/// zero of their sign, every NaN 0x7FFFFFFF; a result below the normal range is a zero of x's sign.
std::uint32_t rcp_approx_ftz_bits(std::uint32_t x);
/// mul.rn.ftz.f32: the IEEE round-to-nearest-even product, with subnormal operands read as zeros of their
/// sign and a subnormal result flushed to a zero of its sign; any NaN result is 0x7FFFFFFF.
std::uint32_t mul_ftz_bits(std::uint32_t a, std::uint32_t b);
/// div.approx.ftz.f32(a, b): the GPU compiles it to MUFU.RCP then FMUL.FTZ, so mul_ftz(a, rcp_approx_ftz(b)).
std::uint32_t div_approx_ftz_bits(std::uint32_t a, std::uint32_t b);

inline float rsqrt_approx_ftz(float x) {
  return std::bit_cast<float>(rsqrt_approx_ftz_bits(std::bit_cast<std::uint32_t>(x)));
}
inline float rcp_approx_ftz(float x) {
  return std::bit_cast<float>(rcp_approx_ftz_bits(std::bit_cast<std::uint32_t>(x)));
}
inline float mul_ftz(float a, float b) {
  return std::bit_cast<float>(mul_ftz_bits(std::bit_cast<std::uint32_t>(a), std::bit_cast<std::uint32_t>(b)));
}
inline float div_approx_ftz(float a, float b) {
  return std::bit_cast<float>(div_approx_ftz_bits(std::bit_cast<std::uint32_t>(a), std::bit_cast<std::uint32_t>(b)));
}

/// The predictors on the canonical binades, [1, 4) for rsqrt and [1, 2) for rcp (the exponent field of x
/// is read only for its parity, by rsqrt): (float)(1.0 / sqrt((double)x)) and (float)(1.0 / (double)x),
/// every step rounded to nearest even (so the result is rounded twice), computed in integers.
std::uint32_t rsqrt_predictor_bits(std::uint32_t x);
std::uint32_t rcp_predictor_bits(std::uint32_t x);

/// The measured corrections, hardware bits minus predictor bits at the canonical input of the binade:
/// rsqrt's at index ((E & 1) << 23) | m for an input with exponent field E and mantissa m (canonical
/// exponent 127 for odd E, 128 for even), in -2..1; rcp's at index m (canonical exponent 127), in -1..1.
int rsqrt_delta(std::uint32_t index);
int rcp_delta(std::uint32_t index);
inline constexpr std::uint32_t kRsqrtDeltaEntries = 1u << 24;
inline constexpr std::uint32_t kRcpDeltaEntries = 1u << 23;

/// The packed tables built into the library, byte for byte the files of data/mufu/ (2 bits per entry, the
/// stored value delta + 2 for rsqrt, delta + 1 for rcp; entry i at bits 2 * (i % 4) of byte i / 4).
std::span<const std::uint8_t> rsqrt_delta_table();
std::span<const std::uint8_t> rcp_delta_table();
/// The sha256 (lowercase hex) of the files the build embedded, as data/mufu/tables.json records them.
const char* rsqrt_delta_table_sha256();
const char* rcp_delta_table_sha256();

}  // namespace ar
