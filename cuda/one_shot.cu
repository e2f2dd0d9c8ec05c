// Instantiations of one_shot_st_ld_r for the compiled dtypes and the three arithmetics.
#include "cuda/one_shot.cuh"

#include "cuda/detail/dispatch.h"
#include "cuda/detail/one_shot_impl.cuh"

namespace ar::cuda {

const void* one_shot_kernel(DType t, bool ftz, bool exact) {
  const void* kernel = nullptr;
  detail::dispatch_arith(t, {ftz, exact}, [&](auto a) {
    using A = decltype(a);
    kernel = reinterpret_cast<const void*>(&detail::one_shot_st_ld_r<A::dtype, A::ftz, A::exact>);
  });
  return kernel;
}

}  // namespace ar::cuda
