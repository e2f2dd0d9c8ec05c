#include "cuda/peer_probes.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "cuda/detail/median.h"
#include "cuda/detail/ping_pong.h"

namespace ar::cuda {
namespace {

void enable_peer_access(int from, int to) {
  detail::DeviceGuard guard(from);
  const cudaError_t e = cudaDeviceEnablePeerAccess(to, 0);
  if (e == cudaErrorPeerAccessAlreadyEnabled) {
    (void)cudaGetLastError();
    return;
  }
  AR_CUDA_CHECK(e);
}

/// Mean round trip in microseconds, or nullopt if the ping-pong stalled.
std::optional<double> round_trip_us(int a, int b, const PeerProbeOptions& o) {
  std::uint32_t* flag[2] = {};
  cudaStream_t stream[2] = {};
  std::uint64_t* elapsed = nullptr;
  const int dev[2] = {a, b};
  std::optional<double> result;
  try {
    for (int s = 0; s < 2; ++s) {
      detail::DeviceGuard guard(dev[s]);
      AR_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&flag[s]), sizeof(std::uint32_t)));
      AR_CUDA_CHECK(cudaMemset(flag[s], 0, sizeof(std::uint32_t)));
      AR_CUDA_CHECK(cudaStreamCreateWithFlags(&stream[s], cudaStreamNonBlocking));
      AR_CUDA_CHECK(cudaDeviceSynchronize());
    }
    AR_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&elapsed), sizeof(std::uint64_t),
                                cudaHostAllocMapped | cudaHostAllocPortable));
    *elapsed = 0;
    std::uint64_t* elapsed_device = nullptr;
    AR_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&elapsed_device), elapsed, 0));
    // Both kernels run at once on their own GPUs; each polls its own word and stores into the other's.
    for (int s = 0; s < 2; ++s) {
      detail::DeviceGuard guard(dev[s]);
      detail::launch_ping_pong(flag[s], flag[1 - s], o.round_trips, s == 0, o.timeout_ns, elapsed_device, stream[s]);
    }
    for (int s = 0; s < 2; ++s) {
      detail::DeviceGuard guard(dev[s]);
      AR_CUDA_CHECK(cudaStreamSynchronize(stream[s]));
    }
    if (*elapsed != 0 && o.round_trips > 1)
      result = static_cast<double>(*elapsed) * 1e-3 / static_cast<double>(o.round_trips - 1);
  } catch (...) {
    for (int s = 0; s < 2; ++s) {
      if (flag[s]) AR_CUDA_CHECK_NOTHROW(cudaFree(flag[s]));
      if (stream[s]) AR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(stream[s]));
    }
    if (elapsed) AR_CUDA_CHECK_NOTHROW(cudaFreeHost(elapsed));
    throw;
  }
  for (int s = 0; s < 2; ++s) {
    detail::DeviceGuard guard(dev[s]);
    AR_CUDA_CHECK_NOTHROW(cudaFree(flag[s]));
    AR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(stream[s]));
  }
  AR_CUDA_CHECK_NOTHROW(cudaFreeHost(elapsed));
  return result;
}

