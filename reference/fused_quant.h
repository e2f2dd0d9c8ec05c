// The fused call's quantised outputs (SPEC section 13), bit for bit: after the residual add and RMSNorm,
// FlashInfer's `trtllm_mnnvl_fused_allreduce_add_rmsnorm_quant` also writes the normalised row as
// - static FP8 (`fp8`): e4m3(f32(y_T) * (1 / output_scale)), the reciprocal through rcp.approx;
// - dynamic FP8 (`fp8-dynamic`): a per-token scale max(absmax / 448, 2^-9 / 448) and e4m3(clamp(x / scale,
//   -448, 448)), where x is the T output under ONESHOT but the fp32 value before its narrowing under TWOSHOT;
// - NVFP4 (`nvfp4`, bf16 and fp16): blocks of 16 elements, each with an e4m3 block scale
//   SF = e4m3(g * (amax_T * (1/6))) and elements e2m1(f32(y_T) * (g / f32(SF))), g the global scale.
//
// Every operation is the kernel's under the profile: fast-math's div.approx / rcp.approx / FTZ for
// `flashinfer` (the MUFU models of reference/mufu.h), IEEE division and no FTZ for `ieee`, and for
// `invariant` correctly rounded operations only (no GPU tables), quantising the fp32 values under both
// strategies as its norm does. Maxima ignore NaNs (PTX max), so a row's absmax does not depend on the order
// the kernel takes; it is a pure function of the row.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "reference/fused_rms_norm.h"
#include "reference/nvfp4_scale_layout.h"

