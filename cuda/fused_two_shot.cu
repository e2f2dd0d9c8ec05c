// Instantiations of fused_two_shot for the compiled dtypes and the three arithmetics, each in the kernels of
// its quantised rows (QuantRows) and of how its blocks compute rows (RowBlocks), and the lookup of both fused
// kernels.
#include "cuda/detail/fused_kernels.cuh"
#include "cuda/detail/fused_two_shot_impl.cuh"
#include "cuda/fused.cuh"

namespace ar::cuda {

const void* fused_one_shot_kernel(DType t, bool ftz, bool exact, RowBlocks blocks,
                                  QuantMode mode);  // fused_one_shot.cu

namespace {
struct TwoShotKernels {
  template <DType T, bool kFtz, bool kExact, bool kCluster, detail::QuantRows kRows, int kPacks>
  static const void* get() {
    return reinterpret_cast<const void*>(&detail::fused_two_shot<T, kFtz, kExact, kCluster, kRows, kPacks>);
  }
};
}  // namespace

const void* fused_kernel(Strategy resolved, DType t, bool ftz, bool exact, RowBlocks blocks, QuantMode mode) {
  if (resolved == Strategy::kOneShot) return fused_one_shot_kernel(t, ftz, exact, blocks, mode);
  return detail::fused_kernel_of<TwoShotKernels, /*kEarly=*/true>(t, ftz, exact, blocks, mode);
}

}  // namespace ar::cuda
