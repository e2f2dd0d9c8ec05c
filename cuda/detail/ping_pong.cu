#include "cuda/detail/ping_pong.h"

#include "cuda/detail/check.h"
#include "cuda/ptx.cuh"

namespace ar::cuda::detail {
namespace {

/// One side of the ping-pong (one thread). The starter writes round r into the peer's word and waits for
/// the peer to write r back into its own word; the other side waits, then answers. Polls are relaxed
/// (ld.volatile), stores strong at system scope: only the words themselves travel, nothing is published
/// with them, so no fence is needed. Every wait is bounded by `timeout_ns`.
__global__ void ping_pong(std::uint32_t* mine, std::uint32_t* theirs, int round_trips, int starter,
                          std::uint64_t timeout_ns, std::uint64_t* elapsed_ns) {
  std::uint64_t timed_from = 0;
  for (std::uint32_t round = 1; round <= static_cast<std::uint32_t>(round_trips); ++round) {
    if (round == 2) timed_from = ptx::read_globaltimer();  // round 1 pays for first touches: not timed
    if (starter) ptx::st_relaxed_sys_u32(theirs, round);
    const std::uint64_t wait_start = ptx::read_globaltimer();
    std::uint32_t spins = 0;
    while (ptx::ld_volatile_u32(mine) != round) {
      if ((++spins & 1023u) == 0 && ptx::read_globaltimer() - wait_start > timeout_ns) {
        if (starter) *elapsed_ns = 0;  // 0 = gave up
        return;
      }
    }
    if (!starter) ptx::st_relaxed_sys_u32(theirs, round);
  }
  if (starter) *elapsed_ns = ptx::read_globaltimer() - timed_from;
}

}  // namespace

void launch_ping_pong(std::uint32_t* mine, std::uint32_t* theirs, int round_trips, bool starter,
                      std::uint64_t timeout_ns, std::uint64_t* elapsed_ns, cudaStream_t stream) {
  ping_pong<<<1, 1, 0, stream>>>(mine, theirs, round_trips, starter ? 1 : 0, timeout_ns, elapsed_ns);
  AR_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ar::cuda::detail
