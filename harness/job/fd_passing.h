// Passing file descriptors between processes of one host: POSIX VMM handles travel as fds over an AF_UNIX
// socket with SCM_RIGHTS (no ptrace rights needed). exchange_fds gives every rank a duplicate of every other
// rank's descriptor, using the rendezvous to publish socket names.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "harness/job/rendezvous.h"

namespace ar {

/// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  ~UniqueFd();
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// Sends `fd` over the connected AF_UNIX socket `socket` (one byte of payload, the fd as SCM_RIGHTS).
void send_fd(int socket, int fd);
/// Receives one fd sent by send_fd; throws RendezvousError on a closed socket or a message without an fd.
UniqueFd receive_fd(int socket);

/// Every rank contributes `mine`; returns, in rank order, a descriptor for every rank's (a duplicate of
/// `mine` at this rank's own index). Uses abstract AF_UNIX sockets named after `job` and the rank.
std::vector<UniqueFd> exchange_fds(Rendezvous& rendezvous, int mine, const std::string& job);

/// The same for any number of descriptors per process (a process that runs several ranks exports one per
/// rank; the counts may differ between processes): element p holds duplicates of process p's, in order.
std::vector<std::vector<UniqueFd>> exchange_fd_lists(Rendezvous& rendezvous, std::span<const int> mine,
                                                     const std::string& job);

}  // namespace ar
