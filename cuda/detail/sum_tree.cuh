// The adds of FlashInfer's summation tree of a row's sum of squares, in its order: a warp's xor butterfly by
// shuffles (butterfly), the same butterfly of a few values computed by one thread without a shuffle
// (butterfly_in_one_thread: a block's second level over its warp sums), and the row's sum from the warp sums
// of a block alone by lanes (row_sum_by_lanes: lane b computes block b's second level, then the fold).
// norm_row.cuh and norm_row_registers.cuh compute rows with them.
//
// Internal to cuda/: included by norm_row.cuh only.
#pragma once

#include "cuda/detail/lamport.cuh"
#include "cuda/params.h"
#include "reference/fused_launch.h"

namespace ar::cuda::detail {

inline constexpr int kWarpLanes = 32;
inline constexpr int kMaxNormClusterSize = kMaxClusterSize;       // reference/fused_launch.h
inline constexpr int kMaxNormWarps = kMaxBlockSize / kWarpLanes;  // a block's warps at most

/// One warp's xor butterfly (masks 16, 8, 4, 2, 1) over its first `lanes` lanes: each adds its partner's
/// value, and a lane that does not exist holds +0 throughout (warpReduceSumPartial). Lane 0 ends with the sum.
template <bool kFtz>
__device__ __forceinline__ float butterfly(float v, int lanes) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpLanes;
  const bool exists = lane < lanes;
  if (!exists) v = 0.0f;
#pragma unroll
  for (int mask = kWarpLanes / 2; mask >= 1; mask /= 2) {
    const float partner = ptx::shfl_bfly_f32(v, mask);
    v = exists ? add_f32<kFtz>(v, partner) : 0.0f;
  }
  return v;
}

/// One level of butterfly_of_leaves and the levels below it: leaf i adds leaf i + kMask, or +0 where that lies
/// past the leaves.
template <int kMask, int kLeaves, bool kFtz>
__device__ __forceinline__ void butterfly_levels_in_one_thread(float (&a)[kLeaves]) {
#pragma unroll
  for (int i = 0; i < kLeaves && i < kMask; ++i)
    a[i] = add_f32<kFtz>(a[i], kMask >= kLeaves ? 0.0f : a[i + (kMask < kLeaves ? kMask : 0)]);
  if constexpr (kMask > 1) butterfly_levels_in_one_thread<kMask / 2, kLeaves, kFtz>(a);
}

/// butterfly_in_one_thread over the first kLeaves >= n lanes: every load and add is unconditional (a leaf past
/// n is read, then replaced by +0; a lane past n adds +0 to +0), so there is no branch and no predicate.
/// kPaddingLevels false leaves out the levels of masks kLeaves and up, where every leaf only adds +0
/// (butterfly_in_one_thread says when that gives the same bits).
template <int kLeaves, bool kFtz, bool kPaddingLevels, class Value>
__device__ __forceinline__ float butterfly_of_leaves(int n, Value&& value) {
  float a[kLeaves];
#pragma unroll
  for (int j = 0; j < kLeaves; ++j) {
    const float v = value(j);
    a[j] = j < n ? v : 0.0f;
  }
  if constexpr (kPaddingLevels)
    butterfly_levels_in_one_thread<kWarpLanes / 2, kLeaves, kFtz>(a);
  else if constexpr (kLeaves > 1)
    butterfly_levels_in_one_thread<kLeaves / 2, kLeaves, kFtz>(a);
  return a[0];
}

/// What butterfly<kFtz> leaves in lane 0 of a warp whose lanes j < n hold value(j) and the others +0 (a lane
/// that does not exist holds +0 too), computed by one thread without a shuffle: FlashInfer's second level,
/// where n is the warp count. At mask m lane 0 adds lane m's value, the sum of lanes j = m (mod 2m) built by
/// lane m's own adds; here a[i] follows lane i with the same adds of the same values in the same order, those
/// of +0 included (they flush a subnormal under FTZ). A lane i >= n only ever adds +0 to +0 and lane 0 never
/// reads a lane past n before it holds +0, so a partial second level (n = 1) and a full one give lane 0 the
/// same bits either way. value(j) must be readable for every j below the next power of two from n.
/// n is at most kMaxOneThreadLeaves (cuda/params.h).
/// kPaddingLevels false leaves out the levels where every leaf adds +0 (masks from the next power of two from
/// n up): the same bits where no leaf is -0 (sums of squares from +0 never are) and, under FTZ, the value goes
/// on to an FTZ operation. A +0 added to x then gives x, but under FTZ flushes a subnormal x to +0, which every
/// later FTZ add (and the scale's fma) does to its operand anyway: the adds after those levels are real ones,
/// and with one leaf the block sum goes on to the fold's add or the scale's fma. NaNs are canonical either way.
template <bool kFtz, bool kPaddingLevels = true, class Value>
__device__ __forceinline__ float butterfly_in_one_thread(int n, Value&& value) {
  static_assert(kMaxOneThreadLeaves == 8, "the branches below stop at 8 leaves");
  if (n <= 1) return butterfly_of_leaves<1, kFtz, kPaddingLevels>(n, value);
  if (n <= 2) return butterfly_of_leaves<2, kFtz, kPaddingLevels>(n, value);
  if (n <= 4) return butterfly_of_leaves<4, kFtz, kPaddingLevels>(n, value);
  return butterfly_of_leaves<8, kFtz, kPaddingLevels>(n, value);
}

/// The row's sum of squares from FlashInfer's warp sums of `blocks` blocks of `warps` warps (at most
/// kMaxOneThreadLeaves), after the barrier that published them, in every thread of a warp that calls it (the
/// whole warp must): lane b < blocks computes FlashInfer's block b's second level (butterfly_in_one_thread) from
/// `leaf(w)`, its block's warp sums, the block sums go round the warp by shuffles, every shuffle first so that
/// their latencies overlap, and their fold from +0 in block order (or block 0's alone where the tree has no
/// cluster fold).
/// kLean: without the second level's +0 levels (butterfly_in_one_thread's kPaddingLevels), and the fold adds
/// all 8 lanes, +0 past the blocks: sum + 0 is sum, never -0, but under FTZ a subnormal sum flushed to +0,
/// which the scale's fma does with it anyway. The same bits either way (tests/cuda/register_rows_test.cpp).
template <bool kFtz, bool kLean, class Leaf>
__device__ __forceinline__ float row_sum_by_lanes(const NormTree& tree, int lane, int blocks, int warps, Leaf&& leaf) {
  const float mine = lane < blocks ? butterfly_in_one_thread<kFtz, !kLean>(warps, leaf) : 0.0f;
  float block_sums[kMaxNormClusterSize];
#pragma unroll
  for (int block = 0; block < kMaxNormClusterSize; ++block) block_sums[block] = ptx::shfl_idx_f32(mine, block);
  float sum = block_sums[0];
  if (tree.cluster_fold) {
    sum = 0.0f;
#pragma unroll
    for (int block = 0; block < kMaxNormClusterSize; ++block)
      if (kLean || block < tree.cluster_size) sum = add_f32<kFtz>(sum, block_sums[block]);
  }
  return sum;
}

}  // namespace ar::cuda::detail
