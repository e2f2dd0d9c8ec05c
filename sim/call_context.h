// One call of the sequence as every launch of it sees it: the resolved strategy and shape, the fold order, the
// clear record, the grid, the inputs of every rank and the reference output. Built once per seed by
// make_call_contexts and shared, read-only, by every simulated run that uses those inputs.
#pragma once

#include <cstdint>
#include <vector>

#include "reference/reduction_order.h"
#include "reference/tensor.h"
#include "reference/workspace.h"
#include "sim/config.h"

namespace ar::sim {

/// Everything a launch of one call needs, shared by all runs that use the same inputs.
struct CallContext {
  int index = 0;
  Strategy strategy = Strategy::kOneShot;  ///< resolved
  ProblemShape shape;
  ReductionOrder order;               ///< what the kernels fold with (kernel_order)
  ClearRecord record;                 ///< what this launch records for the next launch's clear
  int elements_per_pack = 8;          ///< E' = 16 / sizeof(T)
  std::int64_t packs_per_token = 1;   ///< D / E'
  std::int64_t ctas_per_token = 1;    ///< ceil(packs_per_token / packs_per_cta) (FlashInfer's grid)
  std::int64_t ctas = 1;              ///< the grid: N * ctas_per_token (ours: blocks per rank)
  std::int64_t tokens_per_round = 1;  ///< ours: tokens per round (TWOSHOT: a multiple of W)
  std::int64_t rounds = 1;            ///< ours: ceil(N / tokens_per_round)
  int poll_chunk = 2;                 ///< sources polled (and folded) per pass
  bool own_from_registers = true;     ///< FlashInfer ONESHOT W <= 8: the local value is not read back
  HostTensor input;                   ///< [W, N, D]
  HostTensor expected;                ///< [N, D]: reference_all_reduce
};

/// Builds every call's context for inputs drawn from `seed`. Throws std::invalid_argument when
/// protocol_conflict(config) names a problem.
std::vector<CallContext> make_call_contexts(const SimConfig& config, std::uint64_t seed);

}  // namespace ar::sim
