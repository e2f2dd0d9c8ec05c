#include "cuda/all_reduce.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <tuple>
#include <utility>

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "cuda/detail/dispatch.h"
#include "cuda/detail/norm_tree.h"
#include "cuda/fused.cuh"
#include "cuda/one_shot.cuh"
#include "cuda/two_shot.cuh"
#include "reference/kernel_schedule.h"
#include "reference/workspace.h"

namespace ar::cuda {
namespace {

constexpr int kBlockThreads = 256;              // detail::kBlockThreads (the kernels' __launch_bounds__)
constexpr std::int64_t kMinRoundPacks = 16384;  // at least 256 KiB of a rank's input per round

/// Whether the call takes TWOSHOT's direct path (reference takes_direct_path).
bool takes_direct(const AllReduceArguments& a, Strategy resolved) {
  return takes_direct_path(resolved, a.norm.has_value(), a.shape, a.direct_from_bytes);
}

/// A call's quantised output (fused_kernel has kernels for some modes of their own).
QuantMode quant_mode(const AllReduceArguments& a) { return a.norm ? a.norm->quant : QuantMode::kNone; }

/// Whether [a, a + a_bytes) and [b, b + b_bytes) share a byte (a null pointer shares none).
bool overlap(const void* a, std::int64_t a_bytes, const void* b, std::int64_t b_bytes) {
  if (a == nullptr || b == nullptr) return false;
  const auto x = reinterpret_cast<std::uintptr_t>(a), y = reinterpret_cast<std::uintptr_t>(b);
  return x < y + static_cast<std::uintptr_t>(b_bytes) && y < x + static_cast<std::uintptr_t>(a_bytes);
}

/// Whether a fused call writes over its residual on some rank: residual_out in place of it (an engine's
/// in-place residual update), or any other output where it lies. FlashInfer's threads each read the residual
/// of the packs they write, so such a call is well defined; a row's replicas (replica_plan) each read all of
/// it but write only their part, so they must not take one.
bool writes_over_residual(const AllReduceArguments& a) {
  if (!a.norm) return false;
  const std::int64_t n = a.shape.tokens, d = a.shape.hidden, bytes = a.shape.bytes_per_rank();
  const std::int64_t quant_bytes = quant_out_bytes(a.norm->quant, n, d);
  const std::int64_t scale_bytes = scale_out_bytes(a.norm->quant, a.norm->scale_layout, n, d);
  return std::any_of(a.ranks.begin(), a.ranks.end(), [&](const RankIo& r) {
    return overlap(r.residual, bytes, r.residual_out, bytes) || overlap(r.residual, bytes, r.output, bytes) ||
           overlap(r.residual, bytes, r.quant_out, quant_bytes) || overlap(r.residual, bytes, r.scale_out, scale_bytes);
  });
}

/// The most blocks a register row of this call may take (replica_plan). Measured on an H200 (W = 2, bf16,
/// D = 4096 and 8192, 1-16 tokens, one run): NVFP4 rows, whose e2m1 codes and block scales are most of a row's
/// work after the poll, are fastest with up to four (0.12-0.26 us above the unquantised call at D = 4096, where
/// one block a row gave 0.53-0.58 us); unquantised, static and dynamic FP8 rows were 0.05-0.2 us faster with one
/// block a row than with two. A call that writes over its residual takes one (writes_over_residual).
int most_row_replicas(const AllReduceArguments& a) {
  if (quant_mode(a) != QuantMode::kNvfp4) return 1;
  return writes_over_residual(a) ? 1 : kMaxRowReplicas;  // the ranks' overlaps, only where replicas would come
}

/// Plain ONESHOT calls of at least this many bytes a rank under the invariant profile at W below
/// kOneShotChunksFromWorld run the ieee kernels (kernel_arith). Measured on an H200 (bf16, graph replay,
/// against flashinfer in the same run): at 8 and 16 MiB the invariant kernels were +0.2/+3.0% (W = 2) and
/// +2.1/+2.2% (W = 8), the ieee kernels -0.1..+0.1%; at 4 MiB the invariant kernels are faster (W = 2: -8.0%
/// against +0.2%).
inline constexpr std::int64_t kInvariantOneShotIeeeFromBytes = std::int64_t{8} << 20;

/// The arithmetic of a call's kernel: FTZ or IEEE folds, or the invariant profile's own kernels (`exact`).
/// Those run its order at every W, also where it is a fold with IEEE adds (W < kOneShotChunksFromWorld,
/// reduction_order): at 128 registers, where the ieee kernels run at 80 and spill (cuda/detail/lamport.cuh
/// kMinBlocksPerSmExact). The ieee kernels give the same bits there, and at three blocks an SM they keep more
/// loads in flight, which large plain ONESHOT calls need (kInvariantOneShotIeeeFromBytes).
detail::FoldArith kernel_arith(const AllReduceArguments& a, Strategy resolved) {
  const bool invariant = a.profile == Profile::kInvariant;
  const std::int64_t bytes = a.shape.tokens * a.shape.hidden * dtype_bytes(a.shape.dtype);
  if (invariant && !a.norm && resolved == Strategy::kOneShot && a.shape.world_size < kOneShotChunksFromWorld &&
      bytes >= kInvariantOneShotIeeeFromBytes)
    return {/*ftz=*/false, /*exact=*/false};
  return {flushes_subnormals(a.profile), invariant};
}

/// The kernel of a call of arithmetic `arith` (kernel_arith).
const void* kernel_for(Strategy resolved, DType t, detail::FoldArith arith, bool fused, bool direct, QuantMode quant,
                       RowBlocks blocks = RowBlocks::kBlock) {
  if (fused) return fused_kernel(resolved, t, arith.ftz, arith.exact, blocks, quant);
  if (direct) return two_shot_direct_kernel(t, arith.ftz, arith.exact);
  return resolved == Strategy::kOneShot ? one_shot_kernel(t, arith.ftz, arith.exact)
                                        : two_shot_kernel(t, arith.ftz, arith.exact);
}

/// Threads and dynamic shared memory of one block of the call's kernel.
struct BlockShape {
  int threads = kBlockThreads;
  std::int64_t shared_bytes = 0;
  auto operator<=>(const BlockShape&) const = default;
};

/// The device's SM count (cudaDeviceGetAttribute answers from the runtime's cache).
int sm_count(int device) {
  int sms = 0;
  AR_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

BlockShape block_shape(const AllReduceArguments& a) {
  if (!a.norm) return {kBlockThreads, 0};
  const std::int64_t row_packs = a.shape.hidden / elements_per_pack(a.shape.dtype);
  // Narrow blocks, two an SM, once the launch's rows (every slot's) outnumber the SMs: wide blocks would
  // then run in waves, where two narrow ones overlap one row's barriers and scale with another's loads.
  // Measured on an H200 (bf16, graph replay): D = 4096, 128 tokens at W = 2, 8.6 -> 7.7 us; 512 tokens,
  // 35.6 -> 32.3 us. While one wave holds every row, wide blocks are faster: D = 8192, 64 tokens at W = 2
  // (128 rows on 132 SMs), 8.4 us wide, 11.3 us narrow.
  const bool many_rows = a.shape.tokens * static_cast<std::int64_t>(a.ranks.size()) > sm_count(a.device);
  const int threads = fused_block_threads(row_packs, many_rows);
  return {threads, staged_row_bytes(row_packs)};
}

/// Blocks of `kernel` the device holds at once (occupancy x SMs), cached. Also lets the kernel take the
/// block's dynamic shared memory.
int resident_blocks(const void* kernel, const BlockShape& block, int device) {
  static std::mutex mutex;
  static std::map<std::tuple<const void*, BlockShape, int>, int> cache;
  std::lock_guard lock(mutex);
  if (auto it = cache.find({kernel, block, device}); it != cache.end()) return it->second;
  detail::DeviceGuard guard(device);
  detail::allow_dynamic_shared(kernel, block.shared_bytes);
  int per_sm = 0;
  AR_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block.threads,
                                                              static_cast<std::size_t>(block.shared_bytes)));
  return cache[{kernel, block, device}] = per_sm * sm_count(device);
}

/// Clusters of `cluster` blocks of `kernel` the device holds at once, cached.
int resident_clusters(const void* kernel, const BlockShape& block, int cluster, int device) {
  static std::mutex mutex;
  static std::map<std::tuple<const void*, BlockShape, int, int>, int> cache;
  std::lock_guard lock(mutex);
  if (auto it = cache.find({kernel, block, cluster, device}); it != cache.end()) return it->second;
  detail::DeviceGuard guard(device);
  detail::allow_dynamic_shared(kernel, block.shared_bytes);
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(cluster), 1, 1);
  config.blockDim = dim3(static_cast<unsigned>(block.threads), 1, 1);
  config.dynamicSmemBytes = static_cast<std::size_t>(block.shared_bytes);
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeClusterDimension;
  attribute[0].val.clusterDim.x = static_cast<unsigned>(cluster);
  attribute[0].val.clusterDim.y = 1;
  attribute[0].val.clusterDim.z = 1;
  config.attrs = attribute;
  config.numAttrs = 1;
  int clusters = 0;
  AR_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&clusters, kernel, &config));
  return cache[{kernel, block, cluster, device}] = clusters;
}

