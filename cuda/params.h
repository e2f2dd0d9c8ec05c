// The plain structs shared by the host launchers and the kernels (compiles under g++ and nvcc alike).
//
// The host validates an AllReduceArguments (cuda/all_reduce.h), converts it into an AllReduceParams and passes
// that by value to one kernel launch. One launch runs one or more ranks: blockIdx.z selects a RankSlot, and
// the blocks of one slot behave exactly like the whole grid of one GPU in FlashInfer (they read that rank's
// flags, arrive on its counter, and the last of them to arrive advances its flags). W virtual ranks on one GPU are one
// launch with W slots; one rank per GPU is one launch with one slot per GPU.
//
// What the kernels and the simulator must agree on comes from reference/: the flags block layout
// (kFlagsBlockWords, kArrivalWord, kCallCounterWord in reference/workspace.h), kMaxWorldSize
// (reference/strategy.h), and the rounds, poll groups and packs per loop step (reference/kernel_schedule.h).
#pragma once

#include <cstdint>

#include "reference/fused_launch.h"
#include "reference/kernel_schedule.h"
#include "reference/strategy.h"
#include "reference/workspace.h"

namespace ar::cuda {

/// One GPU's virtual address of every rank's Lamport buffers (unicast mappings; no multicast object exists).
/// Rank r's buffer i, stage s lies at base[r] + stage_offset_bytes(i, s, S, BPB).
struct PeerTable {
  std::uint64_t base[kMaxWorldSize];
};

/// Which wait gave up.
enum class WaitSite : std::uint32_t {
  kNone = 0,
  kOneShotSlot = 1,    ///< ONESHOT: slot [t][peer] of my buffer stayed empty
  kScatterSlot = 2,    ///< TWOSHOT: SCATTER slot [t / W][peer] of my buffer stayed empty
  kBroadcastSlot = 3,  ///< TWOSHOT: BROADCAST row t (owned by peer = t % W) stayed empty
  kDirectScatterFlag = 4,    ///< direct path: the peer's SCATTER flag for this block never took the round's value
  kDirectBroadcastFlag = 5,  ///< direct path: the owner's BROADCAST flag for this block never took it
};

/// The first wait that timed out in a launch. Lives in mapped host memory; `status` is written last.
struct WaitError {
  std::uint32_t status;     ///< 0 none, 1 timed out
  std::uint32_t site;       ///< WaitSite
  std::int32_t rank;        ///< the rank that waited
  std::int32_t peer;        ///< the rank whose data never came
  std::uint32_t call;       ///< 1-based call number on the waiting rank's workspace
  std::uint32_t buffer;     ///< Lamport buffer index (0..2)
  std::uint32_t stage;      ///< stage within the buffer (ONESHOT 0; TWOSHOT 0 SCATTER, 1 BROADCAST)
  std::uint32_t pack;       ///< 16-byte pack within the row
  std::int64_t token;       ///< token (row) of the slot
  std::uint32_t words[4];   ///< the four 32-bit words last seen in the slot
  std::uint64_t waited_ns;  ///< how long it waited
};

/// One rank run by this launch (blockIdx.z).
struct RankSlot {
  std::uint32_t* flags;  ///< its kFlagsBlockWords-word flags block (16-byte aligned)
  const void* input;     ///< its [N, D] shard
  void* output;          ///< its [N, D] result
  std::int32_t rank;
  std::int32_t reserved;
};

/// Everything one launch needs, passed by value (about 2.7 KiB of the 4 KiB parameter space).
struct AllReduceParams {
  PeerTable peers;
  RankSlot slots[kMaxWorldSize];
  std::int32_t world_size;
  std::int32_t slot_count;        ///< gridDim.z
  std::int64_t tokens;            ///< N
  std::int64_t row_packs;         ///< D / (16 / sizeof(T)): 16-byte packs per row
  std::int64_t tokens_per_round;  ///< round_tokens (reference/kernel_schedule.h): the same on every rank
  std::int32_t chunk;             ///< ReductionOrder::chunk: 0 = one flat fold, K = chunks of K ranks
  std::int32_t sanitize_result;   ///< ReductionOrder::sanitize_result: a -0 sum becomes +0
  std::uint32_t clear_bytes[4];   ///< what this launch records for the next launch's clear (ClearRecord)
  std::uint32_t stages;           ///< this kernel's stage count (ClearRecord::stages)
  /// TWOSHOT's direct path (a direct launch only): every rank's region at peers.base[r] + direct_offset, laid
  /// out as reference DirectRegion.
  std::uint64_t direct_offset;
  std::uint64_t direct_broadcast;  ///< DirectRegion::broadcast
  std::uint64_t direct_flags;      ///< DirectRegion::flags
  std::uint32_t direct_max_blocks;  ///< DirectRegion::max_blocks
  std::uint32_t reserved2;
  std::uint64_t timeout_ns;   ///< per wait (BROADCAST waits twice that); 0 = wait forever, as FlashInfer
  WaitError* error;           ///< mapped host memory
  std::uint32_t* abort_flag;  ///< device word: set by the first wait that gives up, so the others stop
};

/// The fused residual-add + RMSNorm of one rank (blockIdx.z): its [N, D] residual and residual_out, its [D]
/// gamma. The all-reduce slot's `output` receives the normalised [N, D].
struct NormSlot {
  const void* residual;
  void* residual_out;
  const void* gamma;
  // A quantised call only (NormTree::quant_mode != 0), reference/fused_quant.h: the codes ([N, D] e4m3 bytes,
  // or [N, D / 2] NVFP4 bytes), the scales (dynamic FP8: [N] fp32; NVFP4: e4m3 bytes at scale_offset), and
  // the fp32 output_scale (static FP8's scale, NVFP4's global scale), read on the device as FlashInfer does.
  void* quant_out;
  void* scale_out;
  const float* quant_scale;
};

/// The summation tree of one row's sum of squares as FlashInfer's launch makes it, or the invariant
/// profile's (reference NormLaunch): the kernels compute a row with their own blocks, but add in exactly
/// this order.
struct NormTree {
  std::int32_t block_size;       ///< FlashInfer's threads per block (bs)
  std::int32_t cluster_size;     ///< FlashInfer's blocks per row (cs)
  std::int32_t loads;            ///< packs per FlashInfer thread
  std::int32_t packs_per_block;  ///< the packs block b of the row starts from (b * packs_per_block)
  std::int32_t cluster_fold;     ///< 1: the block sums are folded from +0 in block order (a cluster launch, cs > 1)
  std::int32_t square_in_t;      ///< 1: ONESHOT's 16-bit square and fp32 add; 0: the fp32 fma
  std::int32_t two_shot_order;   ///< 1: TWOSHOT's ((wb + g) * x) * scale; 0: ONESHOT's (x * scale) * (wb + g)
  /// 1: the invariant profile's scale, the correctly rounded rsqrt (reference/rsqrt_rn.h); 0: the MUFU's
  /// rsqrt.approx
  std::int32_t exact_rsqrt;
  std::uint32_t hidden;          ///< D
  std::uint32_t hidden_reciprocal;  ///< fp32 bits of 1/D rounded once (the invariant profile's scale)
  std::uint32_t epsilon;         ///< fp32 bits
  std::uint32_t weight_bias;     ///< fp32 bits
  std::int32_t quant_mode;       ///< reference QuantMode: 0 none, 1 static FP8, 2 dynamic FP8, 3 NVFP4
  std::int32_t scale_layout;     ///< reference ScaleLayout of NVFP4's block scales
  /// 1: dynamic FP8 quantises the fp32 values before their narrowing (TWOSHOT, invariant); 0: the T outputs
  std::int32_t quant_from_fp32;
};

/// A fused launch: the all-reduce's parameters, then the norm's (about 4.3 KiB in all; kernel parameters may
/// take up to 32 KiB from CUDA 12.1 on Volta and later).
struct FusedParams {
  AllReduceParams all_reduce;
  NormSlot norm[kMaxWorldSize];
  NormTree tree;
  /// Register rows: the blocks that compute each row, and the packs of each one's part (replica_plan); 1 and
  /// 0 for every other kernel.
  std::int32_t row_replicas;
  std::uint32_t row_part_packs;
};

/// The separate residual-add + RMSNorm kernel (cuda/rms_norm.h): each slot's [N, D] all-reduce result in,
/// its norm outputs out; the same row computation as the fused kernels.
struct RmsNormParams {
  NormSlot norm[kMaxWorldSize];
  const void* input[kMaxWorldSize];  ///< each slot's all-reduce result
  void* output[kMaxWorldSize];       ///< each slot's normalised [N, D]
  std::int64_t tokens;
  std::int64_t row_packs;
  NormTree tree;
};

/// The block shape of the kernels that normalise rows (the fused kernels and cuda/rms_norm.h): a row is one
/// block's, and the row's `pre` is staged in dynamic shared memory when it fits in kMaxStagedRowBytes (else
/// the output pass reads residual_out back from global memory). A few rows get as many threads as a row has
/// packs (at most kFusedBlockThreads, at least two warps): the least latency. Many rows get
/// kManyRowsBlockThreads: more rows in flight on each SM hide the latency of each. 512, not 1024: the
/// kernels' __launch_bounds__ then leave 128 registers a thread, where 64 spilled the poll's values (measured
/// on an H200: a 1-token D = 8192 bf16 call 6.9 -> 6.4 us, D = 4096 5.0 -> 4.6 us).
inline constexpr int kFusedBlockThreads = 512;
inline constexpr int kManyRowsBlockThreads = 256;
/// The fused kernels number their threads for the stores, clears and reductions in chunks of this many
/// (begin_rank_launch): a small call's packs go to every block, not all to the first wide one.
inline constexpr int kFusedStoreChunk = 256;
/// The separate norm kernel takes kManyRowsBlockThreads from this many rows per rank (it has no all-reduce
/// to overlap: measured on an H200, 128 rows of D = 4096 take 10.1 us with 512 threads, 12.0 us with 256).
/// The fused kernels choose by waves instead (cuda/all_reduce.cpp block_shape).
inline constexpr std::int64_t kSeparateNormManyRows = 1024;
inline constexpr std::int64_t kMaxStagedRowBytes = 64 * 1024;
/// `many_rows`: the call has rows enough for narrow blocks (kManyRowsBlockThreads).
constexpr int fused_block_threads(std::int64_t row_packs, bool many_rows) {
  const std::int64_t warps = (row_packs + 31) / 32;
  const std::int64_t most = many_rows ? kManyRowsBlockThreads : kFusedBlockThreads;
  return static_cast<int>(warps < 2 ? 64 : warps * 32 > most ? most : warps * 32);
}
constexpr std::int64_t staged_row_bytes(std::int64_t row_packs) {
  return row_packs * 16 <= kMaxStagedRowBytes ? row_packs * 16 : 0;
}

/// FlashInfer's warps a block at most whose second level one thread computes from their warp sums, in
/// registers (cuda/detail/sum_tree.cuh butterfly_in_one_thread): past that a warp's shuffles cost less than a
/// thread's loads and adds in every warp (measured on an H200: 16 MiB, where FlashInfer's blocks have 32 warps,
/// 1-1.5% slower).
inline constexpr int kMaxOneThreadLeaves = 8;

/// How a fused kernel's blocks compute a row: a block alone, whatever FlashInfer's launch tree; a cluster of
/// blocks (a row wider than a block, in a call with few rows); or a block alone whose threads hold one or two
/// packs of the row each, from the poll to the output in registers (register_packs: decode rows of up to
/// 1024 packs).
enum class RowBlocks { kBlock, kCluster, kOnePack, kTwoPacks };

/// Whether blocks computing rows so hold them in registers (the register rows' kernels).
constexpr bool in_registers(RowBlocks blocks) {
  return blocks == RowBlocks::kOnePack || blocks == RowBlocks::kTwoPacks;
}

/// The most packs of a row a thread holds in registers (register_packs).
inline constexpr int kMaxRegisterPacks = 2;

/// How many packs of a row of `launch` each thread of a block of `threads` alone holds in registers from the
/// poll to the output (the register rows, cuda/detail/norm_row_registers.cuh): the fewest, 1 or 2, that cover
/// FlashInfer's threads, or 0 where the row takes the general way. It takes: FlashInfer's threads load one pack
/// each, thread j of block b pack b * bs + j, in whole warps, so our thread i (pass p) plays FlashInfer's
/// thread i + p * threads lane for lane and our warp k its warp k + p * threads / 32; a FlashInfer block of at
/// most kMaxOneThreadLeaves warps; and the profile's scale is the MUFU's rsqrt (not the invariant profile's
/// correctly rounded one, which one warp computes for the block).
inline int register_packs(const NormLaunch& launch, Profile profile, int threads) {
  const int bs = launch.block_size(), cs = launch.cluster_size();
  const bool tree = (profile == Profile::kFlashInfer || profile == Profile::kIeee) &&
                    launch.loads_per_thread() == 1 && bs > 0 && bs % 32 == 0 &&
                    launch.packs_per_block == bs && bs / 32 <= kMaxOneThreadLeaves && cs >= 1 &&
                    cs <= kMaxClusterSize && threads > 0 && threads % 32 == 0;
  if (!tree) return 0;
  for (int packs = 1; packs <= kMaxRegisterPacks; ++packs)
    if (static_cast<std::int64_t>(cs) * bs <= static_cast<std::int64_t>(packs) * threads) return packs;
  return 0;
}

/// The most blocks that compute one register row (replica_plan; plan_launch gives them to NVFP4 rows only).
inline constexpr int kMaxRowReplicas = 4;

/// The packs of each replica's part of a register row (replica_plan): replica r writes the outputs of packs
/// [r * part, (r + 1) * part). Whole warps' packs (a multiple of 32), so that a warp's packs of a pass lie in one
/// part (a thread's packs are its index plus multiples of the block's width, a multiple of 32): a warp outside
/// the part skips its quantisation as a whole, and NVFP4's partner packs (pack ^ 1) stay together.
constexpr std::int64_t replica_part_packs(std::int64_t row_packs, int replicas) {
  const std::int64_t part = (row_packs + replicas - 1) / replicas;
  return (part + 31) / 32 * 32;
}

/// Register rows computed by `replicas` blocks each: every block polls the whole row and computes its sum of
/// squares and scale (the same operations on the same values, so the same bits in each), but writes only its
/// part of the row's outputs (replica_part_packs), and the quantisation of only those packs. A row's time after
/// its poll is the issue of one SM (docs/results.md); this spreads the output products, narrowings, stores and
/// above all the quantisation (NVFP4's e2m1 codes and block scales, FP8's conversions) over `replicas` SMs,
/// where a cluster would spread the whole row but add a cluster barrier. `replicas` is the largest power of two
/// up to kMaxRowReplicas with which each of a round's `rows` of `row_packs` packs gets its blocks, every block
/// resident at once (`fit` a rank), and every replica's part holds packs. `blocks`, the blocks a rank has for
/// its stores and clears (at least `rows` where `fit` allows), becomes a multiple of `replicas`: rounded up to
/// it (and to rows * replicas), or down where that would pass `fit`. `part`: replica_part_packs.
/// `most_replicas`: a lower bound than kMaxRowReplicas (1 for a call that writes over its residual, plan_launch).
struct ReplicaPlan {
  int replicas = 1;
  std::int64_t blocks = 0;
  std::int64_t part = 0;
};
constexpr ReplicaPlan replica_plan(std::int64_t rows, std::int64_t row_packs, std::int64_t blocks, std::int64_t fit,
                                   int most_replicas = kMaxRowReplicas) {
  int replicas = 1;
  while (replicas < kMaxRowReplicas && replicas < most_replicas && rows * replicas * 2 <= fit &&
         (replicas * 2 - 1) * replica_part_packs(row_packs, replicas * 2) < row_packs)
    replicas *= 2;
  std::int64_t wanted = blocks > rows * replicas ? blocks : rows * replicas;
  wanted = (wanted + replicas - 1) / replicas * replicas;
  const std::int64_t most = fit / replicas * replicas;
  return ReplicaPlan{replicas, wanted < most ? wanted : most, replica_part_packs(row_packs, replicas)};
}

}  // namespace ar::cuda
