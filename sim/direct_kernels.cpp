// The direct path of our TWOSHOT for large calls (docs/large-messages.md; SimConfig::direct_from_bytes) as a
// resumable state machine, in the form of sim/our_kernels.cpp, whose flag read, arrival, clear share, rounds and
// flag advance it shares. Its data never goes through a Lamport buffer: plain stores into a region beside them
// (reference DirectRegion), published by flags, so no data word is polled and nothing is cleared.
//
// Block b of B per rank, T threads (lanes) each, rank r. A flag of round k holds v = direct_flag_value(epoch, k)
// with epoch = calls the rank has completed + 1 (flag word 12 as read, plus one). Per round, over the tokens
// [t0, t1) (t0 a multiple of W): the packs of the tokens rank o owns (t % W == o) form o's list, in token order;
// thread g = b*T + lane takes the items g, g + B*T, ... of every such list, at every rank. So a block reads only
// what the same block of every other rank wrote, and one flag per (kind, source, block) publishes it.
//   2. scatter: for each owner o != r in rank order, my packs of o's list: st_v4 into o's SCATTER row [t/W][r].
//   3. clear: this round's share of the Lamport stages a previous launch left dirty (ours; a direct launch
//      records nothing to clear).
//   4. publish: bar_cta_sync, then for each owner o != r: st_release_sys_u32 of v into o's flag (scatter, r, b).
//      The release publishes every store of the block before it (the barrier orders the other threads' stores
//      before thread 0's release).
//   5. reduce: for each source s != r: ld_acquire_sys_u32 of my flag (scatter, s, b) until it holds v, then st_u32
//      of the initial fill back into it (the reset: a flag holds a value only while it is published and unread, so
//      no stale value can ever pass for a new one, however old); then for
//      each pack of my list: ld_v4 the W - 1 rows from SCATTER, fold them with my own input pack in rank order
//      (TWOSHOT's fold, so TWOSHOT's bits), check the sum as my output and st_v4 it into BROADCAST[t] of every
//      other rank in rank order.
//   6. publish: bar_cta_sync, then for each rank d != r: st_release_sys_u32 of v into d's flag (broadcast, r, b).
//   7. gather: for each owner o != r: wait for my flag (broadcast, o, b) to hold v, and reset it; then for each owner o != r,
//      my packs of o's list: ld_v4 from BROADCAST[t], copied out.
//
// Reuse without clears: a rank writes a peer's SCATTER rows again only in a later call, which starts after its
// launch of this call completed, which waited for every owner's BROADCAST flags, which each owner published
// after reading all its SCATTER rows; an owner writes a reader's BROADCAST rows again only after that reader's
// SCATTER flags of the later call. Both hold for any shapes of the two calls because every call lays its rows
// and flags out in the same region. The checker holds the path to that: a data store that lands on data its
// reader has not taken is an overwrite-unread failure (the direct-per-call-layout mutation makes one).
#include <fmt/format.h>

#include <array>
#include <stdexcept>

#include "sim/checker.h"
#include "sim/detail/kernel_support.h"