/// Copy-engine peer copies of `bytes`: a -> b alone (both = false), or a -> b and b -> a at once (both =
/// true, bytes of both directions counted). GB/s, median of the repeats.
double copy_gbps(int a, int b, bool both, void* buffer_a, void* buffer_b, void* scratch_a, void* scratch_b,
                 const PeerProbeOptions& o) {
  const std::size_t bytes = static_cast<std::size_t>(o.copy_bytes);
  cudaStream_t sa = nullptr, sb = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr, b_done = nullptr, go = nullptr;
  std::vector<double> seconds;
  {
    detail::DeviceGuard guard(a);
    AR_CUDA_CHECK(cudaStreamCreateWithFlags(&sa, cudaStreamNonBlocking));
    AR_CUDA_CHECK(cudaEventCreate(&start));
    AR_CUDA_CHECK(cudaEventCreate(&stop));
    AR_CUDA_CHECK(cudaEventCreateWithFlags(&go, cudaEventDisableTiming));
  }
  {
    detail::DeviceGuard guard(b);
    AR_CUDA_CHECK(cudaStreamCreateWithFlags(&sb, cudaStreamNonBlocking));
    AR_CUDA_CHECK(cudaEventCreateWithFlags(&b_done, cudaEventDisableTiming));
  }
  for (int rep = -1; rep < o.copy_repeats; ++rep) {  // rep -1 warms up
    AR_CUDA_CHECK(cudaEventRecord(start, sa));
    AR_CUDA_CHECK(cudaMemcpyPeerAsync(scratch_b, b, buffer_a, a, bytes, sa));  // a -> b
    if (both) {
      AR_CUDA_CHECK(cudaEventRecord(go, sa));
      AR_CUDA_CHECK(cudaStreamWaitEvent(sb, go, 0));
      AR_CUDA_CHECK(cudaMemcpyPeerAsync(scratch_a, a, buffer_b, b, bytes, sb));  // b -> a
      AR_CUDA_CHECK(cudaEventRecord(b_done, sb));
      AR_CUDA_CHECK(cudaStreamWaitEvent(sa, b_done, 0));
    }
    AR_CUDA_CHECK(cudaEventRecord(stop, sa));
    AR_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    AR_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (rep >= 0) seconds.push_back(ms * 1e-3);
  }
  AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(start));
  AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(stop));
  AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(go));
  AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(b_done));
  AR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(sa));
  AR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(sb));
  const double moved = static_cast<double>(bytes) * (both ? 2 : 1);
  return moved / detail::median(seconds) * 1e-9;
}

}  // namespace

PeerMeasurements measure_peers(std::span<const int> devices, const PeerProbeOptions& o) {
  PeerMeasurements m;
  const std::size_t n = devices.size();
  m.devices.assign(devices.begin(), devices.end());
  m.access.assign(n, std::vector<bool>(n, false));
  m.round_trip_us.assign(n, std::vector<std::optional<double>>(n));
  m.oneway_gbps = m.round_trip_us;
  m.twoway_gbps = m.round_trip_us;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      if (i == j) continue;
      int can = 0;
      AR_CUDA_CHECK(cudaDeviceCanAccessPeer(&can, devices[i], devices[j]));
      m.access[i][j] = can != 0;
    }
  // Buffers for the copies, one source and one destination per device.
  std::vector<void*> source(n, nullptr), destination(n, nullptr);
  const auto free_buffers = [&] {
    for (std::size_t i = 0; i < n; ++i) {
      detail::DeviceGuard guard(devices[i]);
      if (source[i]) AR_CUDA_CHECK_NOTHROW(cudaFree(source[i]));
      if (destination[i]) AR_CUDA_CHECK_NOTHROW(cudaFree(destination[i]));
    }
  };
  try {
    if (n >= 2) {
      for (std::size_t i = 0; i < n; ++i) {
        detail::DeviceGuard guard(devices[i]);
        AR_CUDA_CHECK(cudaMalloc(&source[i], static_cast<std::size_t>(o.copy_bytes)));
        AR_CUDA_CHECK(cudaMalloc(&destination[i], static_cast<std::size_t>(o.copy_bytes)));
        AR_CUDA_CHECK(cudaMemset(source[i], 0x5A, static_cast<std::size_t>(o.copy_bytes)));  // never time zeros' pages
        AR_CUDA_CHECK(cudaDeviceSynchronize());
      }
    }
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        if (i == j) continue;
        const int a = devices[i], b = devices[j];
        if (!m.access[i][j] || !m.access[j][i]) {
          m.errors.push_back(
              fmt::format("GPU {} and GPU {}: no P2P access both ways; latency and bandwidth not "
                          "measured",
                          a, b));
          continue;
        }
        try {
          enable_peer_access(a, b);
          enable_peer_access(b, a);
          m.round_trip_us[i][j] = round_trip_us(a, b, o);
          if (!m.round_trip_us[i][j])
            m.errors.push_back(
                fmt::format("GPU {} <-> GPU {}: the flag ping-pong stalled for {} ms", a, b, o.timeout_ns / 1000000));
          m.oneway_gbps[i][j] = copy_gbps(a, b, false, source[i], source[j], destination[i], destination[j], o);
          m.twoway_gbps[i][j] = copy_gbps(a, b, true, source[i], source[j], destination[i], destination[j], o);
        } catch (const std::exception& e) {
          m.errors.push_back(fmt::format("GPU {} -> GPU {}: {}", a, b, e.what()));
        }
      }
  } catch (...) {
    free_buffers();
    throw;
  }
  free_buffers();
  return m;
}

}  // namespace ar::cuda
