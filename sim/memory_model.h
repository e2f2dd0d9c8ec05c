// The simulated memory of all ranks: every rank's three Lamport buffers and its flag words, as 32-bit
// words, plus the stores still in flight. Simulation (sim/simulation.h) owns one and drives it; the kernel
// programs reach it only through the operations of sim/ops.h.
//
// Visibility model (SPEC section 4.1 and PTX's single-copy atomicity):
// - A store becomes visible per aligned 8-byte unit: a 16-byte st_v4 is two units, each delivered on its own,
//   in any order and after any delay relative to every other unit (so a reader can see one half of a store
//   and not the other: a torn store). Within a unit both words land together.
// - Delivery is lazy: a unit stays pending until somebody could tell the difference, that is until a read of
//   its 16-byte pack (the reader's schedule decides which pending units it sees), a release that must publish
//   it, or the end of the issuing rank's kernel, which publishes everything that kernel stored. Delivering
//   units only at those moments loses no behaviour of the any-order, any-delay model: a delivery that nobody
//   observes can be moved to the next moment somebody does.
// - Two pending units for the same words from different CTAs race: whoever delivers one may first deliver the
//   other (the schedule decides), so both write orders are reachable. Units from one CTA to the same words
//   keep program order (coherence).
// - Every word carries a Ghost: who wrote its current value, in which call, and whether as data, a clear or
//   the initial fill. The checker reads ghosts; the kernels never do.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "reference/workspace.h"

namespace ar::sim {

/// How a word got its value.
enum class WriteKind : std::uint8_t { kInit, kClear, kData, kFlags };

/// Provenance of a word's value: the checker's view of memory, invisible to the kernels.
struct Ghost {
  WriteKind kind = WriteKind::kInit;
  std::uint8_t writer = 0;  ///< rank that stored it
  std::uint16_t call = 0;   ///< call index (0-based) of the launch that stored it
  bool operator==(const Ghost&) const = default;
};

/// Which modelled operation issued a store (for traces and diagnoses).
enum class StoreOp : std::uint8_t { kStV4, kStU32, kMultimemStV4, kStReleaseSysU32 };

/// One aligned 8-byte unit in flight.
struct PendingUnit {
  std::uint64_t seq = 0;         ///< issue order, 1-based; 0 marks a free slot
  std::uint32_t word = 0;        ///< first (even) word index in the destination rank's memory
  std::uint16_t dest = 0;        ///< destination rank
  std::uint16_t issuer = 0;      ///< issuing rank
  std::uint32_t issuer_cta = 0;  ///< issuing CTA, as a global id
  std::array<std::uint32_t, 2> value{};
  std::uint8_t mask = 3;  ///< which of the two words it writes (st_u32 writes one)
  std::uint8_t half = 0;  ///< 0 = low, 1 = high 8 bytes of its 16-byte store
  StoreOp op = StoreOp::kStV4;
  Ghost ghost;
  std::int32_t next_in_pack = -1;  ///< intrusive list of the units bound for the same 16-byte pack
  bool delivering = false;         ///< being delivered now (excluded from its own race)
};

class MemorySystem {
 public:
  /// `ranks` memories of `lamport_bytes` (three buffers) followed by the flags block (kFlagsBlockWords words,
  /// reference/workspace.h: FlashInfer's nine, and word 12, our kernels' call counter), then `direct_bytes` of
  /// the direct path's region (reference DirectLayout), which starts as the buffers do: every word the sentinel.
  MemorySystem(int ranks, std::int64_t lamport_bytes, std::int64_t direct_bytes = 0);

  int ranks() const { return ranks_; }
  std::uint32_t lamport_words() const { return lamport_words_; }
  std::uint32_t words_per_rank() const { return words_per_rank_; }
  /// Word index of flag word `i` (0 .. kFlagsBlockWords - 1) in every rank's memory.
  std::uint32_t flag_word(int i) const { return lamport_words_ + static_cast<std::uint32_t>(i); }
  /// Word index of the direct region's first word in every rank's memory.
  std::uint32_t direct_word() const { return lamport_words_ + kFlagsBlockWords; }

  std::uint32_t word(int rank, std::uint32_t w) const { return words_[index(rank, w)]; }
  Ghost ghost(int rank, std::uint32_t w) const { return ghosts_[index(rank, w)]; }
  /// Writes a word immediately (initialisation and atomics).
  void set_word(int rank, std::uint32_t w, std::uint32_t value, Ghost g) {
    words_[index(rank, w)] = value;
    ghosts_[index(rank, w)] = g;
  }

  /// Puts a unit in flight and returns its slot id.
  std::uint32_t issue(const PendingUnit& unit);
  const PendingUnit& unit(std::uint32_t id) const { return units_[id]; }
  PendingUnit& unit(std::uint32_t id) { return units_[id]; }
  bool alive(std::uint32_t id, std::uint64_t seq) const { return id < units_.size() && units_[id].seq == seq; }
  /// Writes a pending unit's words into memory and frees its slot.
  void apply(std::uint32_t id);

  /// First pending unit bound for `pack` (16-byte pack index) of `rank`, or -1; follow next_in_pack.
  std::int32_t first_pending(int rank, std::uint32_t pack) const { return pack_head_[pack_index(rank, pack)]; }
  bool has_pending(int rank, std::uint32_t pack) const { return first_pending(rank, pack) >= 0; }
  std::size_t pending_count() const { return units_.size() - free_.size(); }
  /// Every live unit id, in slot order.
  template <class F>
  void for_each_pending(F&& f) const {
    for (std::uint32_t id = 0; id < units_.size(); ++id)
      if (units_[id].seq != 0) f(id, units_[id]);
  }

  /// Order-independent hash of memory contents, ghosts and the units in flight (exhaustive search).
  std::uint64_t hash() const;

 private:
  std::size_t index(int rank, std::uint32_t w) const { return static_cast<std::size_t>(rank) * words_per_rank_ + w; }
  std::size_t pack_index(int rank, std::uint32_t pack) const {
    return static_cast<std::size_t>(rank) * (words_per_rank_ / 4) + pack;
  }
  void unlink(std::uint32_t id);

  int ranks_;
  std::uint32_t lamport_words_;
  std::uint32_t words_per_rank_;
  std::vector<std::uint32_t> words_;
  std::vector<Ghost> ghosts_;
  std::vector<PendingUnit> units_;
  std::vector<std::uint32_t> free_;
  std::vector<std::int32_t> pack_head_;
  std::uint64_t next_seq_ = 1;
};

}  // namespace ar::sim
