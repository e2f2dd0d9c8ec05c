// The machine's limits, measured in the same run as the benchmark so results read as ratios: the cost of
// launching an empty kernel (eager and in a CUDA graph) and the device-to-device copy bandwidth.
#pragma once

#include <cstdint>

namespace ar::cuda {

struct LaunchOverhead {
  double eager_us = 0;  ///< per launch, back-to-back launches of an empty kernel on one stream
  double graph_us = 0;  ///< per launch, the same launches captured in one CUDA graph and replayed
};

/// Median of `repeats` measurements of `launches` empty-kernel launches each.
LaunchOverhead measure_launch_overhead(int device, int launches = 1000, int repeats = 5);

struct CopyBandwidth {
  std::int64_t bytes = 0;  ///< copied per measurement
  double seconds = 0;      ///< median time of one copy
  double gbps() const { return seconds > 0 ? 2.0 * static_cast<double>(bytes) / seconds * 1e-9 : 0; }  ///< read + write
};

/// Median of `repeats` cudaMemcpyAsync device-to-device copies of `bytes`, counting bytes read plus written.
CopyBandwidth measure_copy_bandwidth(int device, std::int64_t bytes = std::int64_t(1) << 30, int repeats = 10);

}  // namespace ar::cuda
