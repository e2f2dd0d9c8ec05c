// What the two protocols' kernel programs share (sim/flashinfer_kernels.cpp: FlashInfer's; sim/our_kernels.cpp:
// our kernels'): element bits of a pack, the sanitised input pack, slot addresses, the handing of accepted
// packs to the checker, the fold of the polled words and the output check, the clear store, the flag reads and
// the stores that advance the flags; and each protocol's entry points, which sim/cta_program.cpp dispatches to.
// Internal to sim/: included by those three files only (bodies in sim/detail/kernel_support.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "reference/workspace.h"
#include "sim/checker.h"
#include "sim/cta_program.h"

namespace ar::sim::detail {

inline int world(const KernelEnv& env) { return env.config.world_size; }
inline std::int64_t hidden(const KernelEnv& env) { return env.call.shape.hidden; }
inline int elem_bytes(const KernelEnv& env) { return dtype_bytes(env.call.shape.dtype); }
inline std::uint16_t call_tag(const KernelEnv& env) { return static_cast<std::uint16_t>(env.call.index); }
/// The CTA's number in reports and traces: its index, after the all-reduce kernel's CTAs for rmsNormLamport's.
inline int cta_number(const CtaState& c, const KernelEnv& env) {
  const int index = static_cast<int>(c.index);
  return c.kernel == Kernel::kNorm ? index + static_cast<int>(env.call.grids[0].ctas) : index;
}

/// Bit pattern of element `e` of a pack (16-bit types in the low half of the result).
inline std::uint32_t element_bits(const Pack& p, int e, DType t) {
  if (dtype_bytes(t) == 4) return p[static_cast<std::size_t>(e)];
  const std::uint32_t w = p[static_cast<std::size_t>(e / 2)];
  return (e % 2) ? (w >> 16) : (w & 0xFFFFu);
}
inline void set_element_bits(Pack& p, int e, DType t, std::uint32_t bits) {
  if (dtype_bytes(t) == 4) {
    p[static_cast<std::size_t>(e)] = bits;
    return;
  }
  std::uint32_t& w = p[static_cast<std::size_t>(e / 2)];
  w = (e % 2) ? ((w & 0xFFFFu) | (bits << 16)) : ((w & 0xFFFF0000u) | (bits & 0xFFFFu));
}

/// Rank `rank`'s input pack `pack` of token `token`, sanitised (-0 -> +0) unless the mutation skips it.
Pack input_pack(const KernelEnv& env, int rank, std::uint32_t token, std::uint32_t pack);

/// Word index of element offset `element` (in T units) within stage `stage` of buffer `buffer`.
inline std::int64_t stage_word(std::uint32_t buffer, int stage, int stages, std::uint32_t bpb, std::int64_t element,
                               int e_bytes) {
  return (stage_offset_bytes(static_cast<int>(buffer), stage, stages, bpb) + element * e_bytes) / 4;
}

/// A pack of the call: its token and the pack within the token's row.
struct Item {
  std::uint32_t token = 0;
  std::uint32_t pack = 0;
};

/// Slot words in the buffer `c` read from the flags: ONESHOT [t][src] (one stage); TWOSHOT SCATTER [t / W][src]
/// (stage 0) and BROADCAST [t] (stage 1).
std::uint32_t oneshot_slot(const CtaState& c, const KernelEnv& env, Item it, std::uint32_t src);
std::uint32_t scatter_slot(const CtaState& c, const KernelEnv& env, Item it, std::uint32_t src);
std::uint32_t broadcast_slot(const CtaState& c, const KernelEnv& env, Item it);

/// The slot a poll at `c`'s phase reads for `it`: ONESHOT slot [t][c.i] (kPoll), SCATTER [t / W][c.i]
/// (kReduce) or BROADCAST [t] (kGather).
std::uint32_t polled_slot(const CtaState& c, const KernelEnv& env, Item it);

/// That slot for people, and the rank whose data it must hold (for describe_wait).
struct SlotDescription {
  std::string slot;
  int writer = 0;
};
SlotDescription describe_polled_slot(const CtaState& c, const KernelEnv& env, Item it);

inline Ghost data_ghost(const CtaState& c, const KernelEnv& env) {
  return {WriteKind::kData, static_cast<std::uint8_t>(c.rank), call_tag(env)};
}
inline Ghost flags_ghost(const CtaState& c, const KernelEnv& env) {
  return {WriteKind::kFlags, static_cast<std::uint8_t>(c.rank), call_tag(env)};
}

/// Moves to the next phase of the program with the loop registers reset.
void next_pc(CtaState& c);

/// Hands the checker the pack a poll accepted from source `src` (words and ghosts in c.polled[src]), read at
/// `word`: each of its words must be src's data of this call.
void accept_polled(const CtaState& c, const KernelEnv& env, Item it, std::uint32_t src, std::uint32_t word,
                   const char* slot_name);

/// TWOSHOT: the BROADCAST pack `it` read at `word` (c.read_words) was taken as full: the checker checks it is its
/// owner's data of this call, and it is this rank's output (`how`: copied out, or what the fused norm reads).
void accept_broadcast(const CtaState& c, const KernelEnv& env, Item it, std::uint32_t word, const char* how);

/// Folds one pack from the polled words (c.polled, [W][4]): per element, reduce_element over the ranks' bits in
/// the kernel's operand order (rank-order puts `folding_rank` first). `own` supplies the local value when it
/// comes from registers (FlashInfer ONESHOT W <= 8), else nullptr.
Pack fold_pack(const CtaState& c, const KernelEnv& env, const Pack* own, int folding_rank,
               std::vector<std::uint32_t>& operands);

/// The operands of element `e` of (token, pack) in the order `folding_rank` folded them, for a wrong-bits report.
std::string fold_detail(const CtaState& c, const KernelEnv& env, std::uint32_t token, std::uint32_t pack,
                        const Pack* own, int folding_rank, int e);

/// Checks the output elements of (token, pack); on a mismatch adds `detail(e)` (how element e was made).
template <class Detail>
void emit_outputs(const CtaState& c, const KernelEnv& env, std::uint32_t token, std::uint32_t pack, const Pack& result,
                  const char* how, Detail&& detail) {
  const DType t = env.call.shape.dtype;
  for (int e = 0; e < env.call.elements_per_pack; ++e) {
    const std::int64_t element = static_cast<std::int64_t>(token) * hidden(env) +
                                 static_cast<std::int64_t>(pack) * env.call.elements_per_pack + e;
    const std::uint32_t got = element_bits(result, e, t);
    if (!env.checker.on_output(c.rank, cta_number(c, env), env.call.index, element, got, env.call.expected, how)) {
      env.checker.add_detail(detail(e));
      return;
    }
  }
}

/// Folds the polled pack `it` as this CTA's rank does (fold_pack), checks the sum as that rank's output (`how`
/// says what it is), forgets the polled words and returns the sum.
Pack fold_and_check(CtaState& c, const KernelEnv& env, Item it, const Pack* own, const char* how);

/// The two flag-read phases both protocols share: `high` = false loads words 0-3, true loads words 4-7, hands
/// the eight words to the checker and sizes the poll registers. Moves to the next phase.
void read_flags_half(CtaState& c, KernelEnv& env, bool high);

/// Forgets the polled words (so equal program states hash equal in the exhaustive search).
void clear_registers(CtaState& c);

/// One store of a clear: the sentinel into the 16 bytes at byte `byte` of this rank's Lamport buffers.
void store_clear(const CtaState& c, const KernelEnv& env, std::int64_t byte);

/// The flags the launch leaves for the next one, from the flags `c` read (reference advance_flags; two-buffers
/// rotates over two buffers).
LamportFlags next_flags(const CtaState& c, const KernelEnv& env);

/// The stores that advance the flags, in the kernels' order: st_v4 of the new words 0-3 (`high` = false), then
/// 4-7 (true), then st_u32 of the arrival counter back to 0.
void store_flags_half(const CtaState& c, const KernelEnv& env, bool high);
void reset_arrival_counter(const CtaState& c, const KernelEnv& env);

// FlashInfer's programs (sim/flashinfer_kernels.cpp).
std::span<const Phase> flashinfer_program(const KernelEnv& env);
void step_flashinfer(CtaState& c, KernelEnv& env);
/// Advances `c` until it stands at a memory operation (or kDone).
void normalize_flashinfer(CtaState& c, const KernelEnv& env);
/// The pack a CTA at a poll (kPoll, kGather, kReduce before its broadcast) polls; nullopt elsewhere.
std::optional<Item> polled_item_flashinfer(const CtaState& c, const KernelEnv& env);

// FlashInfer's fused calls (sim/flashinfer_fused_kernels.cpp).
/// The program of a fused TWOSHOT grid (its all-reduce kernel or rmsNormLamport); empty for every other grid.
std::span<const Phase> flashinfer_fused_program(const KernelEnv& env);
/// Cluster block 0 has arrived on the cluster barrier and waits for the rest of its cluster.
bool waits_at_cluster_barrier(const CtaState& c, const KernelEnv& env);
/// The arrival of a cluster launch: barrier_cluster_arrive; cluster block 0 then barrier_cluster_wait and one
/// red_release_gpu_add_u32 for the cluster.
void step_cluster_arrive(CtaState& c, KernelEnv& env);
/// The norm-reads-unpolled mutation in rmsNormLamport: each BROADCAST pack is taken as first loaded.
bool reads_unpolled(const KernelEnv& env);

// Our kernels' programs (sim/our_kernels.cpp).
/// Where a lane of our kernels' grid stands during the current round.
struct Grid {
  std::uint32_t threads = 1;          ///< B*T
  std::uint32_t g = 0;                ///< this lane's thread index
  std::uint32_t row_packs = 1;        ///< D/E'
  std::uint32_t t0 = 0, t1 = 0;       ///< the round's tokens
  std::uint32_t first = 0, last = 0;  ///< the round's flat pack indices
};
Grid grid_of(const CtaState& c, const KernelEnv& env);
/// TWOSHOT: the packs of the tokens rank `owner` owns in the round (t % W == owner; rounds start at multiples of
/// W), and the pack at index i of that list, in token order.
std::uint32_t owned_packs(std::uint32_t owner, const KernelEnv& env, const Grid& q);
Item owned_item(std::uint32_t owner, std::uint32_t i, const KernelEnv& env, const Grid& q);
/// The program of a call: ONESHOT, TWOSHOT, or TWOSHOT's direct path (CallContext::takes_direct).
std::span<const Phase> our_program(const CallContext& call);
void step_ours(CtaState& c, KernelEnv& env);
/// Advances `c` until it stands at a memory operation (or kDone).
void normalize_ours(CtaState& c, const KernelEnv& env);
/// The pack a block at a poll (kPoll, kGather, kReduce before its broadcast) polls; nullopt elsewhere.
std::optional<Item> polled_item_ours(const CtaState& c, const KernelEnv& env);

// The direct path of our TWOSHOT (sim/direct_kernels.cpp): the phases only it has.
std::span<const Phase> direct_program();
void step_direct(CtaState& c, KernelEnv& env);
/// normalize_ours for a direct phase: true when `c` stands at its next operation, false when the phase is over.
bool direct_phase_pending(CtaState& c, const KernelEnv& env);
/// The flag a block waits for next, when it stands at a flag wait.
std::optional<WaitTarget> direct_wait(const CtaState& c, const KernelEnv& env);
/// The readers' test of a flag's first word: the value of this call and round (the direct-any-epoch mutation: any
/// word but the initial sentinel).
bool flag_published(std::uint32_t word, std::uint32_t value, Mutation m);

}  // namespace ar::sim::detail
