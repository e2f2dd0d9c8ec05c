// The modelled PTX operations (sim/ops.h) on top of Simulation's memory side.
#include "sim/ops.h"

#include <fmt/format.h>

#include "sim/simulation.h"
#include "sim/word_description.h"

namespace ar::sim {
namespace {

std::string words_text(const std::uint32_t* w, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += fmt::format("{}{:08x}", i ? " " : "", w[i]);
  return s;
}

}  // namespace

void Ops::st_v4(Address a, const Pack& value, Ghost ghost) {
  sim_.issue_store(cta_, StoreOp::kStV4, a.rank, a.word, value.data(), 4, ghost);
}

void Ops::st_u32(Address a, std::uint32_t value, Ghost ghost) {
  sim_.issue_store(cta_, StoreOp::kStU32, a.rank, a.word, &value, 1, ghost);
}

void Ops::multimem_st_v4(std::uint32_t word, const Pack& value, Ghost ghost) {
  // One operation; the fabric delivers it into every rank's memory, each rank and half on its own schedule.
  for (int dest = 0; dest < sim_.config_.world_size; ++dest)
    sim_.issue_store(cta_, StoreOp::kMultimemStV4, dest, word, value.data(), 4, ghost);
}

Pack Ops::ld_v4(Address a) {
  ++sim_.events_;
  sim_.deliver_before_read(a.rank, a.word, 4);
  Pack p;
  for (std::uint32_t k = 0; k < 4; ++k) p[k] = sim_.memory_.word(a.rank, a.word + k);
  if (sim_.trace_)
    sim_.trace(TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call, std::string(op_name(Op::kLdV4)),
               fmt::format("{} -> {}", describe_word(sim_.config_, a.rank, a.word), words_text(p.data(), 4)));
  return p;
}

Pack Ops::ld_v4(Address a, std::array<Ghost, 4>& ghosts) {
  const CallContext& call = sim_.calls_[cta_.call];
  if (!sim_.in_direct_part(call, a.word, 4, false)) {
    sim_.checker_.on_out_of_bounds(cta_.rank, sim_.trace_cta(cta_), cta_.call, op_name(Op::kLdV4), "a row read",
                                   a.rank, static_cast<std::int64_t>(a.word) * 4, sim_.direct_bounds(call, false));
    ghosts = {};
    return {};
  }
  const Pack p = ld_v4(a);
  for (std::uint32_t k = 0; k < 4; ++k) ghosts[k] = sim_.memory_.ghost(a.rank, a.word + k);
  return p;
}

void Ops::st_release_sys_u32(Address a, std::uint32_t value, Ghost ghost) {
  // Release at system scope: every earlier store of this CTA, to any rank, lands before the flag can.
  sim_.flush(cta_, /*own_rank_only=*/false);
  sim_.issue_store(cta_, StoreOp::kStReleaseSysU32, a.rank, a.word, &value, 1, ghost);
}

std::uint32_t Ops::ld_acquire_sys_u32(Address a) {
  const CallContext& call = sim_.calls_[cta_.call];
  if (!sim_.in_direct_part(call, a.word, 1, true)) {
    sim_.checker_.on_out_of_bounds(cta_.rank, sim_.trace_cta(cta_), cta_.call, op_name(Op::kLdAcquireSysU32),
                                   "a flag wait", a.rank, static_cast<std::int64_t>(a.word) * 4,
                                   sim_.direct_bounds(call, true));
    return 0;
  }
  return load_u32(a, Op::kLdAcquireSysU32);
}

bool Ops::ld_volatile_v4(Address a, Pack& words, std::array<Ghost, 4>& ghosts) {
  ++sim_.events_;
  if (!sim_.in_lamport_range(a.word, 4)) {
    sim_.checker_.on_out_of_bounds(cta_.rank, sim_.trace_cta(cta_), cta_.call, op_name(Op::kLdVolatileV4), "a poll",
                                   a.rank, static_cast<std::int64_t>(a.word) * 4);
    words = {};
    return true;
  }
  // The words not read yet; the chooser decides how many are read at this moment (a torn poll reads the rest
  // at the CTA's later steps, after whatever else happens in between).
  int first = 0;
  while (first < 4 && (cta_.read_mask & (1u << first))) ++first;
  const int remaining = 4 - first;
  const int now = remaining == 1 ? 1 : sim_.chooser_.words_now(remaining);
  sim_.deliver_before_read(a.rank, a.word + static_cast<std::uint32_t>(first), now);
  for (int k = first; k < first + now; ++k) {
    words[static_cast<std::size_t>(k)] = sim_.memory_.word(a.rank, a.word + static_cast<std::uint32_t>(k));
    ghosts[static_cast<std::size_t>(k)] = sim_.memory_.ghost(a.rank, a.word + static_cast<std::uint32_t>(k));
    cta_.read_mask = static_cast<std::uint8_t>(cta_.read_mask | (1u << k));
  }
  const bool complete = cta_.read_mask == 0xF;
  if (sim_.trace_)
    sim_.trace(TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call,
               std::string(op_name(Op::kLdVolatileV4)),
               fmt::format("{}{} words {}-{} -> {}{}", describe_word(sim_.config_, a.rank, a.word),
                           complete && first == 0 ? "" : " (torn)", first, first + now - 1,
                           words_text(words.data() + first, now),
                           complete ? fmt::format("; pack {}", words_text(words.data(), 4)) : std::string()));
  if (complete) cta_.read_mask = 0;
  return complete;
}

std::uint32_t Ops::load_u32(Address a, Op op) {
  ++sim_.events_;
  sim_.deliver_before_read(a.rank, a.word, 1);
  const std::uint32_t v = sim_.memory_.word(a.rank, a.word);
  if (sim_.trace_)
    sim_.trace(TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call, std::string(op_name(op)),
               fmt::format("{} -> {}", describe_word(sim_.config_, a.rank, a.word), v));
  return v;
}

std::uint32_t Ops::ld_volatile_u32(Address a) { return load_u32(a, Op::kLdVolatileU32); }

void Ops::red_release_gpu_add_u32(Address a, std::uint32_t value) {
  ++sim_.events_;
  // Release at GPU scope: this CTA's stores to its own rank are published before the increment.
  sim_.flush(cta_, /*own_rank_only=*/true);
  const std::uint32_t v = sim_.memory_.word(a.rank, a.word) + value;
  sim_.memory_.set_word(a.rank, a.word, v, {WriteKind::kFlags, static_cast<std::uint8_t>(cta_.rank), 0});
  sim_.touch(a.rank, a.word / 4);
  if (sim_.trace_)
    sim_.trace(TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call,
               std::string(op_name(Op::kRedReleaseGpuAddU32)),
               fmt::format("{} += {} -> {}", describe_word(sim_.config_, a.rank, a.word), value, v));
}

std::uint32_t Ops::ld_u32(Address a) { return load_u32(a, Op::kLdU32); }

std::uint32_t Ops::atom_relaxed_gpu_add_u32(Address a, std::uint32_t value) {
  ++sim_.events_;
  // Relaxed: nothing of this CTA is published. Stores to the word still in flight may come first (the schedule
  // decides, as for a read); the add itself is applied at once.
  sim_.deliver_before_read(a.rank, a.word, 1);
  const std::uint32_t before = sim_.memory_.word(a.rank, a.word);
  sim_.memory_.set_word(a.rank, a.word, before + value,
                        {WriteKind::kFlags, static_cast<std::uint8_t>(cta_.rank), cta_.call});
  sim_.touch(a.rank, a.word / 4);
  if (sim_.trace_)
    sim_.trace(
        TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call,
        std::string(op_name(Op::kAtomRelaxedGpuAddU32)),
        fmt::format("{} += {}: {} -> {}", describe_word(sim_.config_, a.rank, a.word), value, before, before + value));
  return before;
}

void Ops::bar_cta_sync() {
  ++sim_.events_;
  if (sim_.trace_)
    sim_.trace(TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call, std::string(op_name(Op::kBarCtaSync)),
               "every thread of the CTA is past its stores");
}

}  // namespace ar::sim

