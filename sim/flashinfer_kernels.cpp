#include "sim/flashinfer_kernels.h"

#include <fmt/format.h>

#include <algorithm>
#include <span>
#include <stdexcept>

#include "reference/float_bits.h"
#include "reference/fold.h"
#include "sim/checker.h"
#include "sim/detail/kernel_support.h"
#include "sim/inputs.h"

namespace ar::sim {
namespace detail {

Pack input_pack(const KernelEnv& env, int rank, std::uint32_t token, std::uint32_t pack) {
  const ProblemShape& s = env.call.shape;
  const int epp = env.call.elements_per_pack;
  Pack p{};
  for (int e = 0; e < epp; ++e) {
    const std::int64_t index =
        (static_cast<std::int64_t>(rank) * s.tokens + token) * s.hidden + static_cast<std::int64_t>(pack) * epp + e;
    std::uint32_t bits = env.call.input.bits(index);
    const bool even_half = dtype_bytes(s.dtype) == 2 && e % 2 == 0;
    if (env.config.mutation != Mutation::kNoInputSanitize && (env.config.sanitize_even_elements || !even_half))
      bits = sanitize_negative_zero(bits, s.dtype);
    set_element_bits(p, e, s.dtype, bits);
  }
  return p;
}

void next_pc(CtaState& c) {
  ++c.pc;
  c.lane = 0;
  c.i = 0;
  c.pass_begin = 0;
  c.clear_stage = 0;
  c.broadcasting = false;
  c.read_mask = 0;
  c.item = 0;
  c.sub = 0;
}

LamportFlags next_flags(const CtaState& c, const KernelEnv& env) {
  LamportFlags read;
  std::copy(c.flags.begin(), c.flags.end(), read.words.begin());
  LamportFlags next = advance_flags(read, env.call.record);
  if (env.config.mutation == Mutation::kTwoBuffers) next.words[0] = (read.current_buffer() + 1) % 2;
  return next;
}

}  // namespace detail

using namespace detail;

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

std::span<const Phase> program(const KernelEnv& env) {
  if (env.config.protocol == Protocol::kOurs) return our_program(env.call.strategy);
  const bool early = env.config.arrival == Arrival::kAfterFlags;
  if (env.call.strategy == Strategy::kOneShot)
    return early ? std::span<const Phase>(kOneShotEarlyProgram) : kOneShotProgram;
  return early ? std::span<const Phase>(kTwoShotEarlyProgram) : kTwoShotProgram;
}

constexpr std::array<std::string_view, 22> kPhaseNames{"read flags 0-3",
                                                       "read flags 4-7",
                                                       "store",
                                                       "scatter",
                                                       "clear dirty stages",
                                                       "clear stage 0",
                                                       "reduce",
                                                       "clear stage 1",
                                                       "arrive",
                                                       "poll",
                                                       "gather",
                                                       "wait arrivals",
                                                       "store flags 0-3",
                                                       "store flags 4-7",
                                                       "reset counter",
                                                       "read call counter",
                                                       "arrive (relaxed)",
                                                       "advance flags at arrival",
                                                       "clear this round's share",
                                                       "next round",
                                                       "advance flags (last to arrive)",
                                                       "done"};

bool lane_valid(const CtaState& c, const KernelEnv& env) {
  return c.lane < static_cast<std::uint32_t>(env.config.packs_per_cta) &&
         c.first_pack + c.lane < env.call.packs_per_token;
}
std::uint32_t pack_of(const CtaState& c) { return c.first_pack + c.lane; }

/// ONESHOT slot [t][src] of pack p in the current buffer (one stage).
std::int64_t oneshot_slot(const CtaState& c, const KernelEnv& env, int src) {
  const std::int64_t element = static_cast<std::int64_t>(c.token) * hidden(env) * world(env) + src * hidden(env) +
                               static_cast<std::int64_t>(pack_of(c)) * env.call.elements_per_pack;
  return stage_word(c.current_buffer(), 0, 1, c.buffer_bytes(), element, elem_bytes(env));
}
/// TWOSHOT SCATTER[t / W][src] of pack p (stage 0 of the current buffer).
std::int64_t scatter_slot(const CtaState& c, const KernelEnv& env, int src) {
  const std::int64_t element = static_cast<std::int64_t>(c.token / world(env)) * world(env) * hidden(env) +
                               src * hidden(env) + static_cast<std::int64_t>(pack_of(c)) * env.call.elements_per_pack;
  return stage_word(c.current_buffer(), 0, 2, c.buffer_bytes(), element, elem_bytes(env));
}
/// TWOSHOT BROADCAST[t] of pack p (stage 1 of the current buffer).
std::int64_t broadcast_slot(const CtaState& c, const KernelEnv& env) {
  const std::int64_t element = static_cast<std::int64_t>(c.token) * hidden(env) +
                               static_cast<std::int64_t>(pack_of(c)) * env.call.elements_per_pack;
  return stage_word(c.current_buffer(), 1, 2, c.buffer_bytes(), element, elem_bytes(env));
}

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
  const std::int64_t ppc = env.config.packs_per_cta;
  const std::int64_t stride = env.call.ctas * ppc;
  for (;; ++i) {
    const std::int64_t base = static_cast<std::int64_t>(i / ppc) * stride + static_cast<std::int64_t>(c.index) * ppc;
    if (base >= packs) return std::nullopt;
    const std::int64_t g = base + static_cast<std::int64_t>(i % ppc);
    if (g < packs) return ClearStep{g, i + 1};
  }
}

