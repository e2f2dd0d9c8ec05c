#include "sim/simulation.h"

#include <fmt/format.h>

#include <algorithm>

#include "sim/inputs.h"
#include "sim/word_description.h"

namespace ar::sim {
namespace {

std::uint64_t wait_key(int rank, std::uint32_t pack) { return (static_cast<std::uint64_t>(rank) << 32) | pack; }

bool overlaps(const PendingUnit& u, std::uint32_t word, int count) {
  for (std::uint32_t k = 0; k < 2; ++k)
    if ((u.mask & (1u << k)) && u.word + k >= word && u.word + k < word + static_cast<std::uint32_t>(count))
      return true;
  return false;
}

}  // namespace

Simulation::Simulation(const SimConfig& config, const std::vector<CallContext>& calls, Chooser& chooser,
                       TraceRecorder* trace, bool record_outputs)
    : config_(config),
      calls_(calls),
      chooser_(chooser),
      trace_(trace),
      memory_(config.world_size, kLamportBufferCount * config.buffer_bytes),
      checker_(config, record_outputs) {
  for (const CallContext& c : calls_) cta_stride_ = std::max(cta_stride_, static_cast<std::uint32_t>(c.ctas));
  const std::size_t total = static_cast<std::size_t>(config.world_size) * cta_stride_;
  ctas_.resize(total);
  runnable_pos_.assign(total, -1);
  cta_pending_.resize(total);
  rank_pending_.resize(static_cast<std::size_t>(config.world_size));
  launch_.assign(static_cast<std::size_t>(config.world_size), 0);
  ctas_left_.assign(static_cast<std::size_t>(config.world_size), 0);
  resident_.assign(static_cast<std::size_t>(config.world_size), 0);
  undispatched_.resize(static_cast<std::size_t>(config.world_size));
  const LamportFlags flags = initial_flags(static_cast<std::uint32_t>(config.buffer_bytes));
  // The flags block: FlashInfer's nine words, the rest (our kernels' call counter among them) zero.
  for (int r = 0; r < config.world_size; ++r)
    for (int i = 0; i < kFlagsBlockWords; ++i)
      memory_.set_word(r, memory_.flag_word(i), i < LamportFlags::kWords ? flags.words[static_cast<std::size_t>(i)] : 0,
                       {WriteKind::kFlags, static_cast<std::uint8_t>(r), 0});
  for (int r = 0; r < config.world_size; ++r) start_launch(r);
}

KernelEnv Simulation::env_for(CtaState& cta, Ops& ops) {
  return KernelEnv{config_, calls_[static_cast<std::size_t>(launch_[cta.rank])], ops, checker_, memory_.flag_word(0)};
}

void Simulation::trace(TraceEvent::Kind kind, int rank, int cta, int call, std::string name, std::string detail,
                       int dest, std::int64_t word, int words, Ghost ghost) {
  if (!trace_) return;
  trace_->record({kind, steps_, rank, cta, call < 0 ? launch_[rank] : call, std::move(name), std::move(detail), dest,
                  word, words, ghost});
}

// ---- Launches ------------------------------------------------------------------------------------------------

void Simulation::start_launch(int rank) {
  const int k = launch_[rank];
  if (k >= static_cast<int>(calls_.size())) {
    ++ranks_finished_;
    return;
  }
  const CallContext& call = calls_[static_cast<std::size_t>(k)];
  ctas_left_[rank] = static_cast<std::uint32_t>(call.ctas);
  for (std::uint32_t index = 0; index < call.ctas; ++index) {
    CtaState& c = ctas_[rank * cta_stride_ + index];
    c = CtaState{};
    c.rank = static_cast<std::uint16_t>(rank);
    c.index = index;
    if (config_.protocol == Protocol::kFlashInfer) {  // our kernels' blocks stride over every token instead
      c.token = static_cast<std::uint32_t>(index / call.ctas_per_token);
      c.first_pack = static_cast<std::uint32_t>((index % call.ctas_per_token) * config_.packs_per_cta);
    }
    c.status = CtaStatus::kUndispatched;
    undispatched_[static_cast<std::size_t>(rank)].push_back(global_id(c));
  }
  dispatch(rank);
}

void Simulation::dispatch(int rank) {
  auto& waiting = undispatched_[static_cast<std::size_t>(rank)];
  const std::uint32_t slots = config_.resident_ctas > 0 ? static_cast<std::uint32_t>(config_.resident_ctas)
                                                        : static_cast<std::uint32_t>(waiting.size()) + resident_[rank];
  while (!waiting.empty() && resident_[rank] < slots) {
    // In grid order, or whichever waiting CTA the schedule picks.
    std::size_t pick = 0;
    if (!config_.dispatch_in_order && waiting.size() > 1) pick = chooser_.pick_dispatch(waiting);
    const std::uint32_t id = waiting[pick];
    waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(pick));
    ++resident_[rank];
    make_runnable(id);
    const CtaState& c = ctas_[id];
    if (trace_) {
      const CallContext& call = calls_[static_cast<std::size_t>(launch_[rank])];
      trace(TraceEvent::Kind::kLaunchBegin, rank, static_cast<int>(c.index), launch_[rank],
            fmt::format("call {} {}", launch_[rank], strategy_name(call.strategy)),
            fmt::format("N={} D={} {}", call.shape.tokens, call.shape.hidden, dtype_name(call.shape.dtype)));
    }
  }
}