/// Tokens per round: the Lamport traffic of a round (ONESHOT: W ranks x (W stores + input + output) rows;
/// TWOSHOT: W ranks x about 5 rows) fits in round_bytes; at least kMinRoundPacks packs; then reference
/// round_tokens (at most N, a multiple of W for TWOSHOT), as the simulator's rounds. Depends on the shape only.
std::int64_t tokens_per_round(Strategy resolved, const ProblemShape& s, std::int64_t round_bytes) {
  const std::int64_t row_bytes = s.hidden * dtype_bytes(s.dtype);
  const std::int64_t row_packs = row_bytes / kPackBytes;
  const std::int64_t w = s.world_size;
  std::int64_t requested = 0;  // the whole call in one round
  if (round_bytes > 0) {
    const std::int64_t per_token = resolved == Strategy::kOneShot ? w * (w + 2) * row_bytes : w * 5 * row_bytes;
    requested = std::max<std::int64_t>({1, round_bytes / per_token, ceil_div(kMinRoundPacks, row_packs)});
  }
  return round_tokens(resolved, s, requested);
}

/// The fused call's own checks: FlashInfer's launch exists for the shape, and every rank has its tensors.
Status check_norm(const AllReduceArguments& a, Strategy resolved) {
  if (!a.norm) return Status::success();
  if (a.norm->sm_count <= 0)
    return Status::failure(StatusCode::kBadArguments, "the fused call needs the SM count its summation tree follows");
  try {
    (void)norm_launch_for(a.profile, resolved, a.shape.tokens, a.shape.hidden, a.shape.dtype, a.norm->sm_count);
  } catch (const std::invalid_argument& e) {
    return Status::failure(StatusCode::kInvalidShape, fmt::format("the fused norm cannot run: {}", e.what()));
  }
  const auto misaligned = [](const void* p) { return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % 16 != 0; };
  for (const RankIo& r : a.ranks)
    if (misaligned(r.residual) || misaligned(r.residual_out) || misaligned(r.gamma))
      return Status::failure(
          StatusCode::kBadArguments,
          fmt::format("rank {}'s residual, residual_out and gamma must be non-null and 16-byte aligned", r.rank));
  const QuantMode quant = a.norm->quant;
  if (quant == QuantMode::kNone) return Status::success();
  try {
    validate_quant(QuantOptions{quant, 0, a.norm->scale_layout}, a.shape.dtype, a.shape.hidden);
  } catch (const std::invalid_argument& e) {
    return Status::failure(StatusCode::kInvalidShape, e.what());
  }
  const bool needs_scale_out = quant != QuantMode::kFp8, needs_scale = quant != QuantMode::kFp8Dynamic;
  for (const RankIo& r : a.ranks) {
    if (misaligned(r.quant_out))
      return Status::failure(StatusCode::kBadArguments,
                             fmt::format("rank {}'s quant_out must be non-null and 16-byte aligned", r.rank));
    if (needs_scale_out && (r.scale_out == nullptr || reinterpret_cast<std::uintptr_t>(r.scale_out) % 4 != 0))
      return Status::failure(StatusCode::kBadArguments,
                             fmt::format("rank {}'s scale_out must be non-null and 4-byte aligned for {}", r.rank,
                                         quant_mode_name(quant)));
    if (needs_scale && r.quant_scale == nullptr)
      return Status::failure(StatusCode::kBadArguments,
                             fmt::format("rank {} needs an output scale for {}", r.rank, quant_mode_name(quant)));
  }
  return Status::success();
}

}  // namespace

