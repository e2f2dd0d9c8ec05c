// Launches: the stream of grids every rank runs (one per call, two for FlashInfer's fused TWOSHOT), when each
// starts under PDL, the dispatch of its CTAs to residency slots, and its end. The rules are in the comment of
// sim/simulation.h.
#include <fmt/format.h>

#include <algorithm>

#include "sim/simulation.h"

namespace ar::sim {

const GridShape& Simulation::grid_of(const CtaState& c) const {
  return calls_[c.call].grids[c.kernel == Kernel::kNorm ? 1 : 0];
}

int Simulation::trace_cta(const CtaState& c) const {
  const int index = static_cast<int>(c.index);
  return c.kernel == Kernel::kNorm ? index + static_cast<int>(calls_[c.call].grids[0].ctas) : index;
}

int Simulation::oldest_running_call(int rank) const {
  int oldest = launch_[rank];
  for (std::uint32_t s = 0; s < grid_slots_; ++s) {
    const GridRun& run = grid_run(rank, static_cast<int>(s));
    if (run.alive) oldest = std::min(oldest, grid_order_[static_cast<std::size_t>(run.seq)].call);
  }
  return oldest;
}

bool Simulation::previous_grid_alive(const CtaState& c) const {
  const int seq = grid_run(c.rank, c.slot).seq;
  if (seq == 0) return false;
  const GridRun& prev = grid_run(c.rank, (seq - 1) % static_cast<int>(grid_slots_));
  return prev.alive && prev.seq == seq - 1;
}

bool Simulation::cluster_ready(const CtaState& leader, const KernelEnv& env) const {
  for (std::uint32_t k = 1; k < static_cast<std::uint32_t>(env.grid.cluster); ++k)
    if (!past_cluster_arrival(ctas_[cta_id(leader.rank, leader.slot, leader.index + k)], env)) return false;
  return true;
}

void Simulation::try_launch(int rank) {
  for (;;) {
    const int seq = next_grid_[rank];
    if (seq >= static_cast<int>(grid_order_.size())) break;
    if (grid_run(rank, seq % static_cast<int>(grid_slots_)).alive) return;  // its slot is still held
    if (seq > 0) {
      const GridRun& prev = grid_run(rank, (seq - 1) % static_cast<int>(grid_slots_));
      if (prev.alive && prev.seq == seq - 1) {
        // A kernel that waits at its top starts when the previous grid has completed; rmsNormLamport, which
        // waits late, once every CTA of the previous grid has triggered or exited.
        const GridRef& ref = grid_order_[static_cast<std::size_t>(seq)];
        const bool waits_late = calls_[static_cast<std::size_t>(ref.call)].grids[ref.grid].kernel == Kernel::kNorm;
        if (!waits_late || prev.untriggered > 0) return;
      }
    }
    launch_grid(rank, seq);
  }
  for (std::uint32_t s = 0; s < grid_slots_; ++s)
    if (grid_run(rank, static_cast<int>(s)).alive) return;
  if (launch_[rank] == static_cast<int>(calls_.size())) return;  // already counted
  launch_[rank] = static_cast<int>(calls_.size());
  ++ranks_finished_;
}

void Simulation::launch_grid(int rank, int seq) {
  const GridRef& ref = grid_order_[static_cast<std::size_t>(seq)];
  const CallContext& call = calls_[static_cast<std::size_t>(ref.call)];
  const GridShape& grid = call.grids[static_cast<std::size_t>(ref.grid)];
  const int slot = seq % static_cast<int>(grid_slots_);
  const auto ctas = static_cast<std::uint32_t>(grid.ctas);
  grid_run(rank, slot) = {seq, true, ctas, ctas};
  next_grid_[rank] = seq + 1;
  launch_[rank] = ref.call;
  for (std::uint32_t index = 0; index < ctas; ++index) {
    CtaState& c = ctas_[cta_id(rank, slot, index)];
    c = CtaState{};
    c.rank = static_cast<std::uint16_t>(rank);
    c.call = static_cast<std::uint16_t>(ref.call);
    c.kernel = grid.kernel;
    c.slot = static_cast<std::uint8_t>(slot);
    c.index = index;
    if (config_.protocol == Protocol::kFlashInfer) {  // our kernels' blocks stride over every token instead
      c.token = static_cast<std::uint32_t>(index / grid.ctas_per_token);
      c.first_pack = static_cast<std::uint32_t>((index % grid.ctas_per_token) * grid.lanes);
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
      const CallContext& call = calls_[c.call];
      trace(TraceEvent::Kind::kLaunchBegin, rank, trace_cta(c), c.call,
            fmt::format("call {} {}{}", c.call, strategy_name(call.strategy),
                        c.kernel == Kernel::kNorm ? " rmsNormLamport"
                        : call.fused              ? " fused"
                                                  : ""),
            fmt::format("N={} D={} {}", call.shape.tokens, call.shape.hidden, dtype_name(call.shape.dtype)));
    }
  }
}

void Simulation::finish_cta(std::uint32_t id) {
  CtaState& c = ctas_[id];
  remove_runnable(id);
  c.status = CtaStatus::kDone;
  const int rank = c.rank;
  if (trace_) trace(TraceEvent::Kind::kLaunchEnd, rank, trace_cta(c), c.call, "", "");
  --resident_[rank];
  GridRun& run = grid_run(rank, c.slot);
  if (!c.triggered) {  // exiting counts as triggering
    c.triggered = true;
    --run.untriggered;
  }
  if (--run.ctas_left == 0) {
    finish_grid(rank, c.slot);
    return;
  }
  dispatch(rank);  // its slot goes to a waiting CTA
  if (run.untriggered == 0) try_launch(rank);
}

void Simulation::finish_grid(int rank, int slot) {
  // The grid has completed: its stores are all visible, and griddepcontrol.wait in the next grid returns.
  drain_grid(rank, slot);
  grid_run(rank, slot).alive = false;
  wake(grid_key(rank));
  try_launch(rank);
  dispatch(rank);
}

}  // namespace ar::sim