/// Advances `c` until it stands at a memory operation (or kDone), skipping loops with nothing to do.
void normalize(CtaState& c, const KernelEnv& env) {
  for (;;) {
    const Phase phase = c.phase(env);
    switch (phase) {
      case Phase::kReadFlagsLow:
      case Phase::kReadFlagsHigh:
      case Phase::kArrive:
      case Phase::kStoreFlagsLow:
      case Phase::kStoreFlagsHigh:
      case Phase::kResetCounter:
      case Phase::kDone:
      // Our kernels' phases (never in FlashInfer's programs).
      case Phase::kReadCallWord:
      case Phase::kArriveRelaxed:
      case Phase::kAdvanceAtArrival:
      case Phase::kClearShare:
      case Phase::kNextRound:
      case Phase::kAdvanceAtEnd:
        return;
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
      case Phase::kWaitArrivals:
        if (c.index != 0) {  // only grid thread 0 waits and updates the flags
          c.pc = static_cast<std::uint8_t>(program(env).size() - 1);
          return;
        }
        if (env.config.mutation != Mutation::kNoArrivalWait) return;
        break;
    }
    next_pc(c);
  }
}

// ---- Poll passes ---------------------------------------------------------------------------------------------

/// After a clean read of source `src`: keep it, and when the pass's last source is in, accept the pass.
/// Returns true when every source of the pack has been accepted.
bool keep_polled(CtaState& c, const KernelEnv& env, std::uint32_t src,
                 std::int64_t (*slot_of)(const CtaState&, const KernelEnv&, int), const char* slot_name) {
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
    AcceptedPack a;
    a.rank = c.rank;
    a.cta = static_cast<int>(c.index);
    a.call = env.call.index;
    a.writer = static_cast<int>(s);
    a.word = static_cast<std::uint32_t>(slot_of(c, env, static_cast<int>(s)));
    a.slot = slot_name;
    a.slot_detail = fmt::format("token {} pack {} source r{} in buffer {}", c.token, pack_of(c), s, c.current_buffer());
    std::copy_n(c.polled.begin() + s * 4, 4, a.words.begin());
    std::copy_n(c.polled_ghosts.begin() + s * 4, 4, a.ghosts.begin());
    env.checker.on_pack_accepted(a);
  }
  c.pass_begin = pass_end;
  return pass_end >= w;
}

std::int64_t oneshot_slot_fn(const CtaState& c, const KernelEnv& env, int src) { return oneshot_slot(c, env, src); }
std::int64_t scatter_slot_fn(const CtaState& c, const KernelEnv& env, int src) { return scatter_slot(c, env, src); }