Status can_implement(const AllReduceArguments& a) {
  if (auto why = validate_shape(a.shape)) return Status::failure(StatusCode::kInvalidShape, *why);
  if (a.profile == Profile::kTrtllm)
    return Status::failure(
        StatusCode::kUnsupported,
        "the kernels run the flashinfer, ieee and invariant profiles; trtllm is a reference-only model");
  if (!detail::dtype_compiled(a.shape.dtype))
    return Status::failure(
        StatusCode::kUnsupported,
        fmt::format("{} kernels are not compiled into this build (CMake option AR_DTYPES)", dtype_name(a.shape.dtype)));
  if (a.workspace == nullptr) return Status::failure(StatusCode::kBadArguments, "no workspace");
  if (a.workspace->world_size != a.shape.world_size)
    return Status::failure(StatusCode::kBadArguments, fmt::format("the workspace is for W = {} but the call has W = {}",
                                                                  a.workspace->world_size, a.shape.world_size));
  if (a.direct_from_bytes < 0)
    return Status::failure(StatusCode::kBadArguments,
                           fmt::format("the direct path's threshold must be >= 0 bytes, got {}", a.direct_from_bytes));
  const Strategy resolved = resolve_strategy(a.strategy, a.shape);
  const bool direct = takes_direct(a, resolved);
  // A direct call's rows go through the direct region, never through the Lamport buffers.
  if (auto why = direct ? check_fits_direct_region(a.shape, a.workspace->direct)
                        : check_fits_workspace(a.strategy, a.shape, a.workspace->buffer_bytes))
    return Status::failure(StatusCode::kWorkspaceTooSmall, *why);
  const ReductionOrder order = reduction_order(resolved, a.profile, a.shape.world_size);
  if (order.seed_with_first)
    return Status::failure(StatusCode::kUnsupported, "the reduction order " + describe(order) + " is not compiled");
  if (a.ranks.empty() || static_cast<int>(a.ranks.size()) > a.shape.world_size)
    return Status::failure(StatusCode::kBadArguments,
                           fmt::format("a launch runs 1 to W = {} ranks, not {}", a.shape.world_size, a.ranks.size()));
  std::set<int> seen;
  for (const RankIo& r : a.ranks) {
    if (r.rank < 0 || r.rank >= a.shape.world_size || !seen.insert(r.rank).second)
      return Status::failure(StatusCode::kBadArguments, fmt::format("rank {} is out of range or repeated", r.rank));
    if (a.workspace->flags[r.rank] == nullptr)
      return Status::failure(StatusCode::kBadArguments, fmt::format("rank {} has no flags in this workspace", r.rank));
    const auto misaligned = [](const void* p) { return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % 16 != 0; };
    if (misaligned(r.input) || misaligned(r.output))
      return Status::failure(StatusCode::kBadArguments,
                             fmt::format("rank {}'s input and output must be non-null and 16-byte aligned", r.rank));
  }
  if (Status s = check_norm(a, resolved); !s.ok()) return s;
  const bool fused = a.norm.has_value();
  const int resident =
      resident_blocks(kernel_for(resolved, a.shape.dtype, kernel_arith(a, resolved), fused, direct, quant_mode(a)),
                      block_shape(a), a.device);
  if (resident < static_cast<int>(a.ranks.size()))
    return Status::failure(StatusCode::kNotResident,
                           fmt::format("{} ranks in one launch need at least {} resident blocks, but the device holds "
                                       "only {} of this kernel at once; ranks poll each other, so they must all run "
                                       "at the same time",
                                       a.ranks.size(), a.ranks.size(), resident));
  return Status::success();
}

