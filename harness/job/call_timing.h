// Timing one call the same way on every process of a job (nccl-tests' timing piece): each process times
// its ranks after a barrier, checks its ranks' outputs of the last call, and the job takes the slowest
// process's time and every process's wrong elements.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>

#include "harness/job/gpu_backend.h"
#include "harness/job/job.h"

namespace ar {

struct CallTiming {
  int warmup = 5;
  int iterations = 20;
  int graph_launches = 0;  ///< 0: eager launches; G > 0: the iterations captured in one graph, replayed G times
  bool check = true;       ///< compare every local rank's output of the last call with the reference
};

struct TimedCall {
  double us = 0;            ///< mean per call, the slowest process's; NaN: a wait timed out somewhere
  std::int64_t wrong = -1;  ///< differing elements over every rank; -1: not checked
};

/// What the outputs of the last timed call must equal: the output, and a fused call's residual_out.
struct ExpectedOutputs {
  const HostTensor* output = nullptr;
  const HostTensor* residual_out = nullptr;  ///< compared when set
  const QuantizedOutput* quant = nullptr;    ///< a quantised call's codes and scales, compared when set
};

/// Times `call` on `group` (GpuRanks::time_us) and, when timing.check, compares each local rank's outputs
/// with `expected()` (called only then). A wait that times out is reported on `err` and gives NaN; the
/// processes stay in step. Collective.
TimedCall time_call(Job& job, GpuRanks& group, const GpuCall& call, const CallTiming& timing,
                    const std::function<ExpectedOutputs()>& expected, std::ostream& err);

}  // namespace ar
