// Instantiations of fused_one_shot for the compiled dtypes and the three arithmetics, each in the kernels of
// its quantised rows (QuantRows) and of how its blocks compute rows (RowBlocks).
#include "cuda/detail/fused_kernels.cuh"
#include "cuda/detail/fused_one_shot_impl.cuh"
#include "cuda/fused.cuh"

namespace ar::cuda {

namespace {
struct OneShotKernels {
  template <DType T, bool kFtz, bool kExact, bool kCluster, detail::QuantRows kRows, int kPacks>
  static const void* get() {
    return reinterpret_cast<const void*>(&detail::fused_one_shot<T, kFtz, kExact, kCluster, kRows, kPacks>);
  }
};
}  // namespace

const void* fused_one_shot_kernel(DType t, bool ftz, bool exact, RowBlocks blocks, QuantMode mode) {
  return detail::fused_kernel_of<OneShotKernels, /*kEarly=*/false>(t, ftz, exact, blocks, mode);
}

}  // namespace ar::cuda
