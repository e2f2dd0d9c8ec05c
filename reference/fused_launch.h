// The launch shape of the kernel that computes the fused RMSNorm (SPEC section 6): FlashInfer's grid tuning
// `adjustGridConfig`, the strategy's choice between a cluster launch and a plain one, and which thread of
// which block holds which 16-byte pack of a row. The norm's summation tree follows from it, and with it the
// bits of the normalised output: they depend on N and on the GPU's SM count.
#pragma once

#include <cstdint>

#include "reference/strategy.h"

namespace ar {

/// SMs of an H100 SXM / H200, what the kernels query with cudaDevAttrMultiProcessorCount.
inline constexpr int kDefaultSmCount = 132;
/// The widest cluster the kernels launch (CUH:108), also the size of their DSMEM slot arrays.
inline constexpr int kMaxClusterSize = 8;
/// CUDA's limit on threads per block (and the kernels' __launch_bounds__).
inline constexpr int kMaxBlockSize = 1024;
/// The most 16-byte loads per thread rmsNormLamport is instantiated for.
inline constexpr int kMaxLoadsPerThread = 8;

/// What adjustGridConfig returns (CUH:790-846).
struct GridConfig {
  int block_size = 0;
  int cluster_size = 0;
  int loads_per_thread = 0;
  bool operator==(const GridConfig&) const = default;
};

/// adjustGridConfig(numTokens, dim, eltsPerThread, useCluster) with the SM count as a parameter:
/// `packs_per_row` = ceil(D / E'). With `use_cluster` false only the last step (more loads per thread while
/// blocks exceed 1024 threads) runs.
GridConfig adjust_grid_config(std::int64_t tokens, std::int64_t packs_per_row, int sm_count, bool use_cluster);

/// The launch of the kernel that normalises: ONESHOT's fused all-reduce kernel, or TWOSHOT's rmsNormLamport
/// that runs after its all-reduce kernel. One row (token) per cluster of `cluster_size` blocks along y.
struct NormLaunch {
  Strategy strategy = Strategy::kOneShot;  ///< resolved
  DType dtype = DType::kBf16;
  std::int64_t hidden = 0;
  int packs_per_row = 0;      ///< T = D / E'
  int elements_per_pack = 0;  ///< E' = 16 / sizeof(T)
  GridConfig grid;
  /// A cluster launch (1, cs, 1) whose blocks add their sums through DSMEM. ONESHOT always launches one
  /// (cs may be 1); TWOSHOT only when cs > 1 and loads == 1 (CUH:1679-1691).
  bool cluster_launch = false;
  /// TWOSHOT: packs of a row each block of the cluster starts from (`blockChunkSize / E'`, CUH:1364-1366).
  int packs_per_block = 0;
  /// TWOSHOT: elements of shared memory per thread and array, `round_up(D, E'*cs*bs) / (cs*bs)`
  /// (CUH:1705-1708); 0 for ONESHOT, which uses none.
  int shared_elements_per_thread = 0;
  std::int64_t dynamic_shared_bytes = 0;  ///< TWOSHOT: 3 * bs * iters * E (input, residual, gamma)
  // The arithmetic that comes with the kernel (SPEC 7): FlashInfer's follows the strategy, the invariant
  // profile's is one for both.
  /// Each thread squares a 16-bit element in T and adds the widened square (ONESHOT, bf16 and fp16); else
  /// it fmas the widened element into its sum.
  bool squares_in_t = false;
  /// The output is ((wb + f(gamma)) * f(pre)) * scale (TWOSHOT); else (f(pre) * scale) * (wb + f(gamma)).
  bool gamma_first = false;
  /// Threads without a pack return before the reduction (ONESHOT); else they add +0.
  bool idle_threads_exit = false;

  int block_size() const { return grid.block_size; }
  int cluster_size() const { return grid.cluster_size; }
  int loads_per_thread() const { return grid.loads_per_thread; }
  int threads_per_row() const { return grid.block_size * grid.cluster_size; }
  int warps_per_block() const { return (grid.block_size + 31) / 32; }
  bool has_partial_warp() const { return grid.block_size % 32 != 0; }
  /// ONESHOT threads whose pack lies beyond the row: they return before the block reduction (CUH:935-939),
  /// so the lanes and shared-memory slots they would fill are undefined on the GPU. Where idle threads
  /// stay and add +0 (TWOSHOT, invariant) this is 0.
  int exited_threads() const;
};

/// The launch FlashInfer makes for `resolved` (ONESHOT or TWOSHOT) at N tokens of D elements of T. Throws
/// std::invalid_argument with FlashInfer's reason when its dispatcher refuses the shape.
NormLaunch norm_launch(Strategy resolved, std::int64_t tokens, std::int64_t hidden, DType t,
                       int sm_count = kDefaultSmCount);

/// The invariant profile's launch (Profile::kInvariant): a function of D and T alone, whatever the strategy,
/// N or SM count. Blocks of bs = min(512, P rounded up to 32) threads, cs = min(8, ceil(P / bs)) of them in a
/// cluster whose block sums fold from +0 in block order, ceil(P / (bs * cs)) loads per thread, block b
/// holding packs [b * bs * loads, (b + 1) * bs * loads) (TWOSHOT's layout); every thread fmas its widened
/// elements from +0, idle threads add +0, and the output is TWOSHOT's ((wb + f(gamma)) * f(pre)) * scale.
/// `resolved` only labels it. Throws std::invalid_argument for a D no launch covers.
NormLaunch invariant_norm_launch(Strategy resolved, std::int64_t hidden, DType t);

/// The launch whose tree a profile's fused call follows: FlashInfer's (norm_launch) for flashinfer and
/// ieee, invariant_norm_launch for invariant.
NormLaunch norm_launch_for(Profile profile, Strategy resolved, std::int64_t tokens, std::int64_t hidden, DType t,
                           int sm_count = kDefaultSmCount);

/// Where a pack of a row is loaded: block `block_rank` of the row's cluster (blockIdx.y), thread
/// `thread` (threadIdx.x), load `load` of that thread.
struct PackOwner {
  int block_rank = 0;
  int thread = 0;
  int load = 0;
  bool operator==(const PackOwner&) const = default;
};

PackOwner pack_owner(const NormLaunch& launch, int pack);

/// The pack a thread loads at `load`, or -1 when that load lies beyond the row (the thread adds nothing).
int pack_of(const NormLaunch& launch, int block_rank, int thread, int load);

}  // namespace ar
