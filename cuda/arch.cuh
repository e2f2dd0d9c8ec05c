// Architecture feature macros, in one place. Kernels and cuda/ptx.cuh test these, never __CUDA_ARCH__.
#pragma once

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
/// griddepcontrol (programmatic dependent launch) exists from sm_90 on.
#define AR_HAS_GRIDDEPCONTROL 1
#else
#define AR_HAS_GRIDDEPCONTROL 0
#endif

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
/// nanosleep and the .release/.acquire qualifiers exist from sm_70 on.
#define AR_HAS_NANOSLEEP 1
#else
#define AR_HAS_NANOSLEEP 0
#endif

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
/// cvt to FP8 (e4m3x2, e5m2x2) exists from sm_89 on; e2m1 (FP4) only from sm_100, so the kernels compute it.
#define AR_HAS_FP8_CVT 1
#else
#define AR_HAS_FP8_CVT 0
#endif

/// Never defined: this project does not use NVLink multicast (multimem instructions or the multicast-object API), on
/// any arch.
#define AR_HAS_MULTIMEM 0
