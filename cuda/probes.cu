#include "cuda/probes.h"

#include <vector>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "cuda/detail/median.h"
#include "cuda/detail/stream_timer.h"

namespace ar::cuda {
namespace {

__global__ void empty_kernel() {}

/// Seconds between the timer's start and stop events.
double elapsed_s(const detail::StreamTimer& timer) { return timer.elapsed_ms() * 1e-3; }

}  // namespace

LaunchOverhead measure_launch_overhead(int device, int launches, int repeats) {
  detail::DeviceGuard guard(device);
  cudaStream_t s = nullptr;
  AR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  detail::StreamTimer ev(device);
  std::vector<double> eager, graph;
  for (int i = 0; i < 100; ++i) empty_kernel<<<1, 32, 0, s>>>();
  AR_CUDA_CHECK(cudaGetLastError());
  for (int r = 0; r < repeats; ++r) {
    AR_CUDA_CHECK(cudaEventRecord(ev.start, s));
    for (int i = 0; i < launches; ++i) empty_kernel<<<1, 32, 0, s>>>();
    AR_CUDA_CHECK(cudaEventRecord(ev.stop, s));
    eager.push_back(elapsed_s(ev) * 1e6 / launches);
  }
  cudaGraph_t g = nullptr;
  cudaGraphExec_t exec = nullptr;
  AR_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < launches; ++i) empty_kernel<<<1, 32, 0, s>>>();
  AR_CUDA_CHECK(cudaStreamEndCapture(s, &g));
  AR_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  AR_CUDA_CHECK(cudaGraphLaunch(exec, s));
  for (int r = 0; r < repeats; ++r) {
    AR_CUDA_CHECK(cudaEventRecord(ev.start, s));
    AR_CUDA_CHECK(cudaGraphLaunch(exec, s));
    AR_CUDA_CHECK(cudaEventRecord(ev.stop, s));
    graph.push_back(elapsed_s(ev) * 1e6 / launches);
  }
  AR_CUDA_CHECK(cudaGraphExecDestroy(exec));
  AR_CUDA_CHECK(cudaGraphDestroy(g));
  AR_CUDA_CHECK(cudaStreamSynchronize(s));
  AR_CUDA_CHECK(cudaStreamDestroy(s));
  return {detail::median(eager), detail::median(graph)};
}

CopyBandwidth measure_copy_bandwidth(int device, std::int64_t bytes, int repeats) {
  detail::DeviceGuard guard(device);
  cudaStream_t s = nullptr;
  AR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  void* a = nullptr;
  void* b = nullptr;
  AR_CUDA_CHECK(cudaMalloc(&a, static_cast<std::size_t>(bytes)));
  AR_CUDA_CHECK(cudaMalloc(&b, static_cast<std::size_t>(bytes)));
  AR_CUDA_CHECK(cudaMemsetAsync(a, 0x5A, static_cast<std::size_t>(bytes), s));
  detail::StreamTimer ev(device);
  std::vector<double> t;
  AR_CUDA_CHECK(cudaMemcpyAsync(b, a, static_cast<std::size_t>(bytes), cudaMemcpyDeviceToDevice, s));  // warm-up
  for (int r = 0; r < repeats; ++r) {
    AR_CUDA_CHECK(cudaEventRecord(ev.start, s));
    AR_CUDA_CHECK(cudaMemcpyAsync(b, a, static_cast<std::size_t>(bytes), cudaMemcpyDeviceToDevice, s));
    AR_CUDA_CHECK(cudaEventRecord(ev.stop, s));
    t.push_back(elapsed_s(ev));
  }
  AR_CUDA_CHECK(cudaStreamSynchronize(s));
  AR_CUDA_CHECK(cudaFree(a));
  AR_CUDA_CHECK(cudaFree(b));
  AR_CUDA_CHECK(cudaStreamDestroy(s));
  return {bytes, detail::median(t)};
}

}  // namespace ar::cuda