std::int64_t workspace_bytes(const AllReduceArguments& a) { return required_buffer_bytes(a.strategy, a.shape); }

LaunchPlan plan_launch(const AllReduceArguments& a) {
  if (Status s = can_implement(a); !s.ok()) throw std::invalid_argument(s.message);
  LaunchPlan plan;
  plan.strategy = resolve_strategy(a.strategy, a.shape);
  plan.order = reduction_order(plan.strategy, a.profile, a.shape.world_size);
  const bool fused = a.norm.has_value();
  if (fused)
    plan.norm =
        norm_launch_for(a.profile, plan.strategy, a.shape.tokens, a.shape.hidden, a.shape.dtype, a.norm->sm_count);
  plan.direct = takes_direct(a, plan.strategy);
  const detail::FoldArith arith = kernel_arith(a, plan.strategy);
  const BlockShape block = block_shape(a);
  plan.threads_per_block = block.threads;
  plan.shared_bytes = block.shared_bytes;
  plan.slots = static_cast<int>(a.ranks.size());
  plan.tokens_per_round = tokens_per_round(plan.strategy, a.shape, a.round_bytes);
  plan.resident_blocks = resident_blocks(
      kernel_for(plan.strategy, a.shape.dtype, arith, fused, plan.direct, quant_mode(a)), block, a.device);
  const std::int64_t row_packs = a.shape.hidden / elements_per_pack(a.shape.dtype);
  // TWOSHOT rounds are a multiple of W tokens; only the N that exist need threads.
  const std::int64_t round_rows = std::min(plan.tokens_per_round, a.shape.tokens);
  // One pack per thread: the least latency. A fused call wants a block per row too, and its stores spread
  // over blocks in chunks of kFusedStoreChunk threads (cuda/detail/norm_row.cuh).
  const std::int64_t wanted = fused ? std::max(ceil_div(round_rows * row_packs, kFusedStoreChunk), round_rows)
                                    : ceil_div(round_rows * row_packs, plan.threads_per_block);
  const std::int64_t fit = plan.resident_blocks / plan.slots;  // every block of every slot resident at once
  plan.blocks_per_rank = static_cast<int>(std::clamp<std::int64_t>(wanted, 1, fit));
  if (plan.direct) {
    // Every block of a rank pairs with the same block of each other rank (one flag each), so the grid must be
    // the same on every rank: it follows the shape and the device's occupancy only. A thread takes one pack of
    // each owner's list, as many as the region has flags for.
    const std::int64_t list_packs = ceil_div(round_rows, std::int64_t{a.shape.world_size}) * row_packs;
    plan.blocks_per_rank = static_cast<int>(std::clamp<std::int64_t>(ceil_div(list_packs, plan.threads_per_block), 1,
                                                                     std::min(fit, a.workspace->direct.max_blocks)));
    return plan;
  }
  // A block alone whose threads hold one or two packs of the row each (register_packs: decode rows) takes the
  // register rows' kernel, which stages nothing, where that kernel is as resident as the launch needs (then no
  // cluster, and no cluster barrier); each row then by as many blocks as replica_plan gives it.
  const int packs = fused ? register_packs(*plan.norm, a.profile, plan.threads_per_block) : 0;
  if (packs > 0) {
    const RowBlocks blocks = packs == 1 ? RowBlocks::kOnePack : RowBlocks::kTwoPacks;
    const int register_resident =
        resident_blocks(kernel_for(plan.strategy, a.shape.dtype, arith, fused, /*direct=*/false, quant_mode(a), blocks),
                        BlockShape{plan.threads_per_block, 0}, a.device);
    const std::int64_t register_fit = register_resident / plan.slots;
    if (plan.blocks_per_rank <= register_fit) {
      const ReplicaPlan replicas =
          replica_plan(round_rows, row_packs, plan.blocks_per_rank, register_fit, most_row_replicas(a));
      plan.row_blocks = blocks;
      plan.resident_blocks = register_resident;
      plan.row_replicas = replicas.replicas;
      plan.row_part_packs = replicas.part;
      plan.blocks_per_rank = static_cast<int>(replicas.blocks);
      plan.shared_bytes = 0;
      return plan;
    }
  }
  // Few rows wider than a block: a cluster of blocks per row, as few as give every thread one pack (at most
  // FlashInfer's cluster size and 8), when every cluster of every rank can be resident at once. Measured on
  // an H200: a cluster barrier costs about as much as a block spends on a 512-pack row, so a row that fits
  // one block stays in one (D = 4096 bf16, one token: 4.6 us alone, 5.6 us over 8 blocks), and a 1024-pack
  // row gains from two (D = 8192: 6.3 us alone, 5.6 us over 8 blocks).
  const void* kernel =
      kernel_for(plan.strategy, a.shape.dtype, arith, fused, /*direct=*/false, quant_mode(a), RowBlocks::kCluster);
  int widest = 1;
  while (widest < kMaxClusterSize && std::int64_t{widest} * kFusedBlockThreads < row_packs) widest *= 2;
  for (int c = fused ? std::min(widest, plan.norm->cluster_size()) : 1; c > 1; c /= 2) {
    const std::int64_t blocks = round_up(std::max(wanted, round_rows * c), c);
    if (plan.slots * (blocks / c) <= resident_clusters(kernel, block, c, a.device)) {
      plan.cluster_blocks = c;
      plan.row_blocks = RowBlocks::kCluster;
      plan.blocks_per_rank = static_cast<int>(blocks);
      break;
    }
  }
  return plan;
}

