// Body of rms_norm_rows (see cuda/rms_norm.h): the fused kernels' row computation as a kernel of its own,
// reading the all-reduce's output instead of the Lamport buffers.
#pragma once

#include "cuda/detail/fused_one_shot_impl.cuh"

namespace ar::cuda::detail {

template <DType T, bool kFtz>
__global__ void __launch_bounds__(kFusedBlockThreads, 1) rms_norm_rows(const __grid_constant__ RmsNormParams p) {
  // With PDL, the all-reduce before this kernel must have completed and its output be visible.
  ptx::griddepcontrol_wait();
  const std::uint32_t z = blockIdx.z;
  const std::uint32_t row_packs = static_cast<std::uint32_t>(p.row_packs);
  uint4* const staged = staged_row(row_packs);
  for (std::uint32_t t = blockIdx.x; t < static_cast<std::uint32_t>(p.tokens); t += gridDim.x)
    norm_row<T, kFtz>(p.tree, p.norm[z], p.output[z], t, row_packs, staged, [&](int pack, uint4& ar) {
      ar = load_input(p.input[z], static_cast<std::uint32_t>(row_pack_index(t, row_packs, pack)));
      return true;
    });
  ptx::griddepcontrol_launch_dependents();
}

}  // namespace ar::cuda::detail