namespace ar {

enum class QuantMode : std::uint8_t { kNone, kFp8, kFp8Dynamic, kNvfp4 };

inline constexpr std::array<std::string_view, 4> kQuantModeNames{"none", "fp8", "fp8-dynamic", "nvfp4"};
constexpr std::string_view quant_mode_name(QuantMode m) { return kQuantModeNames[static_cast<std::size_t>(m)]; }
std::optional<QuantMode> parse_quant_mode(std::string_view name);
inline constexpr std::array<std::string_view, 2> kScaleLayoutNames{"swizzled", "linear"};
constexpr std::string_view scale_layout_name(ScaleLayout l) { return kScaleLayoutNames[static_cast<std::size_t>(l)]; }
std::optional<ScaleLayout> parse_scale_layout(std::string_view name);

inline constexpr std::uint32_t kFp32One = 0x3F800000u;
inline constexpr std::uint32_t kE4m3LargestFp32 = 0x43E00000u;  ///< 448
/// 2^-9 / 448 rounded once, the floor of dynamic FP8's scale (the compiler folds FlashInfer's constexpr).
inline constexpr std::uint32_t kDynamicFp8MinScale = 0x36924925u;
/// 1.0f / 6.0f rounded once (NVFP4's RECIPROCAL_6).
inline constexpr std::uint32_t kReciprocalOfSix = 0x3E2AAAABu;
inline constexpr int kNvfp4BlockElements = 16;

struct QuantOptions {
  QuantMode mode = QuantMode::kNone;
  /// fp32 bits of `output_scale`: static FP8's scale (the values are multiplied by its reciprocal), NVFP4's
  /// global scale g; dynamic FP8 reads none. FlashInfer's default is 1.
  std::uint32_t scale = kFp32One;
  ScaleLayout layout = ScaleLayout::kSwizzled128x4;  ///< NVFP4's scale_out
};

/// How the quantisation step computes, from the profile and the resolved strategy.
struct QuantArithmetic {
  bool ftz = true;              ///< fp32 multiplies, abs and max/min flush subnormal operands (fast-math)
  bool approx_division = true;  ///< a / b is div.approx.ftz (rcp.approx.ftz then mul.ftz), 1 / b rcp.approx.ftz;
                                ///< else both are the correctly rounded IEEE operations
  ApproxMath approx = kGpuApproxMath;
  /// Dynamic FP8 quantises the fp32 normalised values (TWOSHOT; the invariant profile under both
  /// strategies), not the T outputs (ONESHOT).
  bool dynamic_from_fp32 = false;
};

QuantArithmetic quant_arithmetic(Profile profile, Strategy resolved, const ApproxMath& approx = kGpuApproxMath);

// The operations, one by one (fp32 bits), for the kernels' tests and `explain`.
std::uint32_t quant_mul(const QuantArithmetic& q, std::uint32_t a, std::uint32_t b);
std::uint32_t quant_divide(const QuantArithmetic& q, std::uint32_t a, std::uint32_t b);  ///< a / b
std::uint32_t quant_reciprocal(const QuantArithmetic& q, std::uint32_t b);                ///< 1.0f / b
/// fmaxf / fminf as PTX max / min: a NaN operand gives the other (two NaNs: the canonical NaN); under FTZ
/// a subnormal operand counts as a zero of its sign.
std::uint32_t quant_max(const QuantArithmetic& q, std::uint32_t a, std::uint32_t b);
std::uint32_t quant_min(const QuantArithmetic& q, std::uint32_t a, std::uint32_t b);
std::uint32_t quant_abs(const QuantArithmetic& q, std::uint32_t a);  ///< fabsf (a subnormal gives +0 under FTZ)

/// Static FP8 of one element: e4m3(value * inverse_scale), inverse_scale = quant_reciprocal(output_scale).
std::uint8_t fp8_static_code(const QuantArithmetic& q, std::uint32_t value, std::uint32_t inverse_scale);
/// Dynamic FP8: the token's scale from its absmax (the fold of quant_max(acc, quant_abs(x)) from +0 over the
/// row's values), and one element's code.
std::uint32_t fp8_dynamic_absmax(const QuantArithmetic& q, std::span<const std::uint32_t> values);
std::uint32_t fp8_dynamic_scale(const QuantArithmetic& q, std::uint32_t absmax);
std::uint8_t fp8_dynamic_code(const QuantArithmetic& q, std::uint32_t value, std::uint32_t token_scale);

/// One NVFP4 block of 16 T values and what it went through.
struct Nvfp4Block {
  std::uint32_t amax = 0;           ///< T bits: the largest |x| in T (NaNs ignored; all NaN: a NaN)
  std::uint32_t scale_input = 0;    ///< fp32: g * (f(amax) * RECIPROCAL_6)
  std::uint8_t scale_code = 0;      ///< e4m3(scale_input), the byte in scale_out
  std::uint32_t element_scale = 0;  ///< fp32: SF != 0 ? g / f(SF) : +0
  std::array<std::uint32_t, kNvfp4BlockElements> products{};  ///< fp32: f(x_i) * element_scale
  std::array<std::uint8_t, kNvfp4BlockElements / 2> packed{};  ///< quant_out's 8 bytes, element 2i low
};
Nvfp4Block nvfp4_block(const QuantArithmetic& q, DType t, std::span<const std::uint32_t, kNvfp4BlockElements> values,
                       std::uint32_t global_scale);

struct QuantizedOutput {
  QuantMode mode = QuantMode::kNone;
  ScaleLayout layout = ScaleLayout::kSwizzled128x4;
  std::int64_t tokens = 0, hidden = 0;
  /// FP8 modes: [N, D] e4m3 codes. NVFP4: [N, D / 2] bytes, element 2i in the low nibble.
  std::vector<std::uint8_t> quant_out;
  /// NVFP4: scale_bytes(layout, N, D) e4m3 block scales at scale_offset; bytes of no block stay 0 (what
  /// FlashInfer leaves there is not modelled).
  std::vector<std::uint8_t> scale_out;
  /// Dynamic FP8: [N] token scales (fp32 bits), FlashInfer's `scale_out` of shape [N, 1].
  std::vector<std::uint32_t> token_scales;
};

/// The bytes of quant_out for N x D elements: one e4m3 code each, or half an e2m1 byte (NVFP4); 0 unquantised.
constexpr std::int64_t quant_out_bytes(QuantMode mode, std::int64_t tokens, std::int64_t hidden) {
  return mode == QuantMode::kNone ? 0 : mode == QuantMode::kNvfp4 ? tokens * hidden / 2 : tokens * hidden;
}

/// The bytes of scale_out: dynamic FP8's N fp32 token scales, NVFP4's block scales in `layout`; else none.
constexpr std::int64_t scale_out_bytes(QuantMode mode, ScaleLayout layout, std::int64_t tokens, std::int64_t hidden) {
  return mode == QuantMode::kFp8Dynamic ? 4 * tokens
         : mode == QuantMode::kNvfp4    ? scale_bytes(layout, tokens, hidden)
                                        : 0;
}

/// The quantised outputs of a fused call whose result is `fused` (with `gamma` and `options`, as passed to
/// reference_fused_rms_norm). Throws std::invalid_argument for NVFP4 with fp32 or D % 16 != 0.
QuantizedOutput quantize_fused(const FusedResult& fused, const HostTensor& gamma, const FusedOptions& options,
                               const QuantOptions& quant);

/// Throws std::invalid_argument naming the problem when `quant` cannot run for this dtype and D.
void validate_quant(const QuantOptions& quant, DType t, std::int64_t hidden);

struct FusedQuantResult {
  FusedResult fused;
  QuantizedOutput quant;
};

/// How two quantised outputs of one call compare: every code byte, every token scale and (NVFP4) the scale
/// byte of every block counts as one element; the bytes of a swizzled layout that belong to no block do not.
struct QuantDiff {
  std::int64_t elements = 0;
  std::int64_t differing = 0;
  std::string first;  ///< "quant_out[17]: 0x3c, expected 0x3d" for the first that differs; empty when none
};
/// `actual` against `expected` (same mode, layout and shape; throws std::invalid_argument otherwise).
QuantDiff compare_quant(const QuantizedOutput& actual, const QuantizedOutput& expected);

/// Everything a quantised output holds of token `row`, as words: its codes (one byte a word), then its token
/// scale (dynamic FP8) or its block scales in block order (NVFP4). Two rows' words are equal exactly when the
/// call gave the token the same bits.
std::vector<std::uint32_t> quant_row_words(const QuantizedOutput& q, std::int64_t row);

/// reference_fused_rms_norm, then quantize_fused.
FusedQuantResult reference_fused_quant(const HostTensor& input, const HostTensor& residual, const HostTensor& gamma,
                                       const FusedOptions& options, const QuantOptions& quant);

/// The decoded values of quantised outputs, for a reader (`mnnvl-ar dequant`): FP8 q * scale (static: the
/// output_scale; dynamic: the token's scale), NVFP4 q * f(SF) / g; each step in double, rounded once to
/// fp32. [N, D] fp32.
HostTensor dequantize(const QuantizedOutput& quant, std::uint32_t output_scale);

}  // namespace ar