/// A slot of the pass looked empty: the kernel reloads the whole pass (chunk) and folds only a clean one.
void restart_pass(CtaState& c, const KernelEnv& env) {
  const std::uint32_t chunk = static_cast<std::uint32_t>(env.call.poll_chunk);
  const std::uint32_t end = std::min(static_cast<std::uint32_t>(world(env)), (c.pass_begin / chunk + 1) * chunk);
  std::fill(c.polled.begin() + c.pass_begin * 4, c.polled.begin() + end * 4, 0u);
  std::fill(c.polled_ghosts.begin() + c.pass_begin * 4, c.polled_ghosts.begin() + end * 4, Ghost{});
  c.i = skip_own(c, env, c.pass_begin);
}

}  // namespace

namespace detail {

Pack fold_pack(const CtaState& c, const KernelEnv& env, const Pack* own, int folding_rank,
               std::vector<std::uint32_t>& operands) {
  const int w = world(env);
  const DType t = env.call.shape.dtype;
  Pack out{};
  operands.resize(static_cast<std::size_t>(w));
  for (int e = 0; e < env.call.elements_per_pack; ++e) {
    for (int s = 0; s < w; ++s) {
      Pack p;
      if (own && s == c.rank)
        p = *own;
      else
        std::copy_n(c.polled.begin() + s * 4, 4, p.begin());
      // rank-order: the folding rank's own value first, then the others in ascending order.
      int slot = s;
      if (env.config.mutation == Mutation::kRankOrder) slot = s == folding_rank ? 0 : (s < folding_rank ? s + 1 : s);
      operands[static_cast<std::size_t>(slot)] = element_bits(p, e, t);
    }
    set_element_bits(out, e, t, reduce_element(operands, t, env.call.order));
  }
  return out;
}

std::string fold_detail(const CtaState& c, const KernelEnv& env, std::uint32_t token, std::uint32_t pack,
                        const Pack* own, int folding_rank, int e) {
  const int w = world(env);
  const DType t = env.call.shape.dtype;
  std::vector<int> order(static_cast<std::size_t>(w));
  for (int s = 0; s < w; ++s) order[static_cast<std::size_t>(s)] = s;
  if (env.config.mutation == Mutation::kRankOrder) {
    order.erase(order.begin() + folding_rank);
    order.insert(order.begin(), folding_rank);
  }
  std::string text = fmt::format("r{} folded, in this order ({}):", folding_rank, describe(env.call.order));
  for (int s : order) {
    Pack p;
    if (own && s == c.rank)
      p = *own;
    else
      std::copy_n(c.polled.begin() + s * 4, 4, p.begin());
    text += fmt::format(" r{}=0x{:0{}x}", s, element_bits(p, e, t), dtype_bytes(t) * 2);
  }
  const ProblemShape& sh = env.call.shape;
  std::string inputs;
  for (int s = 0; s < w; ++s)
    inputs += fmt::format(" r{}=0x{:0{}x}", s,
                          env.call.input.bits((static_cast<std::int64_t>(s) * sh.tokens + token) * sh.hidden +
                                              static_cast<std::int64_t>(pack) * env.call.elements_per_pack + e),
                          dtype_bytes(t) * 2);
  return text + fmt::format("; the reference folds the inputs{} in ascending rank order", inputs);
}

void read_flags_half(CtaState& c, KernelEnv& env, bool high) {
  const std::uint32_t first = high ? 4 : 0;
  const Pack p = env.ops.ld_v4({c.rank, env.flags_word + first});
  std::copy(p.begin(), p.end(), c.flags.begin() + first);
  if (high) {
    env.checker.on_flags_read(c.rank, static_cast<int>(c.index), env.call.index, c.flags);
    const auto words = static_cast<std::size_t>(world(env)) * 4;
    c.polled.assign(words, 0);
    c.polled_ghosts.assign(words, Ghost{});
  }
  next_pc(c);
}

void clear_registers(CtaState& c) {
  std::fill(c.polled.begin(), c.polled.end(), 0u);
  std::fill(c.polled_ghosts.begin(), c.polled_ghosts.end(), Ghost{});
}

}  // namespace detail

