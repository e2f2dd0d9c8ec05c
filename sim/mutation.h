// The deliberate protocol bugs the simulator must catch: each is one small change to the modelled kernels, named
// after what it breaks. `mnnvl-ar sim --list-mutations` prints kMutationTable; the tests run every entry and
// require a failure whose kind is among `caught_as`. Each entry says whether it applies to FlashInfer's protocol,
// to our kernels' (Protocol::kOurs), and what the same bug is in ours.
//
// Why mutations: a checker that never fails proves nothing. Each entry is a bug that hardware shows only under
// rare timing or rare data; the simulator has to make that timing or data happen and name the failure.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ar::sim {

enum class Mutation : std::uint8_t {
  kNone,
  kTwoBuffers,            ///< rotate over 2 Lamport buffers instead of 3
  kNoInputSanitize,       ///< inputs are stored without mapping -0 to +0
  kNoResultSanitize,      ///< TWOSHOT broadcasts its sum without mapping -0 to +0
  kPollFirstWord,         ///< a poll checks only word 0 of the 16-byte pack for the sentinel
  kFloatSentinelCompare,  ///< the sentinel is tested as a float (v == 0 && signbit) under flush-to-zero
  kNoClear,               ///< the previous launch's buffer is never cleared
  kClearCurrentLayout,    ///< the clear uses this launch's stage layout instead of the recorded one
  kNoArrivalWait,         ///< the flags rotate before every CTA has arrived (read them)
  kRankOrder,             ///< each rank (or TWOSHOT owner) starts its sum with its own value
  kLastArriverOffByOne,   ///< ours: the block that finds itself second to last advances the flags
  // The fused TWOSHOT path (calls marked fused).
  kFusedArUpdatesFlags,    ///< FlashInfer: the all-reduce kernel also arrives and rotates the flags
  kNormReadsUnpolled,      ///< FlashInfer: rmsNormLamport takes each BROADCAST pack as first loaded, no poll
  kNormNoGridSync,         ///< FlashInfer: rmsNormLamport has no griddepcontrol.wait
  kFusedOwnerSkipsOwnRow,  ///< ours: the owner stores its sum into the other ranks' BROADCAST only
  // Our kernels' direct path of large TWOSHOT calls (SimConfig::direct_from_bytes).
  kDirectPlainFlag,        ///< the flag is a plain store: it may land before the rows it publishes
  kDirectNoScatterWait,    ///< the owner reads SCATTER without waiting for the sources' flags
  kDirectNoBroadcastWait,  ///< a rank reads BROADCAST without waiting for the owners' flags
  kDirectAnyEpoch,         ///< a reader takes any flag but the initial one as published, and leaves it unreset
  kDirectPerCallLayout,    ///< each call lays its rows and flags out by its own shape
};

struct MutationInfo {
  Mutation mutation;
  std::string_view name;     ///< as given to --mutation
  std::string_view summary;  ///< one line: what the change is
  std::string_view symptom;  ///< what the simulator reports when it catches it
  bool flashinfer = true;    ///< applies to FlashInfer's protocol
  bool ours = true;          ///< applies to our kernels' protocol
  std::string_view in_ours;  ///< what the change is in our kernels (empty: as summary says)
};

