// The quantised outputs of one normalised row (SPEC section 13; model: reference/fused_quant.h): static FP8,
// dynamic FP8 with the token's scale, or NVFP4 with its block scales.
//
// What can be written from one pack is written in the norm's output pass, from the values it has just
// computed (RowQuant::on_pack); what needs the whole row first (dynamic FP8's codes, NVFP4 in a cluster) takes
// a pass of its own that recomputes each element's fp32 value from `pre`, gamma and the row's scale (three
// multiplies, the same bits as the output pass) rather than keeping them in registers. A row's absmax is a maximum of values from +0 up with NaNs dropped: any order gives the same bits, so its
// reduction here (shuffles, then warps, then the cluster's blocks) needs no tree of FlashInfer's.
// The mode is a runtime field of the tree, the same in every thread: one kernel per arithmetic serves all
// modes, and a row without quantisation pays one uniform branch.
//
// Internal to cuda/: included by norm_row.cuh only.
#pragma once

#include <cstdint>

#include "cuda/detail/lamport.cuh"
#include "reference/fused_quant.h"
#include "reference/nvfp4_scale_layout.h"
#include "reference/quant_formats.h"

namespace ar::cuda::detail {

/// What the quantised rows share within a block (a part of NormShared).
struct QuantShared {
  float warp_max[32];     ///< each warp's absmax of the row (a block has at most 32 warps)
  float block_max[2][8];  ///< each cluster block's (at most 8), alternating row by row (as NormShared::block_sums)
};

// The profile's operations (reference quant_divide, quant_max, ...; multiplies are mul_f32): fast-math's
// approximate division, FTZ max/min/abs under kFtz; the IEEE ones otherwise (ieee and invariant profiles).
template <bool kFtz>
__device__ __forceinline__ float quant_divide(float a, float b) {
  if constexpr (kFtz) return ptx::div_approx_ftz_f32(a, b);
  else return ptx::div_rn_f32(a, b);
}
template <bool kFtz>
__device__ __forceinline__ float quant_reciprocal(float b) {
  if constexpr (kFtz) return ptx::rcp_approx_ftz_f32(b);
  else return ptx::div_rn_f32(1.0f, b);
}
template <bool kFtz>
__device__ __forceinline__ float quant_max(float a, float b) {
  if constexpr (kFtz) return ptx::max_ftz_f32(a, b);
  else return ptx::max_f32(a, b);
}
template <bool kFtz>
__device__ __forceinline__ float quant_min(float a, float b) {
  if constexpr (kFtz) return ptx::min_ftz_f32(a, b);
  else return ptx::min_f32(a, b);
}
template <bool kFtz>
__device__ __forceinline__ float quant_abs(float a) {
  if constexpr (kFtz) return ptx::abs_ftz_f32(a);
  else return ptx::abs_f32(a);
}

/// e4m3 codes of two values, `lo` in bits 7..0 (the lower address when stored), `hi` in 15..8.
__device__ __forceinline__ std::uint32_t e4m3_pair(float lo, float hi) { return ptx::cvt_rn_satfinite_e4m3x2_f32(hi, lo); }

/// The exact fp32 value of an e4m3 code (reference fp32_from_e4m3): S.EEEE.MMM, bias 7, subnormals M * 2^-9,
/// S.1111.111 a NaN.
__device__ __forceinline__ float e4m3_value(std::uint32_t code) {
  const std::uint32_t sign = (code & 0x80u) << 24, exponent = (code >> 3) & 0xFu, mantissa = code & 0x7u;
  if (exponent == 0xFu && mantissa == 0x7u) return __uint_as_float(0x7FFFFFFFu);
  if (exponent == 0) return __uint_as_float(__float_as_uint(static_cast<float>(mantissa) * 0x1p-9f) | sign);
  return __uint_as_float(sign | ((exponent + 120u) << 23) | (mantissa << 20));
}

/// FP4 e2m1 of one fp32 value (reference e2m1_from_fp32), computed, since sm_90 has no cvt to e2m1 (swept over
/// all 2^32 inputs by `mufu --check`). From 1 up, e2m1 keeps one fraction bit: RN-even on the fp32 bits (add
/// half an ulp less one, plus the kept bit) leaves (exponent, bit) whose value minus 252 is the code,
/// saturating at 7 (6). Below 1 the codes 0, 1, 2 are 0, 0.5, 1: 2|x| rounded to an integer, ties to even. The
/// sign is kept; a NaN gives +6.
__device__ __forceinline__ std::uint32_t e2m1_code(float x) {
  const std::uint32_t bits = __float_as_uint(x), magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return kE2m1Largest;
  const std::uint32_t rounded = (magnitude + 0x001FFFFFu + ((magnitude >> 22) & 1u)) >> 22;
  const std::uint32_t code = magnitude >= 0x3F800000u ? min(rounded - 252u, std::uint32_t{kE2m1Largest})
                                                      : ptx::cvt_rni_u32_f32(ptx::mul_rn_f32(__uint_as_float(magnitude), 2.0f));
  return code | ((bits >> 31) << 3);
}

/// |x| of a 16-bit value's bits, with NaNs mapped below every number (so an unsigned max drops them); and
/// back: the unsigned max of a block's such keys, or (all NaN) T's canonical NaN.
template <DType T>
__device__ __forceinline__ std::uint32_t amax_key(std::uint32_t bits) {
  constexpr std::uint32_t kInfinity = T == DType::kBf16 ? 0x7F80u : 0x7C00u;
  const std::uint32_t magnitude = bits & 0x7FFFu;
  return magnitude > kInfinity ? 0u : magnitude + 1u;
}
template <DType T>
__device__ __forceinline__ std::uint32_t amax_of_key(std::uint32_t key) { return key == 0 ? 0x7FFFu : key - 1u; }

/// One NVFP4 block's scale from the maximum |x| of its 16 T values (as amax_key's), and its element scale:
/// SF = e4m3(g * (amax * RECIPROCAL_6)), g / SF (0 when SF is 0; a NaN SF is not 0).
template <DType T, bool kFtz>
__device__ __forceinline__ std::uint32_t nvfp4_scale(std::uint32_t key, float global, float& element_scale) {
  const float amax = Pack<T>::widen(make_uint4(amax_of_key<T>(key), 0, 0, 0), 0);
  const float scale_input = mul_f32<kFtz>(global, mul_f32<kFtz>(amax, __uint_as_float(kReciprocalOfSix)));
  const std::uint32_t code = e4m3_pair(scale_input, 0.0f) & 0xFFu;
  const float scale = e4m3_value(code);
  element_scale = scale != 0.0f ? quant_divide<kFtz>(global, scale) : 0.0f;
  return code;
}

/// The e2m1 codes of 8 values times the element scale, element e in bits 4e..4e+3.
template <bool kFtz>
__device__ __forceinline__ std::uint32_t e2m1_word(const float (&v)[8], float element_scale) {
  std::uint32_t word = 0;
#pragma unroll
  for (int e = 0; e < 8; ++e) word |= e2m1_code(mul_f32<kFtz>(v[e], element_scale)) << (4 * e);
  return word;
}

/// A row's quantisation, in two parts. `on_pack` takes each pack as the output pass computes it (its fp32
/// values and its T output): static FP8 writes its codes there, dynamic FP8 folds the pack into the thread's
/// absmax, and NVFP4 writes its blocks there when the two packs of a block lie in neighbouring lanes (a block
/// alone, its threads taking packs in turn). `finish` does the rest after the output pass: dynamic FP8's
/// reduction, scale and codes; NVFP4's blocks in a cluster. Every thread of every block of the cluster must
/// call `finish` for the same row (dynamic FP8 holds block and cluster barriers).
template <DType T, bool kFtz, bool kCluster>
struct RowQuant {
  static constexpr int kElements = Pack<T>::kElements;
  QuantMode mode = QuantMode::kNone;
  ScaleLayout layout = ScaleLayout::kSwizzled128x4;  ///< NVFP4's
  float scale = 0.0f;      ///< output_scale: static FP8's scale, NVFP4's global scale
  float absmax = 0.0f;     ///< dynamic FP8: this thread's, fmaxf(threadMax, fabsf(x)) from 0.F
  bool from_fp32 = false;  ///< dynamic FP8 quantises the fp32 values (else the T outputs)

