// Our kernels' programs (cuda/: one_shot_st_ld_r and two_shot_rs_st_ag; Protocol::kOurs) as resumable state
// machines of the same form as FlashInfer's in sim/flashinfer_kernels.cpp: each step runs a block up to and
// including its next memory operation (sim/ops.h). The phases follow docs/kernels.md's description of the kernels.
//
// Block b of B per rank, T threads (lanes) each, rank r; thread g = b*T + lane of B*T. Flat pack index
// i = t*(D/E') + p over the call's [N, D/E'] packs; a round covers the packs of R tokens [t0, t1).
//   1. Thread 0 reads the flags: ld_v4 of words 0-3 and 4-7, ld_u32 of word 12 (the call counter).
//      Arrival: bar_cta_sync, then atom_relaxed_gpu_add_u32 on word 8, keeping the count it returns. A rank of
//      one block has no count: it advances the flags at once (see "advance" below).
//   Then, round by round:
//   ONESHOT
//   2. st: every pack i = t0*D/E' + g + k*B*T of the round: W st_v4 into slot [t][r] of ranks 0, 1, ..., W-1.
//   3. clear: this round's share of every dirty stage, in the recorded layout (its packs split evenly over
//      the rounds; a grid-stride loop over the share).
//   4. ld, r: every pack of 2: poll the W slots [t][0..W-1] of my buffer in groups of up to four within each
//      fold chunk (the group's loads first, then each slot that was empty re-polled until full), fold with
//      reduce_element, check the output.
//   TWOSHOT
//   2. rs: st: every pack of the round to SCATTER [t/W][r] of its owner t % W.
//   3. clear: this round's share of dirty stages 0 and 1.
//   4. rs: ld, r, st: every pack of a token I own, strided over g: poll its W SCATTER slots as in ONESHOT 4,
//      fold, check it as my output, st_v4 the sum into BROADCAST[t] of every other rank in rank order.
//   5. ag: ld: over the packs of the tokens other ranks own, in token order: walk positions j and j + B*T
//      (two loads in flight), then each re-polled until full, copied out.
//   Fused (the residual-add + RMSNorm call) is the same one kernel: ONESHOT unchanged (the norm is arithmetic on
//   the folded rows); TWOSHOT's owner does not keep its sum as its output but stores it into BROADCAST[t] of every
//   rank, its own included (4), and 5 walks the packs of every token of the round, its own included, so the norm
//   reads all rows from BROADCAST. The flags, the arrival, the clears and the record are TWOSHOT's.
//   Last: the block whose arrival returned B - 1 advances the flags: st_v4 of the new words 0-3 and 4-7,
//   st_u32 of word 8 = 0 and of word 12 = calls + 1 (reference advance_flags).
//
// A block's lanes run iteration by iteration, lanes in order within each (as FlashInfer's CTAs run theirs), so
// the interleavings between the threads of one block are fewer than on hardware; with one thread per block
// (the default) there is no such limit. A wait never gives up here: the kernels' wait budget, abort word and
// error record are not modelled, and a wait that can never end is reported as a deadlock.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <vector>

#include "reference/kernel_schedule.h"
#include "sim/checker.h"
#include "sim/detail/kernel_support.h"

