// The quantised outputs of one normalised row (SPEC section 13; model: reference/fused_quant.h), after the
// norm has written the row: static FP8, dynamic FP8 with the token's scale, or NVFP4 with its block scales.
//
// The pass recomputes each element's fp32 value from `pre`, gamma and the row's scale (three multiplies,
// the same bits as the output pass) rather than keeping them, so the norm's registers stay as they were.
// A row's absmax is a maximum of values from +0 up with NaNs dropped: any order gives the same bits, so its
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
  float warp_max[32];                 ///< each warp's absmax of the row
  float block_max[2][8];              ///< each cluster block's, alternating row by row (as NormShared::block_sums)
};

// The profile's operations (reference quant_mul, quant_divide, ...): fast-math's approximate division, FTZ
// multiplies and max/min under kFtz; the IEEE ones otherwise (ieee and invariant profiles).
template <bool kFtz>
__device__ __forceinline__ float quant_mul(float a, float b) {
  if constexpr (kFtz) return ptx::mul_ftz_f32(a, b);
  else return ptx::mul_rn_f32(a, b);
}
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

/// FP4 e2m1 of one fp32 value (reference e2m1_from_fp32), computed, since sm_90 has no cvt to e2m1: RN-even
/// onto 0, 0.5, 1, 1.5, 2, 3, 4, 6 is a count of the midpoints passed (strictly where the lower neighbour's
/// code is even, inclusively where the upper's is), saturating at 6; the sign kept; a NaN gives +6.
__device__ __forceinline__ std::uint32_t e2m1_code(float x) {
  if (x != x) return kE2m1Largest;
  const std::uint32_t bits = __float_as_uint(x);
  const float a = __uint_as_float(bits & 0x7FFFFFFFu);
  const std::uint32_t code = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f);
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

