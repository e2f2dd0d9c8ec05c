// A simulated CTA of either protocol's kernels: its registers and program position (CtaState), the phases a
// program is made of (Phase), what a program needs besides its own state (KernelEnv), and the entry points
// Simulation drives. step_cta runs one CTA up to and including its next operation (sim/ops.h), so the
// scheduler can interleave every operation of every CTA of every rank; next_wait and describe_wait say what a
// blocked CTA waits for. Each dispatches on the protocol: Protocol::kFlashInfer runs FlashInfer's kernels as
// SPEC describes them (sim/flashinfer_kernels.cpp, and the fused calls' programs in
// sim/flashinfer_fused_kernels.cpp), Protocol::kOurs our kernels (sim/our_kernels.cpp); what the two share is in
// sim/detail/kernel_support.h.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "reference/workspace.h"
#include "sim/call_context.h"
#include "sim/config.h"
#include "sim/ops.h"

namespace ar::sim {

class Checker;

/// Program counter values; each protocol runs a fixed list of them per strategy (its kOneShotProgram and
/// kTwoShotProgram). Step numbers are FlashInfer's, as sim/flashinfer_kernels.cpp numbers its phases.
enum class Phase : std::uint8_t {
  kReadFlagsLow,    ///< ld_v4 of flag words 0-3
  kReadFlagsHigh,   ///< ld_v4 of flag words 4-7
  kStore,           ///< ONESHOT 2
  kScatter,         ///< TWOSHOT 2
  kClearDirty,      ///< ONESHOT 4: every dirty stage
  kClearStage0,     ///< TWOSHOT 3
  kReduce,          ///< TWOSHOT 4: poll SCATTER, fold, broadcast
  kClearStage1,     ///< TWOSHOT 5
  kArrive,          ///< bar_cta_sync + red_release_gpu_add_u32
  kPoll,            ///< ONESHOT 5
  kGather,          ///< TWOSHOT 7
  kWaitArrivals,    ///< CTA 0: spin on flag word 8
  kStoreFlagsLow,   ///< CTA 0: st_v4 of the new words 0-3
  kStoreFlagsHigh,  ///< CTA 0: st_v4 of the new words 4-7
  kResetCounter,    ///< CTA 0: st_u32 word 8 = 0
  // Our kernels only (sim/our_kernels.cpp); they reuse kReadFlags*, kStore, kScatter, kPoll, kReduce, kGather.
  kReadCallWord,      ///< ld_u32 of flag word 12
  kArriveRelaxed,     ///< bar_cta_sync + atom_relaxed_gpu_add_u32 (or the one-block shortcut)
  kAdvanceAtArrival,  ///< a one-block rank: the flag stores right away
  kClearShare,        ///< this round's share of every dirty stage
  kNextRound,         ///< back to the store phase while rounds remain
  kAdvanceAtEnd,      ///< the last block to arrive: the flag stores after its work
  // FlashInfer's fused TWOSHOT only (sim/flashinfer_fused_kernels.cpp): the PDL pair.
  kTrigger,   ///< the all-reduce kernel: griddepcontrol.launch_dependents, right after the scatter
  kGridSync,  ///< rmsNormLamport: griddepcontrol.wait, just before its flag update
  // Our kernels' direct path of large TWOSHOT calls only (sim/direct_kernels.cpp).
  kDirectScatter,           ///< st_v4 of my rows into their owners' SCATTER rows
  kDirectPublishScatter,    ///< bar_cta_sync, then st_release_sys_u32 of this block's flag at every owner
  kDirectReduce,            ///< wait for every source's flag, read, fold, st_v4 the sums to every other rank
  kDirectPublishBroadcast,  ///< bar_cta_sync, then st_release_sys_u32 of this block's flag at every other rank
  kDirectGather,            ///< wait for every owner's flag, read the rows the other ranks own
  kDone,
};
std::string_view phase_name(Phase p);

enum class CtaStatus : std::uint8_t { kUndispatched, kRunnable, kBlocked, kDone };

/// One CTA's registers and program position. A value type: the exhaustive search hashes it.
struct CtaState {
  std::uint16_t rank = 0;
  std::uint16_t call = 0;              ///< the call whose grid it runs
  Kernel kernel = Kernel::kAllReduce;  ///< which of the call's kernels
  std::uint8_t slot = 0;               ///< the grid slot of its rank it occupies (Simulation)
  std::uint32_t index = 0;             ///< CTA index in the launch's grid
  std::uint32_t token = 0;
  std::uint32_t first_pack = 0;  ///< lane l handles pack first_pack + l of the token
  std::uint8_t pc = 0;           ///< index into the strategy's program
  std::uint32_t lane = 0;        ///< current lane of a per-lane loop
  std::uint32_t i = 0;           ///< inner counter: destination, source, or clear index
  std::uint32_t pass_begin = 0;  ///< first source of the current poll pass (ours: of the poll group)
  std::uint8_t clear_stage = 0;  ///< ONESHOT: which dirty stage kClearDirty is clearing
  bool broadcasting = false;     ///< TWOSHOT reduce: the sum is computed, its stores are going out
  std::uint8_t read_mask = 0;    ///< words of the current ld_volatile_v4 read so far (torn reads)
  bool triggered = false;        ///< FlashInfer's fused all-reduce kernel: past griddepcontrol.launch_dependents
  Pack read_words{};
  std::array<Ghost, 4> read_ghosts{};
  std::array<std::uint32_t, 8> flags{};  ///< flag words 0-7 as this CTA read them
  std::vector<std::uint32_t> polled;     ///< [W][4] words of the current poll pass (or the sum to broadcast)
  std::vector<Ghost> polled_ghosts;      ///< their provenance, checked when the pass is accepted
  CtaStatus status = CtaStatus::kRunnable;
  std::uint64_t wait_key = 0;  ///< (rank, pack) a blocked CTA waits on
  // Our kernels' registers (Protocol::kOurs); zero in FlashInfer's programs.
  std::uint32_t round = 0;  ///< the current round
  std::uint32_t item = 0;   ///< iteration of the current grid-stride loop
  /// Ours: a poll group: 0 = its first loads, 1 = the retries of its empty slots; the direct path's flag waits:
  /// 0 = waiting, 2 = the flag taken and its reset next, 1 = past the wait. FlashInfer's cluster arrival: 1 =
  /// cluster block 0 has arrived on the cluster barrier and waits for the other blocks.
  std::uint8_t sub = 0;
  std::uint8_t advance = 0;     ///< 1: advances the flags at arrival, 2: after its work
  std::uint32_t call_word = 0;  ///< flag word 12 as read
  std::uint8_t peer = 0;        ///< the direct path: the rank a per-rank loop is at