void launch(const AllReduceArguments& a, Stream stream) {
  const LaunchPlan plan = plan_launch(a);
  AllReduceParams p;
  std::memset(&p, 0, sizeof(p));
  p.peers = a.workspace->peers;
  for (std::size_t i = 0; i < a.ranks.size(); ++i) {
    const RankIo& r = a.ranks[i];
    p.slots[i] = RankSlot{a.workspace->flags[r.rank], r.input, r.output, r.rank, 0};
  }
  p.world_size = a.shape.world_size;
  p.slot_count = plan.slots;
  p.tokens = a.shape.tokens;
  p.row_packs = a.shape.hidden / elements_per_pack(a.shape.dtype);
  p.tokens_per_round = plan.tokens_per_round;
  p.chunk = plan.order.chunk;
  // The invariant profile's fold below kOneShotChunksFromWorld never gives a -0, so where the ieee kernels run
  // it (kernel_arith) they skip the test: it made them 5-8% slower at 8-16 MiB (W = 2, H200). The invariant
  // kernels never read the flag.
  const detail::FoldArith arith = kernel_arith(a, plan.strategy);
  const bool invariant_on_ieee_kernels = a.profile == Profile::kInvariant && !arith.exact;
  p.sanitize_result = plan.order.sanitize_result && !invariant_on_ieee_kernels ? 1 : 0;
  const ClearRecord record = clear_record(plan.strategy, a.shape, plan.direct);
  for (int s = 0; s < 4; ++s) p.clear_bytes[s] = record.bytes[s];
  p.stages = static_cast<std::uint32_t>(record.stages);
  if (plan.direct) {
    const DirectRegion& d = a.workspace->direct;
    p.direct_offset = static_cast<std::uint64_t>(a.workspace->direct_offset);
    p.direct_broadcast = static_cast<std::uint64_t>(d.broadcast);
    p.direct_flags = static_cast<std::uint64_t>(d.flags);
    p.direct_max_blocks = static_cast<std::uint32_t>(d.max_blocks);
  }
  p.timeout_ns = a.timeout_ns;
  p.error = a.channel.record;
  p.abort_flag = a.channel.abort_flag;
  if (p.error == nullptr || p.abort_flag == nullptr) throw std::invalid_argument("launch needs a wait channel");

  FusedParams fused;  // about 4.3 KiB: made only for a fused call
  void* kernel_args[] = {&p};
  if (plan.norm) {
    std::memset(&fused, 0, sizeof(fused));
    fused.all_reduce = p;
    for (std::size_t i = 0; i < a.ranks.size(); ++i)
      fused.norm[i] = NormSlot{a.ranks[i].residual,  a.ranks[i].residual_out, a.ranks[i].gamma,
                               a.ranks[i].quant_out, a.ranks[i].scale_out,    a.ranks[i].quant_scale};
    fused.tree = detail::norm_tree(*plan.norm, *a.norm, a.profile);
    fused.row_replicas = plan.row_replicas;
    fused.row_part_packs = static_cast<std::uint32_t>(plan.row_part_packs);
    // The kernels' rows step by the grid's groups of replicas: a grid of fewer blocks would never end a row.
    if (plan.blocks_per_rank % plan.row_replicas != 0)
      throw std::logic_error(
          fmt::format("{} blocks a rank do not make groups of {} replicas", plan.blocks_per_rank, plan.row_replicas));
    kernel_args[0] = &fused;
  }

  detail::DeviceGuard guard(a.device);
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(plan.blocks_per_rank), 1, static_cast<unsigned>(plan.slots));
  config.blockDim = dim3(static_cast<unsigned>(plan.threads_per_block), 1, 1);
  config.dynamicSmemBytes = static_cast<std::size_t>(plan.shared_bytes);
  config.stream = stream;
  cudaLaunchAttribute attribute[2];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = a.launch_with_pdl ? 1 : 0;
  attribute[1].id = cudaLaunchAttributeClusterDimension;
  attribute[1].val.clusterDim.x = static_cast<unsigned>(plan.cluster_blocks);
  attribute[1].val.clusterDim.y = 1;
  attribute[1].val.clusterDim.z = 1;
  config.attrs = attribute;
  config.numAttrs = plan.cluster_blocks > 1 ? 2 : 1;
  AR_CUDA_CHECK(cudaLaunchKernelExC(&config,
                                    kernel_for(plan.strategy, a.shape.dtype, arith, plan.norm.has_value(), plan.direct,
                                               quant_mode(a), plan.row_blocks),
                                    kernel_args));
  AR_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ar::cuda
