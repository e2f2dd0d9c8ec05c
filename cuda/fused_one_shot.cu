// Instantiations of fused_one_shot for the compiled dtypes and the three arithmetics, each in the kernels of
// its quantised rows (QuantRows).
#include "cuda/detail/dispatch.h"
#include "cuda/detail/fused_one_shot_impl.cuh"

namespace ar::cuda {

const void* fused_one_shot_kernel(DType t, bool ftz, bool exact, bool cluster, QuantMode mode) {
  const void* kernel = nullptr;
  detail::dispatch_arith(t, {ftz, exact}, [&](auto a) {
    using A = decltype(a);
    detail::dispatch_quant_rows<A::dtype, /*kEarly=*/A::exact>(mode, [&](auto rows) {
      constexpr detail::QuantRows kRows = decltype(rows)::value;
      using detail::fused_one_shot;
      kernel = cluster ? reinterpret_cast<const void*>(&fused_one_shot<A::dtype, A::ftz, A::exact, true, kRows>)
                       : reinterpret_cast<const void*>(&fused_one_shot<A::dtype, A::ftz, A::exact, false, kRows>);
    });
  });
  return kernel;
}

}  // namespace ar::cuda
