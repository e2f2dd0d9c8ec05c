#include "reference/fused_launch.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace ar {
namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

}  // namespace

GridConfig adjust_grid_config(std::int64_t tokens, std::int64_t packs_per_row, int sm_count, bool use_cluster) {
  const std::int64_t threads_needed = packs_per_row;
  std::int64_t cluster = use_cluster ? kMaxClusterSize : 1;
  std::int64_t block = ceil_div(threads_needed, cluster);
  int loads = 1;
  if (use_cluster) {
    // Each block of the cluster takes a whole number of packs: the widest power-of-two divisor up to 8.
    while (threads_needed % cluster != 0 && cluster > 1) cluster /= 2;
    const std::int64_t widest_divisible = cluster;
    block = ceil_div(threads_needed, cluster);
    // At least 128 threads a block: narrower clusters of wider blocks.
    while (block < 128 && cluster >= 2) {
      block *= 2;
      cluster /= 2;
    }
    // Enough tokens to fill the GPU without clusters: narrow them, blocks of at most 1024 threads.
    while (tokens * cluster > sm_count && cluster > 1 && block <= 512) {
      block *= 2;
      cluster /= 2;
    }
    // Too few tokens: widen back towards the divisible width, accepting blocks down to 64 threads.
    while (cluster < widest_divisible) {
      const std::int64_t wider = cluster * 2;
      const std::int64_t narrower_block = ceil_div(threads_needed, wider);
      if (narrower_block < 64 || tokens * wider > sm_count) break;
      cluster = wider;
      block = narrower_block;
    }
  }
  // Rows too wide for 1024-thread blocks: a wider cluster first (past divisibility: the last block then has
  // idle threads), then more loads per thread.
  while (block > kMaxBlockSize) {
    if (use_cluster && cluster < kMaxClusterSize)
      cluster *= 2;
    else if (loads < kMaxLoadsPerThread)
      ++loads;
    else
      break;
    block = ceil_div(threads_needed, cluster * loads);
  }
  return {static_cast<int>(block), static_cast<int>(cluster), loads};
}

int NormLaunch::exited_threads() const {
  return idle_threads_exit ? threads_per_row() - packs_per_row : 0;
}

namespace {

/// A launch's row: D in packs of T, checked against every launch of the fused norm.
NormLaunch row_of_packs(Strategy resolved, std::int64_t hidden, DType t) {
  if (resolved == Strategy::kAuto) throw std::invalid_argument("a fused launch needs a resolved strategy");
  if (hidden <= 0) throw std::invalid_argument("the fused norm needs D > 0");
  NormLaunch launch;
  launch.strategy = resolved;
  launch.dtype = t;
  launch.hidden = hidden;
  launch.elements_per_pack = elements_per_pack(t);
  if (hidden % launch.elements_per_pack != 0)
    throw std::invalid_argument("D = " + std::to_string(hidden) + " is not a multiple of " +
                                std::to_string(launch.elements_per_pack) + " (one 16-byte pack of " +
                                std::string(dtype_name(t)) + ")");
  const std::int64_t packs = hidden / launch.elements_per_pack;
  if (packs > std::int64_t{kMaxBlockSize} * kMaxClusterSize * kMaxLoadsPerThread)
    throw std::invalid_argument("D = " + std::to_string(hidden) + " is beyond any launch of the fused norm");
  launch.packs_per_row = static_cast<int>(packs);
  return launch;
}

}  // namespace