void Simulation::step(std::uint32_t id) {
  CtaState& c = ctas_[id];
  Ops ops(*this, c);
  KernelEnv env = env_for(c, ops);
  checker_.set_step(steps_);
  step_cta(c, env);
  ++steps_;
  if (c.phase(env) != Phase::kDone) return;
  // The CTA has finished; the kernel ends when its last CTA does, and its stores are then all visible.
  remove_runnable(id);
  c.status = CtaStatus::kDone;
  const int rank = c.rank;
  if (trace_) trace(TraceEvent::Kind::kLaunchEnd, rank, static_cast<int>(c.index), -1, "", "");
  --resident_[rank];
  if (--ctas_left_[rank] != 0) {
    dispatch(rank);  // its slot goes to a waiting CTA
    return;
  }
  drain_rank(rank);
  ++launch_[rank];
  start_launch(rank);
}

// ---- Runnable set --------------------------------------------------------------------------------------------

void Simulation::make_runnable(std::uint32_t id) {
  ctas_[id].status = CtaStatus::kRunnable;
  runnable_pos_[id] = static_cast<std::int32_t>(runnable_.size());
  runnable_.push_back(id);
}

void Simulation::remove_runnable(std::uint32_t id) {
  const std::int32_t pos = runnable_pos_[id];
  if (pos < 0) return;
  const std::uint32_t last = runnable_.back();
  runnable_[static_cast<std::size_t>(pos)] = last;
  runnable_pos_[last] = pos;
  runnable_.pop_back();
  runnable_pos_[id] = -1;
}

void Simulation::block(std::uint32_t id, std::uint64_t key) {
  remove_runnable(id);
  ctas_[id].status = CtaStatus::kBlocked;
  ctas_[id].wait_key = key;
  waiters_[key].push_back(id);
}

bool Simulation::would_block(std::uint32_t id) {
  CtaState& c = ctas_[id];
  Ops ops(*this, c);
  const KernelEnv env = env_for(c, ops);
  const auto target = next_wait(c, env);
  if (!target) return false;
  const std::uint32_t word = target->pack.word;
  if (word + 4 > memory_.words_per_rank() || word % 4 != 0) return false;  // the read itself reports it
  const std::uint32_t pack = word / 4;
  if (memory_.has_pending(target->pack.rank, pack)) return false;  // the read may see a store in flight
  Pack words;
  for (std::uint32_t k = 0; k < 4; ++k) words[k] = memory_.word(target->pack.rank, word + k);
  if (!wait_fails(*target, words, config_.mutation)) return false;
  block(id, wait_key(target->pack.rank, pack));
  return true;
}

void Simulation::settle() {
  scratch_.assign(runnable_.begin(), runnable_.end());
  for (std::uint32_t id : scratch_) would_block(id);
}

void Simulation::touch(int rank, std::uint32_t pack) {
  if (waiters_.empty()) return;
  const auto it = waiters_.find(wait_key(rank, pack));
  if (it == waiters_.end()) return;
  std::vector<std::uint32_t> woken = std::move(it->second);
  waiters_.erase(it);
  for (std::uint32_t id : woken)
    if (ctas_[id].status == CtaStatus::kBlocked) make_runnable(id);
}

// ---- Memory side of the operations ---------------------------------------------------------------------------