namespace ar::sim::detail {
namespace {

// kPollGroup and kPacksPerLoopStep (the BROADCAST polls in flight per thread) are the kernels' own, from
// reference/kernel_schedule.h.
constexpr std::uint32_t kAdvanceStores = 4;  ///< st_v4 words 0-3, st_v4 words 4-7, st_u32 word 8, st_u32 word 12

// The clear comes right after the stores, as in the kernels (it fills the wait for the peers' stores).
constexpr std::array kOneShotProgram{
    Phase::kReadFlagsLow,     Phase::kReadFlagsHigh, Phase::kReadCallWord, Phase::kArriveRelaxed,
    Phase::kAdvanceAtArrival, Phase::kStore,         Phase::kClearShare,   Phase::kPoll,
    Phase::kNextRound,        Phase::kAdvanceAtEnd,  Phase::kDone};
constexpr std::array kTwoShotProgram{Phase::kReadFlagsLow,  Phase::kReadFlagsHigh,    Phase::kReadCallWord,
                                     Phase::kArriveRelaxed, Phase::kAdvanceAtArrival, Phase::kScatter,
                                     Phase::kClearShare,    Phase::kReduce,           Phase::kGather,
                                     Phase::kNextRound,     Phase::kAdvanceAtEnd,     Phase::kDone};
constexpr std::uint8_t kFirstRoundPhase = 5;  ///< kStore / kScatter in both programs
static_assert(kOneShotProgram[kFirstRoundPhase] == Phase::kStore);
static_assert(kTwoShotProgram[kFirstRoundPhase] == Phase::kScatter);

}  // namespace

Grid grid_of(const CtaState& c, const KernelEnv& env) {
  Grid q;
  const auto lanes = static_cast<std::uint32_t>(env.grid.lanes);
  q.threads = static_cast<std::uint32_t>(env.grid.ctas) * lanes;
  q.g = c.index * lanes + c.lane;
  q.row_packs = static_cast<std::uint32_t>(env.call.packs_per_token);
  const auto per_round = static_cast<std::uint32_t>(env.call.tokens_per_round);
  const auto tokens = static_cast<std::uint32_t>(env.call.shape.tokens);
  q.t0 = c.round * per_round;
  q.t1 = std::min(tokens, q.t0 + per_round);
  q.first = q.t0 * q.row_packs;
  q.last = q.t1 * q.row_packs;
  return q;
}

std::uint32_t owned_packs(std::uint32_t owner, const KernelEnv& env, const Grid& q) {
  const auto w = static_cast<std::uint32_t>(world(env));
  const std::uint32_t owned = q.t1 - q.t0 > owner ? (q.t1 - q.t0 - owner + w - 1) / w : 0;
  return owned * q.row_packs;
}

Item owned_item(std::uint32_t owner, std::uint32_t i, const KernelEnv& env, const Grid& q) {
  const auto w = static_cast<std::uint32_t>(world(env));
  return {q.t0 + owner + (i / q.row_packs) * w, i % q.row_packs};
}

namespace {

/// The pack at flat index `flat` of the call.
Item item_of(std::uint32_t flat, const Grid& q) { return {flat / q.row_packs, flat % q.row_packs}; }

/// The flat pack of the current iteration of a grid-stride loop over the round's packs (phases 2 and 3).
std::uint32_t round_pack(const CtaState& c, const Grid& q) { return q.first + q.g + c.item * q.threads; }

/// TWOSHOT phase 4: the packs of the tokens this rank owns in the round, strided over the grid.
std::uint32_t owned_packs(const CtaState& c, const KernelEnv& env, const Grid& q) {
  return owned_packs(c.rank, env, q);
}
Item owned_item(const CtaState& c, const KernelEnv& env, const Grid& q) {
  return owned_item(c.rank, q.g + c.item * q.threads, env, q);
}

/// TWOSHOT phase 5 walks the packs of the round's tokens other ranks own, in token order (cuda
/// other_token_pack): index j of that walk -> flat pack index. The fused call walks every token of the round.
std::uint32_t other_flat(const CtaState& c, const KernelEnv& env, const Grid& q, std::uint32_t j) {
  if (env.call.fused) return q.first + j;
  const auto w = static_cast<std::uint32_t>(world(env));
  const std::uint32_t other = j / q.row_packs, row = other / (w - 1), k = other % (w - 1);
  const std::uint32_t src = k < c.rank ? k : k + 1;
  return q.first + (row * w + src) * q.row_packs + j % q.row_packs;
}
std::uint32_t other_packs(const CtaState& c, const KernelEnv& env, const Grid& q) {
  return (q.t1 - q.t0) * q.row_packs - (env.call.fused ? 0 : owned_packs(c, env, q));
}
/// TWOSHOT phase 4: whether the owner stores its sum into its own BROADCAST[t] too (the fused call).
bool broadcasts_to_self(const KernelEnv& env) {
  return env.call.fused && env.config.mutation != Mutation::kFusedOwnerSkipsOwnRow;
}
/// The walk index of the first of the (up to) two packs of this iteration, and how many there are.
std::uint32_t gather_base(const CtaState& c, const Grid& q) { return q.g + c.item * kPacksPerLoopStep * q.threads; }
std::uint32_t gather_count(const CtaState& c, const KernelEnv& env, const Grid& q) {
  const std::uint32_t base = gather_base(c, q), end = other_packs(c, env, q);
  return base >= end ? 0 : (base + q.threads < end ? 2 : 1);
}
/// The flat pack of slot c.i of this gather iteration.
std::uint32_t gather_flat(const CtaState& c, const KernelEnv& env, const Grid& q) {
  return other_flat(c, env, q, gather_base(c, q) + c.i * q.threads);
}

/// The clear of the current dirty stage in this round: its packs [begin, end) and where the stage starts.
struct ClearShare {
  bool active = false;
  std::uint32_t begin = 0, end = 0;
  std::int64_t stage_byte = 0;
};
ClearShare clear_share(const CtaState& c, const KernelEnv& env) {
  ClearShare s;
  if (env.config.mutation == Mutation::kNoClear || c.clear_stage >= c.dirty_stages()) return s;
  const std::uint32_t packs =
      static_cast<std::uint32_t>((std::uint64_t(c.flags[static_cast<std::size_t>(4 + c.clear_stage)]) + 15) / 16);
  const auto rounds = static_cast<std::uint32_t>(env.call.rounds);
  const std::uint32_t per_round = (packs + rounds - 1) / rounds;
  s.begin = per_round * c.round;
  if (s.begin >= packs) return s;
  s.end = std::min(packs, s.begin + per_round);
  // The recorded (dirty) layout; the mutation uses this launch's own.
  const int layout =
      env.config.mutation == Mutation::kClearCurrentLayout ? stage_count(env.call.strategy) : int(c.dirty_stages());
  s.stage_byte = stage_offset_bytes(static_cast<int>(c.dirty_buffer()), c.clear_stage, layout, c.buffer_bytes());
  s.active = true;
  return s;
}
std::uint32_t clear_pack(const CtaState& c, const ClearShare& s, const Grid& q) {
  return s.begin + q.g + c.item * q.threads;
}

/// The next iteration of a grid-stride loop: the next lane, then the next stride.
void next_iteration(CtaState& c, const KernelEnv& env) {
  c.i = 0;
  c.sub = 0;
  c.pass_begin = 0;
  c.broadcasting = false;
  if (++c.lane == static_cast<std::uint32_t>(env.grid.lanes)) {
    c.lane = 0;
    ++c.item;
  }
}

/// Jumps to program position `pc` with the loop registers reset.
void jump(CtaState& c, std::uint8_t pc) {
  c.pc = static_cast<std::uint8_t>(pc - 1);
  next_pc(c);
}

Pack polled_pack(const CtaState& c, std::uint32_t slot) {
  Pack p;
  std::copy_n(c.polled.begin() + slot * 4, 4, p.begin());
  return p;
}

/// Keeps the words a poll read in polled slot `s`; true when they are full. An empty read is kept as four
/// sentinel words of no provenance: the kernel only tests it and polls again, and forgetting what it saw lets
/// the exhaustive search merge states that differ only there.
bool keep_read(CtaState& c, const KernelEnv& env, std::uint32_t s) {
  const bool full = !looks_empty(c.read_words, env.config.mutation);
  if (full) {
    std::copy(c.read_words.begin(), c.read_words.end(), c.polled.begin() + s * 4);
    std::copy(c.read_ghosts.begin(), c.read_ghosts.end(), c.polled_ghosts.begin() + s * 4);
  } else {
    std::fill_n(c.polled.begin() + s * 4, 4, kLamportEmptyWord);
    std::fill_n(c.polled_ghosts.begin() + s * 4, 4, Ghost{});
  }
  return full;
}

/// After the load of slot c.i of a pack's poll: past the group's first loads into its retries, past slots
/// already full, and on to the next group. True when every slot of the pack is full (the fold may run).
bool settle_poll(CtaState& c, const KernelEnv& env) {
  const auto w = static_cast<std::uint32_t>(world(env));
  const auto chunk = static_cast<std::uint32_t>(env.call.poll_chunk);
  const std::uint32_t end = std::min({c.pass_begin + kPollGroup, (c.pass_begin / chunk + 1) * chunk, w});
  if (c.sub == 0) {
    if (c.i < end) return false;
    c.sub = 1;
    c.i = c.pass_begin;
  }
  while (c.i < end && !looks_empty(polled_pack(c, c.i), env.config.mutation)) ++c.i;
  if (c.i < end) return false;  // an empty slot to poll again
  if (end == w) return true;
  c.pass_begin = end;  // the next group: its first loads
  c.sub = 0;
  c.i = end;
  return false;
}

/// The owner's fold of the polled slots, kept in registers only (fused TWOSHOT: checked when read back).
Pack fold_only(CtaState& c, const KernelEnv& env) {
  std::vector<std::uint32_t> operands;
  const Pack sum = fold_pack(c, env, nullptr, c.rank, operands);
  clear_registers(c);
  return sum;
}

/// One load of slot c.i (source rank c.i) of a pack's poll (cuda poll_slots): keeps the words, checks a full
/// slot's provenance, moves on. True when every slot is full.
bool poll_step(CtaState& c, KernelEnv& env, Item it, std::uint32_t word, const char* slot_name) {
  if (!env.ops.ld_volatile_v4({c.rank, word}, c.read_words, c.read_ghosts)) return false;  // torn: later steps
  const std::uint32_t s = c.i;
  const bool full = keep_read(c, env, s);
  // A full slot is what the kernel folds: every word must be this call's data from its source.
  if (full) accept_polled(c, env, it, s, word, slot_name);
  if (c.sub == 0 || full) ++c.i;  // a retry stays on its slot until it is full
  return settle_poll(c, env);
}

/// The gather's position after a load: on to the second pack's first load, to the retries, past full packs.
/// True when both packs of the iteration are done.
bool settle_gather(CtaState& c, const KernelEnv& env, std::uint32_t count) {
  if (c.sub == 0) {
    if (c.i < count) return false;
    c.sub = 1;
    c.i = 0;
  }
  while (c.i < count && !looks_empty(polled_pack(c, c.i), env.config.mutation)) ++c.i;
  return c.i >= count;
}

/// One of the four stores that advance the flags (cuda advance_flags), c.i = 0..3: FlashInfer's three, then
/// flag word 12 = calls + 1.
void advance_store(CtaState& c, KernelEnv& env) {
  switch (c.i) {
    case 0:
    case 1: store_flags_half(c, env, /*high=*/c.i == 1); break;
    case 2: reset_arrival_counter(c, env); break;
    default: env.ops.st_u32({c.rank, env.flags_word + kCallCounterWord}, c.call_word + 1, flags_ghost(c, env)); break;
  }
  if (++c.i == kAdvanceStores) next_pc(c);
}

}  // namespace

std::span<const Phase> our_program(const CallContext& call) {
  if (call.strategy == Strategy::kOneShot) return kOneShotProgram;
  return call.takes_direct ? direct_program() : kTwoShotProgram;
}

void step_ours(CtaState& c, KernelEnv& env) {
  const Phase phase = c.phase(env);
  const auto w = static_cast<std::uint32_t>(world(env));
  Ops& ops = env.ops;
  const Grid q = grid_of(c, env);
  switch (phase) {
    // 1. Thread 0 reads the flags (plain loads: the previous launch has completed) and the call counter.
    case Phase::kReadFlagsLow:
    case Phase::kReadFlagsHigh: read_flags_half(c, env, /*high=*/phase == Phase::kReadFlagsHigh); break;
    case Phase::kReadCallWord:
      c.call_word = ops.ld_u32({c.rank, env.flags_word + kCallCounterWord});
      env.checker.on_call_counter_read(c.rank, static_cast<int>(c.index), env.call.index, c.call_word);
      next_pc(c);
      break;
    // Arrival: the flag loads have completed (their values went through shared memory and bar.sync); the
    // relaxed add counts the block. The block that gets B - 1 is the last to have read the flags.
    case Phase::kArriveRelaxed: {
      ops.bar_cta_sync();
      const auto blocks = static_cast<std::uint32_t>(env.grid.ctas);
      if (blocks == 1 || (env.config.mutation == Mutation::kNoArrivalWait && c.index == 0)) {
        c.advance = 1;  // the only reader of the flags has read them (the mutation: block 0 assumes so)
      } else {
        const std::uint32_t before = ops.atom_relaxed_gpu_add_u32({c.rank, env.flags_word + kArrivalWord}, 1);
        const std::uint32_t last = env.config.mutation == Mutation::kLastArriverOffByOne ? blocks - 2 : blocks - 1;
        c.advance = before == last ? 2 : 0;
      }
      next_pc(c);
      break;
    }
    case Phase::kAdvanceAtArrival:
    case Phase::kAdvanceAtEnd: advance_store(c, env); break;
    // ONESHOT 2. W unicast stores of the sanitised pack into slot [t][r] of ranks 0..W-1.
    case Phase::kStore: {
      const Item it = item_of(round_pack(c, q), q);
      ops.st_v4({static_cast<int>(c.i), oneshot_slot(c, env, it, c.rank)}, input_pack(env, c.rank, it.token, it.pack),
                data_ghost(c, env));
      if (++c.i == w) next_iteration(c, env);
      break;
    }
    // TWOSHOT 2. The pack to SCATTER [t/W][r] of its owner.
    case Phase::kScatter: {
      const Item it = item_of(round_pack(c, q), q);
      ops.st_v4({static_cast<int>(it.token % w), scatter_slot(c, env, it, c.rank)},
                input_pack(env, c.rank, it.token, it.pack), data_ghost(c, env));
      next_iteration(c, env);
      break;
    }
    // ONESHOT 4. Poll the W slots of the pack until each is full, fold, check.
    case Phase::kPoll: {
      const Item it = item_of(round_pack(c, q), q);
      if (!poll_step(c, env, it, oneshot_slot(c, env, it, c.i), "ONESHOT slot")) break;
      fold_and_check(c, env, it, nullptr, "ONESHOT fold of the polled slots");
      next_iteration(c, env);
      break;
    }
    // TWOSHOT 4. The owner polls the W SCATTER slots, folds, checks the sum as its output and stores it into
    // BROADCAST[t] of every other rank (fused: of every rank, its own included; the check comes when it reads it).
    case Phase::kReduce: {
      const Item it = owned_item(c, env, q);
      const bool to_self = broadcasts_to_self(env);
      if (!c.broadcasting) {
        if (!poll_step(c, env, it, scatter_slot(c, env, it, c.i), "TWOSHOT SCATTER slot")) break;
        // Unfused, my own token goes straight to my output; its BROADCAST slot in my buffer stays empty.
        const Pack sum = env.call.fused
                             ? fold_only(c, env)
                             : fold_and_check(c, env, it, nullptr, "TWOSHOT fold of the owner's SCATTER slots");
        std::copy(sum.begin(), sum.end(), c.read_words.begin());  // the sum waits in registers
        c.broadcasting = true;
        c.i = c.rank == 0 && !to_self ? 1 : 0;
        c.sub = 0;
        c.pass_begin = 0;
        break;
      }
      ops.st_v4({static_cast<int>(c.i), broadcast_slot(c, env, it)}, c.read_words, data_ghost(c, env));
      if (++c.i == c.rank && !to_self) ++c.i;  // every rank but me, unless fused
      if (c.i >= w) next_iteration(c, env);
      break;
    }
    // TWOSHOT 5. Two BROADCAST polls in flight, then each until full, copied out.
    case Phase::kGather: {
      const std::uint32_t count = gather_count(c, env, q);
      const std::uint32_t flat = gather_flat(c, env, q);
      const std::uint32_t word = broadcast_slot(c, env, item_of(flat, q));
      if (!ops.ld_volatile_v4({c.rank, word}, c.read_words, c.read_ghosts)) break;
      const bool full = keep_read(c, env, c.i);
      if (full)
        accept_broadcast(c, env, item_of(flat, q), word,
                         env.call.fused ? "TWOSHOT BROADCAST read for the fused norm" : "TWOSHOT broadcast copied out");
      if (c.sub == 0 || full) ++c.i;
      if (settle_gather(c, env, count)) {
        clear_registers(c);
        next_iteration(c, env);
      }
      break;
    }
    // ONESHOT 3 / TWOSHOT 3. This round's share of the current dirty stage: sentinel stores into my own buffer.
    case Phase::kClearShare: {
      const ClearShare s = clear_share(c, env);
      store_clear(c, env, s.stage_byte + static_cast<std::int64_t>(clear_pack(c, s, q)) * kPackBytes);
      next_iteration(c, env);
      break;
    }
    case Phase::kDirectScatter:
    case Phase::kDirectPublishScatter:
    case Phase::kDirectReduce:
    case Phase::kDirectPublishBroadcast:
    case Phase::kDirectGather: step_direct(c, env); break;
    default: throw std::logic_error(fmt::format("our kernels have no phase '{}' to step", phase_name(phase)));
  }
}

void normalize_ours(CtaState& c, const KernelEnv& env) {
  for (;;) {
    const Phase phase = c.phase(env);
    const Grid q = grid_of(c, env);
    switch (phase) {
      case Phase::kReadFlagsLow:
      case Phase::kReadFlagsHigh:
      case Phase::kReadCallWord:
      case Phase::kArriveRelaxed:
      case Phase::kDone: return;
      case Phase::kAdvanceAtArrival:
        if (c.advance == 1) return;
        break;
      case Phase::kAdvanceAtEnd:
        if (c.advance == 2) return;
        break;
      // A grid-stride loop is over once the current lane has no pack: every later lane and stride has a larger
      // index.
      case Phase::kStore:
      case Phase::kScatter:
      case Phase::kPoll:
        if (round_pack(c, q) < q.last) return;
        break;
      case Phase::kReduce:
        if (q.g + c.item * q.threads < owned_packs(c, env, q)) return;
        break;
      case Phase::kGather:
        if (gather_count(c, env, q) > 0) return;
        break;
      case Phase::kClearShare: {
        const ClearShare s = clear_share(c, env);
        if (s.active && clear_pack(c, s, q) < s.end) return;
        // ONESHOT clears stages 0-3 and TWOSHOT stages 0 and 1 (each only below the recorded dirty count).
        if (++c.clear_stage < (env.call.strategy == Strategy::kOneShot ? 4 : 2)) {
          c.item = 0;
          c.lane = 0;
          continue;
        }
        break;
      }
      case Phase::kNextRound:
        if (c.round + 1 < env.call.rounds) {
          ++c.round;
          jump(c, kFirstRoundPhase);
          continue;
        }
        break;
      case Phase::kDirectScatter:
      case Phase::kDirectPublishScatter:
      case Phase::kDirectReduce:
      case Phase::kDirectPublishBroadcast:
      case Phase::kDirectGather:
        if (direct_phase_pending(c, env)) return;
        break;
      default: throw std::logic_error(fmt::format("our kernels have no phase '{}'", phase_name(phase)));
    }
    next_pc(c);
  }
}

std::optional<Item> polled_item_ours(const CtaState& c, const KernelEnv& env) {
  const Grid q = grid_of(c, env);
  switch (c.phase(env)) {
    case Phase::kPoll: return item_of(round_pack(c, q), q);
    case Phase::kReduce:
      if (c.broadcasting) return std::nullopt;
      return owned_item(c, env, q);
    case Phase::kGather: return item_of(gather_flat(c, env, q), q);
    default: return std::nullopt;
  }
}

}  // namespace ar::sim::detail