std::string_view phase_name(Phase p) { return kPhaseNames[static_cast<std::size_t>(p)]; }

Phase CtaState::phase(const KernelEnv& env) const { return program(env)[pc]; }

int first_empty_word(const Pack& words, Mutation m) {
  switch (m) {
    case Mutation::kPollFirstWord:
      return words[0] == kLamportEmptyWord ? 0 : -1;
    case Mutation::kFloatSentinelCompare:
      // `v == 0.f && signbit(v)` with FTZ: every negative subnormal compares equal to -0.0f.
      for (int k = 0; k < 4; ++k)
        if ((words[static_cast<std::size_t>(k)] & 0xFF800000u) == 0x80000000u) return k;
      return -1;
    default:
      // FlashInfer's test: any of the four 32-bit words equal to the sentinel, by integer compare.
      for (int k = 0; k < 4; ++k)
        if (words[static_cast<std::size_t>(k)] == kLamportEmptyWord) return k;
      return -1;
  }
}

bool looks_empty(const Pack& words, Mutation m) { return first_empty_word(words, m) >= 0; }

bool wait_fails(const WaitTarget& target, const Pack& words, Mutation m) {
  return target.counter ? words[0] < target.counter_target : looks_empty(words, m);
}

void step_cta(CtaState& c, KernelEnv& env) {
  if (env.config.protocol == Protocol::kOurs) {
    step_ours(c, env);
    if (c.read_mask == 0) normalize_ours(c, env);
    return;
  }
  const Phase phase = c.phase(env);
  const int w = world(env);
  const std::uint16_t call = call_tag(env);
  Ops& ops = env.ops;
  switch (phase) {
    // 1. Flags: two plain 16-byte loads; the checker compares them with every other CTA's.
    case Phase::kReadFlagsLow:
      read_flags_half(c, env, /*high=*/false);
      break;
    case Phase::kReadFlagsHigh:
      read_flags_half(c, env, /*high=*/true);
      break;
    // ONESHOT 2. The sanitised pack into slot [t][r] of every rank: W unicast stores (self last) or one multicast.
    case Phase::kStore: {
      const Pack value = input_pack(env, c.rank, c.token, pack_of(c));
      const std::int64_t word = oneshot_slot(c, env, c.rank);
      if (env.config.writer == Writer::kMulticast) {
        ops.multimem_st_v4(static_cast<std::uint32_t>(word), value, data_ghost(c, env));
        ++c.lane;
      } else {
        const int dest = (c.rank + 1 + static_cast<int>(c.i)) % w;
        ops.st_v4({dest, static_cast<std::uint32_t>(word)}, value, data_ghost(c, env));
        if (++c.i == static_cast<std::uint32_t>(w)) {
          c.i = 0;
          ++c.lane;
        }
      }
      break;
    }
    // TWOSHOT 2. Scatter: the pack goes to the owner of token t, row t / W, slot of this rank.
    case Phase::kScatter: {
      const int owner = static_cast<int>(c.token % static_cast<std::uint32_t>(w));
      ops.st_v4({owner, static_cast<std::uint32_t>(scatter_slot(c, env, c.rank))},
                input_pack(env, c.rank, c.token, pack_of(c)), data_ghost(c, env));
      ++c.lane;
      break;
    }
    // Clears: the previous launch's buffer, in the layout it recorded, one 16-byte sentinel store per pack.
    case Phase::kClearDirty:
    case Phase::kClearStage0:
    case Phase::kClearStage1: {
      const ClearPlan p = clear_plan(c, env, phase);
      const ClearStep step = *clear_step(c, env, c.i, ceil_div(p.bytes, kPackBytes));  // normalize found one
      const std::int64_t byte =
          stage_offset_bytes(static_cast<int>(c.dirty_buffer()), p.stage, p.layout_stages, c.buffer_bytes()) +
          step.pack * kPackBytes;
      const Pack empty{kLamportEmptyWord, kLamportEmptyWord, kLamportEmptyWord, kLamportEmptyWord};
      // (An address past 2^32 words is clamped; the operation reports it out of bounds either way.)
      ops.st_v4({c.rank, static_cast<std::uint32_t>(std::min<std::int64_t>(byte / 4, 0xFFFFFFF0))}, empty,
                {WriteKind::kClear, static_cast<std::uint8_t>(c.rank), call});
      c.i = step.next;
      break;
    }
    // Arrival: the CTA barrier, then one release increment of this rank's counter (flag word 8).
    case Phase::kArrive:
      ops.bar_cta_sync();
      ops.red_release_gpu_add_u32({c.rank, env.flags_word + 8}, 1);
      next_pc(c);
      break;
    // ONESHOT 5. Poll the remote slots of the pack; a pass (or chunk) counts only when all its slots are clean.
    case Phase::kPoll: {
      const std::int64_t word = oneshot_slot(c, env, static_cast<int>(c.i));
      if (!ops.ld_volatile_v4({c.rank, static_cast<std::uint32_t>(word)}, c.read_words, c.read_ghosts)) break;
      if (looks_empty(c.read_words, env.config.mutation)) {
        restart_pass(c, env);
        break;
      }
      if (keep_polled(c, env, c.i, oneshot_slot_fn, "ONESHOT slot")) {
        std::vector<std::uint32_t> operands;
        const Pack own = input_pack(env, c.rank, c.token, pack_of(c));
        const Pack* own_value = env.call.own_from_registers ? &own : nullptr;
        const Pack result = fold_pack(c, env, own_value, c.rank, operands);
        emit_outputs(c, env, c.token, pack_of(c), result, "ONESHOT fold of the polled slots",
                     [&](int e) { return fold_detail(c, env, c.token, pack_of(c), own_value, c.rank, e); });
        clear_registers(c);
        ++c.lane;
        c.i = 0;
        c.pass_begin = 0;
      }
      break;
    }
    // TWOSHOT 4. The owner polls SCATTER for every source, folds, then stores the sum into every BROADCAST[t].
    case Phase::kReduce: {
      if (!c.broadcasting) {
        const std::int64_t word = scatter_slot(c, env, static_cast<int>(c.i));
        if (!ops.ld_volatile_v4({c.rank, static_cast<std::uint32_t>(word)}, c.read_words, c.read_ghosts)) break;
        if (looks_empty(c.read_words, env.config.mutation)) {
          restart_pass(c, env);
          break;
        }
        if (keep_polled(c, env, c.i, scatter_slot_fn, "TWOSHOT SCATTER slot")) {
          std::vector<std::uint32_t> operands;
          const Pack sum = fold_pack(c, env, nullptr, c.rank, operands);
          clear_registers(c);
          std::copy(sum.begin(), sum.end(), c.read_words.begin());  // the sum waits in registers
          c.broadcasting = true;
          c.i = 0;
        }
        break;
      }
      const std::int64_t word = broadcast_slot(c, env);
      if (env.config.writer == Writer::kMulticast) {
        ops.multimem_st_v4(static_cast<std::uint32_t>(word), c.read_words, data_ghost(c, env));
        c.i = static_cast<std::uint32_t>(w);
      } else {
        const int dest = (c.rank + 1 + static_cast<int>(c.i)) % w;
        ops.st_v4({dest, static_cast<std::uint32_t>(word)}, c.read_words, data_ghost(c, env));
        ++c.i;
      }
      if (c.i == static_cast<std::uint32_t>(w)) {
        c.broadcasting = false;
        ++c.lane;
        c.i = 0;
        c.pass_begin = 0;
      }
      break;
    }
    // TWOSHOT 7. Poll the local BROADCAST[t] until clean and copy it out verbatim.
    case Phase::kGather: {
      const std::int64_t word = broadcast_slot(c, env);
      if (!ops.ld_volatile_v4({c.rank, static_cast<std::uint32_t>(word)}, c.read_words, c.read_ghosts)) break;
      if (looks_empty(c.read_words, env.config.mutation)) break;
      AcceptedPack a;
      a.rank = c.rank;
      a.cta = static_cast<int>(c.index);
      a.call = env.call.index;
      a.writer = static_cast<int>(c.token % static_cast<std::uint32_t>(w));
      a.word = static_cast<std::uint32_t>(word);
      a.slot = "TWOSHOT BROADCAST slot";
      a.slot_detail = fmt::format("token {} pack {} in buffer {}", c.token, pack_of(c), c.current_buffer());
      a.words = c.read_words;
      a.ghosts = c.read_ghosts;
      env.checker.on_pack_accepted(a);
      emit_outputs(c, env, c.token, pack_of(c), c.read_words, "TWOSHOT broadcast copied out", [&](int) {
        return fmt::format("copied verbatim from BROADCAST token {} written by owner r{}", c.token, a.writer);
      });
      ++c.lane;
      break;
    }
    // 6/8. Grid thread 0 waits until every CTA has arrived (so every CTA has read the flags) ...
    case Phase::kWaitArrivals: {
      const std::uint32_t arrived = ops.ld_volatile_u32({c.rank, env.flags_word + 8});
      if (arrived >= static_cast<std::uint32_t>(env.call.ctas)) {
        if (env.config.arrival == Arrival::kAfterFlags) ops.fence_acq_rel_gpu();
        next_pc(c);
      }
      break;
    }
    // ... then rotates the flags: two 16-byte stores of words 0-7, then the counter reset (in that order).
    case Phase::kStoreFlagsLow:
    case Phase::kStoreFlagsHigh: {
      const LamportFlags next = next_flags(c, env);
      const std::size_t first = phase == Phase::kStoreFlagsLow ? 0 : 4;
      const Pack p{next.words[first], next.words[first + 1], next.words[first + 2], next.words[first + 3]};
      ops.st_v4({c.rank, env.flags_word + static_cast<std::uint32_t>(first)}, p,
                {WriteKind::kFlags, static_cast<std::uint8_t>(c.rank), call});
      next_pc(c);
      break;
    }
    case Phase::kResetCounter:
      ops.st_u32({c.rank, env.flags_word + 8}, 0, {WriteKind::kFlags, static_cast<std::uint8_t>(c.rank), call});
      next_pc(c);
      break;
    case Phase::kDone:
      break;
    case Phase::kReadCallWord:  // our kernels' phases: step_ours runs them
    case Phase::kArriveRelaxed:
    case Phase::kAdvanceAtArrival:
    case Phase::kClearShare:
    case Phase::kNextRound:
    case Phase::kAdvanceAtEnd:
      throw std::logic_error(fmt::format("FlashInfer's kernels have no phase '{}'", phase_name(phase)));
  }
  if (c.read_mask == 0) normalize(c, env);
}