namespace ar::sim::detail {
namespace {

constexpr std::array kDirectProgram{Phase::kReadFlagsLow,
                                    Phase::kReadFlagsHigh,
                                    Phase::kReadCallWord,
                                    Phase::kArriveRelaxed,
                                    Phase::kAdvanceAtArrival,
                                    Phase::kDirectScatter,
                                    Phase::kClearShare,
                                    Phase::kDirectPublishScatter,
                                    Phase::kDirectReduce,
                                    Phase::kDirectPublishBroadcast,
                                    Phase::kDirectGather,
                                    Phase::kNextRound,
                                    Phase::kAdvanceAtEnd,
                                    Phase::kDone};
// Rounds jump back to position 5, as in our other programs (sim/our_kernels.cpp kFirstRoundPhase).
static_assert(kDirectProgram[5] == Phase::kDirectScatter);

/// `sub` of a wait phase between taking a flag and resetting it (0: waiting, 1: past the wait, at the rows).
constexpr std::uint8_t kResetting = 2;

/// What this block's flags hold once the current round is published (reference direct_flag_value).
std::uint32_t flag_value(const CtaState& c) { return direct_flag_value(c.call_word + 1, c.round); }

/// Word index of a byte offset in the direct region.
std::uint32_t direct_word(const KernelEnv& env, std::int64_t offset) {
  return env.flags_word + kFlagsBlockWords + static_cast<std::uint32_t>(offset / 4);
}
std::uint32_t scatter_row(const KernelEnv& env, Item it, std::uint32_t source) {
  const auto w = static_cast<std::uint32_t>(world(env));
  const std::int64_t row = static_cast<std::int64_t>(it.token / w) * w + source;
  return direct_word(env, row * hidden(env) * elem_bytes(env) + std::int64_t(it.pack) * 16);
}
std::uint32_t broadcast_row(const KernelEnv& env, Item it) {
  return direct_word(env, env.call.direct.broadcast + std::int64_t(it.token) * hidden(env) * elem_bytes(env) +
                              std::int64_t(it.pack) * 16);
}
std::uint32_t flag_of(const CtaState& c, const KernelEnv& env, DirectFlag kind, std::uint32_t source) {
  return direct_word(env, env.call.direct.flag(kind, static_cast<int>(source), c.index));
}

/// The next rank after `peer` that is not `me` (W when none is left).
std::uint8_t next_other(std::uint32_t peer, std::uint32_t me) {
  ++peer;
  if (peer == me) ++peer;
  return static_cast<std::uint8_t>(peer);
}
std::uint8_t first_other(std::uint32_t me) { return me == 0 ? 1 : 0; }

/// This lane's item of `owner`'s list in the current iteration, if it has one.
std::optional<Item> lane_item(const CtaState& c, const KernelEnv& env, std::uint32_t owner) {
  const Grid q = grid_of(c, env);
  const std::uint32_t i = q.g + c.item * q.threads;
  if (i >= owned_packs(owner, env, q)) return std::nullopt;
  return owned_item(owner, i, env, q);
}

/// The next lane, then the next stride, of a per-owner loop (c.i and c.sub untouched).
void next_lane(CtaState& c, const KernelEnv& env) {
  if (++c.lane == static_cast<std::uint32_t>(env.grid.lanes)) {
    c.lane = 0;
    ++c.item;
  }
}
/// On to the next owner of a per-owner loop.
void next_owner(CtaState& c) {
  c.peer = next_other(c.peer, c.rank);
  c.item = 0;
  c.lane = 0;
}

/// The pack read from a direct row, checked as this call's data from `writer` and marked taken.
void accept_row(const CtaState& c, const KernelEnv& env, Item it, int writer, std::uint32_t word, const Pack& words,
                const std::array<Ghost, 4>& ghosts, const char* slot) {
  AcceptedPack a;
  a.rank = c.rank;
  a.cta = cta_number(c, env);
  a.call = env.call.index;
  a.writer = writer;
  a.word = word;
  a.slot = slot;
  a.slot_detail = fmt::format("token {} pack {} from r{}, round {}", it.token, it.pack, writer, c.round);
  a.words = words;
  a.ghosts = ghosts;
  a.after_flag = true;
  env.checker.on_pack_accepted(a);
  env.checker.on_direct_read(c.rank, word, env.call.index);
}

/// A publish phase: the barrier, then one flag store a step to every rank the phase names.
void publish(CtaState& c, KernelEnv& env, DirectFlag kind) {
  if (c.sub == 0) {
    env.ops.bar_cta_sync();
    c.sub = 1;
    c.peer = first_other(c.rank);
    return;
  }
  const Address at{c.peer, flag_of(c, env, kind, c.rank)};
  const Ghost ghost{WriteKind::kFlags, static_cast<std::uint8_t>(c.rank), call_tag(env)};
  if (env.config.mutation == Mutation::kDirectPlainFlag)
    env.ops.st_u32(at, flag_value(c), ghost);
  else
    env.ops.st_release_sys_u32(at, flag_value(c), ghost);
  c.peer = next_other(c.peer, c.rank);
}

/// One flag load of a wait phase (sub 0): once it holds this round's value, its reset comes next (sub kResetting;
/// the direct-any-epoch mutation, a reader that takes any published-looking flag, leaves it as it is and goes on
/// to the next rank). flags_pending ends the wait.
void await_flag(CtaState& c, KernelEnv& env, DirectFlag kind) {
  const std::uint32_t v = env.ops.ld_acquire_sys_u32({c.rank, flag_of(c, env, kind, c.peer)});
  if (!flag_published(v, flag_value(c), env.config.mutation)) return;
  if (env.config.mutation == Mutation::kDirectAnyEpoch)
    c.peer = next_other(c.peer, c.rank);
  else
    c.sub = kResetting;
}

/// The reset of the flag just taken: the initial fill back into it (a plain store; the block's next release, or the
/// end of its launch, publishes it before the writer can store the flag again). On to the next rank.
void reset_flag(CtaState& c, KernelEnv& env, DirectFlag kind) {
  const Ghost ghost{WriteKind::kFlags, static_cast<std::uint8_t>(c.rank), call_tag(env)};
  env.ops.st_u32({c.rank, flag_of(c, env, kind, c.peer)}, kLamportEmptyWord, ghost);
  c.sub = 0;
  c.peer = next_other(c.peer, c.rank);
}

/// The wait of phases 5 and 7 (sub 0), for normalisation: true while a flag is still to be loaded; once every
/// other rank's flag is published (or the mutation `skip` drops the wait), on to the loop over the rows with
/// its registers at their start.
bool flags_pending(CtaState& c, const KernelEnv& env, Mutation skip) {
  if (c.sub == kResetting) return true;
  if (c.sub != 0) return false;
  if (c.peer == c.rank) c.peer = next_other(c.peer, c.rank);  // next_pc starts every loop at rank 0
  if (env.config.mutation != skip && c.peer < static_cast<std::uint32_t>(world(env))) return true;
  c.sub = 1;
  c.item = 0;
  c.lane = 0;
  c.i = first_other(c.rank);
  c.peer = first_other(c.rank);
  return false;
}

/// Phase 5 after the flags: reads of the sources' rows, the fold, then the broadcast stores.
void reduce_step(CtaState& c, KernelEnv& env) {
  const auto w = static_cast<std::uint32_t>(world(env));
  const Item it = *lane_item(c, env, c.rank);
  if (!c.broadcasting) {
    const std::uint32_t word = scatter_row(env, it, c.i);
    std::array<Ghost, 4> ghosts;
    const Pack words = env.ops.ld_v4({c.rank, word}, ghosts);
    std::copy(words.begin(), words.end(), c.polled.begin() + c.i * 4);
    std::copy(ghosts.begin(), ghosts.end(), c.polled_ghosts.begin() + c.i * 4);
    accept_row(c, env, it, static_cast<int>(c.i), word, words, ghosts, "direct SCATTER row");
    c.i = next_other(c.i, c.rank);
    if (c.i < w) return;
    const Pack own = input_pack(env, c.rank, it.token, it.pack);
    const Pack sum = fold_and_check(c, env, it, &own, "direct fold of the SCATTER rows and the owner's input");
    std::copy(sum.begin(), sum.end(), c.read_words.begin());  // the sum waits in registers
    c.broadcasting = true;
    c.i = first_other(c.rank);
    return;
  }
  env.ops.st_v4({static_cast<int>(c.i), broadcast_row(env, it)}, c.read_words, data_ghost(c, env));
  c.i = next_other(c.i, c.rank);
  if (c.i < w) return;
  c.broadcasting = false;
  c.i = first_other(c.rank);
  next_lane(c, env);
}

}  // namespace

std::span<const Phase> direct_program() { return kDirectProgram; }

bool flag_published(std::uint32_t word, std::uint32_t value, Mutation m) {
  return m == Mutation::kDirectAnyEpoch ? word != kLamportEmptyWord : word == value;
}

void step_direct(CtaState& c, KernelEnv& env) {
  switch (c.phase(env)) {
    // 2. My packs of each other owner's list into its SCATTER rows.
    case Phase::kDirectScatter: {
      const Item it = *lane_item(c, env, c.peer);
      env.ops.st_v4({c.peer, scatter_row(env, it, c.rank)}, input_pack(env, c.rank, it.token, it.pack),
                    data_ghost(c, env));
      next_lane(c, env);
      break;
    }
    case Phase::kDirectPublishScatter: publish(c, env, DirectFlag::kScatter); break;
    case Phase::kDirectPublishBroadcast: publish(c, env, DirectFlag::kBroadcast); break;
    case Phase::kDirectReduce:
      if (c.sub == 0)
        await_flag(c, env, DirectFlag::kScatter);
      else if (c.sub == kResetting)
        reset_flag(c, env, DirectFlag::kScatter);
      else
        reduce_step(c, env);
      break;
    // 7. The flags of every other owner, then its rows, copied out.
    case Phase::kDirectGather: {
      if (c.sub == 0) {
        await_flag(c, env, DirectFlag::kBroadcast);
        break;
      }
      if (c.sub == kResetting) {
        reset_flag(c, env, DirectFlag::kBroadcast);
        break;
      }
      const Item it = *lane_item(c, env, c.peer);
      const std::uint32_t word = broadcast_row(env, it);
      std::array<Ghost, 4> ghosts;
      const Pack words = env.ops.ld_v4({c.rank, word}, ghosts);
      accept_row(c, env, it, c.peer, word, words, ghosts, "direct BROADCAST row");
      emit_outputs(c, env, it.token, it.pack, words, "direct BROADCAST row copied out", [&](int) {
        return fmt::format("read from BROADCAST token {} written by owner r{}", it.token, c.peer);
      });
      next_lane(c, env);
      break;
    }
    default: throw std::logic_error(fmt::format("the direct path has no phase '{}' to step", phase_name(c.phase(env))));
  }
}

bool direct_phase_pending(CtaState& c, const KernelEnv& env) {
  const auto w = static_cast<std::uint32_t>(world(env));
  switch (c.phase(env)) {
    case Phase::kDirectScatter:
      if (c.peer == c.rank) c.peer = next_other(c.peer, c.rank);  // next_pc starts every loop at rank 0
      while (c.peer < w && !lane_item(c, env, c.peer)) next_owner(c);
      return c.peer < w;
    case Phase::kDirectPublishScatter:
    case Phase::kDirectPublishBroadcast: return c.sub == 0 || c.peer < w;
    case Phase::kDirectReduce:
      if (flags_pending(c, env, Mutation::kDirectNoScatterWait)) return true;
      return lane_item(c, env, c.rank).has_value();
    case Phase::kDirectGather:
      if (flags_pending(c, env, Mutation::kDirectNoBroadcastWait)) return true;
      while (c.peer < w && !lane_item(c, env, c.peer)) next_owner(c);
      return c.peer < w;
    default: throw std::logic_error(fmt::format("'{}' is not a phase of the direct path", phase_name(c.phase(env))));
  }
}

std::optional<WaitTarget> direct_wait(const CtaState& c, const KernelEnv& env) {
  const Phase phase = c.phase(env);
  if (c.sub != 0 || (phase != Phase::kDirectReduce && phase != Phase::kDirectGather)) return std::nullopt;
  const DirectFlag kind = phase == Phase::kDirectReduce ? DirectFlag::kScatter : DirectFlag::kBroadcast;
  return WaitTarget{WaitTarget::Kind::kFlag, {c.rank, flag_of(c, env, kind, c.peer)}, flag_value(c)};
}

}  // namespace ar::sim::detail
