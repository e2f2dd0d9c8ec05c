#include "cuda/detail/stream_timer.h"

#include <algorithm>
#include <exception>
#include <memory>

namespace ar::cuda::detail {

namespace {

using Timers = std::vector<std::unique_ptr<StreamTimer>>;

/// GraphCapture::kEachStream: each stream's graph captured on its own, one after the other.
void capture_each_stream(const TimedWork& work, int iterations, Timers& timers) {
  for (std::size_t i = 0; i < work.streams.size(); ++i) {
    DeviceGuard guard(work.devices[i]);
    cudaGraph_t graph = nullptr;
    AR_CUDA_CHECK(cudaStreamBeginCapture(work.streams[i], cudaStreamCaptureModeThreadLocal));
    try {
      for (int n = 0; n < iterations; ++n) work.launch_on(i);
    } catch (...) {
      (void)cudaStreamEndCapture(work.streams[i], &graph);
      if (graph) (void)cudaGraphDestroy(graph);
      throw;
    }
    AR_CUDA_CHECK(cudaStreamEndCapture(work.streams[i], &graph));
    const cudaError_t made = cudaGraphInstantiate(&timers[i]->exec, graph, 0);
    AR_CUDA_CHECK_NOTHROW(cudaGraphDestroy(graph));
    AR_CUDA_CHECK(made);
  }
}

/// GraphCapture::kAllStreams: every stream captures at once; each capture is ended (and its graph freed)
/// whatever failed, and the first failure is thrown.
void capture_all_streams(const TimedWork& work, int iterations, Timers& timers) {
  const std::size_t count = work.streams.size();
  for (std::size_t i = 0; i < count; ++i) {
    DeviceGuard guard(work.devices[i]);
    AR_CUDA_CHECK(cudaStreamBeginCapture(work.streams[i], cudaStreamCaptureModeGlobal));
  }
  std::exception_ptr failed;
  try {
    for (int n = 0; n < iterations; ++n) work.launch();
  } catch (...) {
    failed = std::current_exception();
  }
  std::vector<cudaGraph_t> graphs(count, nullptr);
  cudaError_t ended = cudaSuccess;
  for (std::size_t i = 0; i < count; ++i) {
    DeviceGuard guard(work.devices[i]);
    const cudaError_t e = cudaStreamEndCapture(work.streams[i], &graphs[i]);
    if (ended == cudaSuccess) ended = e;
  }
  for (std::size_t i = 0; i < count && !failed && ended == cudaSuccess; ++i) {
    DeviceGuard guard(work.devices[i]);
    ended = cudaGraphInstantiate(&timers[i]->exec, graphs[i], 0);
  }
  for (std::size_t i = 0; i < count; ++i)
    if (graphs[i]) AR_CUDA_CHECK_NOTHROW(cudaGraphDestroy(graphs[i]));
  if (failed) std::rethrow_exception(failed);
  AR_CUDA_CHECK(ended);
}

/// Records `event` of every stream's timer (start or stop) on that stream.
void record_on_every_stream(const TimedWork& work, const Timers& timers, cudaEvent_t StreamTimer::*event) {
  for (std::size_t i = 0; i < work.streams.size(); ++i) {
    DeviceGuard guard(work.devices[i]);
    const cudaEvent_t recorded = (*timers[i]).*event;
    AR_CUDA_CHECK(cudaEventRecord(recorded, work.streams[i]));
  }
}

/// One replay of every stream's graph.
void replay_on_every_stream(const TimedWork& work, const Timers& timers) {
  for (std::size_t i = 0; i < work.streams.size(); ++i) {
    DeviceGuard guard(work.devices[i]);
    AR_CUDA_CHECK(cudaGraphLaunch(timers[i]->exec, work.streams[i]));
  }
}

}  // namespace

double time_per_iteration_us(const TimedWork& work, int warmup, int iterations, int graph_launches) {
  for (int n = 0; n < warmup; ++n) work.launch();
  work.synchronize();

  Timers timers;
  for (int d : work.devices) timers.push_back(std::make_unique<StreamTimer>(d));
  double calls = iterations;
  if (graph_launches > 0) {
    if (work.capture == GraphCapture::kEachStream)
      capture_each_stream(work, iterations, timers);
    else
      capture_all_streams(work, iterations, timers);
    replay_on_every_stream(work, timers);  // one replay to warm the graphs
    work.synchronize();
    if (work.before_timing) work.before_timing();
    record_on_every_stream(work, timers, &StreamTimer::start);
    for (int g = 0; g < graph_launches; ++g) replay_on_every_stream(work, timers);
    calls = static_cast<double>(graph_launches) * iterations;
  } else {
    if (work.before_timing) work.before_timing();  // the warm-up has finished above
    record_on_every_stream(work, timers, &StreamTimer::start);
    for (int n = 0; n < iterations; ++n) work.launch();
  }
  record_on_every_stream(work, timers, &StreamTimer::stop);
  float slowest_ms = 0.0f;
  for (const auto& t : timers) slowest_ms = std::max(slowest_ms, t->elapsed_ms());
  return static_cast<double>(slowest_ms) * 1000.0 / calls;
}

}  // namespace ar::cuda::detail