bool Simulation::in_lamport_range(std::uint32_t word, int count) const {
  return word % static_cast<std::uint32_t>(count == 4 ? 4 : 1) == 0 &&
         static_cast<std::uint64_t>(word) + static_cast<std::uint64_t>(count) <= memory_.lamport_words();
}

bool Simulation::in_flags_range(std::uint32_t word, int count) const {
  return word >= memory_.lamport_words() &&
         static_cast<std::uint64_t>(word) + static_cast<std::uint64_t>(count) <= memory_.words_per_rank();
}

void Simulation::issue_store(CtaState& cta, StoreOp op, int dest, std::uint32_t word, const std::uint32_t* values,
                             std::uint8_t count, Ghost ghost) {
  ++events_;
  static constexpr std::array<Op, 3> kOp{Op::kStV4, Op::kStU32, Op::kMultimemStV4};
  const bool flags = ghost.kind == WriteKind::kFlags;
  if (flags ? !in_flags_range(word, count) : !in_lamport_range(word, count)) {
    checker_.on_out_of_bounds(cta.rank, static_cast<int>(cta.index), launch_[cta.rank],
                              op_name(kOp[static_cast<std::size_t>(op)]), dest, static_cast<std::int64_t>(word) * 4);
    return;
  }
  const std::uint32_t gid = global_id(cta);
  const std::uint32_t first = word & ~1u;
  const std::uint32_t end = word + count;
  for (std::uint32_t base = first; base < end; base += 2) {
    PendingUnit u;
    u.word = base;
    u.dest = static_cast<std::uint16_t>(dest);
    u.issuer = cta.rank;
    u.issuer_cta = gid;
    u.op = op;
    u.ghost = ghost;
    u.half = static_cast<std::uint8_t>(((base - (word & ~3u)) / 2) & 1);
    u.mask = 0;
    for (std::uint32_t k = 0; k < 2; ++k) {
      if (base + k >= word && base + k < end) {
        u.mask = static_cast<std::uint8_t>(u.mask | (1u << k));
        u.value[k] = values[base + k - word];
      }
    }
    // Coherence: an older store of this CTA to the same words lands before this one.
    for (bool again = true; again;) {
      again = false;
      for (std::int32_t j = memory_.first_pending(dest, base / 4); j >= 0;
           j = memory_.unit(static_cast<std::uint32_t>(j)).next_in_pack) {
        const PendingUnit& v = memory_.unit(static_cast<std::uint32_t>(j));
        if (v.issuer_cta == gid && v.word == base && (v.mask & u.mask)) {
          deliver(static_cast<std::uint32_t>(j));
          again = true;
          break;
        }
      }
    }
    const std::uint32_t id = memory_.issue(u);
    const std::uint64_t seq = memory_.unit(id).seq;
    rank_pending_[cta.rank].emplace_back(id, seq);
    cta_pending_[gid].emplace_back(id, seq);
  }
  if (trace_) {
    std::string values_text;
    for (int i = 0; i < count; ++i) values_text += fmt::format("{}{:08x}", i ? " " : "", values[i]);
    trace(TraceEvent::Kind::kOp, cta.rank, static_cast<int>(cta.index), -1,
          std::string(op_name(kOp[static_cast<std::size_t>(op)])),
          fmt::format("{} <- {} ({})", describe_word(config_, dest, word), values_text, describe_ghost(ghost)), dest,
          word, count, ghost);
  }
  touch(dest, word / 4);
}

void Simulation::deliver_before_read(int rank, std::uint32_t word, int count) {
  const std::uint32_t pack = word / 4;
  std::uint64_t last = 0;
  for (;;) {
    std::int32_t next = -1;
    for (std::int32_t j = memory_.first_pending(rank, pack); j >= 0;
         j = memory_.unit(static_cast<std::uint32_t>(j)).next_in_pack) {
      const PendingUnit& u = memory_.unit(static_cast<std::uint32_t>(j));
      if (u.seq > last && !u.delivering && overlaps(u, word, count)) {
        next = j;
        break;
      }
    }
    if (next < 0) return;
    last = memory_.unit(static_cast<std::uint32_t>(next)).seq;
    if (chooser_.decide(ChoiceKind::kSeeAtRead)) deliver(static_cast<std::uint32_t>(next));
  }
}

