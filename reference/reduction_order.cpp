#include "reference/reduction_order.h"

#include <algorithm>

#include <fmt/format.h>

namespace ar {

ReductionOrder reduction_order(Strategy resolved, Profile profile, int world_size) {
  ReductionOrder order;
  order.world_size = world_size;
  order.ftz = flushes_subnormals(profile);
  if (profile == Profile::kInvariant) {
    // One order for both strategies (reduction_order's comment says why these two). -0 -> +0 is kept as
    // TWOSHOT's Lamport rule that no result equals the sentinel; neither way gives a -0 sum.
    if (world_size >= kOneShotChunksFromWorld) return exact_sum_order(world_size);
    order.sanitize_result = true;
    order.chunk = 0;
    return order;
  }
  if (profile == Profile::kTrtllm) {
    // TensorRT-LLM: acc = v0, then ranks 1..W-1 in order; no chunking; twoshot broadcasts its sum as is.
    order.chunk = 0;
    order.seed_with_first = true;
    order.sanitize_result = false;
    return order;
  }
  if (resolved == Strategy::kOneShot) {
    order.chunk = world_size >= kOneShotChunksFromWorld ? 8 : 0;  // reduceLamportRanksChunked<W, 8>
    order.sanitize_result = false;
  } else {
    order.chunk = std::min(world_size, 16);  // K = min(W, 16), even when that is a single chunk
    order.sanitize_result = true;
  }
  return order;
}

ReductionOrder exact_sum_order(int world_size) {
  ReductionOrder order;
  order.world_size = world_size;
  order.ftz = false;
  order.chunk = 0;
  order.sanitize_result = true;  // a no-op: the inputs are sanitised and a non-zero sum never rounds to zero
  order.exact = true;
  return order;
}

ReductionOrder exact_pair_fold() {
  ReductionOrder fold;
  fold.world_size = 2;
  fold.chunk = 0;
  fold.ftz = false;
  fold.sanitize_result = false;  // the fold never gives -0
  return fold;
}

std::string describe(const ReductionOrder& o) {
  if (o.exact) return "no order: the exact sum of the W values, rounded once to T (RN-even), -0 result -> +0";
  std::string fold;
  if (o.chunk == 0)
    fold = o.seed_with_first ? "flat fold seeded with rank 0" : "flat fold from +0";
  else
    fold = fmt::format("{} chunk{} of {} ranks from +0, then chunk sums from +0", o.chunk_count(),
                       o.chunk_count() == 1 ? "" : "s", o.chunk);
  return fmt::format("{}, {} fp32 adds, {}", fold, o.ftz ? "FTZ" : "IEEE (no FTZ)",
                     o.sanitize_result ? "-0 result -> +0" : "-0 result kept");
}

}  // namespace ar
