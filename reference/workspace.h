// Workspace arithmetic of SPEC section 2 as pure functions: buffer sizes per strategy, the workspace request,
// stage geometry, the layout of a rank's flags block, the 9-word Lamport flags and the bytes each launch records
// for the next launch's clear. The simulator and the CUDA kernels use these; they keep no copies.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "reference/strategy.h"

namespace ar {

inline constexpr int kLamportBufferCount = 3;                    ///< triple buffering
inline constexpr std::uint32_t kLamportEmptyWord = 0x80000000u;  ///< fp32 -0 in every 32-bit word = empty
inline constexpr std::int64_t kBufferAlignment = 32;             ///< 2 stages x 16-byte packs
inline constexpr std::int64_t kSignalPadBytes = 2048;            ///< FlashInfer's unused signal pad
inline constexpr std::int64_t kPackBytes = 16;                   ///< every access is one 16-byte vector
inline constexpr std::int64_t kMaxBufferBytes = 0xFFFFFFFFll;    ///< byte counts are 32-bit

constexpr std::int64_t round_up(std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; }
constexpr std::int64_t ceil_div(std::int64_t x, std::int64_t by) { return (x + by - 1) / by; }

/// ONESHOT needs N*D*W*E bytes per Lamport buffer: slot [t][r] for every token and source rank.
/// The buffer sizes are computed checked: a shape validate_shape refuses may overflow them, and then they
/// throw std::invalid_argument naming the shape instead of returning a wrapped size.
std::int64_t oneshot_buffer_bytes(const ProblemShape& s);
/// TWOSHOT needs 2*ceil(N/W)*W*D*E: two stages (SCATTER, BROADCAST) of ceil(N/W)*W tokens each.
std::int64_t twoshot_buffer_bytes(const ProblemShape& s);
/// Bytes per Lamport buffer a call needs (AUTO resolved first).
std::int64_t required_buffer_bytes(Strategy strategy, const ProblemShape& s);

/// Per-buffer request when the user gives none: max(oneshot(Nos), twoshot(max_tokens)) with
/// Nos = min(1 MiB / (W*E*D), max_tokens), rounded up to 32 bytes. `shape.tokens` is max_tokens.
/// Returns the byte count, or an error naming the UINT32 limit (or, without `user_bytes`, why the shape
/// is invalid; a negative `user_bytes` is an error too).
struct BufferRequest {
  std::int64_t bytes = 0;
  std::optional<std::string> error;
};
BufferRequest request_buffer_bytes(const ProblemShape& max_shape, std::optional<std::int64_t> user_bytes = {});

/// Bytes per Lamport buffer (BPB) that an allocation with `usable_bytes` (after the signal pad) gives:
/// (usable / 3) rounded down to 32. It is usually more than requested.
constexpr std::int64_t buffer_bytes_from_usable(std::int64_t usable_bytes) {
  return usable_bytes / kLamportBufferCount / kBufferAlignment * kBufferAlignment;
}

/// Stages a kernel splits each buffer into: ONESHOT 1, TWOSHOT 2 (SCATTER, BROADCAST).
constexpr int stage_count(Strategy resolved) { return resolved == Strategy::kOneShot ? 1 : 2; }

/// Byte offset of stage `stage` of Lamport buffer `buffer` when buffers are split into `stages` stages.
constexpr std::int64_t stage_offset_bytes(int buffer, int stage, int stages, std::int64_t buffer_bytes) {
  return (std::int64_t(buffer) * stages + stage) * (buffer_bytes / stages);
}

/// Every rank's flags block: kFlagsBlockWords 32-bit words (four 16-byte packs), the layout the kernels and the
/// simulator share. Words 0..8 are FlashInfer's nine flags (LamportFlags), word 8 the CTA arrival counter; word
/// 12 is ours: the number of calls the rank has completed, so a timeout can say which call it happened in (our
/// kernels advance it with the flags; FlashInfer's leave it alone). The other words stay zero.
inline constexpr int kFlagsBlockWords = 16;
inline constexpr int kArrivalWord = 8;
inline constexpr int kCallCounterWord = 12;

/// The flags words (SPEC section 2): w0 current buffer, w1 dirty buffer, w2 BPB, w3 dirty stage count,
/// w4..w7 bytes to clear per dirty stage, w8 the CTA arrival counter.
struct LamportFlags {
  static constexpr int kWords = 9;
  std::array<std::uint32_t, kWords> words{};

