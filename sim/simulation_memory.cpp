// The memory side of the operations (sim/ops.h): stores put in flight, lazy delivery before reads, races
// between stores to the same words, and the deliveries a release or the end of a grid forces.
#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "sim/simulation.h"
#include "sim/word_description.h"

namespace ar::sim {
namespace {

/// A 16-byte access starts on a pack; a 4-byte one anywhere.
bool aligned(std::uint32_t word, int count) { return word % static_cast<std::uint32_t>(count == 4 ? 4 : 1) == 0; }

/// The operation that issued a store, for reports and traces.
Op op_of(StoreOp op) {
  static constexpr std::array<Op, 4> kOp{Op::kStV4, Op::kStU32, Op::kMultimemStV4, Op::kStReleaseSysU32};
  return kOp[static_cast<std::size_t>(op)];
}

bool overlaps(const PendingUnit& u, std::uint32_t word, int count) {
  for (std::uint32_t k = 0; k < 2; ++k)
    if ((u.mask & (1u << k)) && u.word + k >= word && u.word + k < word + static_cast<std::uint32_t>(count))
      return true;
  return false;
}

}  // namespace

bool Simulation::in_lamport_range(std::uint32_t word, int count) const {
  return aligned(word, count) &&
         static_cast<std::uint64_t>(word) + static_cast<std::uint64_t>(count) <= memory_.lamport_words();
}

bool Simulation::in_flags_range(std::uint32_t word, int count) const {
  return word >= memory_.lamport_words() &&
         static_cast<std::uint64_t>(word) + static_cast<std::uint64_t>(count) <= memory_.direct_word();
}

bool Simulation::in_direct_range(std::uint32_t word, int count) const {
  return word >= memory_.direct_word() && aligned(word, count) &&
         static_cast<std::uint64_t>(word) + static_cast<std::uint64_t>(count) <= memory_.words_per_rank();
}

bool Simulation::in_direct_part(const CallContext& call, std::uint32_t word, int count, bool flags) const {
  const std::uint64_t first = memory_.direct_word() + static_cast<std::uint64_t>(flags ? call.direct.flags / 4 : 0);
  const std::uint64_t end =
      memory_.direct_word() + static_cast<std::uint64_t>((flags ? call.direct.bytes : call.direct.flags) / 4);
  return call.takes_direct && word >= first && aligned(word, count) &&
         static_cast<std::uint64_t>(word) + static_cast<std::uint64_t>(count) <= end;
}

std::string Simulation::direct_bounds(const CallContext& call, bool flags) const {
  const std::int64_t base = static_cast<std::int64_t>(memory_.direct_word()) * 4;
  return fmt::format("the direct region's {} (bytes [{}, {}))", flags ? "flags" : "rows",
                     base + (flags ? call.direct.flags : 0), base + (flags ? call.direct.bytes : call.direct.flags));
}

std::optional<std::string> Simulation::store_out_of_bounds(const CtaState& cta, StoreOp op, std::uint32_t word,
                                                           int count, WriteKind kind) const {
  const CallContext& call = calls_[cta.call];
  if (call.takes_direct && kind == WriteKind::kData)
    return in_direct_part(call, word, count, false) ? std::nullopt : std::optional(direct_bounds(call, false));
  if (kind == WriteKind::kFlags) {
    const bool direct_flag = op == StoreOp::kStReleaseSysU32 || (call.takes_direct && in_direct_range(word, count));
    if (direct_flag)
      return in_direct_part(call, word, count, true) ? std::nullopt : std::optional(direct_bounds(call, true));
    return in_flags_range(word, count) ? std::nullopt : std::optional<std::string>("its flags block");
  }
  return in_lamport_range(word, count) ? std::nullopt : std::optional<std::string>("");
}

void Simulation::issue_store(CtaState& cta, StoreOp op, int dest, std::uint32_t word, const std::uint32_t* values,
                             std::uint8_t count, Ghost ghost) {
  ++events_;
  if (const auto bounds = store_out_of_bounds(cta, op, word, count, ghost.kind)) {
    checker_.on_out_of_bounds(cta.rank, trace_cta(cta), cta.call, op_name(op_of(op)),
                              describe_ghost(ghost), dest, static_cast<std::int64_t>(word) * 4, *bounds);
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
    trace(TraceEvent::Kind::kOp, cta.rank, trace_cta(cta), cta.call,
          std::string(op_name(op_of(op))),
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
  checker_.on_delivery(u, before, memory_.lamport_words(), memory_.direct_word(), launch_[u.dest],
                       oldest_running_call(u.dest));
  if (trace_) {
    const std::string values = u.mask == 3 ? fmt::format("{:08x} {:08x}", u.value[0], u.value[1])
                                           : fmt::format("{:08x}", u.value[u.mask == 1 ? 0 : 1]);
    trace(TraceEvent::Kind::kDelivery, u.dest, -1, -1, "deliver",
          fmt::format("{} <- {} ({} half of r{} CTA {}'s {}; {})",
                      describe_word(config_, u.dest, u.word + (u.mask == 2 ? 1 : 0)), values, u.half ? "high" : "low",
                      u.issuer, trace_cta(ctas_[u.issuer_cta]),
                      op_name(op_of(u.op)),
                      describe_ghost(u.ghost)),
          u.dest, u.word + (u.mask == 2 ? 1 : 0), u.mask == 3 ? 2 : 1, u.ghost);
  }
  const int dest = u.dest;
  const std::uint32_t pack = u.word / 4;
  memory_.apply(id);
  touch(dest, pack);
}

void Simulation::flush(CtaState& cta, bool own_rank_only) {
  auto& list = cta_pending_[global_id(cta)];
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto [id, seq] = list[i];
    if (memory_.alive(id, seq) && (!own_rank_only || memory_.unit(id).dest == cta.rank)) deliver(id);
  }
  std::erase_if(list, [&](const auto& e) { return !memory_.alive(e.first, e.second); });
}

void Simulation::flush_cluster(CtaState& leader) {
  const std::uint32_t size = static_cast<std::uint32_t>(grid_of(leader).cluster);
  for (std::uint32_t k = 1; k < size; ++k)
    flush(ctas_[cta_id(leader.rank, leader.slot, leader.index + k)], /*own_rank_only=*/true);
}

void Simulation::drain_grid(int rank, int slot) {
  // In issue order, as the stores left the rank; other grids' stores (a grid still running beside this one) stay
  // in flight.
  auto& list = rank_pending_[static_cast<std::size_t>(rank)];
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto [id, seq] = list[i];
    if (memory_.alive(id, seq) && slot_of(memory_.unit(id).issuer_cta) == slot) deliver(id);
  }
  std::erase_if(list, [&](const auto& e) { return !memory_.alive(e.first, e.second); });
  for (std::uint32_t k = 0; k < cta_stride_; ++k) cta_pending_[cta_id(rank, slot, k)].clear();
}

}  // namespace ar::sim
