// FlashInfer's per-CTA programs of the ONESHOT and TWOSHOT kernels (SPEC sections 4 and 5; Protocol::kFlashInfer)
// as resumable state machines: each step runs one CTA up to and including its next memory operation
// (sim/ops.h). sim/cta_program.cpp dispatches to them; our kernels' programs are in sim/our_kernels.cpp. The
// phases are numbered as in docs/kernels.md's algorithms. The fused calls' programs are made of the same
// phases (sim/flashinfer_fused_kernels.cpp describes them); this file steps those too.
//
// (With Arrival::kAfterFlags, the arrival our kernels were first designed with, every CTA arrives right after
// step 1 instead, and CTA 0 issues fence_acq_rel_gpu after its counter spin.)
//
// ONESHOT, CTA (token t, packs of lanes), rank r:
//   1. read the flags (two ld_v4)         4. clear every dirty stage (grid-stride st_v4 of the sentinel)
//   2. store the input pack into slot     5. poll the other ranks' slots [t][src] until one pass is clean,
//      [t][r] of every rank                  fold with reduce_element, compare with the reference
//   3. arrive (bar_cta_sync, red)         6. CTA 0: wait for every arrival, rotate the flags, reset the counter
// TWOSHOT, CTA (token t, lanes), rank r:
//   1. read the flags                     5. clear dirty stage 1
//   2. scatter the pack to owner t % W    6. arrive
//   3. clear dirty stage 0                7. poll BROADCAST[t] until clean, copy it out
//   4. owner: poll SCATTER for all W      8. CTA 0: wait, rotate the flags, reset the counter
//      sources, fold, broadcast the sum
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <span>
#include <stdexcept>

#include "sim/detail/kernel_support.h"

