// Instantiations of two_shot_rs_st_ag and two_shot_direct for the compiled dtypes and the three arithmetics.
#include "cuda/two_shot.cuh"

#include "cuda/detail/dispatch.h"
#include "cuda/detail/direct_two_shot_impl.cuh"
#include "cuda/detail/two_shot_impl.cuh"

namespace ar::cuda {

const void* two_shot_kernel(DType t, bool ftz, bool exact) {
  const void* kernel = nullptr;
  detail::dispatch_arith(t, {ftz, exact}, [&](auto a) {
    using A = decltype(a);
    kernel = reinterpret_cast<const void*>(&detail::two_shot_rs_st_ag<A::dtype, A::ftz, A::exact>);
  });
  return kernel;
}

const void* two_shot_direct_kernel(DType t, bool ftz, bool exact) {
  const void* kernel = nullptr;
  detail::dispatch_arith(t, {ftz, exact}, [&](auto a) {
    using A = decltype(a);
    kernel = reinterpret_cast<const void*>(&detail::two_shot_direct<A::dtype, A::ftz, A::exact>);
  });
  return kernel;
}

}  // namespace ar::cuda
