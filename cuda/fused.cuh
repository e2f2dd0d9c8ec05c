// fused_one_shot and fused_two_shot: FlashInfer's fused all-reduce + residual add + RMSNorm
// (trtllm_mnnvl_fused_allreduce_add_rmsnorm, SPEC sections 6 and 7), unicast, with bounded waits.
//
// Contract: the all-reduce of each strategy exactly as cuda/one_shot.cuh and cuda/two_shot.cuh describe
// (the same flags, clears and clear records, so fused and plain calls mix on one workspace), then for each
// token: pre = AR +_T residual (stored as residual_out), the row's sum of squares in the order of FlashInfer's
// launch for a given SM count (NormTree), the scale, and each strategy's output products, narrowed once. Our
// launch differs from FlashInfer's (a row is one of our blocks; TWOSHOT is one kernel whose owners also
// store their rows into their own BROADCAST stage); the association order of every sum does not. Model:
// reference/fused_rms_norm.h.
//
// Host code launches them through cuda/all_reduce.h (AllReduceArguments::norm); this header only names
// the instantiations.
#pragma once

#include "cuda/params.h"
#include "reference/dtype.h"
#include "reference/fused_quant.h"
#include "reference/strategy.h"

namespace ar::cuda {

/// The fused kernel of (resolved strategy, dtype, ftz, exact: as one_shot_kernel's) for cudaLaunchKernelExC
/// whose blocks compute rows as `blocks` says (RowBlocks; register rows never with exact), and the one of the
/// call's quantised output `mode` (unquantised and static FP8 rows share one; dynamic FP8 and NVFP4 have
/// kernels of their own: cuda/detail/quant_row.cuh, QuantRows), or nullptr when `t` is not compiled into this
/// build.
const void* fused_kernel(Strategy resolved, DType t, bool ftz, bool exact, RowBlocks blocks, QuantMode mode);

}  // namespace ar::cuda
