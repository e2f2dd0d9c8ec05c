// Rendezvous of the ranks of one job over TCP (Boost.Asio): rank 0 listens, the others connect; it offers
// all-gather and barrier, which the workspace set-up uses, and a check that every rank plans the same
// calls. Every peer must present the job's shared token. Every wait is bounded by the timeout, and a peer
// that disappears is named in the error the others raise.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ar {

struct RendezvousOptions {
  int rank = 0;
  int world_size = 1;
  std::string address = "127.0.0.1";  ///< rank 0's address as the other ranks reach it
  std::uint16_t port = 29500;
  std::string token;                  ///< shared secret; every rank must present the same
  std::chrono::milliseconds timeout{30000};
  std::string program_version;        ///< ranks running different builds are refused
};

/// Why the rendezvous failed: a peer never arrived, was refused, died, or disagreed.
class RendezvousError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Rendezvous {
 public:
  /// Blocks until every rank has joined (or throws RendezvousError when the timeout passes).
  explicit Rendezvous(const RendezvousOptions& options);
  ~Rendezvous();
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;

  int rank() const;
  int world_size() const;

  /// Every rank's `mine`, in rank order, on every rank.
  std::vector<std::string> all_gather(const std::string& mine);
  void barrier();
  /// Every rank states what it is about to do (`description`, one item per line); if any differs from
  /// rank 0's, every rank throws an error naming that rank and the first differing line. `what` names the
  /// subject ("call sequence").
  void agree(const std::string& what, const std::string& description);
  /// Tells the peers to stop, with a reason (best effort, never throws). Call before exiting on an error.
  void abort(const std::string& reason) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The job's token: $MNNVL_AR_TOKEN, else the contents of the file $MNNVL_AR_TOKEN_FILE (trailing newline
/// removed). Empty when neither is set.
std::string token_from_environment();

}  // namespace ar