  /// The phase at `pc` of the program `env` runs.
  Phase phase(const struct KernelEnv& env) const;
  std::uint32_t current_buffer() const { return flags[0]; }
  std::uint32_t dirty_buffer() const { return flags[1]; }
  std::uint32_t buffer_bytes() const { return flags[2]; }
  std::uint32_t dirty_stages() const { return flags[3]; }
};

/// What a kernel program needs besides its own state.
struct KernelEnv {
  const SimConfig& config;
  const CallContext& call;
  const GridShape& grid;  ///< the grid of the call the CTA belongs to
  Ops& ops;
  Checker& checker;
  std::uint32_t flags_word;  ///< word index of flag word 0 in every rank's memory
};

/// Runs `cta` up to and including its next memory operation (or to kDone).
void step_cta(CtaState& cta, KernelEnv& env);

/// What `cta` would wait for next, when its next operation can wait and no read is half done: a poll of a
/// 16-byte pack, the spin on the arrival counter, or (FlashInfer's fused calls) a barrier that is not memory:
/// the cluster barrier its cluster block 0 waits at, or griddepcontrol.wait for the previous grid of its rank.
struct WaitTarget {
  /// kFlag: the direct path's wait for a flag (its first word) to hold this call's and round's value.
  enum class Kind : std::uint8_t { kPoll, kCounter, kClusterBarrier, kGridDependency, kFlag };
  Kind kind = Kind::kPoll;
  Address pack;  ///< kPoll, kCounter, kFlag: first word of the 16-byte pack (word 8 for the counter)
  std::uint32_t counter_target = 0;  ///< kCounter: the count to reach; kFlag: the value
  bool on_memory() const { return kind == Kind::kPoll || kind == Kind::kCounter || kind == Kind::kFlag; }
};
std::optional<WaitTarget> next_wait(const CtaState& cta, const KernelEnv& env);

/// The kernel's emptiness test of a polled pack ("dirty" in FlashInfer's words), with the mutation's change.
bool looks_empty(const Pack& words, Mutation m);
/// The first word that makes looks_empty true, or -1.
int first_empty_word(const Pack& words, Mutation m);

/// Whether a memory `target` would fail on these words (the pack for a poll, word 0 for the counter).
bool wait_fails(const WaitTarget& target, const Pack& words, Mutation m);

/// Whether `member` (a block of a cluster launch) has arrived on the cluster barrier of this launch: its cluster
/// block 0 may go on when every other block has (FlashInfer's cluster arrival, SPEC 4.2).
bool past_cluster_arrival(const CtaState& member, const KernelEnv& env);

/// Who a CTA is, for reports: "r1 CTA 3 (call 2 twoshot, token 1)", naming the kernel in a fused call.
std::string describe_cta(const CtaState& cta, const KernelEnv& env);

/// What a blocked CTA waits for, in words, for deadlock reports: the slot, its location and the words seen.
std::string describe_wait(const CtaState& cta, const KernelEnv& env, const MemorySystem& memory);

}  // namespace ar::sim