void Simulation::deliver(std::uint32_t id) {
  PendingUnit& u = memory_.unit(id);
  u.delivering = true;
  // Another CTA's unit for the same words races with this one: it may land first (then this one overwrites it).
  std::uint64_t last = 0;
  for (;;) {
    std::int32_t next = -1;
    for (std::int32_t j = memory_.first_pending(u.dest, u.word / 4); j >= 0;
         j = memory_.unit(static_cast<std::uint32_t>(j)).next_in_pack) {
      const PendingUnit& v = memory_.unit(static_cast<std::uint32_t>(j));
      if (v.seq > last && !v.delivering && v.issuer_cta != u.issuer_cta && v.word == u.word && (v.mask & u.mask)) {
        next = j;
        break;
      }
    }
    if (next < 0) break;
    last = memory_.unit(static_cast<std::uint32_t>(next)).seq;
    if (chooser_.decide(ChoiceKind::kRaceFirst)) deliver(static_cast<std::uint32_t>(next));
  }
  ++events_;
  const std::array<Ghost, 2> before{memory_.ghost(u.dest, u.word), memory_.ghost(u.dest, u.word + 1)};
  checker_.on_delivery(u, before, memory_.lamport_words(), launch_[u.dest]);
  if (trace_) {
    const std::string values = u.mask == 3 ? fmt::format("{:08x} {:08x}", u.value[0], u.value[1])
                                           : fmt::format("{:08x}", u.value[u.mask == 1 ? 0 : 1]);
    trace(TraceEvent::Kind::kDelivery, u.dest, -1, -1, "deliver",
          fmt::format("{} <- {} ({} half of r{} CTA {}'s {}; {})",
                      describe_word(config_, u.dest, u.word + (u.mask == 2 ? 1 : 0)), values, u.half ? "high" : "low",
                      u.issuer, u.issuer_cta % cta_stride_,
                      u.op == StoreOp::kStV4    ? "st_v4"
                      : u.op == StoreOp::kStU32 ? "st_u32"
                                                : "multimem_st_v4",
                      describe_ghost(u.ghost)),
          u.dest, u.word + (u.mask == 2 ? 1 : 0), u.mask == 3 ? 2 : 1, u.ghost);
  }
  const int dest = u.dest;
  const std::uint32_t pack = u.word / 4;
  memory_.apply(id);
  touch(dest, pack);
}

void Simulation::flush_local(CtaState& cta) {
  auto& list = cta_pending_[global_id(cta)];
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto [id, seq] = list[i];
    if (memory_.alive(id, seq) && memory_.unit(id).dest == cta.rank) deliver(id);
  }
  std::erase_if(list, [&](const auto& e) { return !memory_.alive(e.first, e.second); });
}

void Simulation::drain_rank(int rank) {
  auto& list = rank_pending_[static_cast<std::size_t>(rank)];
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto [id, seq] = list[i];
    if (memory_.alive(id, seq)) deliver(id);
  }
  list.clear();
  for (std::uint32_t k = 0; k < cta_stride_; ++k)
    cta_pending_[static_cast<std::size_t>(rank) * cta_stride_ + k].clear();
}

// ---- The run -------------------------------------------------------------------------------------------------

RunResult Simulation::run(std::uint64_t max_steps) {
  RunResult result;
  const bool exact = chooser_.exact_runnable();
  while (!checker_.failed()) {
    if (ranks_finished_ == config_.world_size) {
      result.finished = true;
      break;
    }
    if (steps_ >= max_steps) {
      checker_.set_step(steps_);
      Failure f;
      f.kind = FailureKind::kStepBudget;
      f.message = fmt::format("the run neither finished nor deadlocked within {} steps (a livelock?)", max_steps);
      checker_.fail(std::move(f));
      break;
    }
    if (exact) settle();
    if (runnable_.empty()) {
      checker_.set_step(steps_);
      checker_.fail(deadlock_report());
      break;
    }
    const std::size_t pick = chooser_.pick_cta(*this, runnable_);
    const std::uint32_t id = runnable_[pick];
    if (!exact && would_block(id)) continue;  // found blocked on the way; not a step
    step(id);
    if (checker_.failed()) break;
    if (!chooser_.after_step(*this)) {
      result.pruned = true;
      break;
    }
  }
  if (checker_.failed()) {
    result.failure = checker_.failure();
    if (trace_) {
      const Failure& f = *result.failure;
      trace(TraceEvent::Kind::kFailure, std::max(f.rank, 0), f.cta, f.call, std::string(failure_kind_name(f.kind)),
            f.message);
    }
  }
  result.steps = steps_;
  result.events = events_;
  return result;
}

