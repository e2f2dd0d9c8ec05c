// The host API of the kernels: validate a call (can_implement), size its workspace (workspace_bytes), and
// launch it on a stream (launch). One launch runs every rank named in `ranks` on one device, each in its own
// grid slice with its own flags, exactly as separate GPUs would; W virtual ranks on one GPU are one launch.
//
// Plain C++: no CUDA headers needed by callers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "cuda/status.h"
#include "cuda/wait_channel.h"
#include "cuda/workspace.h"
#include "reference/fused_launch.h"
#include "reference/fused_quant.h"
#include "reference/reduction_order.h"
#include "reference/strategy.h"

struct CUstream_st;

namespace ar::cuda {

using Stream = CUstream_st*;  ///< a cudaStream_t; nullptr is the legacy default stream

inline constexpr std::uint64_t kDefaultTimeoutNs = 10'000'000'000ull;  ///< 10 s per wait
/// Tokens may be processed in rounds (store, clear, poll per round) whose Lamport traffic fits in about this
/// many bytes, a function of the shape only, the same on every rank. 0 = one round. Measured on an H100:
/// rounds sized for L2 (16 MiB) cost more in per-round waits than they save (twoshot 256 MiB: 32% vs 71% of
/// the copy bandwidth), so the default is one round.
inline constexpr std::int64_t kDefaultRoundBytes = 0;

/// One rank run by a launch: its id, its [N, D] input shard and its [N, D] output (device pointers, 16-byte
/// aligned).
struct RankIo {
  int rank = 0;
  const void* input = nullptr;
  void* output = nullptr;  ///< the all-reduce; the normalised [N, D] of a fused call
  // A fused call only (AllReduceArguments::norm): [N, D], [N, D] and [D] of T.
  const void* residual = nullptr;
  void* residual_out = nullptr;
  const void* gamma = nullptr;
  // A quantised fused call only (NormArguments::quant): see NormSlot.
  void* quant_out = nullptr;
  void* scale_out = nullptr;
  const float* quant_scale = nullptr;
};

/// What makes a call the fused residual-add + RMSNorm (reference FusedOptions).
struct NormArguments {
  std::uint32_t epsilon = 0;      ///< fp32 bits
  std::uint32_t weight_bias = 0;  ///< fp32 bits
  /// The SM count whose launch FlashInfer's summation tree follows (reference norm_launch): the GPU's own to
  /// reproduce FlashInfer here, another to reproduce what FlashInfer gives on that GPU.
  int sm_count = 0;
  /// The quantised output after the norm (reference QuantOptions; its `scale` is each rank's quant_scale on
  /// the device instead).
  QuantMode quant = QuantMode::kNone;
  ScaleLayout scale_layout = ScaleLayout::kSwizzled128x4;
};

struct AllReduceArguments {
  ProblemShape shape;                      ///< W, N, D, dtype
  Strategy strategy = Strategy::kAuto;     ///< AUTO resolves by reference resolve_strategy()
  Profile profile = Profile::kFlashInfer;  ///< flashinfer (FTZ adds) or ieee; trtllm is reference-only
  bool launch_with_pdl = false;            ///< programmatic dependent launch, as FlashInfer's flag
  const WorkspaceView* workspace = nullptr;
  std::span<const RankIo> ranks;                  ///< the ranks this launch runs (one grid slice each)
  int device = 0;                                 ///< where the launch runs
  std::uint64_t timeout_ns = kDefaultTimeoutNs;   ///< per wait; 0 = wait forever, like FlashInfer
  std::int64_t round_bytes = kDefaultRoundBytes;  ///< 0 = the whole call in one round
  /// Plain TWOSHOT calls of at least this many bytes a rank take the direct path (reference takes_direct_path;
  /// the workspace needs a direct region that holds their rows); 0: none do.
  std::int64_t direct_from_bytes = 0;
  WaitChannelView channel;                        ///< where a wait that gives up reports
  /// Set: the fused all-reduce + residual add + RMSNorm (cuda/fused.cuh); every rank then needs residual,
  /// residual_out and gamma.
  std::optional<NormArguments> norm;
};

/// What launch() does for some arguments.
struct LaunchPlan {
  Strategy strategy = Strategy::kOneShot;  ///< resolved
  ReductionOrder order;
  int blocks_per_rank = 0;
  int threads_per_block = 0;
  int slots = 0;
  std::int64_t tokens_per_round = 0;
  std::int64_t shared_bytes = 0;  ///< dynamic shared memory per block (a fused call's staged row)
  int resident_blocks = 0;  ///< blocks of this kernel the device holds at once
  std::optional<NormLaunch> norm;  ///< a fused call: FlashInfer's launch, whose summation tree the kernel follows
  /// A fused call with few rows: each row is computed by a cluster of this many blocks (1: one block).
  int cluster_blocks = 1;
  /// A fused call: how its kernel's blocks compute a row (kCluster where cluster_blocks > 1).
  RowBlocks row_blocks = RowBlocks::kBlock;
  /// Register rows: the blocks that compute each row, each writing its part of the outputs, of this many
  /// packs (replica_plan; 0 for other kernels).
  int row_replicas = 1;
  std::int64_t row_part_packs = 0;
  /// TWOSHOT's direct path (docs/large-messages.md): plain stores and flags instead of Lamport buffers.
  bool direct = false;
};

/// Whether the arguments can run: shape, profile, compiled dtype, workspace size (reference
/// check_fits_workspace), rank slots, and residency (all ranks of a launch poll each other, so every block
/// must be resident at once; a launch that could not be is refused, never started).
Status can_implement(const AllReduceArguments& args);

/// Bytes per Lamport buffer the call needs (reference required_buffer_bytes, AUTO resolved).
std::int64_t workspace_bytes(const AllReduceArguments& args);

/// The launch shape (throws std::invalid_argument with the can_implement message if it cannot run).
LaunchPlan plan_launch(const AllReduceArguments& args);

/// Enqueues the all-reduce on `stream` (throws std::invalid_argument if !can_implement, CudaError if the
/// launch fails). A wait that gives up is reported through args.channel after the stream completes.
void launch(const AllReduceArguments& args, Stream stream);

}  // namespace ar::cuda
