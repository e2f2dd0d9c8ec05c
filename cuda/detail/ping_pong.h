// The flag ping-pong between two GPUs that `mnnvl-ar probe` times (cuda/peer_probes.h): one thread on each
// GPU, each polling a word in its own memory and storing into the other's.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace ar::cuda::detail {

/// Enqueues one side on `stream` (the current device must be the one `mine` lives on). The starter writes
/// round r into `theirs` and waits for r in `mine`; the other side answers. The starter stores the time of
/// rounds 2..round_trips in *elapsed_ns (mapped host memory), or 0 when a wait exceeded timeout_ns.
void launch_ping_pong(std::uint32_t* mine, std::uint32_t* theirs, int round_trips, bool starter,
                      std::uint64_t timeout_ns, std::uint64_t* elapsed_ns, cudaStream_t stream);

}  // namespace ar::cuda::detail
