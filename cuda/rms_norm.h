// The residual add + RMSNorm as a kernel of its own, after a plain all-reduce: the baseline `bench` times
// the fused kernels against, and a second route to the fused outputs (the same row computation, so the same
// bits as a fused call of the same strategy; tests/cuda/fused_test.cpp checks it).
//
// Plain C++: no CUDA headers needed by callers.
#pragma once

#include <cstdint>
#include <span>

#include "cuda/all_reduce.h"

namespace ar::cuda {

/// Normalise each rank's all-reduce output (RankIo::output, read) into RankIo::residual_out and
/// `normalized[i]` (one per rank of `ranks`), in the order of a fused call of `resolved` with `norm`.
struct RmsNormArguments {
  ProblemShape shape;
  Strategy resolved = Strategy::kOneShot;  ///< whose output order and sum of squares (ONESHOT or TWOSHOT)
  Profile profile = Profile::kFlashInfer;
  NormArguments norm;
  std::span<const RankIo> ranks;   ///< input: output (the all-reduce result); residual, residual_out, gamma
  std::span<void* const> normalized;  ///< one [N, D] per rank
  int device = 0;
  bool launch_with_pdl = false;
};

/// Enqueues the kernel (throws std::invalid_argument naming the problem, CudaError if the launch fails).
void launch_rms_norm(const RmsNormArguments& args, Stream stream);

}  // namespace ar::cuda
