// Instantiations of fused_two_shot for the compiled dtypes and the three arithmetics (each also as the kernel
// of dynamic FP8 rows), and the lookup of both fused kernels.
#include <type_traits>

#include "cuda/detail/dispatch.h"
#include "cuda/detail/fused_two_shot_impl.cuh"
#include "cuda/fused.cuh"

namespace ar::cuda {

const void* fused_one_shot_kernel(DType t, bool ftz, bool exact, bool cluster);  // cuda/fused_one_shot.cu

const void* fused_kernel(Strategy resolved, DType t, bool ftz, bool exact, bool cluster, bool dynamic_fp8) {
  if (resolved == Strategy::kOneShot) return fused_one_shot_kernel(t, ftz, exact, cluster);
  const void* kernel = nullptr;
  detail::dispatch_arith(t, {ftz, exact}, [&](auto a) {
    using A = decltype(a);
    const auto pick = [&](auto early) {
      constexpr bool kEarly = decltype(early)::value;
      kernel = cluster ? reinterpret_cast<const void*>(&detail::fused_two_shot<A::dtype, A::ftz, A::exact, true, kEarly>)
                       : reinterpret_cast<const void*>(&detail::fused_two_shot<A::dtype, A::ftz, A::exact, false, kEarly>);
    };
    if (dynamic_fp8)
      pick(std::true_type{});
    else
      pick(std::false_type{});
  });
  return kernel;
}

}  // namespace ar::cuda