inline constexpr std::array<MutationInfo, 20> kMutationTable{{
    {Mutation::kNone, "none", "the protocol as FlashInfer implements it", "nothing: every search passes"},
    {Mutation::kTwoBuffers, "two-buffers", "rotate over 2 Lamport buffers instead of 3",
     "clear-unread: a rank clears its previous buffer after a faster peer already wrote the next call's data "
     "into it (or the poll then deadlocks)"},
    {Mutation::kNoInputSanitize, "no-input-sanitize", "store inputs without mapping -0 to +0",
     "deadlock: a -0 input (16-bit -0 next to +0, or fp32 -0) is the word 0x80000000, so its slot looks empty "
     "forever"},
    {Mutation::kNoResultSanitize, "no-result-sanitize", "TWOSHOT broadcasts -0 sums unchanged",
     "deadlock or wrong-bits: a -0 sum re-enters the Lamport buffer as the sentinel (W >= 32 only: at W <= 16 "
     "the chunk close A(+0, S) already turns -0 into +0)"},
    {Mutation::kPollFirstWord, "poll-first-word", "a poll checks only word 0 of the pack",
     "stale-read: a torn store's first half arrives, the poll accepts the pack with sentinel words in it"},
    {Mutation::kFloatSentinelCompare, "float-sentinel-compare", "test the sentinel as a float under FTZ",
     "deadlock: a data word whose high half is a negative 16-bit subnormal (or a negative fp32 subnormal) "
     "compares equal to -0.0f, so a written slot looks empty forever"},
    {Mutation::kNoClear, "no-clear", "never clear the previous launch's buffer",
     "overwrite-uncleared or stale-read: three calls later the buffer still holds old data"},
    {Mutation::kClearCurrentLayout, "clear-current-layout",
     "clear with this launch's stage layout instead of the recorded one",
     "clear-unread, out-of-bounds or overwrite-uncleared after a TWOSHOT -> ONESHOT switch: ONESHOT clears "
     "stage 1 at (dirty+1)*BPB, the current buffer, and leaves the old BROADCAST stage dirty"},
    {Mutation::kNoArrivalWait, "no-arrival-wait", "rotate the flags without waiting for every CTA to arrive",
     "flags-mismatch: a CTA that starts late reads the next launch's flags", true, true,
     "block 0 takes the one-block shortcut: advances the flags at once, before the others arrive"},
    {Mutation::kRankOrder, "rank-order", "each rank starts its sum with its own value",
     "wrong-bits: ranks fold in different orders, so their outputs differ from the reference (W >= 4; at W = 2 "
     "the two orders are the same commutative add)"},
    {Mutation::kLastArriverOffByOne, "last-arriver-off-by-one",
     "the second to last block to arrive (old count == blocks - 2) advances the flags",
     "flags-mismatch: the last block to arrive reads flags the second to last one already advanced (ranks of "
     "two or more blocks)",
     false, true, ""},
    {Mutation::kFusedArUpdatesFlags, "fused-ar-updates-flags",
     "fused TWOSHOT: the all-reduce kernel arrives and rotates the flags too",
     "flags-mismatch: rmsNormLamport, running beside the all-reduce kernel (PDL), reads flags the all-reduce "
     "kernel already rotated (or a deadlock: the two kernels' arrivals mix on one counter)",
     true, false, ""},
    {Mutation::kNormReadsUnpolled, "norm-reads-unpolled",
     "fused TWOSHOT: rmsNormLamport reads each BROADCAST pack once, no poll",
     "stale-read: the norm accepts a BROADCAST pack whose owner's sum has not landed (sentinel or old words)", true,
     false, ""},
    {Mutation::kNormNoGridSync, "norm-no-grid-sync", "fused TWOSHOT: rmsNormLamport lacks its griddepcontrol.wait",
     "clear-unread or overwrite-uncleared: the norm completes while the all-reduce kernel still clears the old "
     "BROADCAST stage, the next calls start, and a peer's data lands where that late clear writes",
     true, false, ""},
    {Mutation::kFusedOwnerSkipsOwnRow, "fused-owner-skips-own-row",
     "fused TWOSHOT: the owner skips its own BROADCAST row (stores to the others only)",
     "deadlock: the rank polls BROADCAST for its own tokens too, and nobody writes them", false, true, ""},
    {Mutation::kDirectPlainFlag, "direct-plain-flag", "direct path: the flag is a plain st.u32, not a release",
     "stale-read: the reader sees the flag before the rows it publishes have landed", false, true, ""},
    {Mutation::kDirectNoScatterWait, "direct-no-scatter-wait",
     "direct path: the owner reads SCATTER without waiting for the sources' flags",
     "stale-read: the owner folds a row its source has not written yet (or the previous call's)", false, true, ""},
    {Mutation::kDirectNoBroadcastWait, "direct-no-broadcast-wait",
     "direct path: a rank reads BROADCAST without waiting for the owners' flags",
     "stale-read: the rank takes a BROADCAST row whose sum has not landed (it cannot end the call early and reuse "
     "rows unread: a row it read had landed, so its owner had read what it sums)",
     false, true, ""},
    {Mutation::kDirectAnyEpoch, "direct-any-epoch",
     "direct path: any flag but the initial one counts as published, whatever its call and round, and the reader "
     "leaves it as it found it (no reset)",
     "stale-read: the flag of an earlier round or call lets a reader take rows not written yet", false, true, ""},
    {Mutation::kDirectPerCallLayout, "direct-per-call-layout",
     "direct path: each call lays its rows and flags out from the region's start by its own shape",
     "overwrite-unread, stale-read or deadlock: a rank already in the next call, of another shape, stores a row or "
     "a flag onto a row (or flag) of the call before that a slower peer has not read",
     false, true, ""},
}};

constexpr const MutationInfo& mutation_info(Mutation m) { return kMutationTable[static_cast<std::size_t>(m)]; }
constexpr std::string_view mutation_name(Mutation m) { return mutation_info(m).name; }

/// Parses a mutation name ("none" included); nullopt for an unknown name (whatever protocol it applies to).
std::optional<Mutation> parse_mutation(std::string_view name);

}  // namespace ar::sim
