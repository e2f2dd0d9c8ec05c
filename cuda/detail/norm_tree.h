// Host side: the NormTree a fused launch passes its kernel, from the launch it follows (reference NormLaunch).
#pragma once

#include "cuda/all_reduce.h"
#include "cuda/params.h"
#include "reference/float_ops.h"
#include "reference/fused_launch.h"
#include "reference/rsqrt_rn.h"

namespace ar::cuda::detail {

/// What the norm's row computation needs of the launch it follows (FlashInfer's, or the invariant profile's):
/// the summation tree and the arithmetic.
inline NormTree norm_tree(const NormLaunch& l, const NormArguments& n, Profile profile) {
  NormTree tree{};
  tree.block_size = l.block_size();
  tree.cluster_size = l.cluster_size();
  tree.loads = l.loads_per_thread();
  tree.packs_per_block = l.packs_per_block;
  tree.cluster_fold = l.cluster_launch && l.cluster_size() > 1 ? 1 : 0;
  tree.square_in_t = l.squares_in_t ? 1 : 0;
  tree.two_shot_order = l.gamma_first ? 1 : 0;
  tree.exact_rsqrt = profile == Profile::kInvariant ? 1 : 0;
  tree.hidden = static_cast<std::uint32_t>(l.hidden);
  // The invariant profile's 1/D, rounded once here (reference row_scale), so no division is on a row's path.
  if (tree.exact_rsqrt != 0)
    tree.hidden_reciprocal = reciprocal_rn_fp32(fp32_from_integer(static_cast<std::uint64_t>(l.hidden)));
  tree.epsilon = n.epsilon;
  tree.weight_bias = n.weight_bias;
  tree.quant_mode = static_cast<std::int32_t>(n.quant);
  tree.scale_layout = static_cast<std::int32_t>(n.scale_layout);
  tree.quant_from_fp32 = quant_arithmetic(profile, l.strategy).dynamic_from_fp32 ? 1 : 0;
  return tree;
}

/// Lets `kernel` take `bytes` of dynamic shared memory per block. Without this a block may take 48 KiB with
/// its static shared memory, so it is asked for every size, not only past 48 KiB of dynamic memory (a fused
/// call whose dynamic memory came to 48 KiB exactly was refused as not resident).
void allow_dynamic_shared(const void* kernel, std::int64_t bytes);

}  // namespace ar::cuda::detail
