// two_shot_rs_st_ag: FlashInfer's TWOSHOT all-reduce with every multicast store replaced by W unicast stores.
//
// Contract (SPEC sections 3-5, 12): token t belongs to rank t % W. Every rank stores its sanitised packs of
// token t into SCATTER slot [t / W][rank] of the owner's buffer (stage 0); the owner polls the W slots,
// folds them in chunks of K = min(W, 16) ranks from +0 (ReductionOrder; the invariant profile with IEEE adds
// below W = 16 and as the exact sum from W = 16), narrows, maps -0 to +0 and stores the row into
// BROADCAST[t] (stage 1) of every rank; every rank polls its BROADCAST rows and copies them to its output.
// The previous launch's stages are cleared in its own layout. Phases: docs/kernels.md "Algorithms".
#pragma once

#include "reference/dtype.h"

namespace ar::cuda {

/// The kernel of (dtype, ftz, exact: ReductionOrder) as a function pointer for cudaLaunchKernelExC, or nullptr
/// when `t` is not compiled into this build.
const void* two_shot_kernel(DType t, bool ftz, bool exact);

/// two_shot_direct: TWOSHOT's direct path for large plain calls (docs/large-messages.md). The same owners and fold,
/// so the same bits; the rows go as plain stores into every rank's direct region (WorkspaceView::direct), and a
/// flag per (kind, source, block) publishes each block's round: nothing is polled but the flags, nothing is
/// cleared. Every rank must launch it with the same grid. nullptr when `t` is not compiled into this build.
const void* two_shot_direct_kernel(DType t, bool ftz, bool exact);

}  // namespace ar::cuda
