// Body of rms_norm_rows (see cuda/rms_norm.h): the fused kernels' row computation as a kernel of its own,
// reading the all-reduce's output instead of the Lamport buffers.
#pragma once

#include "cuda/detail/fused_one_shot_impl.cuh"

namespace ar::cuda::detail {

template <DType T, bool kFtz>
__global__ void __launch_bounds__(kFusedBlockThreads, 1) rms_norm_rows(const __grid_constant__ RmsNormParams p) {
  // With PDL, the all-reduce before this kernel must have completed and its output be visible; the next
  // launch may start as soon as this one runs (it waits for this grid's completion before it reads anything).
  ptx::griddepcontrol_wait();
  ptx::griddepcontrol_launch_dependents();
  const std::uint32_t z = blockIdx.z;
  const std::uint32_t row_packs = static_cast<std::uint32_t>(p.row_packs);
  uint4* const staged = staged_row(row_packs);
  norm_rows_begin<false, QuantRows::kAny>();
  std::uint32_t nth = 0;
  for (std::uint32_t t = blockIdx.x; t < static_cast<std::uint32_t>(p.tokens); t += gridDim.x)
    norm_row<T, kFtz, false, QuantRows::kAny>(p.tree, p.norm[z], p.output[z], t, nth++, row_packs, staged, [&](int pack, uint4& ar) {
      ar = load_input(p.input[z], static_cast<std::uint32_t>(row_pack_index(t, row_packs, pack)));
      return true;
    });
}

}  // namespace ar::cuda::detail
