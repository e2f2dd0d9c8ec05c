#include "cuda/probes.h"

#include <algorithm>
#include <vector>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"

namespace ar::cuda {
namespace {

__global__ void empty_kernel() {}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Events {
  cudaEvent_t start = nullptr, stop = nullptr;
  Events() {
    AR_CUDA_CHECK(cudaEventCreate(&start));
    AR_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~Events() {
    AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(start));
    AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(stop));
  }
  double elapsed_s() const {
    AR_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    AR_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms * 1e-3;
  }
};

}  // namespace

LaunchOverhead measure_launch_overhead(int device, int launches, int repeats) {
  detail::DeviceGuard guard(device);
  cudaStream_t s = nullptr;
  AR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  Events ev;
  std::vector<double> eager, graph;
  for (int i = 0; i < 100; ++i) empty_kernel<<<1, 32, 0, s>>>();
  AR_CUDA_CHECK(cudaGetLastError());
  for (int r = 0; r < repeats; ++r) {
    AR_CUDA_CHECK(cudaEventRecord(ev.start, s));
    for (int i = 0; i < launches; ++i) empty_kernel<<<1, 32, 0, s>>>();
    AR_CUDA_CHECK(cudaEventRecord(ev.stop, s));
    eager.push_back(ev.elapsed_s() * 1e6 / launches);
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
    graph.push_back(ev.elapsed_s() * 1e6 / launches);
  }
  AR_CUDA_CHECK(cudaGraphExecDestroy(exec));
  AR_CUDA_CHECK(cudaGraphDestroy(g));
  AR_CUDA_CHECK(cudaStreamSynchronize(s));
  AR_CUDA_CHECK(cudaStreamDestroy(s));
  return {median(eager), median(graph)};
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
  Events ev;
  std::vector<double> t;
  AR_CUDA_CHECK(cudaMemcpyAsync(b, a, static_cast<std::size_t>(bytes), cudaMemcpyDeviceToDevice, s));  // warm-up
  for (int r = 0; r < repeats; ++r) {
    AR_CUDA_CHECK(cudaEventRecord(ev.start, s));
    AR_CUDA_CHECK(cudaMemcpyAsync(b, a, static_cast<std::size_t>(bytes), cudaMemcpyDeviceToDevice, s));
    AR_CUDA_CHECK(cudaEventRecord(ev.stop, s));
    t.push_back(ev.elapsed_s());
  }
  AR_CUDA_CHECK(cudaStreamSynchronize(s));
  AR_CUDA_CHECK(cudaFree(a));
  AR_CUDA_CHECK(cudaFree(b));
  AR_CUDA_CHECK(cudaStreamDestroy(s));
  return {bytes, median(t)};
}

}  // namespace ar::cuda
