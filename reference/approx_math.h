// The two approximate fp32 operations of the norm's scale, `rsqrt.approx.ftz.f32` and `div.approx.ftz.f32`
// (SPEC section 0: what `rsqrtf(sum / D + eps)` compiles to under -use_fast_math). They run on the GPU's
// special-function unit and are not IEEE operations, so the reference takes them as a parameter instead of
// guessing: the bit-exact models of the hardware come with reference/mufu.h (`rsqrt_approx_ftz`,
// `div_approx_ftz`), and tests may pass stand-ins that are exact where the inputs leave no doubt.
#pragma once

#include <bit>
#include <cstdint>

namespace ar {

/// fp32 bits in, fp32 bits out. Both pointers must be set.
struct ApproxMath {
  std::uint32_t (*rsqrt)(std::uint32_t x) = nullptr;                    ///< rsqrt.approx.ftz.f32
  std::uint32_t (*divide)(std::uint32_t a, std::uint32_t b) = nullptr;  ///< div.approx.ftz.f32: a / b

  bool complete() const { return rsqrt != nullptr && divide != nullptr; }
};

/// An ApproxMath from models written on floats (the form reference/mufu.h gives them in). Only the bits
/// travel through the float type; no host arithmetic touches them. For example
/// `approx_math_of<rsqrt_approx_ftz, div_approx_ftz>()`.
template <float (*Rsqrt)(float), float (*Divide)(float, float)>
constexpr ApproxMath approx_math_of() {
  return {[](std::uint32_t x) { return std::bit_cast<std::uint32_t>(Rsqrt(std::bit_cast<float>(x))); },
          [](std::uint32_t a, std::uint32_t b) {
            return std::bit_cast<std::uint32_t>(Divide(std::bit_cast<float>(a), std::bit_cast<float>(b)));
          }};
}

}  // namespace ar
