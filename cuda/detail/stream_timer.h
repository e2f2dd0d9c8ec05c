// Timing of work on one stream per GPU: the timing resources of one stream (StreamTimer: start and stop events,
// the instantiated graph of a CUDA-graph replay), made current on their device and freed on every path, and the
// timing loop over all the streams (time_per_iteration_us). Used by the kernels' timing (VirtualGroup) and by
// the NCCL baseline, so both are measured the same way; the probes (cuda/probes.h) time with StreamTimer too.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include <cuda_runtime_api.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"

namespace ar::cuda::detail {

struct StreamTimer {
  int device = 0;
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaGraphExec_t exec = nullptr;

  explicit StreamTimer(int d) : device(d) {
    DeviceGuard guard(device);
    AR_CUDA_CHECK(cudaEventCreate(&start));
    AR_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~StreamTimer() {
    DeviceGuard guard(device);
    if (exec) AR_CUDA_CHECK_NOTHROW(cudaGraphExecDestroy(exec));
    AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(start));
    AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(stop));
  }
  StreamTimer(const StreamTimer&) = delete;
  StreamTimer& operator=(const StreamTimer&) = delete;

  /// Milliseconds between the recorded start and stop (blocks until stop has completed).
  float elapsed_ms() const {
    DeviceGuard guard(device);
    AR_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    AR_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms;
  }
};

/// How the timed iterations become one CUDA graph per stream.
enum class GraphCapture {
  /// Stream after stream, each in thread-local mode around `launch_on(i)`: capturing only records, so no
  /// stream waits for another.
  kEachStream,
  /// Every stream at once, in global mode around `launch()`: for work that enqueues on all the streams
  /// together (NCCL's grouped launch).
  kAllStreams,
};

/// What a timed region runs: one stream per GPU, and what one iteration launches on them.
struct TimedWork {
  std::vector<int> devices;           ///< the GPU of each stream
  std::vector<cudaStream_t> streams;  ///< one per device, in the same order
  /// One iteration on every stream: the warm-up, the eagerly launched iterations, the kAllStreams capture.
  std::function<void()> launch;
  /// One iteration on stream i alone: the kEachStream capture.
  std::function<void(std::size_t)> launch_on;
  GraphCapture capture = GraphCapture::kEachStream;
  /// Waits for every stream; throws for a failure it finds there (a wait that gave up, an NCCL error).
  std::function<void()> synchronize;
  /// Optional: runs once all warm-up work has completed, right before the start events are recorded.
  std::function<void()> before_timing;
};

/// Mean microseconds per iteration, the slowest stream's: `warmup` iterations launched and synchronized, then
/// `iterations` timed with a start and a stop event on every stream. With graph_launches > 0 the iterations are
/// captured in one CUDA graph per stream (`work.capture`), replayed once untimed (then synchronized), and
/// replayed graph_launches times between the events. Throws what the launches and synchronize throw, and
/// ar::CudaError for a failed CUDA call.
double time_per_iteration_us(const TimedWork& work, int warmup, int iterations, int graph_launches);

}  // namespace ar::cuda::detail
