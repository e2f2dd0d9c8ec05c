#include "sim/cta_program.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <span>

#include "sim/detail/kernel_support.h"
#include "sim/word_description.h"

namespace ar::sim {
namespace {

constexpr std::array<std::string_view, 29> kPhaseNames{"read flags 0-3",
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
                                                       "trigger dependents",
                                                       "wait for the previous grid",
                                                       "direct: scatter",
                                                       "direct: publish the scatter",
                                                       "direct: reduce",
                                                       "direct: publish the broadcast",
                                                       "direct: gather",
                                                       "done"};
static_assert(kPhaseNames.size() == static_cast<std::size_t>(Phase::kDone) + 1);

bool ours(const KernelEnv& env) { return env.config.protocol == Protocol::kOurs; }

std::span<const Phase> program(const KernelEnv& env) {
  return ours(env) ? detail::our_program(env.call) : detail::flashinfer_program(env);
}

/// The pack a CTA at a poll polls (nullopt when it is not at one).
std::optional<detail::Item> polled_item(const CtaState& c, const KernelEnv& env) {
  return ours(env) ? detail::polled_item_ours(c, env) : detail::polled_item_flashinfer(c, env);
}

}  // namespace

std::string_view phase_name(Phase p) { return kPhaseNames[static_cast<std::size_t>(p)]; }

Phase CtaState::phase(const KernelEnv& env) const { return program(env)[pc]; }

int first_empty_word(const Pack& words, Mutation m) {
  switch (m) {
    case Mutation::kPollFirstWord: return words[0] == kLamportEmptyWord ? 0 : -1;
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
  switch (target.kind) {
    case WaitTarget::Kind::kCounter: return words[0] < target.counter_target;
    case WaitTarget::Kind::kFlag: return !detail::flag_published(words[0], target.counter_target, m);
    default: return looks_empty(words, m);
  }
}

void step_cta(CtaState& c, KernelEnv& env) {
  if (ours(env)) {
    detail::step_ours(c, env);
    if (c.read_mask == 0) detail::normalize_ours(c, env);
  } else {
    detail::step_flashinfer(c, env);
    if (c.read_mask == 0) detail::normalize_flashinfer(c, env);
  }
}

std::optional<WaitTarget> next_wait(const CtaState& c, const KernelEnv& env) {
  if (c.read_mask != 0) return std::nullopt;
  if (ours(env) && env.call.takes_direct) return detail::direct_wait(c, env);
  // Our kernels issue the first loads of a poll group (or of the gather's two packs) whatever they find: only
  // a retry waits.
  if (ours(env) && c.sub != 1) return std::nullopt;
  using Kind = WaitTarget::Kind;
  switch (c.phase(env)) {
    case Phase::kWaitArrivals:  // FlashInfer's CTA 0 spins on the arrival counter
      return WaitTarget{
          Kind::kCounter, {c.rank, env.flags_word + kArrivalWord}, static_cast<std::uint32_t>(env.grid.arrivals())};
    case Phase::kArrive:  // cluster block 0, arrived, waits for the rest of its cluster
      if (detail::waits_at_cluster_barrier(c, env)) return WaitTarget{Kind::kClusterBarrier};
      return std::nullopt;
    case Phase::kGridSync: return WaitTarget{Kind::kGridDependency};
    default: break;
  }
  const auto it = polled_item(c, env);
  if (!it) return std::nullopt;
  return WaitTarget{Kind::kPoll, {c.rank, detail::polled_slot(c, env, *it)}};
}

std::string describe_cta(const CtaState& c, const KernelEnv& env) {
  std::string call = fmt::format("call {} {}", env.call.index, strategy_name(env.call.strategy));
  if (env.call.fused)
    call += env.grid.kernel == Kernel::kNorm                       ? " fused, rmsNormLamport"
            : ours(env) || env.call.strategy == Strategy::kOneShot ? " fused"
                                                                   : " fused, all-reduce kernel";
  return ours(env) ? fmt::format("r{} block {} ({}, round {})", c.rank, c.index, call, c.round)
                   : fmt::format("r{} CTA {} ({}, token {})", c.rank, c.index, call, c.token);
}

std::string describe_wait(const CtaState& c, const KernelEnv& env, const MemorySystem& memory) {
  const auto target = next_wait(c, env);
  const std::string who = describe_cta(c, env);
  if (!target) return fmt::format("{} is at '{}'", who, phase_name(c.phase(env)));
  if (target->kind == WaitTarget::Kind::kClusterBarrier)
    return fmt::format("{} waits at the cluster barrier for the other {} blocks of its cluster to arrive", who,
                       env.grid.cluster - 1);
  if (target->kind == WaitTarget::Kind::kGridDependency)
    return fmt::format("{} waits (griddepcontrol.wait) for the all-reduce kernel of its call to complete", who);
  const std::uint32_t w0 = target->pack.word;
  if (target->kind == WaitTarget::Kind::kFlag)
    return fmt::format("{} waits for {} to hold {:08x} (published by r{}); it reads {:08x} ({})", who,
                       describe_word(env.config, c.rank, w0), target->counter_target, c.peer, memory.word(c.rank, w0),
                       describe_ghost(memory.ghost(c.rank, w0)));
  if (target->kind == WaitTarget::Kind::kCounter)
    return fmt::format("{} waits for the arrival counter ({}) to reach {}; it reads {}", who,
                       describe_word(env.config, c.rank, w0), target->counter_target, memory.word(c.rank, w0));
  const detail::SlotDescription d = detail::describe_polled_slot(c, env, *polled_item(c, env));
  std::string words;
  bool written = true;
  Pack seen{};
  for (std::uint32_t k = 0; k < 4; ++k) {
    const Ghost g = memory.ghost(c.rank, w0 + k);
    seen[k] = memory.word(c.rank, w0 + k);
    written = written && g.kind == WriteKind::kData && g.writer == d.writer && g.call == env.call.index;
    words += fmt::format("{}{:08x} ({})", k ? ", " : "", seen[k], describe_ghost(g));
  }
  std::string text = fmt::format("{} polls {} in buffer {} at {} and sees [{}]", who, d.slot, c.current_buffer(),
                                 describe_word(env.config, c.rank, w0), words);
  if (written) {
    const int k = first_empty_word(seen, env.config.mutation);
    const std::uint32_t v = seen[static_cast<std::size_t>(std::max(k, 0))];
    text += fmt::format(
        ": all four words are r{}'s data of this call, yet the poll calls the pack empty because "
        "word {} = {:08x} {}",
        d.writer, k, v,
        v == kLamportEmptyWord ? "is the sentinel itself (written data must never equal 0x80000000)"
                               : "compares equal to -0.0f as a float under flush-to-zero");
  }
  return text;
}

}  // namespace ar::sim
