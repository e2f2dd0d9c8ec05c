// Instantiations of fused_two_shot for the compiled dtypes and the three arithmetics, each in the kernels of
// its quantised rows (QuantRows), and the lookup of both fused kernels.
#include "cuda/detail/dispatch.h"
#include "cuda/detail/fused_two_shot_impl.cuh"
#include "cuda/fused.cuh"

namespace ar::cuda {

const void* fused_one_shot_kernel(DType t, bool ftz, bool exact, bool cluster, QuantMode mode);  // fused_one_shot.cu

const void* fused_kernel(Strategy resolved, DType t, bool ftz, bool exact, bool cluster, QuantMode mode) {
  if (resolved == Strategy::kOneShot) return fused_one_shot_kernel(t, ftz, exact, cluster, mode);
  const void* kernel = nullptr;
  detail::dispatch_arith(t, {ftz, exact}, [&](auto a) {
    using A = decltype(a);
    detail::dispatch_quant_rows<A::dtype, /*kEarly=*/true>(mode, [&](auto rows) {
      constexpr detail::QuantRows kRows = decltype(rows)::value;
      using detail::fused_two_shot;
      kernel = cluster ? reinterpret_cast<const void*>(&fused_two_shot<A::dtype, A::ftz, A::exact, true, kRows>)
                       : reinterpret_cast<const void*>(&fused_two_shot<A::dtype, A::ftz, A::exact, false, kRows>);
    });
  });
  return kernel;
}

}  // namespace ar::cuda