NormLaunch norm_launch(Strategy resolved, std::int64_t tokens, std::int64_t hidden, DType t, int sm_count) {
  if (tokens <= 0 || sm_count <= 0) throw std::invalid_argument("the fused norm needs N > 0 and a positive SM count");
  NormLaunch launch = row_of_packs(resolved, hidden, t);
  const std::int64_t packs = launch.packs_per_row;
  launch.squares_in_t = resolved == Strategy::kOneShot && t != DType::kFp32;
  launch.gamma_first = resolved == Strategy::kTwoShot;
  launch.idle_threads_exit = resolved == Strategy::kOneShot;

  if (resolved == Strategy::kOneShot) {
    // CUH:1093-1113: always a cluster launch, one pack per thread.
    launch.grid = adjust_grid_config(tokens, packs, sm_count, true);
    launch.cluster_launch = true;
    if (launch.grid.block_size > kMaxBlockSize || launch.grid.loads_per_thread != 1)
      throw std::invalid_argument("oneshot: hidden dimension " + std::to_string(hidden) +
                                  " exceeds the maximum supported hidden dimension " +
                                  std::to_string(kMaxBlockSize * kMaxClusterSize * launch.elements_per_pack));
    launch.packs_per_block = launch.grid.block_size;
    return launch;
  }

  // CUH:1679-1708: a cluster only with one load per thread; otherwise retune without one.
  launch.grid = adjust_grid_config(tokens, packs, sm_count, true);
  launch.cluster_launch = launch.grid.cluster_size > 1 && launch.grid.loads_per_thread == 1;
  if (launch.grid.cluster_size > 1 && !launch.cluster_launch)
    launch.grid = adjust_grid_config(tokens, packs, sm_count, false);
  if (launch.grid.block_size > kMaxBlockSize || launch.grid.loads_per_thread > kMaxLoadsPerThread)
    throw std::invalid_argument("twoshot: unsupported hidden dimension " + std::to_string(hidden));
  const std::int64_t threads = launch.threads_per_row();
  const std::int64_t padded = ceil_div(hidden, launch.elements_per_pack * threads) * launch.elements_per_pack * threads;
  launch.shared_elements_per_thread = static_cast<int>(padded / threads);
  launch.dynamic_shared_bytes =
      3 * std::int64_t{launch.grid.block_size} * launch.shared_elements_per_thread * dtype_bytes(t);
  launch.packs_per_block = static_cast<int>(ceil_div(packs, launch.grid.cluster_size));
  return launch;
}

NormLaunch invariant_norm_launch(Strategy resolved, std::int64_t hidden, DType t) {
  NormLaunch launch = row_of_packs(resolved, hidden, t);
  const std::int64_t packs = launch.packs_per_row;
  constexpr std::int64_t kWidestBlock = 512;  // what one block of the fused kernels computes alone
  const std::int64_t block = std::min(kWidestBlock, ceil_div(packs, 32) * 32);
  const std::int64_t cluster = std::min<std::int64_t>(kMaxClusterSize, ceil_div(packs, block));
  const std::int64_t loads = ceil_div(packs, block * cluster);
  if (loads > kMaxLoadsPerThread)
    throw std::invalid_argument("invariant: D = " + std::to_string(hidden) + " is beyond the invariant launch (at most " +
                                std::to_string(kWidestBlock * kMaxClusterSize * kMaxLoadsPerThread *
                                               launch.elements_per_pack) +
                                " elements of " + std::string(dtype_name(t)) + ")");
  launch.grid = {static_cast<int>(block), static_cast<int>(cluster), static_cast<int>(loads)};
  launch.cluster_launch = cluster > 1;
  launch.packs_per_block = static_cast<int>(block * loads);
  launch.gamma_first = true;
  return launch;
}

NormLaunch norm_launch_for(Profile profile, Strategy resolved, std::int64_t tokens, std::int64_t hidden, DType t,
                           int sm_count) {
  if (profile == Profile::kInvariant) return invariant_norm_launch(resolved, hidden, t);
  return norm_launch(resolved, tokens, hidden, t, sm_count);
}

PackOwner pack_owner(const NormLaunch& launch, int pack) {
  if (pack < 0 || pack >= launch.packs_per_row)
    throw std::out_of_range("pack " + std::to_string(pack) + " is not in the row");
  PackOwner owner;
  owner.block_rank = pack / launch.packs_per_block;
  const int within = pack % launch.packs_per_block;
  owner.load = within / launch.block_size();
  owner.thread = within % launch.block_size();
  return owner;
}

int pack_of(const NormLaunch& launch, int block_rank, int thread, int load) {
  // ONESHOT: packedIdx = cluster.thread_rank() = blockIdx.y * bs + threadIdx.x (CUH:924). TWOSHOT: block
  // chunk start + (load * bs + threadIdx.x) (CUH:1364-1366, 1423-1425). Both are this with the block's chunk.
  if (load < 0 || load >= launch.loads_per_thread()) return -1;
  const std::int64_t pack =
      std::int64_t{block_rank} * launch.packs_per_block + std::int64_t{load} * launch.block_size() + thread;
  if (pack >= launch.packs_per_row) return -1;
  return static_cast<int>(pack);
}

}  // namespace ar