/// Quantises row t, after its output pass. `values(pack, fp32, out)` gives the pack's fp32 values before
/// their narrowing (fp32 true) or its T outputs widened (false). Every thread of every block of the cluster
/// must call it for the same row (dynamic FP8 holds block and cluster barriers).
template <DType T, bool kFtz, bool kCluster, class Values>
__device__ __forceinline__ void quantize_row(const NormTree& tree, const NormSlot& io, std::uint32_t t,
                                             std::uint32_t row_packs, std::uint32_t nth, QuantShared& shared,
                                             Values&& values) {
  constexpr int kElements = Pack<T>::kElements;
  const auto mode = static_cast<QuantMode>(tree.quant_mode);
  int rank = 0, blocks = 1;
  if constexpr (kCluster) {
    rank = static_cast<int>(ptx::cluster_ctarank());
    blocks = static_cast<int>(ptx::cluster_nctarank());
  }
  // The packs (or NVFP4's pairs of packs) of the row this thread quantises: every blocks-th from the
  // block's rank, threads interleaved.
  const int first = rank + blocks * static_cast<int>(threadIdx.x), step = blocks * static_cast<int>(blockDim.x);
  std::uint8_t* const codes = static_cast<std::uint8_t*>(io.quant_out);
  const std::uint64_t row_first = std::uint64_t(t) * row_packs * kElements;  // the row's first element

  // Stores one pack's codes of e4m3 values.
  const auto store_e4m3 = [&](int pack, const float (&q)[kElements]) {
    std::uint8_t* at = codes + row_first + std::uint64_t(pack) * kElements;
    if constexpr (kElements == 8) {
      const uint2 w{e4m3_pair(q[0], q[1]) | e4m3_pair(q[2], q[3]) << 16, e4m3_pair(q[4], q[5]) | e4m3_pair(q[6], q[7]) << 16};
      *reinterpret_cast<uint2*>(at) = w;
    } else {
      *reinterpret_cast<std::uint32_t*>(at) = e4m3_pair(q[0], q[1]) | e4m3_pair(q[2], q[3]) << 16;
    }
  };

  if (mode == QuantMode::kFp8) {
    const float inverse = quant_reciprocal<kFtz>(*io.quant_scale);
    for (int pack = first; pack < static_cast<int>(row_packs); pack += step) {
      float v[kElements];
      values(pack, /*fp32=*/false, v);
#pragma unroll
      for (int e = 0; e < kElements; ++e) v[e] = quant_mul<kFtz>(v[e], inverse);
      store_e4m3(pack, v);
    }
  } else if (mode == QuantMode::kFp8Dynamic) {
    const bool from_fp32 = tree.quant_from_fp32 != 0;
    float m = 0.0f;  // fmaxf(threadMax, fabsf(x)) from 0.F
    for (int pack = first; pack < static_cast<int>(row_packs); pack += step) {
      float v[kElements];
      values(pack, from_fp32, v);
#pragma unroll
      for (int e = 0; e < kElements; ++e) m = quant_max<kFtz>(m, quant_abs<kFtz>(v[e]));
    }
    const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
#pragma unroll
    for (int mask = 16; mask >= 1; mask /= 2) m = quant_max<kFtz>(m, ptx::shfl_bfly_f32(m, mask));
    if (lane == 0) shared.warp_max[warp] = m;
    ptx::bar_cta_sync();
    float absmax = 0.0f;
    for (int w = 0; w < static_cast<int>(blockDim.x) / 32; ++w) absmax = quant_max<kFtz>(absmax, shared.warp_max[w]);
    // (The next row writes the warp maxima only after its first barrier, when every thread has read these.)
    if constexpr (kCluster) {
      float* const maxima = shared.block_max[nth % 2];
      if (threadIdx.x == 0)
        for (int r = 0; r < blocks; ++r) ptx::st_shared_cluster_u32(&maxima[rank], r, __float_as_uint(absmax));
      ptx::cluster_sync();
      absmax = 0.0f;
      for (int r = 0; r < blocks; ++r) absmax = quant_max<kFtz>(absmax, maxima[r]);
    }
    const float scale = quant_max<kFtz>(quant_divide<kFtz>(absmax, __uint_as_float(kE4m3LargestFp32)),
                                        __uint_as_float(kDynamicFp8MinScale));
    if (threadIdx.x == 0 && rank == 0) static_cast<float*>(io.scale_out)[t] = scale;
    const float largest = __uint_as_float(kE4m3LargestFp32);
    for (int pack = first; pack < static_cast<int>(row_packs); pack += step) {
      float v[kElements];
      values(pack, from_fp32, v);
#pragma unroll
      for (int e = 0; e < kElements; ++e)
        v[e] = quant_min<kFtz>(quant_max<kFtz>(quant_divide<kFtz>(v[e], scale), -largest), largest);
      store_e4m3(pack, v);
    }
  } else if (mode == QuantMode::kNvfp4) {
    if constexpr (T != DType::kFp32) {
      const float global = *io.quant_scale;
      const std::int64_t hidden = std::int64_t(row_packs) * kElements;
      const auto layout = static_cast<ScaleLayout>(tree.scale_layout);
      for (int block = first; block < static_cast<int>(row_packs) / 2; block += step) {
        float v[2][kElements];
        values(2 * block, false, v[0]);
        values(2 * block + 1, false, v[1]);
        // amax in T: the values are T outputs widened, so their T bits come back exactly.
        std::uint32_t key = 0;
#pragma unroll
        for (int e = 0; e < 2 * kElements; ++e) key = max(key, amax_key<T>(Pack<T>::narrow(v[e / kElements][e % kElements])));
        const float amax = Pack<T>::widen(make_uint4(amax_of_key<T>(key), 0, 0, 0), 0);
        const float scale_input = quant_mul<kFtz>(global, quant_mul<kFtz>(amax, __uint_as_float(kReciprocalOfSix)));
        const std::uint32_t scale_code = e4m3_pair(scale_input, 0.0f) & 0xFFu;
        const float scale = e4m3_value(scale_code);
        const float element_scale = scale != 0.0f ? quant_divide<kFtz>(global, scale) : 0.0f;  // NaN != 0
        std::uint32_t word[2] = {0, 0};
#pragma unroll
        for (int e = 0; e < 2 * kElements; ++e)
          word[e / 8] |= e2m1_code(quant_mul<kFtz>(v[e / kElements][e % kElements], element_scale)) << (4 * (e % 8));
        *reinterpret_cast<uint2*>(codes + (row_first + std::uint64_t(block) * 16) / 2) = make_uint2(word[0], word[1]);
        static_cast<std::uint8_t*>(io.scale_out)[scale_offset(layout, t, block, hidden)] =
            static_cast<std::uint8_t>(scale_code);
      }
    }
  }
}

}  // namespace ar::cuda::detail
