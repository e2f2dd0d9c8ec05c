// Rendezvous of the ranks of one job over TCP (Boost.Asio): rank 0 listens, the others connect; it offers
// all-gather and barrier, which the workspace set-up uses, and a check that every rank plans the same
// calls. Every wait is bounded by the timeout, and a peer that disappears is named in the error the
// others raise.
//
// Each connection starts with a mutual handshake over the job's shared token, which never travels: rank 0
// and the rank each send a fresh nonce and prove they know the token with an HMAC-SHA256 over both nonces
// and the job's parameters, rank 0 only after the rank has proved itself. A rank acts on nothing from a
// listener that has not proved itself (a process that took rank 0's port first cannot feed it a plan),
// and every frame after the handshake carries an HMAC under a key of that connection and direction, with a
// counter, so nothing can be injected, changed or replayed on the way either.
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
  std::string token;  ///< the job's shared secret: the key of every proof, never sent; required
                      ///< when world_size > 1
  std::chrono::milliseconds timeout{30000};
  std::string program_version;  ///< ranks running different builds are refused
};

/// Why the rendezvous failed: a peer never arrived, was refused, died, or disagreed.
class RendezvousError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Rendezvous {
 public:
  /// Blocks until every rank has joined and proved it knows the token (on rank 0), or until rank 0 has
  /// proved it (on the others). Throws RendezvousError when the timeout passes, when rank 0 refuses this
  /// rank, when the listener fails its proof, and when world_size > 1 but the token is empty.
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

}  // namespace ar
