// The harness's side of the workspace's handle exchange (cuda/peer_exchange.h): the rendezvous carries each
// rank's allocation size and, for fabric handles, the handle bytes; POSIX file descriptors travel over
// abstract AF_UNIX sockets with SCM_RIGHTS (harness/fd_passing.h), so no process needs ptrace rights.
// Built only with the CUDA layer.
#pragma once

#include <string>
#include <vector>

#include "cuda/peer_exchange.h"
#include "harness/job/fd_passing.h"
#include "harness/job/rendezvous.h"

namespace ar {

class RendezvousExchange final : public cuda::PeerExchange {
 public:
  /// `job` names this exchange's sockets (unique per workspace on a host; the process id is added).
  RendezvousExchange(Rendezvous& rendezvous, std::string job) : rendezvous_(rendezvous), job_(std::move(job)) {}

  std::vector<cuda::ShareableHandle> exchange(cuda::HandleType type,
                                              std::span<const cuda::ShareableHandle> mine) override;
  void barrier() override { rendezvous_.barrier(); }

 private:
  Rendezvous& rendezvous_;
  std::string job_;
  int round_ = 0;
  std::vector<std::vector<UniqueFd>> received_;  // kept open until the next exchange
};

}  // namespace ar
