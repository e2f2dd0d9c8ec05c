// one_shot_st_ld_r: FlashInfer's ONESHOT all-reduce with every multicast store replaced by W unicast stores.
//
// Contract (SPEC sections 3-5, 12): every rank stores its sanitised [N, D] shard into slot [t][rank] of every
// rank's current Lamport buffer (one stage, layout [token][source rank][D]), clears its own previous buffer,
// polls the W slots of each pack in its own buffer until no 32-bit word is the sentinel, folds them in
// ascending rank order from +0 (one flat fold for W <= 8, chunks of 8 from W = 16 on; ReductionOrder; the
// invariant profile with IEEE adds below W = 16 and as the exact sum from W = 16, cuda/detail/exact_fold.cuh),
// and writes the narrowed sum, -0 kept (the invariant profile never gives one). Every rank computes the same
// bits. Phases: docs/kernels.md "Algorithms".
//
// Host code launches it through cuda/all_reduce.h; this header only names the instantiations.
#pragma once

#include "reference/dtype.h"

namespace ar::cuda {

/// The kernel of (dtype, ftz, exact: ReductionOrder) as a function pointer for cudaLaunchKernelExC, or nullptr
/// when `t` is not compiled into this build.
const void* one_shot_kernel(DType t, bool ftz, bool exact);

}  // namespace ar::cuda
