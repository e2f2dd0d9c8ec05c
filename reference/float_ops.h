// The IEEE operations the fused residual-add + RMSNorm needs beyond the all-reduce's fp32 add: the native
// 16-bit add and multiply (`add.rn.{bf16,f16}`, `mul.rn.{bf16,f16}`), the fp32 multiply and the fp32 fused
// multiply-add, each with one round-to-nearest-even rounding, done in integers like float_bits.h and for the
// same reason: the reference gives the same bits at any optimisation level and host FPU mode.
//
// Special values follow PTX as measured on sm_90 (SPEC section 0): any NaN result is the canonical NaN of the
// format (0x7FFF, 0x7FFFFFFF), sign and payload lost; Inf * 0 and Inf - Inf are NaN; an exact zero result
// is +0 unless every term is a zero of the same negative sign (RN); a non-zero result that rounds to zero
// keeps its sign.
#pragma once

#include <cstdint>

#include "reference/float_bits.h"

namespace ar {

/// `add.rn.bf16` / `add.rn.f16` (bf16 or fp16 only), and each half of `add.rn.bf16x2` / `add.rn.f16x2`, the
/// form our kernels issue: the exact sum rounded once to T. Subnormal inputs and results are kept (16-bit ops
/// never flush); overflow gives a signed infinity.
std::uint32_t add_native(std::uint32_t a, std::uint32_t b, DType t);

/// `mul.rn.bf16` / `mul.rn.f16` (bf16 or fp16 only), and each half of `mul.rn.bf16x2` / `mul.rn.f16x2`: the
/// exact product rounded once to T, no flushing.
std::uint32_t mul_native(std::uint32_t a, std::uint32_t b, DType t);

/// `mul.rn.ftz.f32` when `ftz`, IEEE `mul.rn.f32` otherwise. With FTZ, subnormal inputs become zeros of
/// their sign and a tiny result a zero of its sign (round_to_format_ftz: tiny after rounding to 24 bits).
std::uint32_t mul_fp32(std::uint32_t a, std::uint32_t b, bool ftz);

/// `fma.rn.ftz.f32` when `ftz`, IEEE `fma.rn.f32` otherwise: a*b + c with a single rounding. FTZ flushes the
/// three inputs and a tiny result (round_to_format_ftz); the product itself is never flushed (it is not a
/// separate result).
std::uint32_t fma_fp32(std::uint32_t a, std::uint32_t b, std::uint32_t c, bool ftz);

/// `div.rn.f32` (IEEE division, RN-even, subnormals kept): what `a / b` compiles to without fast-math. Any
/// NaN result is 0x7FFFFFFF (0/0, Inf/Inf, a NaN operand); x/0 is an Inf of the quotient's sign.
std::uint32_t div_fp32(std::uint32_t a, std::uint32_t b);

/// `cvt.rn.f32.s32` (and the host's int -> float): a non-negative integer to fp32 with RN-even.
std::uint32_t fp32_from_integer(std::uint64_t n);

/// The host's double -> float conversion (RN-even, subnormals kept, overflow to infinity), for parameters
/// such as epsilon that FlashInfer narrows on the host (CUH:1222). Reads the double's bits only; a NaN gives
/// 0x7FFFFFFF.
std::uint32_t fp32_from_double(double value);

/// A double rounded once to format `f` (RN-even, subnormals kept, overflow to a signed infinity; a NaN gives
/// f's canonical NaN). Reads the double's bits only, whatever the host FPU mode.
std::uint32_t round_from_double(double value, FloatFormat f);

}  // namespace ar
