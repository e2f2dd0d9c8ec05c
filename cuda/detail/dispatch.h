// Runtime-to-template dispatch, in one function over one constexpr list: the element types compiled into
// this build (CMake option AR_DTYPES trims it) crossed with the three arithmetics the kernels run: FTZ fp32
// folds (flashinfer), IEEE fp32 folds (ieee) and the invariant profile's fold (IEEE below W = 16, the exact
// sum from there: cuda/detail/exact_fold.cuh; its norm arithmetic is ieee's). World size is a runtime
// parameter of every kernel: it costs no instantiation.
#pragma once

#include <array>
#include <type_traits>
#include <utility>

#include "reference/dtype.h"

// Set by cuda/CMakeLists.txt from AR_DTYPES (all on when built some other way).
#ifndef AR_CUDA_DTYPE_BF16
#define AR_CUDA_DTYPE_BF16 1
#define AR_CUDA_DTYPE_FP16 1
#define AR_CUDA_DTYPE_FP32 1
#endif

namespace ar::cuda::detail {

constexpr auto compiled_dtypes() {
  constexpr bool on[] = {AR_CUDA_DTYPE_BF16 != 0, AR_CUDA_DTYPE_FP16 != 0, AR_CUDA_DTYPE_FP32 != 0};
  constexpr DType all[] = {DType::kBf16, DType::kFp16, DType::kFp32};
  std::array<DType, std::size_t(on[0]) + on[1] + on[2]> list{};
  std::size_t n = 0;
  for (int i = 0; i < 3; ++i)
    if (on[i]) list[n++] = all[i];
  return list;
}
/// The element types compiled into this build, in kDTypeTable order.
inline constexpr auto kCompiledDTypes = compiled_dtypes();

/// The compile-time arithmetic of one kernel instantiation.
template <DType T, bool kFtz, bool kExact>
struct Arith {
  static constexpr DType dtype = T;
  static constexpr bool ftz = kFtz;
  /// The invariant profile's fold (invariant_fold_slots: the exact sum, ReductionOrder::exact, from W = 16);
  /// never with ftz
  static constexpr bool exact = kExact;
};

/// The all-reduce arithmetic of a kernel launch (cuda/all_reduce.cpp kernel_arith): FTZ folds, and whether the
/// invariant profile's kernels run (Arith::exact).
struct FoldArith {
  bool ftz = false;
  bool exact = false;
};

/// Calls f(Arith<t, ftz, exact>{}) for the compiled instantiation; returns false (f not called) when `t` is
/// not compiled into this build. FTZ with the invariant fold does not exist: it runs the FTZ fold.
template <class F>
bool dispatch_arith(DType t, FoldArith a, F&& f) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return ((t == kCompiledDTypes[I] &&
             (a.ftz     ? (f(Arith<kCompiledDTypes[I], true, false>{}), true)
              : a.exact ? (f(Arith<kCompiledDTypes[I], false, true>{}), true)
                        : (f(Arith<kCompiledDTypes[I], false, false>{}), true))) ||
            ...);
  }
  (std::make_index_sequence<kCompiledDTypes.size()>{});
}

/// Whether `t` is compiled into this build.
constexpr bool dtype_compiled(DType t) {
  for (DType c : kCompiledDTypes)
    if (c == t) return true;
  return false;
}

}  // namespace ar::cuda::detail
