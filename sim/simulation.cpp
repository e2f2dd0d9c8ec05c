#include "sim/simulation.h"

#include <fmt/format.h>

#include <algorithm>

#include "sim/inputs.h"
#include "sim/word_description.h"

namespace ar::sim {
namespace {

std::uint64_t wait_key(int rank, std::uint32_t pack) { return (static_cast<std::uint64_t>(rank) << 32) | pack; }

}  // namespace

Simulation::Simulation(const SimConfig& config, const std::vector<CallContext>& calls, Chooser& chooser,
                       TraceRecorder* trace, bool record_outputs)
    : config_(config),
      calls_(calls),
      chooser_(chooser),
      trace_(trace),
      memory_(config.world_size, kLamportBufferCount * config.buffer_bytes, direct_region_bytes(calls)),
      checker_(config, record_outputs) {
  for (const CallContext& c : calls_) {
    for (std::size_t g = 0; g < c.grids.size(); ++g) {
      grid_order_.push_back({c.index, static_cast<int>(g)});
      cta_stride_ = std::max(cta_stride_, static_cast<std::uint32_t>(c.grids[g].ctas));
    }
    // Two grids of a call run side by side (PDL); without the norm's griddepcontrol.wait, more may.
    if (c.grids.size() > 1) grid_slots_ = kMaxGridSlots;
  }
  const std::size_t total = static_cast<std::size_t>(config.world_size) * grid_slots_ * cta_stride_;
  const auto ranks = static_cast<std::size_t>(config.world_size);
  ctas_.resize(total);
  runnable_pos_.assign(total, -1);
  cta_pending_.resize(total);
  rank_pending_.resize(ranks);
  launch_.assign(ranks, 0);
  next_grid_.assign(ranks, 0);
  grid_runs_.assign(ranks * grid_slots_, GridRun{});
  resident_.assign(ranks, 0);
  undispatched_.resize(ranks);
  const LamportFlags flags = initial_flags(static_cast<std::uint32_t>(config.buffer_bytes));
  // The flags block: FlashInfer's nine words, the rest (our kernels' call counter among them) zero.
  for (int r = 0; r < config.world_size; ++r)
    for (int i = 0; i < kFlagsBlockWords; ++i)
      memory_.set_word(r, memory_.flag_word(i), i < LamportFlags::kWords ? flags.words[static_cast<std::size_t>(i)] : 0,
                       {WriteKind::kFlags, static_cast<std::uint8_t>(r), 0});
  for (int r = 0; r < config.world_size; ++r) try_launch(r);
}

KernelEnv Simulation::env_for(CtaState& cta, Ops& ops) {
  return KernelEnv{config_, calls_[cta.call], grid_of(cta), ops, checker_, memory_.flag_word(0)};
}

void Simulation::trace(TraceEvent::Kind kind, int rank, int cta, int call, std::string name, std::string detail,
                       int dest, std::int64_t word, int words, Ghost ghost) {
  if (!trace_) return;
  trace_->record({kind, steps_, rank, cta, call < 0 ? launch_[rank] : call, std::move(name), std::move(detail), dest,
                  word, words, ghost});
}

void Simulation::step(std::uint32_t id) {
  CtaState& c = ctas_[id];
  Ops ops(*this, c);
  KernelEnv env = env_for(c, ops);
  checker_.set_step(steps_);
  const bool was_triggered = c.triggered;
  step_cta(c, env);
  ++steps_;
  if (c.triggered && !was_triggered && --grid_run(c.rank, c.slot).untriggered == 0)
    try_launch(c.rank);  // PDL: every CTA has triggered, the dependent grid may start
  // A block of a cluster may have arrived on the cluster barrier its block 0 waits at.
  if (env.grid.cluster > 1 && !waiters_.empty())
    wake(cluster_key(c.rank, c.slot, c.index - c.index % static_cast<std::uint32_t>(env.grid.cluster)));
  if (c.phase(env) == Phase::kDone) finish_cta(id);
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
  switch (target->kind) {
    case WaitTarget::Kind::kClusterBarrier:
      if (cluster_ready(c, env)) return false;
      block(id, cluster_key(c.rank, c.slot, c.index));
      return true;
    case WaitTarget::Kind::kGridDependency:
      if (!previous_grid_alive(c)) return false;
      block(id, grid_key(c.rank));
      return true;
    case WaitTarget::Kind::kPoll:
    case WaitTarget::Kind::kCounter:
    case WaitTarget::Kind::kFlag: break;
  }
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

void Simulation::touch(int rank, std::uint32_t pack) { wake(wait_key(rank, pack)); }

void Simulation::wake(std::uint64_t key) {
  if (waiters_.empty()) return;
  const auto it = waiters_.find(key);
  if (it == waiters_.end()) return;
  std::vector<std::uint32_t> woken = std::move(it->second);
  waiters_.erase(it);
  for (std::uint32_t id : woken)
    if (ctas_[id].status == CtaStatus::kBlocked) make_runnable(id);
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
    for (std::uint32_t slot = 0; slot < grid_slots_; ++slot) {
      const GridRun& run = grid_run(r, static_cast<int>(slot));
      if (!run.alive) continue;
      const GridRef& ref = grid_order_[static_cast<std::size_t>(run.seq)];
      const auto ctas = static_cast<std::uint32_t>(calls_[static_cast<std::size_t>(ref.call)].grids[ref.grid].ctas);
      for (std::uint32_t index = 0; index < ctas; ++index) {
        CtaState& c = ctas_[cta_id(r, static_cast<int>(slot), index)];
        if (c.status != CtaStatus::kBlocked) continue;
        if (blocked++ == 0) {
          f.rank = r;
          f.cta = trace_cta(c);
          f.call = c.call;
        }
        if (waits.size() < 6) {
          Ops ops(*this, c);
          const KernelEnv env = env_for(c, ops);
          waits.push_back(describe_wait(c, env, memory_));
        }
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
    h = mix64(h ^ static_cast<std::uint64_t>(launch_[r]) ^ (static_cast<std::uint64_t>(next_grid_[r]) << 32));
    for (std::uint32_t slot = 0; slot < grid_slots_; ++slot) {
      const GridRun& run = grid_run(r, static_cast<int>(slot));
      if (!run.alive) continue;
      h = mix64(h ^ static_cast<std::uint64_t>(run.seq));
      const GridRef& ref = grid_order_[static_cast<std::size_t>(run.seq)];
      const auto ctas = static_cast<std::uint32_t>(calls_[static_cast<std::size_t>(ref.call)].grids[ref.grid].ctas);
      for (std::uint32_t index = 0; index < ctas; ++index)
        h = hash_cta(h, ctas_[cta_id(r, static_cast<int>(slot), index)]);
    }
  }
  return h;
}

std::uint64_t Simulation::hash_cta(std::uint64_t h, const CtaState& c) const {
  h = mix64(h ^ (std::uint64_t(c.pc) | std::uint64_t(c.clear_stage) << 8 | std::uint64_t(c.read_mask) << 16 |
                 std::uint64_t(c.broadcasting) << 24 | std::uint64_t(c.status == CtaStatus::kDone) << 25 |
                 std::uint64_t(c.status == CtaStatus::kUndispatched) << 26 | std::uint64_t(c.lane) << 32));
  h = mix64(h ^ (std::uint64_t(c.i) | std::uint64_t(c.pass_begin) << 32));
  h = mix64(h ^ c.peer);
  for (std::uint32_t w : c.flags) h = mix64(h ^ w);
  if (config_.protocol == Protocol::kOurs) {
    h = mix64(h ^ (std::uint64_t(c.round) | std::uint64_t(c.item) << 32));
    h = mix64(h ^ (std::uint64_t(c.sub) | std::uint64_t(c.advance) << 8 | std::uint64_t(c.call_word) << 32));
  } else if (c.sub != 0) {  // FlashInfer: cluster block 0 waiting at the cluster barrier
    h = mix64(h ^ 0x5B);
  }
  if (c.read_mask != 0 || c.broadcasting)  // otherwise read_words is a spent register
    for (std::uint32_t w : c.read_words) h = mix64(h ^ w);
  for (std::size_t k = 0; k < c.polled.size(); ++k) {
    const Ghost g = c.polled_ghosts[k];
    h = mix64(h ^ (std::uint64_t(c.polled[k]) | std::uint64_t(g.kind) << 32 | std::uint64_t(g.writer) << 40 |
                   std::uint64_t(g.call) << 48));
  }
  return h;
}

}  // namespace ar::sim