namespace ar::sim::detail {
namespace {

// The programs, one per strategy and arrival point. Every program has 11 (ONESHOT) or 13 (TWOSHOT) phases
// and ends with kDone.
constexpr std::array kOneShotProgram{Phase::kReadFlagsLow, Phase::kReadFlagsHigh, Phase::kStore,
                                     Phase::kArrive,       Phase::kClearDirty,    Phase::kPoll,
                                     Phase::kWaitArrivals, Phase::kStoreFlagsLow, Phase::kStoreFlagsHigh,
                                     Phase::kResetCounter, Phase::kDone};
constexpr std::array kTwoShotProgram{
    Phase::kReadFlagsLow,   Phase::kReadFlagsHigh, Phase::kScatter, Phase::kClearStage0,  Phase::kReduce,
    Phase::kClearStage1,    Phase::kArrive,        Phase::kGather,  Phase::kWaitArrivals, Phase::kStoreFlagsLow,
    Phase::kStoreFlagsHigh, Phase::kResetCounter,  Phase::kDone};
constexpr std::array kOneShotEarlyProgram{Phase::kReadFlagsLow, Phase::kReadFlagsHigh, Phase::kArrive,
                                          Phase::kStore,        Phase::kClearDirty,    Phase::kPoll,
                                          Phase::kWaitArrivals, Phase::kStoreFlagsLow, Phase::kStoreFlagsHigh,
                                          Phase::kResetCounter, Phase::kDone};
constexpr std::array kTwoShotEarlyProgram{
    Phase::kReadFlagsLow,   Phase::kReadFlagsHigh, Phase::kArrive, Phase::kScatter,      Phase::kClearStage0,
    Phase::kReduce,         Phase::kClearStage1,   Phase::kGather, Phase::kWaitArrivals, Phase::kStoreFlagsLow,
    Phase::kStoreFlagsHigh, Phase::kResetCounter,  Phase::kDone};

bool lane_valid(const CtaState& c, const KernelEnv& env) {
  return c.lane < static_cast<std::uint32_t>(env.grid.lanes) && c.first_pack + c.lane < env.call.packs_per_token;
}
std::uint32_t pack_of(const CtaState& c) { return c.first_pack + c.lane; }
/// The pack the CTA's current lane handles: its token, pack first_pack + lane.
Item here(const CtaState& c) { return {c.token, pack_of(c)}; }

// ---- Program position ------------------------------------------------------------------------------------

/// First source of the poll of a pack: ONESHOT W <= 8 skips its own rank (its value is in registers).
std::uint32_t skip_own(const CtaState& c, const KernelEnv& env, std::uint32_t src) {
  if (env.call.own_from_registers && src == c.rank) ++src;
  return src;
}

/// The clear loop's stage geometry: which stage of which layout, and how many bytes.
struct ClearPlan {
  bool active = false;
  int stage = 0;
  int layout_stages = 1;
  std::uint32_t bytes = 0;
};

ClearPlan clear_plan(const CtaState& c, const KernelEnv& env, Phase phase) {
  ClearPlan p;
  if (env.config.mutation == Mutation::kNoClear) return p;
  const int dirty_stages = static_cast<int>(c.dirty_stages());
  if (phase == Phase::kClearDirty)
    p.stage = c.clear_stage;
  else
    p.stage = phase == Phase::kClearStage0 ? 0 : 1;
  if (p.stage >= dirty_stages) return p;
  p.active = true;
  // The recorded (dirty) layout splits the old buffer into the previous launch's stage count. The mutation
  // uses this launch's own layout instead.
  p.layout_stages =
      env.config.mutation == Mutation::kClearCurrentLayout ? stage_count(env.call.strategy) : dirty_stages;
  p.bytes = c.flags[static_cast<std::size_t>(4 + p.stage)];
  return p;
}

/// Clear step `i` of this CTA: the pack (within the stage) it writes and the step after it, or nothing once the
/// loop is over. Mirrors the kernels' 1-D grid-stride loop: thread g = cta * threads + lane, stride = all
/// threads of the grid; step i is round i / threads of lane i % threads.
struct ClearStep {
  std::int64_t pack = 0;
  std::uint32_t next = 0;
};
std::optional<ClearStep> clear_step(const CtaState& c, const KernelEnv& env, std::uint32_t i, std::int64_t packs) {
  const std::int64_t ppc = env.grid.lanes;
  const std::int64_t stride = env.grid.ctas * ppc;
  for (;; ++i) {
    const std::int64_t base = static_cast<std::int64_t>(i / ppc) * stride + static_cast<std::int64_t>(c.index) * ppc;
    if (base >= packs) return std::nullopt;
    const std::int64_t g = base + static_cast<std::int64_t>(i % ppc);
    if (g < packs) return ClearStep{g, i + 1};
  }
}

// ---- Poll passes ---------------------------------------------------------------------------------------------

/// After a clean read of source `src`: keep it, and when the pass's last source is in, accept the pass.
/// Returns true when every source of the pack has been accepted.
bool keep_polled(CtaState& c, const KernelEnv& env, std::uint32_t src,
                 std::uint32_t (*slot_of)(const CtaState&, const KernelEnv&, Item, std::uint32_t),
                 const char* slot_name) {
  const auto w = static_cast<std::uint32_t>(world(env));
  std::copy(c.read_words.begin(), c.read_words.end(), c.polled.begin() + src * 4);
  std::copy(c.read_ghosts.begin(), c.read_ghosts.end(), c.polled_ghosts.begin() + src * 4);
  const std::uint32_t chunk = static_cast<std::uint32_t>(env.call.poll_chunk);
  const std::uint32_t pass_end = std::min(w, (c.pass_begin / chunk + 1) * chunk);
  c.i = skip_own(c, env, src + 1);
  if (c.i < pass_end) return false;
  // The whole pass was clean: these are the values the kernel folds. Each must be this call's data.
  for (std::uint32_t s = c.pass_begin; s < pass_end; ++s) {
    if (env.call.own_from_registers && s == c.rank) continue;
    accept_polled(c, env, here(c), s, slot_of(c, env, here(c), s), slot_name);
  }
  c.pass_begin = pass_end;
  return pass_end >= w;
}

/// A slot of the pass looked empty: the kernel reloads the whole pass (chunk) and folds only a clean one.
void restart_pass(CtaState& c, const KernelEnv& env) {
  const std::uint32_t chunk = static_cast<std::uint32_t>(env.call.poll_chunk);
  const std::uint32_t end = std::min(static_cast<std::uint32_t>(world(env)), (c.pass_begin / chunk + 1) * chunk);
  std::fill(c.polled.begin() + c.pass_begin * 4, c.polled.begin() + end * 4, 0u);
  std::fill(c.polled_ghosts.begin() + c.pass_begin * 4, c.polled_ghosts.begin() + end * 4, Ghost{});
  c.i = skip_own(c, env, c.pass_begin);
}

/// ONESHOT 2: one store of the sanitised pack into slot [t][r]: of rank r+1+i (unicast, self last), or of every
/// rank at once (multicast).
void step_store(CtaState& c, KernelEnv& env) {
  const int w = world(env);
  const Pack value = input_pack(env, c.rank, c.token, pack_of(c));
  const std::uint32_t word = oneshot_slot(c, env, here(c), c.rank);
  if (env.config.writer == Writer::kMulticast) {
    env.ops.multimem_st_v4(word, value, data_ghost(c, env));
    ++c.lane;
    return;
  }
  const int dest = (c.rank + 1 + static_cast<int>(c.i)) % w;
  env.ops.st_v4({dest, word}, value, data_ghost(c, env));
  if (++c.i == static_cast<std::uint32_t>(w)) {
    c.i = 0;
    ++c.lane;
  }
}

/// ONESHOT 5: one load of the pass; the fold and its check once a whole pass was clean.
void step_poll(CtaState& c, KernelEnv& env) {
  const std::uint32_t word = oneshot_slot(c, env, here(c), c.i);
  if (!env.ops.ld_volatile_v4({c.rank, word}, c.read_words, c.read_ghosts)) return;
  if (looks_empty(c.read_words, env.config.mutation)) {
    restart_pass(c, env);
    return;
  }
  if (!keep_polled(c, env, c.i, oneshot_slot, "ONESHOT slot")) return;
  const Pack own = input_pack(env, c.rank, c.token, pack_of(c));
  fold_and_check(c, env, here(c), env.call.own_from_registers ? &own : nullptr, "ONESHOT fold of the polled slots");
  ++c.lane;
  c.i = 0;
  c.pass_begin = 0;
}

/// TWOSHOT 4: one load of the owner's SCATTER poll (the fold once a pass was clean), or one store of the sum
/// into BROADCAST[t]: of rank r+1+i (unicast, self last), or of every rank at once (multicast).
void step_reduce(CtaState& c, KernelEnv& env) {
  const int w = world(env);
  if (!c.broadcasting) {
    const std::uint32_t word = scatter_slot(c, env, here(c), c.i);
    if (!env.ops.ld_volatile_v4({c.rank, word}, c.read_words, c.read_ghosts)) return;
    if (looks_empty(c.read_words, env.config.mutation)) {
      restart_pass(c, env);
      return;
    }
    if (keep_polled(c, env, c.i, scatter_slot, "TWOSHOT SCATTER slot")) {
      std::vector<std::uint32_t> operands;
      const Pack sum = fold_pack(c, env, nullptr, c.rank, operands);
      clear_registers(c);
      std::copy(sum.begin(), sum.end(), c.read_words.begin());  // the sum waits in registers
      c.broadcasting = true;
      c.i = 0;
    }
    return;
  }
  const std::uint32_t word = broadcast_slot(c, env, here(c));
  if (env.config.writer == Writer::kMulticast) {
    env.ops.multimem_st_v4(word, c.read_words, data_ghost(c, env));
    c.i = static_cast<std::uint32_t>(w);
  } else {
    const int dest = (c.rank + 1 + static_cast<int>(c.i)) % w;
    env.ops.st_v4({dest, word}, c.read_words, data_ghost(c, env));
    ++c.i;
  }
  if (c.i == static_cast<std::uint32_t>(w)) {
    c.broadcasting = false;
    ++c.lane;
    c.i = 0;
    c.pass_begin = 0;
  }
}

}  // namespace

std::span<const Phase> flashinfer_program(const KernelEnv& env) {
  if (const std::span<const Phase> fused = flashinfer_fused_program(env); !fused.empty()) return fused;
  const bool early = env.config.arrival == Arrival::kAfterFlags;
  if (env.call.strategy == Strategy::kOneShot)
    return early ? std::span<const Phase>(kOneShotEarlyProgram) : kOneShotProgram;
  return early ? std::span<const Phase>(kTwoShotEarlyProgram) : kTwoShotProgram;
}

void normalize_flashinfer(CtaState& c, const KernelEnv& env) {
  for (;;) {
    const Phase phase = c.phase(env);
    switch (phase) {
      case Phase::kReadFlagsLow:
      case Phase::kReadFlagsHigh:
      case Phase::kArrive:
      case Phase::kStoreFlagsLow:
      case Phase::kStoreFlagsHigh:
      case Phase::kResetCounter:
      case Phase::kTrigger:
      case Phase::kDone:
      // Our kernels' phases (never in FlashInfer's programs).
      case Phase::kReadCallWord:
      case Phase::kArriveRelaxed:
      case Phase::kAdvanceAtArrival:
      case Phase::kClearShare:
      case Phase::kNextRound:
      case Phase::kAdvanceAtEnd:
      case Phase::kDirectScatter:
      case Phase::kDirectPublishScatter:
      case Phase::kDirectReduce:
      case Phase::kDirectPublishBroadcast:
      case Phase::kDirectGather: return;
      case Phase::kStore:
      case Phase::kScatter:
      case Phase::kGather:
        if (lane_valid(c, env)) return;
        break;
      case Phase::kPoll:
        if (lane_valid(c, env)) {
          c.i = std::max(c.i, skip_own(c, env, c.i));
          if (c.i < static_cast<std::uint32_t>(world(env))) return;
        }
        break;
      case Phase::kReduce:
        if (c.token % static_cast<std::uint32_t>(world(env)) == c.rank && lane_valid(c, env)) return;
        break;
      case Phase::kClearDirty:
      case Phase::kClearStage0:
      case Phase::kClearStage1: {
        const ClearPlan p = clear_plan(c, env, phase);
        if (p.active) {
          if (clear_step(c, env, c.i, ceil_div(p.bytes, kPackBytes))) return;
          if (phase == Phase::kClearDirty) {  // next dirty stage
            ++c.clear_stage;
            c.i = 0;
            continue;
          }
        }
        break;
      }
      case Phase::kGridSync:
        if (env.config.mutation != Mutation::kNormNoGridSync) return;
        break;
      case Phase::kWaitArrivals:
        if (c.index != 0) {  // only grid thread 0 waits and updates the flags
          c.pc = static_cast<std::uint8_t>(flashinfer_program(env).size() - 1);
          return;
        }
        if (env.config.mutation != Mutation::kNoArrivalWait) return;
        break;
    }
    next_pc(c);
  }
}

void step_flashinfer(CtaState& c, KernelEnv& env) {
  const Phase phase = c.phase(env);
  const int w = world(env);
  Ops& ops = env.ops;
  switch (phase) {
    // 1. Flags: two plain 16-byte loads; the checker compares them with every other CTA's.
    case Phase::kReadFlagsLow:
    case Phase::kReadFlagsHigh: read_flags_half(c, env, /*high=*/phase == Phase::kReadFlagsHigh); break;
    // ONESHOT 2. The sanitised pack into slot [t][r] of every rank: W unicast stores (self last) or one multicast.
    case Phase::kStore: step_store(c, env); break;
    // TWOSHOT 2. Scatter: the pack goes to the owner of token t, row t / W, slot of this rank.
    case Phase::kScatter: {
      const int owner = static_cast<int>(c.token % static_cast<std::uint32_t>(w));
      ops.st_v4({owner, scatter_slot(c, env, here(c), c.rank)}, input_pack(env, c.rank, c.token, pack_of(c)),
                data_ghost(c, env));
      ++c.lane;
      break;
    }
    // Clears: the previous launch's buffer, in the layout it recorded, one 16-byte sentinel store per pack.
    case Phase::kClearDirty:
    case Phase::kClearStage0:
    case Phase::kClearStage1: {
      const ClearPlan p = clear_plan(c, env, phase);
      const ClearStep step = *clear_step(c, env, c.i, ceil_div(p.bytes, kPackBytes));  // normalize found one
      store_clear(c, env,
                  stage_offset_bytes(static_cast<int>(c.dirty_buffer()), p.stage, p.layout_stages, c.buffer_bytes()) +
                      step.pack * kPackBytes);
      c.i = step.next;
      break;
    }
    // Arrival: the CTA barrier, then one release increment of this rank's counter (flag word 8); a cluster
    // launch increments once per cluster.
    case Phase::kArrive:
      if (env.grid.cluster_launch) {
        step_cluster_arrive(c, env);
        break;
      }
      ops.bar_cta_sync();
      ops.red_release_gpu_add_u32({c.rank, env.flags_word + kArrivalWord}, 1);
      next_pc(c);
      break;
    // ONESHOT 5. Poll the remote slots of the pack; a pass (or chunk) counts only when all its slots are clean.
    case Phase::kPoll: step_poll(c, env); break;
    // TWOSHOT 4. The owner polls SCATTER for every source, folds, then stores the sum into every BROADCAST[t].
    case Phase::kReduce: step_reduce(c, env); break;
    // TWOSHOT 7. Poll the local BROADCAST[t] until clean and copy it out verbatim (rmsNormLamport: the row the
    // norm reads).
    case Phase::kGather: {
      const std::uint32_t word = broadcast_slot(c, env, here(c));
      if (!ops.ld_volatile_v4({c.rank, word}, c.read_words, c.read_ghosts)) break;
      if (looks_empty(c.read_words, env.config.mutation) && !reads_unpolled(env)) break;
      accept_broadcast(c, env, here(c), word,
                       env.grid.kernel == Kernel::kNorm ? "rmsNormLamport's BROADCAST load, the sum it normalises"
                                                        : "TWOSHOT broadcast copied out");
      ++c.lane;
      break;
    }
    // Fused TWOSHOT: the PDL pair. The all-reduce kernel lets rmsNormLamport start; rmsNormLamport waits for the
    // all-reduce kernel to complete before it advances the flags.
    case Phase::kTrigger:
      ops.griddepcontrol_launch_dependents();
      next_pc(c);
      break;
    case Phase::kGridSync:
      ops.griddepcontrol_wait();
      next_pc(c);
      break;
    // 6/8. Grid thread 0 waits until every CTA has arrived (so every CTA has read the flags) ...
    case Phase::kWaitArrivals: {
      const std::uint32_t arrived = ops.ld_volatile_u32({c.rank, env.flags_word + kArrivalWord});
      if (arrived >= static_cast<std::uint32_t>(env.grid.arrivals())) {
        if (env.config.arrival == Arrival::kAfterFlags) ops.fence_acq_rel_gpu();
        next_pc(c);
      }
      break;
    }
    // ... then rotates the flags: two 16-byte stores of words 0-7, then the counter reset (in that order).
    case Phase::kStoreFlagsLow:
    case Phase::kStoreFlagsHigh:
      store_flags_half(c, env, /*high=*/phase == Phase::kStoreFlagsHigh);
      next_pc(c);
      break;
    case Phase::kResetCounter:
      reset_arrival_counter(c, env);
      next_pc(c);
      break;
    case Phase::kDone: break;
    case Phase::kReadCallWord:  // our kernels' phases: step_ours runs them
    case Phase::kArriveRelaxed:
    case Phase::kAdvanceAtArrival:
    case Phase::kClearShare:
    case Phase::kNextRound:
    case Phase::kAdvanceAtEnd:
    case Phase::kDirectScatter:
    case Phase::kDirectPublishScatter:
    case Phase::kDirectReduce:
    case Phase::kDirectPublishBroadcast:
    case Phase::kDirectGather:
      throw std::logic_error(fmt::format("FlashInfer's kernels have no phase '{}'", phase_name(phase)));
  }
}

std::optional<Item> polled_item_flashinfer(const CtaState& c, const KernelEnv& env) {
  switch (c.phase(env)) {
    case Phase::kPoll: return here(c);
    case Phase::kGather:
      if (reads_unpolled(env)) return std::nullopt;  // it reads once, whatever it finds
      return here(c);
    case Phase::kReduce:
      if (c.broadcasting) return std::nullopt;
      return here(c);
    default: return std::nullopt;
  }
}

}  // namespace ar::sim::detail
