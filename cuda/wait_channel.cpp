#include "cuda/wait_channel.h"

#include <cstring>

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "reference/workspace.h"

namespace ar::cuda {

WaitChannel::WaitChannel(int device) : device_(device) {
  detail::DeviceGuard guard(device);
  void* host = nullptr;
  AR_CUDA_CHECK(cudaHostAlloc(&host, sizeof(WaitError), cudaHostAllocMapped));
  host_ = static_cast<WaitError*>(host);
  std::memset(host_, 0, sizeof(WaitError));
  void* alias = nullptr;
  AR_CUDA_CHECK(cudaHostGetDevicePointer(&alias, host, 0));
  view_.record = static_cast<WaitError*>(alias);
  void* abort = nullptr;
  AR_CUDA_CHECK(cudaMalloc(&abort, sizeof(std::uint32_t)));
  AR_CUDA_CHECK(cudaMemset(abort, 0, sizeof(std::uint32_t)));
  view_.abort_flag = static_cast<std::uint32_t*>(abort);
}

WaitChannel::~WaitChannel() {
  if (view_.abort_flag) AR_CUDA_CHECK_NOTHROW(cudaFree(view_.abort_flag));
  if (host_) AR_CUDA_CHECK_NOTHROW(cudaFreeHost(host_));
}

std::optional<WaitError> WaitChannel::take() {
  const volatile WaitError* v = host_;
  if (v->status == 0) return std::nullopt;
  WaitError e;
  std::memcpy(&e, const_cast<const WaitError*>(host_), sizeof(e));
  std::memset(host_, 0, sizeof(WaitError));
  detail::DeviceGuard guard(device_);
  AR_CUDA_CHECK(cudaMemset(view_.abort_flag, 0, sizeof(std::uint32_t)));
  AR_CUDA_CHECK(cudaDeviceSynchronize());
  return e;
}

std::string describe_wait_error(const WaitError& e) {
  const double waited_s = static_cast<double>(e.waited_ns) * 1e-9;
  const std::string words =
      fmt::format("{:#010x} {:#010x} {:#010x} {:#010x}", e.words[0], e.words[1], e.words[2], e.words[3]);
  int empty = 0;
  for (std::uint32_t w : e.words) empty += w == kLamportEmptyWord;
  const std::string seen = empty == 4 ? "every word still the empty sentinel 0x80000000: nothing was ever stored there"
                                      : fmt::format("{} of 4 words still the empty sentinel 0x80000000", empty);
  switch (static_cast<WaitSite>(e.site)) {
    case WaitSite::kOneShotSlot:
      return fmt::format(
          "rank {} timed out after {:.3f} s in call {} waiting for rank {}: ONESHOT slot [token {}][rank {}] of "
          "Lamport buffer {} (stage 0), pack {}, held {} ({}). Rank {} is missing or out of step.",
          e.rank, waited_s, e.call, e.peer, e.token, e.peer, e.buffer, e.pack, words, seen, e.peer);
    case WaitSite::kScatterSlot:
      return fmt::format(
          "rank {} timed out after {:.3f} s in call {} waiting for rank {}: TWOSHOT SCATTER slot of token {} from "
          "rank {} in Lamport buffer {} (stage 0), pack {}, held {} ({}). Rank {} is missing or out of step.",
          e.rank, waited_s, e.call, e.peer, e.token, e.peer, e.buffer, e.pack, words, seen, e.peer);
    case WaitSite::kBroadcastSlot:
      return fmt::format(
          "rank {} timed out after {:.3f} s in call {} waiting for rank {}: TWOSHOT BROADCAST row of token {} "
          "(owned by rank {}) in Lamport buffer {} (stage 1), pack {}, held {} ({}). Rank {} is missing or out of "
          "step.",
          e.rank, waited_s, e.call, e.peer, e.token, e.peer, e.buffer, e.pack, words, seen, e.peer);
    case WaitSite::kDirectScatterFlag:
    case WaitSite::kDirectBroadcastFlag:
      return fmt::format(
          "rank {} timed out after {:.3f} s in call {} waiting for rank {}: the direct path's {} flag of block {} "
          "(round {}) held {:#010x}, not the round's {:#010x}{}. Rank {} is missing or out of step.",
          e.rank, waited_s, e.call, e.peer,
          static_cast<WaitSite>(e.site) == WaitSite::kDirectScatterFlag ? "SCATTER" : "BROADCAST", e.pack, e.token,
          e.words[0], e.words[1], e.words[0] == kLamportEmptyWord ? " (never published since the reset)" : "",
          e.peer);
    case WaitSite::kNone: break;
  }
  return fmt::format("rank {} timed out in call {} (unknown wait site {})", e.rank, e.call, e.site);
}

}  // namespace ar::cuda
