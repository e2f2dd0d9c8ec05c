// One simulated run: W ranks sharing one workspace execute the call sequence, every CTA of every launch an
// independent unit of interleaving, under the timing a Chooser dictates. Search (sim/search.h) creates one per
// schedule; tests create them directly.
//
// Kernel boundaries (SPEC section 4.2): a rank starts launch k+1 only when every CTA of its launch k has
// finished and every store of launch k has been delivered; nothing orders launches of different ranks. The
// arrival counter is flag word 8 of each rank's own flags, incremented by red_release_gpu_add_u32 (our kernels:
// atom_relaxed_gpu_add_u32).
//
// A CTA whose next read cannot succeed (its pack looks empty and no store to it is in flight) is blocked until
// a store to that pack is issued or delivered. When no CTA is runnable and some rank has calls left, the run
// has deadlocked: the report says who waits on which slot and what it sees.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sim/checker.h"
#include "sim/config.h"
#include "sim/cta_program.h"
#include "sim/memory_model.h"
#include "sim/scheduler.h"
#include "sim/trace.h"

namespace ar::sim {

struct RunResult {
  bool finished = false;  ///< every rank completed every call
  bool pruned = false;    ///< the chooser stopped the run (exhaustive search: a state seen before)
  std::optional<Failure> failure;
  std::uint64_t steps = 0;   ///< operations executed by CTAs
  std::uint64_t events = 0;  ///< memory events: operations plus 8-byte units delivered
};

class Simulation {
 public:
  /// `calls` must come from make_call_contexts(config, ...); both must outlive the simulation.
  Simulation(const SimConfig& config, const std::vector<CallContext>& calls, Chooser& chooser,
             TraceRecorder* trace = nullptr, bool record_outputs = false);

  /// Runs until every rank is done, a failure, the chooser's stop, or `max_steps` steps.
  RunResult run(std::uint64_t max_steps);

  /// Hash of everything that decides the rest of the run (memory, ghosts, stores in flight, CTA registers,
  /// launches, the checker's memory). Two states with the same hash continue identically.
  std::uint64_t state_hash() const;

  const SimConfig& config() const { return config_; }
  const Checker& checker() const { return checker_; }
  std::uint64_t steps() const { return steps_; }
  std::uint64_t events() const { return events_; }
  /// The call rank `r` is in (calls().size() once it finished).
  int launch_of(int rank) const { return launch_[rank]; }
  const CtaState& cta(std::uint32_t id) const { return ctas_[id]; }
  int rank_of(std::uint32_t id) const { return static_cast<int>(id / cta_stride_); }

 private:
  friend class Ops;

  // The memory side of the operations (called by Ops).
  void issue_store(CtaState& cta, StoreOp op, int dest, std::uint32_t word, const std::uint32_t* values,
                   std::uint8_t mask_words, Ghost ghost);
  /// Lazy delivery before a read of words [word, word + count) of `rank`: the chooser decides, per pending
  /// unit overlapping them, whether the read sees it.
  void deliver_before_read(int rank, std::uint32_t word, int count);
  void deliver(std::uint32_t id);
  void flush_local(CtaState& cta);
  void drain_rank(int rank);
  void touch(int rank, std::uint32_t pack);
  bool in_lamport_range(std::uint32_t word, int count) const;
  bool in_flags_range(std::uint32_t word, int count) const;

  std::uint32_t global_id(const CtaState& c) const { return c.rank * cta_stride_ + c.index; }
  KernelEnv env_for(CtaState& cta, Ops& ops);
  void start_launch(int rank);
  /// Gives free slots of `rank` to waiting CTAs (all of them when residency is unlimited).
  void dispatch(int rank);
  void step(std::uint32_t id);
  bool would_block(std::uint32_t id);
  void block(std::uint32_t id, std::uint64_t key);
  void make_runnable(std::uint32_t id);
  void remove_runnable(std::uint32_t id);
  void settle();
  Failure deadlock_report();
  void trace(TraceEvent::Kind kind, int rank, int cta, int call, std::string name, std::string detail, int dest = -1,
             std::int64_t word = -1, int words = 0, Ghost ghost = {});

  const SimConfig& config_;
  const std::vector<CallContext>& calls_;
  Chooser& chooser_;
  TraceRecorder* trace_;
  MemorySystem memory_;
  Checker checker_;
  std::uint32_t cta_stride_ = 1;
  std::vector<CtaState> ctas_;  ///< global id = rank * cta_stride_ + index
  std::vector<int> launch_;
  std::vector<std::uint32_t> ctas_left_;
  std::vector<std::uint32_t> resident_;                   ///< per rank: CTAs holding a slot
  std::vector<std::vector<std::uint32_t>> undispatched_;  ///< per rank: global ids waiting for a slot, grid order
  int ranks_finished_ = 0;
  std::vector<std::uint32_t> runnable_;
  std::vector<std::int32_t> runnable_pos_;
  std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> waiters_;
  /// Units in flight per issuing rank and per CTA (slot id, seq); stale entries are skipped.
  std::vector<std::vector<std::pair<std::uint32_t, std::uint64_t>>> rank_pending_;
  std::vector<std::vector<std::pair<std::uint32_t, std::uint64_t>>> cta_pending_;
  std::vector<std::uint32_t> scratch_;
  std::uint64_t steps_ = 0;
  std::uint64_t events_ = 0;
};

}  // namespace ar::sim
