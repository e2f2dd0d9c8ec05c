// One simulated run: W ranks sharing one workspace execute the call sequence, every CTA of every launch an
// independent unit of interleaving, under the timing a Chooser dictates. Search (sim/search.h) creates one per
// schedule; tests create them directly.
//
// Kernel boundaries (SPEC sections 4.2 and 6): every rank launches the same grids in stream order, one per call
// (two for FlashInfer's fused TWOSHOT: the all-reduce kernel, then rmsNormLamport); nothing orders launches of
// different ranks. A grid completes when every CTA of it has finished, and then every store it issued has been
// delivered. PDL (programmatic dependent launch) decides when the next grid starts:
// - a kernel that waits for the previous grid at its top (griddepcontrol.wait before anything else: every
//   all-reduce kernel) does nothing observable before that grid completes, so it is launched only then;
// - rmsNormLamport waits late (griddepcontrol.wait just before its flag update), so it is launched once every CTA
//   of the previous grid has triggered (griddepcontrol.launch_dependents) or exited, and runs alongside it; its
//   kGridSync phase blocks until that grid has completed.
// griddepcontrol.wait waits for the immediately preceding grid only: a grid that never executes it may complete
// before its predecessor, and the next grid may then start while the predecessor still runs (the
// norm-no-grid-sync mutation). A rank keeps up to kMaxGridSlots grids alive; a later grid waits for a slot.
// The arrival counter is flag word 8 of each rank's own flags, incremented by red_release_gpu_add_u32 (our
// kernels: atom_relaxed_gpu_add_u32).
//
// A CTA whose next read cannot succeed (its pack looks empty and no store to it is in flight) is blocked until
// a store to that pack is issued or delivered; one at a barrier that is not memory (a cluster barrier, or
// griddepcontrol.wait) until the CTAs or the grid it waits for get there. When no CTA is runnable and some rank
// has calls left, the run has deadlocked: the report says who waits on which slot and what it sees.
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
  /// The call rank `r` is in: the call of its latest grid (calls().size() once it finished).
  int launch_of(int rank) const { return launch_[rank]; }
  const CtaState& cta(std::uint32_t id) const { return ctas_[id]; }
  int rank_of(std::uint32_t id) const { return static_cast<int>(id / (cta_stride_ * grid_slots_)); }

  /// The most grids a rank keeps alive at once.
  static constexpr int kMaxGridSlots = 4;

 private:
  friend class Ops;

  /// One launched grid of a rank.
  struct GridRun {
    int seq = -1;  ///< position in grid_order_
    bool alive = false;
    std::uint32_t ctas_left = 0;
    std::uint32_t untriggered = 0;  ///< CTAs neither past griddepcontrol.launch_dependents nor exited
  };
  /// A grid of the stream every rank launches: grid `grid` of call `call`.
  struct GridRef {
    int call = 0;
    int grid = 0;
  };

  // The memory side of the operations (called by Ops).
  void issue_store(CtaState& cta, StoreOp op, int dest, std::uint32_t word, const std::uint32_t* values,
                   std::uint8_t mask_words, Ghost ghost);
  /// Lazy delivery before a read of words [word, word + count) of `rank`: the chooser decides, per pending
  /// unit overlapping them, whether the read sees it.
  void deliver_before_read(int rank, std::uint32_t word, int count);
  void deliver(std::uint32_t id);
  /// A release: the CTA's stores still in flight are delivered, those to its own rank only (GPU scope) or those
  /// to every rank (system scope).
  void flush(CtaState& cta, bool own_rank_only);
  /// barrier.cluster.wait: the other blocks of `leader`'s cluster arrived with release semantics, so their
  /// stores to their own rank are published with the leader's (cumulative) release.
  void flush_cluster(CtaState& leader);
  /// The end of a grid: every store its CTAs issued is delivered.
  void drain_grid(int rank, int slot);
  void touch(int rank, std::uint32_t pack);
  /// Makes the CTAs blocked on `key` runnable again.
  void wake(std::uint64_t key);
  // Keys of the waits that are not on memory (a memory wait's key is rank << 32 | pack).
  static std::uint64_t grid_key(int rank) { return (1ull << 62) | static_cast<std::uint64_t>(rank); }
  static std::uint64_t cluster_key(int rank, int slot, std::uint32_t leader) {
    return (1ull << 63) | (static_cast<std::uint64_t>(rank) << 40) | (static_cast<std::uint64_t>(slot) << 32) | leader;
  }
  bool in_lamport_range(std::uint32_t word, int count) const;
  bool in_flags_range(std::uint32_t word, int count) const;
  bool in_direct_range(std::uint32_t word, int count) const;
  /// Whether [word, word + count) lies in `call`'s rows (or, `flags`, its flags) of the direct region.
  bool in_direct_part(const CallContext& call, std::uint32_t word, int count, bool flags) const;
  /// Where a store of `cta` may land, or nullopt when [word, word + count) is there: a direct call's data in its
  /// rows, its flags (st_release_sys_u32, or a plain st_u32 aimed at the region) in its flags, its flag advance
  /// in the flags block; every other call's data and every clear in the Lamport buffers (the empty string).
  std::optional<std::string> store_out_of_bounds(const CtaState& cta, StoreOp op, std::uint32_t word, int count,
                                                 WriteKind kind) const;
  /// The bounds of `call`'s rows or flags in words, as a failure names them.
  std::string direct_bounds(const CallContext& call, bool flags) const;

  std::uint32_t cta_id(int rank, int slot, std::uint32_t index) const {
    return (static_cast<std::uint32_t>(rank) * grid_slots_ + static_cast<std::uint32_t>(slot)) * cta_stride_ + index;
  }
  std::uint32_t global_id(const CtaState& c) const { return cta_id(c.rank, c.slot, c.index); }
  int slot_of(std::uint32_t id) const { return static_cast<int>((id / cta_stride_) % grid_slots_); }
  GridRun& grid_run(int rank, int slot) { return grid_runs_[static_cast<std::size_t>(rank * grid_slots_ + slot)]; }
  const GridRun& grid_run(int rank, int slot) const {
    return grid_runs_[static_cast<std::size_t>(rank * grid_slots_ + slot)];
  }
  const GridShape& grid_of(const CtaState& c) const;
  /// The CTA's lane in traces: its index, after the all-reduce kernel's CTAs for rmsNormLamport's.
  int trace_cta(const CtaState& c) const;
  KernelEnv env_for(CtaState& cta, Ops& ops);

  // Launches (sim/simulation_launches.cpp).
  /// Launches every grid of `rank` whose turn has come (PDL: see the file comment); finishes the rank when it
  /// has none left.
  void try_launch(int rank);
  void launch_grid(int rank, int seq);
  /// Gives free slots of `rank` to waiting CTAs (all of them when residency is unlimited).
  void dispatch(int rank);
  /// A CTA reached kDone: its slot, its grid's counts, and the grid's end when it was the last.
  void finish_cta(std::uint32_t id);
  void finish_grid(int rank, int slot);
  /// The call of the oldest grid still running on `rank` (launch_of(rank) when none is).
  int oldest_running_call(int rank) const;
  /// Whether the grid launched before `c`'s on its rank is still running (griddepcontrol.wait blocks).
  bool previous_grid_alive(const CtaState& c) const;
  /// Whether every other block of cluster block 0 `leader`'s cluster has arrived on the cluster barrier.
  bool cluster_ready(const CtaState& leader, const KernelEnv& env) const;

  void step(std::uint32_t id);
  bool would_block(std::uint32_t id);
  void block(std::uint32_t id, std::uint64_t key);
  void make_runnable(std::uint32_t id);
  void remove_runnable(std::uint32_t id);
  void settle();
  Failure deadlock_report();
  std::uint64_t hash_cta(std::uint64_t h, const CtaState& c) const;
  void trace(TraceEvent::Kind kind, int rank, int cta, int call, std::string name, std::string detail, int dest = -1,
             std::int64_t word = -1, int words = 0, Ghost ghost = {});

  const SimConfig& config_;
  const std::vector<CallContext>& calls_;
  Chooser& chooser_;
  TraceRecorder* trace_;
  MemorySystem memory_;
  Checker checker_;
  std::uint32_t cta_stride_ = 1;
  std::uint32_t grid_slots_ = 1;  ///< grids alive at once per rank: 1 unless a call launches two grids
  std::vector<CtaState> ctas_;    ///< global id = (rank * grid_slots_ + slot) * cta_stride_ + index
  std::vector<GridRef> grid_order_;
  std::vector<int> next_grid_;      ///< per rank: the next grid of grid_order_ to launch
  std::vector<GridRun> grid_runs_;  ///< [rank * grid_slots_ + slot]; grid seq runs in slot seq % grid_slots_
  std::vector<int> launch_;
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
