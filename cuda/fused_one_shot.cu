// Instantiations of fused_one_shot for the compiled dtypes and the three arithmetics.
#include "cuda/detail/dispatch.h"
#include "cuda/detail/fused_one_shot_impl.cuh"

namespace ar::cuda {

const void* fused_one_shot_kernel(DType t, bool ftz, bool exact, bool cluster) {
  const void* kernel = nullptr;
  detail::dispatch_arith(t, {ftz, exact}, [&](auto a) {
    using A = decltype(a);
    kernel = cluster ? reinterpret_cast<const void*>(&detail::fused_one_shot<A::dtype, A::ftz, A::exact, true>)
                     : reinterpret_cast<const void*>(&detail::fused_one_shot<A::dtype, A::ftz, A::exact, false>);
  });
  return kernel;
}

}  // namespace ar::cuda