namespace ar::sim {

void Ops::barrier_cluster_arrive() {
  ++sim_.events_;
  if (sim_.trace_)
    sim_.trace(TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call,
               std::string(op_name(Op::kBarrierClusterArrive)), "this block has arrived (release)");
}

void Ops::barrier_cluster_wait() {
  ++sim_.events_;
  sim_.flush_cluster(cta_);
  if (sim_.trace_)
    sim_.trace(TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call,
               std::string(op_name(Op::kBarrierClusterWait)), "every block of the cluster has arrived (acquire)");
}

void Ops::griddepcontrol_launch_dependents() {
  ++sim_.events_;
  cta_.triggered = true;
  if (sim_.trace_)
    sim_.trace(TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call,
               std::string(op_name(Op::kGriddepcontrolLaunchDependents)),
               "the next grid may start once every CTA of this one has triggered or exited");
}

void Ops::griddepcontrol_wait() {
  ++sim_.events_;
  if (sim_.trace_)
    sim_.trace(TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call,
               std::string(op_name(Op::kGriddepcontrolWait)),
               "the previous grid has completed and every store of it is visible");
}

void Ops::fence_acq_rel_gpu() {
  ++sim_.events_;
  if (sim_.trace_)
    sim_.trace(TraceEvent::Kind::kOp, cta_.rank, sim_.trace_cta(cta_), cta_.call,
               std::string(op_name(Op::kFenceAcqRelGpu)), "the arrivals observed happen before what follows");
}

}  // namespace ar::sim