  std::uint32_t current_buffer() const { return words[0]; }
  std::uint32_t dirty_buffer() const { return words[1]; }
  std::uint32_t buffer_bytes() const { return words[2]; }
  std::uint32_t dirty_stages() const { return words[3]; }
  std::uint32_t dirty_bytes(int stage) const { return words[4 + stage]; }
  std::uint32_t arrivals() const { return words[kArrivalWord]; }
  bool operator==(const LamportFlags&) const = default;
};
static_assert(LamportFlags::kWords == kArrivalWord + 1 && kCallCounterWord >= LamportFlags::kWords &&
              kCallCounterWord < kFlagsBlockWords);

/// Flags after Lamport initialisation: {0, 2, BPB, 0, 0, 0, 0, 0, 0}.
LamportFlags initial_flags(std::uint32_t buffer_bytes);

/// What a launch records for the next launch's clear: its stage count and bytes per stage.
struct ClearRecord {
  int stages = 0;
  std::array<std::uint32_t, 4> bytes{};
  bool operator==(const ClearRecord&) const = default;
};
/// ONESHOT: {N*D*W*E}; TWOSHOT: {round_up(N, W)*D*E, N*D*E}. AUTO resolved first. The counts are 32-bit
/// words: only for a call that check_fits_workspace accepted.
/// `direct`: the call takes TWOSHOT's direct path (takes_direct_path), which leaves the Lamport buffers untouched
/// and so records nothing to clear.
ClearRecord clear_record(Strategy strategy, const ProblemShape& s, bool direct = false);

/// The flag update at the end of every launch (waitAndUpdate): rotate to (cur + 1) % 3, mark cur dirty,
/// record this launch's stages and bytes, reset the arrival counter.
LamportFlags advance_flags(const LamportFlags& f, const ClearRecord& launched);

/// The direct TWOSHOT path of large calls (docs/large-messages.md): the same owners and the same fold as
/// TWOSHOT, but its data goes through a region of plain words that flags publish, not through the Lamport
/// buffers, so nothing is cleared and no data word is polled. The region is laid out once for every call on
/// the workspace, so a word is always the same kind of row, or the same flag, whatever the call's shape (laid
/// out per call, a later call's flag or row can land on an earlier call's row a slow peer has not read yet).
/// Byte offsets from the region's start:
/// - SCATTER: rows [t / W][source] (the Lamport SCATTER stage's layout; a rank's own rows stay unused: the
///   owner folds its own input straight from the tensor), for the largest call;
/// - BROADCAST: rows [t] (a rank's own tokens stay unused: the owner writes them straight to its output);
/// - flags: one 16-byte pack per (kind, source, block), for the most blocks a launch may have; its first word
///   is direct_flag_value(epoch, round) once the writing block's stores of that round are published.
enum class DirectFlag : int { kScatter = 0, kBroadcast = 1 };
struct DirectRegion {
  int world = 0;
  std::int64_t broadcast = 0;   ///< offset of BROADCAST (SCATTER starts at 0)
  std::int64_t flags = 0;       ///< offset of the first flag
  std::int64_t max_blocks = 0;  ///< flags per (kind, source)
  std::int64_t bytes = 0;       ///< the region's size
  /// Offset of the flag a block of rank `source` publishes into each reader's region.
  constexpr std::int64_t flag(DirectFlag kind, int source, std::int64_t block) const {
    return flags + ((static_cast<std::int64_t>(kind) * world + source) * max_blocks + block) * kPackBytes;
  }
};
/// The region for calls whose SCATTER rows take at most `scatter_bytes` (round_up(N, W) * D * E), whose
/// BROADCAST rows at most `broadcast_bytes` (N * D * E) and whose launches at most `max_blocks` blocks.
DirectRegion direct_region(int world, std::int64_t scatter_bytes, std::int64_t broadcast_bytes, std::int64_t max_blocks);
/// A call's SCATTER and BROADCAST bytes.
std::int64_t direct_scatter_bytes(const ProblemShape& s);
std::int64_t direct_broadcast_bytes(const ProblemShape& s);
/// The most blocks a direct launch may have per rank: the region holds a flag for each, per kind and source.
inline constexpr std::int64_t kMaxDirectBlocks = 1024;
/// The region for calls up to `max_shape` (its SCATTER and BROADCAST bytes) with kMaxDirectBlocks flags.
DirectRegion direct_region_for(const ProblemShape& max_shape);
/// Whether a call takes the direct path: a plain (not fused) call resolved to TWOSHOT with at least
/// `direct_from_bytes` a rank (N * D * E); 0 means no call does. One rule for the simulator and the kernels.
bool takes_direct_path(Strategy resolved, bool fused, const ProblemShape& s, std::int64_t direct_from_bytes);
/// Why a call cannot run on the direct region `d` (its rows do not fit); nullopt when it fits.
std::optional<std::string> check_fits_direct_region(const ProblemShape& s, const DirectRegion& d);
/// What a flag holds once round `round` of the call with epoch `epoch` (calls the rank had completed, plus one)
/// is published: a writer is never more than one round ahead of what its reader has seen (it needs the
/// reader's answer to the round before), so one flag a (kind, source, block) serves every round and call as
/// long as consecutive values differ. 31 bits, so no value is the region's initial fill (0x80000000); a flag
/// that no launch has written for a multiple of 2^30 calls is the one stale value that can pass for a new one
/// (docs/large-messages.md).
constexpr std::uint32_t direct_flag_value(std::uint32_t epoch, std::int64_t round) {
  return (2u * epoch + static_cast<std::uint32_t>(round & 1)) & 0x7FFFFFFFu;
}

/// Why a call cannot run on a workspace with `buffer_bytes` per buffer: too small, or byte counts past the
/// kernels' 32-bit (and N*D*W past their int) arithmetic. nullopt when it fits.
std::optional<std::string> check_fits_workspace(Strategy strategy, const ProblemShape& s, std::int64_t buffer_bytes);

}  // namespace ar