  /// Reads output_scale early, so its load overlaps the row's polls.
  __device__ __forceinline__ RowQuant(const NormTree& tree, const NormSlot& io)
      : mode(static_cast<QuantMode>(tree.quant_mode)),
        layout(static_cast<ScaleLayout>(tree.scale_layout)),
        from_fp32(tree.quant_from_fp32 != 0) {
    if (mode == QuantMode::kFp8 || mode == QuantMode::kNvfp4) scale = *io.quant_scale;
  }

  __device__ __forceinline__ void store_e4m3(const NormSlot& io, std::uint64_t first_element, const float (&q)[kElements]) const {
    std::uint8_t* at = static_cast<std::uint8_t*>(io.quant_out) + first_element;
    if constexpr (kElements == 8) {
      const uint2 w{e4m3_pair(q[0], q[1]) | e4m3_pair(q[2], q[3]) << 16, e4m3_pair(q[4], q[5]) | e4m3_pair(q[6], q[7]) << 16};
      *reinterpret_cast<uint2*>(at) = w;
    } else {
      *reinterpret_cast<std::uint32_t*>(at) = e4m3_pair(q[0], q[1]) | e4m3_pair(q[2], q[3]) << 16;
    }
  }

  /// Pack `pack` of row t: `v` its fp32 values, `y` its T output. `neighbours`: the whole warp calls this
  /// together, and the pack's NVFP4 partner (pack ^ 1) is lane ^ 1's; lanes past the row's end call it too, not
  /// `active` (their values unused), for NVFP4's shuffle.
  __device__ __forceinline__ void on_pack(const NormSlot& io, std::uint32_t t, std::uint32_t row_packs, int pack,
                                          const float (&v)[kElements], const uint4& y, bool neighbours, bool active) {
    const std::uint64_t first = (std::uint64_t(t) * row_packs + pack) * kElements;
    if (mode != QuantMode::kNvfp4 && !active) return;
    if (mode == QuantMode::kFp8) {
      const float inverse = quant_reciprocal<kFtz>(scale);  // 1.0f / *outputScale, as FlashInfer's every thread
      float q[kElements];
#pragma unroll
      for (int e = 0; e < kElements; ++e) q[e] = mul_f32<kFtz>(Pack<T>::widen(y, e), inverse);
      store_e4m3(io, first, q);
    } else if (mode == QuantMode::kFp8Dynamic) {
#pragma unroll
      for (int e = 0; e < kElements; ++e)
        absmax = quant_max<kFtz>(absmax, quant_abs<kFtz>(from_fp32 ? v[e] : Pack<T>::widen(y, e)));
    } else if (mode == QuantMode::kNvfp4) {
      if constexpr (T != DType::kFp32) {
        if (!neighbours) return;
        std::uint32_t key = 0;
        float w[kElements];
#pragma unroll
        for (int e = 0; e < kElements; ++e) {
          key = max(key, amax_key<T>(half_bits(y, e)));
          w[e] = Pack<T>::widen(y, e);
        }
        key = max(key, ptx::shfl_bfly_u32(key, 1));  // every lane of the warp (`neighbours`)
        if (!active) return;
        float element_scale;
        const std::uint32_t code = nvfp4_scale<T, kFtz>(key, scale, element_scale);
        *reinterpret_cast<std::uint32_t*>(static_cast<std::uint8_t*>(io.quant_out) + first / 2) =
            e2m1_word<kFtz>(w, element_scale);
        if (pack % 2 == 0) {
          const std::int64_t hidden = std::int64_t(row_packs) * kElements;
          static_cast<std::uint8_t*>(io.scale_out)[scale_offset(layout, t, pack / 2, hidden)] =
              static_cast<std::uint8_t>(code);
        }
      }
    }
  }

