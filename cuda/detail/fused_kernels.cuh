// The lookup of a fused kernel instantiation from a call's run-time choices (dtype, arithmetic, how blocks
// compute rows, quantised mode), the same for both strategies' kernel templates (cuda/fused_one_shot.cu,
// cuda/fused_two_shot.cu).
//
// Internal to cuda/: included by the two files that instantiate the fused kernels.
#pragma once

#include "cuda/detail/dispatch.h"
#include "cuda/detail/quant_row.cuh"
#include "cuda/params.h"

namespace ar::cuda::detail {

/// The kernel of Kernels (a struct whose `get<T, kFtz, kExact, kCluster, kRows, kPacks>()` names one
/// instantiation) for these choices, or nullptr when `t` is not compiled into this build. kEarly: the
/// strategy's dynamic FP8 takes its maximum before the scale under every profile (TWOSHOT), else under the
/// invariant profile's arithmetic only (dispatch_quant_rows). Register rows exist without the invariant
/// profile's arithmetic only (register_packs never gives them to it).
template <class Kernels, bool kEarly>
const void* fused_kernel_of(DType t, bool ftz, bool exact, RowBlocks blocks, QuantMode mode) {
  const void* kernel = nullptr;
  dispatch_arith(t, {ftz, exact}, [&](auto a) {
    using A = decltype(a);
    dispatch_quant_rows<A::dtype, kEarly || A::exact>(mode, [&](auto rows) {
      constexpr QuantRows kRows = decltype(rows)::value;
      if (blocks == RowBlocks::kCluster)
        kernel = Kernels::template get<A::dtype, A::ftz, A::exact, true, kRows, 0>();
      else if (blocks == RowBlocks::kBlock)
        kernel = Kernels::template get<A::dtype, A::ftz, A::exact, false, kRows, 0>();
      else if constexpr (!A::exact)
        kernel = blocks == RowBlocks::kOnePack ? Kernels::template get<A::dtype, A::ftz, false, false, kRows, 1>()
                                               : Kernels::template get<A::dtype, A::ftz, false, false, kRows, 2>();
    });
  });
  return kernel;
}

}  // namespace ar::cuda::detail
