#include "sim/memory_model.h"

#include <stdexcept>

#include "sim/inputs.h"

namespace ar::sim {

MemorySystem::MemorySystem(int ranks, std::int64_t lamport_bytes, std::int64_t direct_bytes)
    : ranks_(ranks),
      lamport_words_(static_cast<std::uint32_t>(lamport_bytes / 4)),
      words_per_rank_(lamport_words_ + kFlagsBlockWords + static_cast<std::uint32_t>(direct_bytes / 4)) {
  if (lamport_bytes % kPackBytes != 0 || direct_bytes % kPackBytes != 0)
    throw std::invalid_argument("MemorySystem: buffers must be whole packs");
  const std::size_t total = static_cast<std::size_t>(ranks) * words_per_rank_;
  words_.assign(total, kLamportEmptyWord);  // lamport_initialize: every word is the sentinel
  ghosts_.assign(total, Ghost{});
  pack_head_.assign(static_cast<std::size_t>(ranks) * (words_per_rank_ / 4), -1);
}

std::uint32_t MemorySystem::issue(const PendingUnit& u) {
  std::uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<std::uint32_t>(units_.size());
    units_.emplace_back();
  }
  PendingUnit& slot = units_[id];
  slot = u;
  slot.seq = next_seq_++;
  slot.delivering = false;
  // Append at the tail so a pack's list stays in issue order.
  std::int32_t* link = &pack_head_[pack_index(u.dest, u.word / 4)];
  while (*link >= 0) link = &units_[static_cast<std::size_t>(*link)].next_in_pack;
  *link = static_cast<std::int32_t>(id);
  slot.next_in_pack = -1;
  return id;
}

void MemorySystem::unlink(std::uint32_t id) {
  const PendingUnit& u = units_[id];
  std::int32_t* link = &pack_head_[pack_index(u.dest, u.word / 4)];
  while (*link != static_cast<std::int32_t>(id)) link = &units_[static_cast<std::size_t>(*link)].next_in_pack;
  *link = u.next_in_pack;
}

void MemorySystem::apply(std::uint32_t id) {
  PendingUnit& u = units_[id];
  for (int i = 0; i < 2; ++i)
    if (u.mask & (1u << i)) set_word(u.dest, u.word + static_cast<std::uint32_t>(i), u.value[i], u.ghost);
  unlink(id);
  u.seq = 0;
  free_.push_back(id);
}

std::uint64_t MemorySystem::hash() const {
  std::uint64_t h = 0x6D656D6F7279ull;
  for (std::size_t i = 0; i < words_.size(); ++i) {
    const Ghost g = ghosts_[i];
    const std::uint64_t ghost_bits =
        static_cast<std::uint64_t>(g.kind) | (std::uint64_t(g.writer) << 8) | (std::uint64_t(g.call) << 16);
    h = mix64(h ^ (std::uint64_t(words_[i]) | (ghost_bits << 32)));
  }
  // Units in flight form a set: combine their hashes with a commutative sum.
  std::uint64_t set = 0;
  for_each_pending([&](std::uint32_t, const PendingUnit& u) {
    std::uint64_t x = mix64((std::uint64_t(u.dest) << 48) ^ (std::uint64_t(u.word) << 8) ^ u.mask ^
                            (std::uint64_t(u.issuer_cta) << 32));
    x = mix64(x ^ (std::uint64_t(u.value[0]) << 32 | u.value[1]));
    x = mix64(x ^ (static_cast<std::uint64_t>(u.ghost.kind) | std::uint64_t(u.ghost.writer) << 8 |
                   std::uint64_t(u.ghost.call) << 16 | std::uint64_t(u.half) << 40 | std::uint64_t(u.op) << 48));
    set += x;
  });
  return mix64(h ^ set);
}

}  // namespace ar::sim