  /// After the output pass of row t, the `nth` row of this block. `values(pack, fp32, v)` recomputes a pack's
  /// fp32 values (fp32 true) or its T outputs widened. `neighbours`: on_pack was told so.
  template <class Values>
  __device__ __forceinline__ void finish(const NormSlot& io, std::uint32_t t, std::uint32_t row_packs, std::uint32_t nth,
                                         QuantShared& shared, bool neighbours, Values&& values) {
    int rank = 0, blocks = 1;
    if constexpr (kCluster) {
      rank = static_cast<int>(ptx::cluster_ctarank());
      blocks = static_cast<int>(ptx::cluster_nctarank());
    }
    // The packs (or NVFP4's pairs of packs) of the row this thread takes here: every blocks-th from the
    // block's rank, threads interleaved.
    const int first = rank + blocks * static_cast<int>(threadIdx.x), step = blocks * static_cast<int>(blockDim.x);
    if (mode == QuantMode::kFp8Dynamic) {
      const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
      float m = absmax;
#pragma unroll
      for (int mask = 16; mask >= 1; mask /= 2) m = quant_max<kFtz>(m, ptx::shfl_bfly_f32(m, mask));
      if (lane == 0) shared.warp_max[warp] = m;
      ptx::bar_cta_sync();
      // (The next row writes the warp maxima only after its first barrier, when every thread has read these.)
      // Every warp folds the warps' maxima itself, one a lane (a shuffle tree, not a chain of loads).
      float row_max = lane < static_cast<int>(blockDim.x) / 32 ? shared.warp_max[lane] : 0.0f;
#pragma unroll
      for (int mask = 16; mask >= 1; mask /= 2) row_max = quant_max<kFtz>(row_max, ptx::shfl_bfly_f32(row_max, mask));
      if constexpr (kCluster) {
        float* const maxima = shared.block_max[nth % 2];
        if (threadIdx.x == 0)
          for (int r = 0; r < blocks; ++r) ptx::st_shared_cluster_u32(&maxima[rank], r, __float_as_uint(row_max));
        ptx::cluster_sync();
        row_max = 0.0f;
        for (int r = 0; r < blocks; ++r) row_max = quant_max<kFtz>(row_max, maxima[r]);
      }
      const float largest = __uint_as_float(kE4m3LargestFp32);
      const float token_scale =
          quant_max<kFtz>(quant_divide<kFtz>(row_max, largest), __uint_as_float(kDynamicFp8MinScale));
      if (threadIdx.x == 0 && rank == 0) static_cast<float*>(io.scale_out)[t] = token_scale;
      for (int pack = first; pack < static_cast<int>(row_packs); pack += step) {
        float v[kElements];
        values(pack, from_fp32, v);
#pragma unroll
        for (int e = 0; e < kElements; ++e)
          v[e] = quant_min<kFtz>(quant_max<kFtz>(quant_divide<kFtz>(v[e], token_scale), -largest), largest);
        store_e4m3(io, (std::uint64_t(t) * row_packs + pack) * kElements, v);
      }
    } else if (mode == QuantMode::kNvfp4 && !neighbours) {
      if constexpr (T != DType::kFp32) {
        const std::int64_t hidden = std::int64_t(row_packs) * kElements;
        for (int block = first; block < static_cast<int>(row_packs) / 2; block += step) {
          float v[2][kElements];
          values(2 * block, false, v[0]);
          values(2 * block + 1, false, v[1]);
          // The values are T outputs widened: their T bits come back exactly.
          std::uint32_t key = 0;
#pragma unroll
          for (int e = 0; e < 2 * kElements; ++e)
            key = max(key, amax_key<T>(Pack<T>::narrow(v[e / kElements][e % kElements])));
          float element_scale;
          const std::uint32_t code = nvfp4_scale<T, kFtz>(key, scale, element_scale);
          const std::uint64_t at = (std::uint64_t(t) * row_packs * kElements + std::uint64_t(block) * 16) / 2;
          *reinterpret_cast<uint2*>(static_cast<std::uint8_t*>(io.quant_out) + at) =
              make_uint2(e2m1_word<kFtz>(v[0], element_scale), e2m1_word<kFtz>(v[1], element_scale));
          static_cast<std::uint8_t*>(io.scale_out)[scale_offset(layout, t, block, hidden)] =
              static_cast<std::uint8_t>(code);
        }
      }
    }
  }
};

}  // namespace ar::cuda::detail
