// What the GPUs of one process can do to each other, for `mnnvl-ar probe`: the P2P access matrix
// (cudaDeviceCanAccessPeer), the round-trip latency of a flag ping-pong between two GPUs, and the bandwidth
// of copy-engine peer copies, one way (i -> j alone) and both ways at once (i -> j and j -> i).
//
// Plain C++: no CUDA headers needed by callers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ar::cuda {

struct PeerMeasurements {
  std::vector<int> devices;                                       ///< the ordinals measured, in matrix order
  std::vector<std::vector<bool>> access;                          ///< [i][j]: device i can access device j's memory
  std::vector<std::vector<std::optional<double>>> round_trip_us;  ///< flag ping-pong i <-> j, per round trip
  std::vector<std::vector<std::optional<double>>> oneway_gbps;    ///< cudaMemcpyPeer i -> j alone
  std::vector<std::vector<std::optional<double>>> twoway_gbps;    ///< i -> j and j -> i at once, both counted
  std::vector<std::string> errors;                                ///< measurements that failed, in words
};

struct PeerProbeOptions {
  std::int64_t copy_bytes = std::int64_t(256) << 20;  ///< per copy
  int copy_repeats = 5;                               ///< median of this many
  int round_trips = 2000;                             ///< ping-pong round trips (the first is not timed)
  std::uint64_t timeout_ns = 2'000'000'000ull;        ///< a ping-pong that stalls this long gives up
};

/// Measures every ordered pair of `devices` (a pair without P2P access in both directions is only reported
/// in the access matrix). Enables peer access between the pairs it measures. Never throws for a failed
/// measurement (it is listed in errors); throws CudaError when the devices cannot be queried at all.
PeerMeasurements measure_peers(std::span<const int> devices, const PeerProbeOptions& options = {});

}  // namespace ar::cuda
