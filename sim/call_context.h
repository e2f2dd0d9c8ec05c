// One call of the sequence as every launch of it sees it: the resolved strategy and shape, whether it is the
// fused residual-add + RMSNorm call, the fold order, the clear record, the grids it launches, the inputs of every
// rank and the reference output. Built once per seed by make_call_contexts and shared, read-only, by every
// simulated run that uses those inputs.
#pragma once

#include <cstdint>
#include <vector>

#include "reference/reduction_order.h"
#include "reference/tensor.h"
#include "reference/workspace.h"
#include "sim/config.h"

namespace ar::sim {

/// Which kernel a grid runs.
enum class Kernel : std::uint8_t {
  kAllReduce,  ///< the call's all-reduce kernel (a fused call's only kernel, except FlashInfer's fused TWOSHOT)
  /// FlashInfer's fused TWOSHOT only: rmsNormLamport, launched (PDL) once every CTA of the all-reduce kernel has
  /// triggered; it polls BROADCAST, arrives and advances the flags (SPEC sections 4.2 and 6).
  kNorm,
};

/// One grid a call launches on every rank.
struct GridShape {
  Kernel kernel = Kernel::kAllReduce;
  std::int64_t ctas_per_token = 1;  ///< FlashInfer: CTAs per token (blockIdx.y); ours: 1
  std::int64_t ctas = 1;            ///< CTAs per rank (ours: blocks per rank)
  int lanes = 1;                    ///< threads per CTA, one 16-byte pack each (FlashInfer: pack first_pack + lane)
  /// A cluster launch (1, cs, 1): every CTA arrives on the cluster barrier, cluster block 0 waits for the others
  /// and increments the counter once for the cluster (SPEC 4.2). FlashInfer's fused ONESHOT, and its
  /// rmsNormLamport when adjustGridConfig gives cs > 1 with one load per thread.
  bool cluster_launch = false;
  int cluster = 1;  ///< CTAs per cluster (cs)
  /// What grid thread 0 waits for on the arrival counter: one arrival per CTA, or per cluster.
  std::int64_t arrivals() const { return ctas / cluster; }
};

/// Everything a launch of one call needs, shared by all runs that use the same inputs.
struct CallContext {
  int index = 0;
  Strategy strategy = Strategy::kOneShot;  ///< resolved
  ProblemShape shape;
  bool fused = false;                 ///< the fused residual-add + RMSNorm call
  ReductionOrder order;               ///< what the kernels fold with (kernel_order)
  ClearRecord record;                 ///< what this launch records for the next launch's clear
  int elements_per_pack = 8;          ///< E' = 16 / sizeof(T)
  std::int64_t packs_per_token = 1;   ///< D / E'
  std::int64_t tokens_per_round = 1;  ///< ours: tokens per round (TWOSHOT: a multiple of W)
  std::int64_t rounds = 1;            ///< ours: ceil(N / tokens_per_round)
  int poll_chunk = 2;                 ///< sources polled (and folded) per pass
  bool own_from_registers = true;     ///< FlashInfer ONESHOT W <= 8: the local value is not read back
  /// Ours: a plain TWOSHOT call that takes the direct path (SimConfig::direct_from_bytes); its rows and flags
  /// lie where `direct` says (one layout for every direct call of the sequence), and it records nothing to clear.
  bool takes_direct = false;
  DirectRegion direct;
  /// The grids the call launches on every rank, in stream order: one, or for FlashInfer's fused TWOSHOT the
  /// all-reduce kernel then rmsNormLamport.
  std::vector<GridShape> grids;
  HostTensor input;     ///< [W, N, D]
  HostTensor expected;  ///< [N, D]: reference_all_reduce
};

/// The grids FlashInfer's kernels launch for `call` (SPEC section 6): one CTA per token and `packs_per_cta`
/// packs for the plain kernels; the fused ONESHOT and rmsNormLamport take fused_launch's norm_launch shape.
/// Throws std::invalid_argument when FlashInfer refuses a fused shape.
std::vector<GridShape> flashinfer_grids(const ResolvedCall& call, int packs_per_cta, int sm_count);

/// Builds every call's context for inputs drawn from `seed`. Throws std::invalid_argument when
/// protocol_conflict(config) names a problem.
std::vector<CallContext> make_call_contexts(const SimConfig& config, std::uint64_t seed);

/// Bytes of the direct region every rank needs for `calls` (0 when no call takes the direct path).
std::int64_t direct_region_bytes(const std::vector<CallContext>& calls);

}  // namespace ar::sim
