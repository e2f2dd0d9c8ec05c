// The simulator's judge: what counts as a protocol failure, and the diagnosis that names it. Simulation and the
// kernel programs report events to it (flags read, a poll accepted, an output element, a unit delivered); the
// first failure ends the run.
//
// Checked on every run:
// - wrong-bits: every rank's every output element equals reference_all_reduce bit for bit (which also makes
//   all ranks agree);
// - stale-read: a poll accepts a pack only if each of its words is data of this call from the rank that owns
//   the slot ("no slot read as full before it was written");
// - overwrite-uncleared: data lands only on words that are empty (cleared or initial);
// - clear-unread: a clear never erases data of its own or a later call (data somebody may still read);
// - overwrite-unread: the direct path's data lands only on words whose last data its reader has taken (no
//   clears there: the flags and the order of the calls must keep writers off unread rows);
// - flags-mismatch: every CTA of every rank reads the same flag words 0-7 in the same call (our kernels: and
//   flag word 12, the call counter, equals the number of calls the rank has completed);
// - out-of-bounds: no Lamport store outside the three buffers;
// - deadlock: some CTA can never run again (reported by Simulation with what each blocked CTA waits on);
// - step-budget: a run that neither finishes nor deadlocks within its step budget.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "reference/tensor.h"
#include "sim/config.h"
#include "sim/memory_model.h"

namespace ar::sim {

enum class FailureKind : std::uint8_t {
  kWrongBits,
  kDeadlock,
  kStaleRead,
  kOverwriteUncleared,
  kClearUnread,
  kFlagsMismatch,
  kOutOfBounds,
  kStepBudget,
  kOverwriteUnread,
};
inline constexpr std::array<std::string_view, 9> kFailureKindNames{
    "wrong-bits",     "deadlock",      "stale-read",  "overwrite-uncleared", "clear-unread",
    "flags-mismatch", "out-of-bounds", "step-budget", "overwrite-unread"};
constexpr std::string_view failure_kind_name(FailureKind k) { return kFailureKindNames[static_cast<std::size_t>(k)]; }

struct Failure {
  FailureKind kind = FailureKind::kWrongBits;
  int rank = -1;
  int cta = -1;
  int call = -1;
  std::int64_t element = -1;  ///< flat index into the call's [N, D] output (wrong-bits)
  std::int64_t token = -1;
  std::int64_t column = -1;
  std::uint32_t got = 0;       ///< wrong-bits: the rank's output bits
  std::uint32_t expected = 0;  ///< wrong-bits: the reference's bits
  std::uint64_t step = 0;      ///< the step of the run at which it was found
  std::string message;         ///< the full diagnosis
};

/// A pack a poll accepted, with where it is and who should have written it.
struct AcceptedPack {
  int rank = 0;
  int cta = 0;
  int call = 0;
  int writer = 0;  ///< rank whose data the slot must hold
  std::uint32_t word = 0;
  const char* slot = "";
  std::string slot_detail;
  std::array<std::uint32_t, 4> words{};
  std::array<Ghost, 4> ghosts{};
  bool after_flag = false;  ///< the direct path: read once after the flag that publishes it, not polled
};

class Checker {
 public:
  Checker(const SimConfig& config, bool record_outputs);

  bool failed() const { return failure_.has_value(); }
  const Failure& failure() const { return *failure_; }
  /// Keeps the first failure; later ones are ignored.
  void fail(Failure f);

  void set_step(std::uint64_t step) { step_ = step; }

  /// A CTA finished reading flag words 0-7 at the start of `call`.
  void on_flags_read(int rank, int cta, int call, const std::array<std::uint32_t, 8>& words);
  /// Our kernels: a block read flag word 12 (calls completed) at the start of `call`; it must equal `call`.
  void on_call_counter_read(int rank, int cta, int call, std::uint32_t value);
  /// A poll accepted a pack as full (or the direct path read one after its flag).
  void on_pack_accepted(const AcceptedPack& p);
  /// A rank produced output element `element` of `call`; `expected` is the reference tensor. Returns false
  /// (and records a wrong-bits failure) when the bits differ.
  bool on_output(int rank, int cta, int call, std::int64_t element, std::uint32_t got, const HostTensor& expected,
                 const char* how);
  /// Appends a sentence to the failure just recorded (how a wrong value was made).
  void add_detail(const std::string& text);
  /// A unit is about to be written over words whose ghosts are `before` (only Lamport words are checked);
  /// `dest_call` is the call its destination rank is in, `dest_oldest_call` the call of the oldest grid still
  /// running there (dest_call unless a grid outlived the one after it).
  /// Words from `direct_word` on are the direct path's region, checked for overwrite-unread.
  void on_delivery(const PendingUnit& u, const std::array<Ghost, 2>& before, std::uint32_t lamport_words,
                   std::uint32_t direct_word, int dest_call, int dest_oldest_call);
  /// The direct path: `rank` took the 16-byte pack at `word` (data of `call`) from its region.
  void on_direct_read(int rank, std::uint32_t word, int call);
  /// An access aimed outside where it may go; `what` says what it was (a clear, data of a call, a poll).
  /// `bounds` says where it had to land; empty: the three Lamport buffers.
  void on_out_of_bounds(int rank, int cta, int call, std::string_view op, std::string_view what, int dest,
                        std::int64_t byte, std::string_view bounds = {});

  /// The outputs recorded so far: [call][rank] tensors of [N, D] (empty unless record_outputs).
  const std::vector<std::vector<HostTensor>>& outputs() const { return outputs_; }

  /// Hash of what the checker remembers that can change a later verdict (the flags seen per call).
  std::uint64_t hash() const;

 private:
  struct FlagsSeen {
    std::array<std::uint32_t, 8> words{};
    int rank = 0;
    int cta = 0;
  };
  const SimConfig& config_;
  std::optional<Failure> failure_;
  std::uint64_t step_ = 0;
  std::vector<std::optional<FlagsSeen>> flags_seen_;       ///< per call: the first CTA to read them
  std::vector<std::optional<FlagsSeen>> rank_flags_seen_;  ///< per call and rank (call * W + rank)
  std::vector<std::vector<HostTensor>> outputs_;
  /// The direct path: per (rank, word) of its region, the call whose data the reader last took there.
  std::unordered_map<std::uint64_t, std::uint16_t> direct_taken_;
};

}  // namespace ar::sim