std::optional<WaitTarget> next_wait(const CtaState& c, const KernelEnv& env) {
  if (c.read_mask != 0) return std::nullopt;
  if (env.config.protocol == Protocol::kOurs) return next_wait_ours(c, env);
  switch (c.phase(env)) {
    case Phase::kPoll:
      return WaitTarget{{c.rank, static_cast<std::uint32_t>(oneshot_slot(c, env, static_cast<int>(c.i)))}};
    case Phase::kReduce:
      if (c.broadcasting) return std::nullopt;
      return WaitTarget{{c.rank, static_cast<std::uint32_t>(scatter_slot(c, env, static_cast<int>(c.i)))}};
    case Phase::kGather:
      return WaitTarget{{c.rank, static_cast<std::uint32_t>(broadcast_slot(c, env))}};
    case Phase::kWaitArrivals:
      return WaitTarget{{c.rank, env.flags_word + 8}, true, static_cast<std::uint32_t>(env.call.ctas)};
    default:
      return std::nullopt;
  }
}

std::string describe_word(const SimConfig& config, int rank, std::uint32_t word) {
  const std::int64_t byte = static_cast<std::int64_t>(word) * 4;
  const std::int64_t lamport = 3 * config.buffer_bytes;
  if (byte < lamport)
    return fmt::format("r{} buffer {} +{} B", rank, byte / config.buffer_bytes, byte % config.buffer_bytes);
  return fmt::format("r{} flag word {}", rank, (byte - lamport) / 4);
}