Failure Simulation::deadlock_report() {
  Failure f;
  f.kind = FailureKind::kDeadlock;
  std::vector<std::string> waits;
  std::size_t blocked = 0;
  for (int r = 0; r < config_.world_size; ++r) {
    if (launch_[r] >= static_cast<int>(calls_.size())) continue;
    const CallContext& call = calls_[static_cast<std::size_t>(launch_[r])];
    for (std::uint32_t index = 0; index < call.ctas; ++index) {
      CtaState& c = ctas_[static_cast<std::size_t>(r) * cta_stride_ + index];
      if (c.status != CtaStatus::kBlocked) continue;
      if (blocked++ == 0) {
        f.rank = r;
        f.cta = static_cast<int>(index);
        f.call = launch_[r];
      }
      if (waits.size() < 6) {
        Ops ops(*this, c);
        const KernelEnv env = env_for(c, ops);
        waits.push_back(describe_wait(c, env, memory_));
      }
    }
  }
  std::string ranks;
  for (int r = 0; r < config_.world_size; ++r) {
    if (r == 8 && config_.world_size > 10) {
      ranks += fmt::format(", ... ({} ranks)", config_.world_size);
      break;
    }
    const std::size_t waiting = undispatched_[static_cast<std::size_t>(r)].size();
    ranks += fmt::format(
        "{}r{} {}{}", r ? ", " : "", r,
        launch_[r] >= static_cast<int>(calls_.size()) ? std::string("finished") : fmt::format("in call {}", launch_[r]),
        waiting
            ? fmt::format(" with {} CTA{} waiting for a slot held by a blocked CTA", waiting, waiting == 1 ? "" : "s")
            : std::string());
  }
  f.message = fmt::format("deadlock: no CTA can make progress ({} blocked; {}).", blocked, ranks);
  for (const std::string& w : waits) f.message += "\n    " + w;
  if (blocked > waits.size()) f.message += fmt::format("\n    ... and {} more", blocked - waits.size());
  return f;
}

std::uint64_t Simulation::state_hash() const {
  std::uint64_t h = mix64(memory_.hash() ^ checker_.hash());
  for (int r = 0; r < config_.world_size; ++r) {
    h = mix64(h ^ static_cast<std::uint64_t>(launch_[r]));
    if (launch_[r] >= static_cast<int>(calls_.size())) continue;
    const CallContext& call = calls_[static_cast<std::size_t>(launch_[r])];
    for (std::uint32_t index = 0; index < call.ctas; ++index) {
      const CtaState& c = ctas_[static_cast<std::size_t>(r) * cta_stride_ + index];
      h = mix64(h ^ (std::uint64_t(c.pc) | std::uint64_t(c.clear_stage) << 8 | std::uint64_t(c.read_mask) << 16 |
                     std::uint64_t(c.broadcasting) << 24 | std::uint64_t(c.status == CtaStatus::kDone) << 25 |
                     std::uint64_t(c.status == CtaStatus::kUndispatched) << 26 | std::uint64_t(c.lane) << 32));
      h = mix64(h ^ (std::uint64_t(c.i) | std::uint64_t(c.pass_begin) << 32));
      for (std::uint32_t w : c.flags) h = mix64(h ^ w);
      if (config_.protocol == Protocol::kOurs) {
        h = mix64(h ^ (std::uint64_t(c.round) | std::uint64_t(c.item) << 32));
        h = mix64(h ^ (std::uint64_t(c.sub) | std::uint64_t(c.advance) << 8 | std::uint64_t(c.call_word) << 32));
      }
      if (c.read_mask != 0 || c.broadcasting)  // otherwise read_words is a spent register
        for (std::uint32_t w : c.read_words) h = mix64(h ^ w);
      for (std::size_t k = 0; k < c.polled.size(); ++k) {
        const Ghost g = c.polled_ghosts[k];
        h = mix64(h ^ (std::uint64_t(c.polled[k]) | std::uint64_t(g.kind) << 32 | std::uint64_t(g.writer) << 40 |
                       std::uint64_t(g.call) << 48));
      }
    }
  }
  return h;
}

}  // namespace ar::sim