std::string describe_ghost(Ghost g) {
  switch (g.kind) {
    case WriteKind::kInit:
      return "initial fill";
    case WriteKind::kClear:
      return fmt::format("clear by r{} in call {}", g.writer, g.call);
    case WriteKind::kData:
      return fmt::format("data from r{} in call {}", g.writer, g.call);
    case WriteKind::kFlags:
      return fmt::format("flags of r{} in call {}", g.writer, g.call);
  }
  return "?";
}

std::string describe_wait(const CtaState& c, const KernelEnv& env, const MemorySystem& memory) {
  const auto target = next_wait(c, env);
  const bool ours = env.config.protocol == Protocol::kOurs;
  const std::string who = ours ? fmt::format("r{} block {} (call {} {}, round {})", c.rank, c.index, env.call.index,
                                             strategy_name(env.call.strategy), c.round)
                               : fmt::format("r{} CTA {} (call {} {}, token {})", c.rank, c.index, env.call.index,
                                             strategy_name(env.call.strategy), c.token);
  if (!target) return fmt::format("{} is at '{}'", who, phase_name(c.phase(env)));
  const std::uint32_t w0 = target->pack.word;
  if (target->counter)
    return fmt::format("{} waits for the arrival counter ({}) to reach {}; it reads {}", who,
                       describe_word(env.config, c.rank, w0), target->counter_target, memory.word(c.rank, w0));
  std::string slot;
  int writer = 0;
  if (ours) {
    const SlotDescription d = describe_slot_ours(c, env);
    slot = d.slot;
    writer = d.writer;
  } else {
    switch (c.phase(env)) {
      case Phase::kPoll:
        slot = fmt::format("ONESHOT slot [t={}][src={}] pack {}", c.token, c.i, pack_of(c));
        writer = static_cast<int>(c.i);
        break;
      case Phase::kReduce:
        slot = fmt::format("SCATTER row {} [src={}] pack {} (token {})",
                           c.token / static_cast<std::uint32_t>(world(env)), c.i, pack_of(c), c.token);
        writer = static_cast<int>(c.i);
        break;
      default:
        slot = fmt::format("BROADCAST token {} pack {}", c.token, pack_of(c));
        writer = static_cast<int>(c.token % static_cast<std::uint32_t>(world(env)));
        break;
    }
  }
  std::string words;
  bool written = true;
  Pack seen{};
  for (std::uint32_t k = 0; k < 4; ++k) {
    const Ghost g = memory.ghost(c.rank, w0 + k);
    seen[k] = memory.word(c.rank, w0 + k);
    written = written && g.kind == WriteKind::kData && g.writer == writer && g.call == env.call.index;
    words += fmt::format("{}{:08x} ({})", k ? ", " : "", seen[k], describe_ghost(g));
  }
  std::string text = fmt::format("{} polls {} in buffer {} at {} and sees [{}]", who, slot, c.current_buffer(),
                                 describe_word(env.config, c.rank, w0), words);
  if (written) {
    const int k = first_empty_word(seen, env.config.mutation);
    const std::uint32_t v = seen[static_cast<std::size_t>(std::max(k, 0))];
    text += fmt::format(
        ": all four words are r{}'s data of this call, yet the poll calls the pack empty because "
        "word {} = {:08x} {}",
        writer, k, v,
        v == kLamportEmptyWord ? "is the sentinel itself (written data must never equal 0x80000000)"
                               : "compares equal to -0.0f as a float under flush-to-zero");
  }
  return text;
}

}  // namespace ar::sim
