// Device building blocks shared by the ONESHOT and TWOSHOT kernels: element arithmetic on 16-byte packs,
// the Lamport sentinel test, the per-launch flag protocol (read + arrive, clear, advance) and the bounded
// wait that turns a missing peer into an error record instead of a hang.
//
// Internal to cuda/: included by cuda/detail/rank_launch.cuh and the kernels' bodies (cuda/detail/*_impl.cuh) only.
#pragma once

#include <cstdint>

#include "cuda/params.h"
#include "cuda/ptx.cuh"
#include "reference/dtype.h"
#include "reference/workspace.h"

namespace ar::cuda::detail {

inline constexpr int kBlockThreads = 256;
/// At least this many blocks per SM: caps registers at 80 per thread (768 threads per SM). Measured on an
/// H100 against 2 and 4 (128 and 64 registers): 4 spills in the hot loops, 2 leaves too few threads; 3 with
/// kUnroll = 2 moved the most bytes (256 MiB, W = 2: 82% / 92% of the copy bandwidth, ONESHOT / TWOSHOT).
inline constexpr int kMinBlocksPerSm = 3;
/// The invariant profile's kernels (kExact) at two blocks an SM, 128 registers. Measured on an H200 (bf16,
/// graph replay, same run): at 80 registers they spilled in the hot loop and were 0.1-0.3 us slower than
/// flashinfer at 4-64 KiB (W = 2) and 10-19% from 1 MiB; at 128, faster at small sizes. With the exact sum's
/// rare ways out of line (cuda/detail/exact_fold.cuh), ONESHOT at 80 registers was still 0.17-0.39 us slower
/// than at 128 at 4-16 KiB and 2-24% at 1 MiB (W = 2, 8), so both stay at two blocks. The launch plan
/// follows each kernel's own occupancy (cuda/all_reduce.cpp resident_blocks).
inline constexpr int kMinBlocksPerSmExact = 2;
inline constexpr std::uint32_t kEmptyWord = ::ar::kLamportEmptyWord;  // 0x80000000 in every 32-bit word

// ---------------------------------------------------------------------------------------------------------
// Element arithmetic on a pack (16 bytes = four 32-bit words; 8 bf16/fp16 or 4 fp32 elements).

template <DType T>
struct Pack;

/// The 16 bits of element e of a pack of 16-bit elements (element 2i is the low half of word i).
__device__ __forceinline__ std::uint32_t half_bits(const uint4& p, int e) {
  const std::uint32_t w = (&p.x)[e / 2];
  return (e % 2) ? (w >> 16) : (w & 0xFFFFu);
}

template <>
struct Pack<DType::kBf16> {
  static constexpr int kElements = 8;
  /// Element e widened exactly to fp32 (bf16 bits are the high half of the fp32 bits).
  __device__ static float widen(const uint4& p, int e) { return __uint_as_float(half_bits(p, e) << 16); }
  __device__ static std::uint32_t narrow(float x) { return ptx::cvt_rn_bf16_f32(x); }
  /// Elements 2i and 2i + 1 narrowed into word i, in one instruction.
  __device__ static std::uint32_t narrow_word(float lo, float hi) { return ptx::cvt_rn_bf16x2_f32(hi, lo); }
  static constexpr std::uint32_t kNegativeZero = 0x8000u;
};

template <>
struct Pack<DType::kFp16> {
  static constexpr int kElements = 8;
  __device__ static float widen(const uint4& p, int e) {
    return ptx::cvt_f32_f16(static_cast<std::uint16_t>(half_bits(p, e)));
  }
  __device__ static std::uint32_t narrow(float x) { return ptx::cvt_rn_f16_f32(x); }
  __device__ static std::uint32_t narrow_word(float lo, float hi) { return ptx::cvt_rn_f16x2_f32(hi, lo); }
  static constexpr std::uint32_t kNegativeZero = 0x8000u;
};

template <>
struct Pack<DType::kFp32> {
  static constexpr int kElements = 4;
  __device__ static float widen(const uint4& p, int e) { return __uint_as_float((&p.x)[e]); }
  __device__ static std::uint32_t narrow(float x) { return __float_as_uint(x); }
  static constexpr std::uint32_t kNegativeZero = 0x80000000u;
};

/// One element, given by its bits (the low 16 of `bits` for a 16-bit T), widened to fp32 as Pack<T>::widen does.
template <DType T>
__device__ __forceinline__ float widen_element(std::uint32_t bits) {
  return Pack<T>::widen(make_uint4(bits, 0, 0, 0), 0);
}

/// Maps every exact -0 element of the pack to +0 (SPEC section 3: written data never equals the sentinel).
template <DType T>
__device__ __forceinline__ uint4 sanitize_negative_zero(uint4 p) {
  std::uint32_t* w = &p.x;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (T == DType::kFp32) {
      if (w[i] == 0x80000000u) w[i] = 0u;
    } else {
      if ((w[i] & 0xFFFFu) == 0x8000u) w[i] &= 0xFFFF0000u;
      if ((w[i] >> 16) == 0x8000u) w[i] &= 0x0000FFFFu;
    }
  }
  return p;
}

/// Narrows the fp32 accumulators into a pack of T (RN-even, canonical NaN), optionally mapping -0 to +0.
template <DType T>
__device__ __forceinline__ uint4 narrow_pack(const float (&acc)[Pack<T>::kElements], bool sanitize_result) {
  uint4 p;
  std::uint32_t* w = &p.x;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (T == DType::kFp32)
      w[i] = Pack<T>::narrow(acc[i]);
    else
      w[i] = Pack<T>::narrow_word(acc[2 * i], acc[2 * i + 1]);
  }
  return sanitize_result ? sanitize_negative_zero<T>(p) : p;
}

/// A(a, b): the kernel's fp32 add, FTZ (flashinfer profile) or IEEE (ieee profile).
template <bool kFtz>
__device__ __forceinline__ float add_f32(float a, float b) {
  if constexpr (kFtz)
    return ptx::add_ftz_f32(a, b);
  else
    return ptx::add_rn_f32(a, b);
}

/// fma.rn(.ftz).f32 and mul.rn(.ftz).f32 of the profile (the norm's and the quantised outputs').
template <bool kFtz>
__device__ __forceinline__ float fma_f32(float a, float b, float c) {
  if constexpr (kFtz)
    return ptx::fma_rn_ftz_f32(a, b, c);
  else
    return ptx::fma_rn_f32(a, b, c);
}
template <bool kFtz>
__device__ __forceinline__ float mul_f32(float a, float b) {
  if constexpr (kFtz)
    return ptx::mul_ftz_f32(a, b);
  else
    return ptx::mul_rn_f32(a, b);
}

/// A 16-byte slot is empty while ANY of its four 32-bit words still equals the sentinel. Raw integer
/// compares: a float compare under FTZ would take 0x80010000 for -0 and wait forever.
__device__ __forceinline__ bool is_empty(const uint4& v) {
  return (v.x == kEmptyWord) | (v.y == kEmptyWord) | (v.z == kEmptyWord) | (v.w == kEmptyWord);
}

// ---------------------------------------------------------------------------------------------------------
// Bounded waits.

/// The flags as this launch found them.
struct LaunchFlags {
  std::uint32_t current;         ///< w0: this launch's buffer
  std::uint32_t dirty;           ///< w1: the previous launch's buffer, cleared now
  std::uint32_t buffer_bytes;    ///< w2: BPB
  std::uint32_t dirty_stages;    ///< w3
  std::uint32_t dirty_bytes[4];  ///< w4..w7
  std::uint32_t call;            ///< 1-based number of this call on this rank
};

/// Who waits, for the error record. Built where a wait is set up; passed by value to the slow path only.
struct WaitContext {
  const AllReduceParams* p;
  const LaunchFlags* f;  // the block's copy in shared memory
  std::int32_t rank;
  WaitSite site;
  std::uint32_t stage;
};

/// Records the first wait of a launch that gives up (later ones find the abort word set and only return).
static __device__ __noinline__ void record_wait_error(const WaitContext& ctx, std::int32_t peer, std::int64_t token,
                                                      std::uint32_t pack, uint4 seen, std::uint64_t waited) {
  if (atomicCAS(ctx.p->abort_flag, 0u, 1u) != 0u) return;  // another wait recorded first
  volatile WaitError* e = ctx.p->error;
  e->site = static_cast<std::uint32_t>(ctx.site);
  e->rank = ctx.rank;
  e->peer = peer;
  e->call = ctx.f->call;
  e->buffer = ctx.f->current;
  e->stage = ctx.stage;
  e->pack = pack;
  e->token = token;
  e->words[0] = seen.x;
  e->words[1] = seen.y;
  e->words[2] = seen.z;
  e->words[3] = seen.w;
  e->waited_ns = waited;
  __threadfence_system();  // the fields reach host memory before the status word
  e->status = 1u;
  __threadfence_system();
}

/// The budget check of a wait, called after each failed poll. Spins tightly at first, then backs off and
/// every kCheckEvery polls reads the global timer and the launch's abort word. False when the wait must
/// end: the budget is spent (the error is recorded) or another wait of this launch gave up.
class WaitBudget {
 public:
  __device__ bool keep_waiting(const WaitContext& ctx, std::int32_t peer, std::int64_t token, std::uint32_t pack,
                               uint4 seen) {
    ++spins_;
    if (spins_ < kTightSpins) return true;
    ptx::nanosleep(kBackoffNs);
    if ((spins_ & (kCheckEvery - 1)) != 0) return true;
    const std::uint64_t now = ptx::read_globaltimer();
    if (start_ == 0) start_ = now;
    if (ptx::ld_volatile_u32(ctx.p->abort_flag) != 0) return false;  // relaxed poll of the abort word
    // A BROADCAST wait gets twice the budget: its owner is usually stuck on a SCATTER slot (or flag) of the
    // rank that is really missing, and that wait should be the one to report.
    const bool broadcast = ctx.site == WaitSite::kBroadcastSlot || ctx.site == WaitSite::kDirectBroadcastFlag;
    const std::uint64_t budget = broadcast ? 2 * ctx.p->timeout_ns : ctx.p->timeout_ns;
    if (ctx.p->timeout_ns == 0 || now - start_ < budget) return true;
    record_wait_error(ctx, peer, token, pack, seen, now - start_);
    return false;
  }

 private:
  static constexpr std::uint32_t kTightSpins = 64;
  static constexpr std::uint32_t kCheckEvery = 16;  // power of two
  static constexpr std::uint32_t kBackoffNs = 100;
  std::uint64_t start_ = 0;
  std::uint32_t spins_ = 0;
};

/// The slow path of every slot poll, out of line so the hot loops keep no wait state in registers: polls
/// `slot` (relaxed, ld.volatile) until no word is the sentinel and returns it; returns a still-empty value
/// when the wait gave up.
static __device__ __noinline__ uint4 wait_until_full(const std::uint8_t* slot, uint4 seen, WaitContext ctx,
                                                     std::int32_t peer, std::int64_t token, std::uint32_t pack) {
  WaitBudget budget;
  while (is_empty(seen)) {
    if (!budget.keep_waiting(ctx, peer, token, pack, seen)) return seen;
    seen = ptx::ld_volatile_v4(slot);  // relaxed poll; orders nothing
  }
  return seen;
}

/// Polls of an empty slot made inline before the out-of-line wait.
inline constexpr int kInlinePolls = 8;

/// Polls `count` slots (first, first + stride, ...; slot i from source rank first_rank + i): all loads in
/// flight at once, then the empty ones waited for one by one. A slot, once full, keeps its value for the
/// rest of the call (only its owner's next-but-one launch clears it), so this gives the values FlashInfer's
/// "reload the whole chunk until one pass finds it full" gives. False when a wait gave up.
template <int kMaxSlots>
__device__ __forceinline__ bool poll_slots(const std::uint8_t* first, std::uint64_t stride, int count, int first_rank,
                                           std::int64_t token, std::uint32_t pack, uint4 (&v)[kMaxSlots],
                                           const WaitContext& ctx) {
#pragma unroll
  for (int i = 0; i < kMaxSlots; ++i)
    if (i < count) v[i] = ptx::ld_volatile_v4(first + i * stride);  // relaxed poll; orders nothing
#pragma unroll
  for (int i = 0; i < kMaxSlots; ++i) {
    if (i < count && is_empty(v[i])) {
      // A few polls inline (a peer's store is usually a moment away), then the out-of-line wait. (Written out
      // again in the TWOSHOT gather and the fused TWOSHOT row: a helper for the three compiled slower.)
      for (int retry = 0; retry < kInlinePolls && is_empty(v[i]); ++retry)
        v[i] = ptx::ld_volatile_v4(first + i * stride);
      if (is_empty(v[i])) {
        v[i] = wait_until_full(first + i * stride, v[i], ctx, first_rank + i, token, pack);
        if (is_empty(v[i])) return false;
      }
    }
  }
  return true;
}

/// Slots polled together (reference/kernel_schedule.h): their loads are in flight at once; a chunk is polled
/// group by group (the same values as whole-chunk passes, see poll_slots), which bounds the registers a pack needs.
using ::ar::kPollGroup;

/// Polls slots [begin, end) of one pack group by group (poll_slots) and hands each to each(rank, value), in
/// ascending rank order. False when a wait gave up.
template <class Each>
__device__ __forceinline__ bool poll_each_slot(const std::uint8_t* first, std::uint64_t stride, int begin, int end,
                                               std::int64_t token, std::uint32_t pack, const WaitContext& ctx,
                                               Each&& each) {
  for (int g0 = begin; g0 < end; g0 += kPollGroup) {
    const int count = end - g0 < kPollGroup ? end - g0 : kPollGroup;
    uint4 v[kPollGroup];
    if (!poll_slots<kPollGroup>(first + std::uint64_t(g0) * stride, stride, count, g0, token, pack, v, ctx))
      return false;
#pragma unroll
    for (int i = 0; i < kPollGroup; ++i)
      if (i < count) each(g0 + i, v[i]);
  }
  return true;
}

/// fold_slots of W <= kSlots ranks in one chunk (`chunk` 0 or W): one poll group, one fold from +0, and for a
/// chunk of W its add to the outer +0. The same loads, waits and adds as the loops over chunks and groups, without
/// their bookkeeping (64-bit addresses, counters, the chunk sum's copy), which a decode row's block pays on each
/// of its packs while it issues from one SM (docs/results.md). kSlots = W = 2 drops the predicates too.
template <int kSlots, DType T, bool kFtz>
__device__ __forceinline__ bool fold_one_group(const std::uint8_t* first, std::uint64_t stride, int world, int chunk,
                                               std::int64_t token, std::uint32_t pack, float (&acc)[Pack<T>::kElements],
                                               const WaitContext& ctx) {
  constexpr int E = Pack<T>::kElements;
  uint4 v[kSlots];
  if (!poll_slots<kSlots>(first, stride, world, 0, token, pack, v, ctx)) return false;
#pragma unroll
  for (int e = 0; e < E; ++e) acc[e] = 0.0f;
#pragma unroll
  for (int i = 0; i < kSlots; ++i)
    if (i < world) {
#pragma unroll
      for (int e = 0; e < E; ++e) acc[e] = add_f32<kFtz>(acc[e], Pack<T>::widen(v[i], e));
    }
  if (chunk != 0) {
#pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = add_f32<kFtz>(0.0f, acc[e]);
  }
  return true;
}

/// The largest W whose slots fold_slots folds in one poll group (fold_one_group) rather than by its loops over
/// chunks and groups (0: never), by kernel, from what ptxas and an H100 made of each (docs/results.md). The fused
/// kernels have 128 registers a thread and take every W up to kPollGroup. The plain ones have 80
/// (kMinBlocksPerSm): with W up to kPollGroup, ptxas spilled 284 bytes in the plain ONESHOT kernels (76 before),
/// which cost them 18% from 512 KiB; with W = 2 alone they spill what they did, and at W = 2 are 1.4-7% faster at
/// every size from 8 KiB to 32 MiB. The plain TWOSHOT kernels spilled more even with W = 2 alone (176 bytes, 136
/// before) and lost 0.7-2.7% from 2 MiB and at W = 4, so they keep the loops, as the invariant profile's fold
/// (ieee_fold_slots) does.
inline constexpr int kFusedOneGroupMax = kPollGroup;
inline constexpr int kOneShotOneGroupMax = 2;
inline constexpr int kTwoShotOneGroupMax = 0;

/// Folds the W slots of one pack in `chunk` order (ReductionOrder: 0 = one flat fold from +0; K = chunks of
/// K ranks from +0, then an outer fold of chunk sums from +0), in ascending rank order; in one poll group where
/// W <= kOneGroupMax (the same bits).
template <DType T, bool kFtz, int kOneGroupMax = 0>
__device__ __forceinline__ bool fold_slots(const std::uint8_t* first, std::uint64_t stride, int world, int chunk,
                                           std::int64_t token, std::uint32_t pack, float (&acc)[Pack<T>::kElements],
                                           const WaitContext& ctx) {
  constexpr int E = Pack<T>::kElements;
  static_assert(kOneGroupMax == 0 || kOneGroupMax == 2 || kOneGroupMax == kPollGroup, "fold_one_group's sizes");
  if constexpr (kOneGroupMax >= 2) {
    if (chunk == 0 || chunk == world) {
      if (world == 2) return fold_one_group<2, T, kFtz>(first, stride, 2, chunk, token, pack, acc, ctx);
      if constexpr (kOneGroupMax >= kPollGroup) {
        if (world <= kPollGroup)
          return fold_one_group<kPollGroup, T, kFtz>(first, stride, world, chunk, token, pack, acc, ctx);
      }
    }
  }
  const int per_chunk = chunk == 0 ? world : chunk;
#pragma unroll
  for (int e = 0; e < E; ++e) acc[e] = 0.0f;
  for (int c0 = 0; c0 < world; c0 += per_chunk) {
    float part[E];
#pragma unroll
    for (int e = 0; e < E; ++e) part[e] = 0.0f;
    const bool polled = poll_each_slot(first, stride, c0, c0 + per_chunk, token, pack, ctx, [&](int, const uint4& v) {
#pragma unroll
      for (int e = 0; e < E; ++e) part[e] = add_f32<kFtz>(part[e], Pack<T>::widen(v, e));
    });
    if (!polled) return false;
    if (chunk == 0) {
#pragma unroll
      for (int e = 0; e < E; ++e) acc[e] = part[e];
    } else {
#pragma unroll
      for (int e = 0; e < E; ++e) acc[e] = add_f32<kFtz>(acc[e], part[e]);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// The per-launch flag protocol (SPEC 4.2).

/// Phase 1 of both kernels: thread 0 reads the rank's flags (plain loads: the previous launch wrote them and
/// has completed, by the kernel boundary or griddepcontrol.wait) and shares them with the block.
__device__ __forceinline__ const LaunchFlags& read_flags(const std::uint32_t* flags) {
  __shared__ LaunchFlags shared;
  if (threadIdx.x == 0) {
    const uint4 a = *reinterpret_cast<const uint4*>(flags);      // plain load of w0..w3
    const uint4 b = *reinterpret_cast<const uint4*>(flags + 4);  // plain load of w4..w7
    shared = LaunchFlags{a.x, a.y, a.z, a.w, {b.x, b.y, b.z, b.w}, flags[kCallCounterWord] + 1u};
  }
  ptx::bar_cta_sync();
  return shared;  // read-only from here on
}

/// This round's share of clearing one dirty stage (a grid-stride loop over 16-byte packs): the stage's
/// recorded bytes (rounded up to 16) are split evenly over the rounds, so every round clears its part.
__device__ __forceinline__ void clear_dirty_share(std::uint8_t* own_base, const LaunchFlags& f, int stage,
                                                  std::uint32_t round, std::uint32_t rounds, std::uint32_t tid,
                                                  std::uint32_t threads) {
  if (static_cast<std::uint32_t>(stage) >= f.dirty_stages) return;
  const std::uint32_t packs = static_cast<std::uint32_t>((std::uint64_t(f.dirty_bytes[stage]) + 15) / 16);
  const std::uint32_t per_round = (packs + rounds - 1) / rounds;
  const std::uint32_t begin = per_round * round;
  const std::uint32_t end = packs - begin > per_round ? begin + per_round : packs;
  if (begin >= packs) return;
  std::uint8_t* stage_base = own_base + ::ar::stage_offset_bytes(static_cast<int>(f.dirty), stage,
                                                                 static_cast<int>(f.dirty_stages), f.buffer_bytes);
  const uint4 empty{kEmptyWord, kEmptyWord, kEmptyWord, kEmptyWord};
  for (std::uint32_t i = begin + tid; i < end; i += threads) ptx::st_v4(stage_base + std::uint64_t(i) * 16, empty);
}

/// The flag update of every launch (FlashInfer's waitAndUpdate, SPEC 4.2; the same words as reference
/// advance_flags()): rotate to the next buffer, record what the next launch must clear, reset the arrival
/// counter, count the call. Called by thread 0 of exactly one block of the rank, once every block of the
/// rank has read the flags (see Arrival). Nothing in this launch reads the flags again, and the next launch
/// reads them only after this one has completed.
__device__ __forceinline__ void advance_flags(std::uint32_t* flags, const LaunchFlags& f, const AllReduceParams& p) {
  // Plain stores, in this order; the kernel boundary (or the dependent's griddepcontrol.wait) publishes them.
  ptx::st_v4(flags, uint4{(f.current + 1) % ::ar::kLamportBufferCount, f.current, f.buffer_bytes, p.stages});
  ptx::st_v4(flags + 4, uint4{p.clear_bytes[0], p.clear_bytes[1], p.clear_bytes[2], p.clear_bytes[3]});
  ptx::st_u32(flags + kArrivalWord, 0u);
  ptx::st_u32(flags + kCallCounterWord, f.call);
}

/// Who advances a rank's flags, without anyone waiting. FlashInfer's block 0 spins until every block has
/// counted itself on w8 (red.release.gpu) and then updates. Here every block's thread 0 counts itself on w8
/// right after the flags are read, and the block that finds itself last (old count == blocks - 1) advances
/// the flags after its own work: the same condition (every block has read the flags), and no block spins.
///
/// Memory order: the count is a relaxed atomic, issued after bar.sync; by then thread 0's flag loads have
/// completed (their values went through shared memory before the barrier), and a completed load cannot
/// observe a store made later, so the last block's update, made after it saw every count, never reaches an
/// earlier reader. A release add (FlashInfer's) gives the same order, but its fence stalls the arriving warp
/// for about 0.5 us per call (measured on an H100: 4.1 -> 3.6 us for a 16 KiB TWOSHOT). The update's stores
/// are control-dependent on the count, so they are not performed before it. A rank of one block (small
/// calls) needs no count at all: it advances at once.
class Arrival {
 public:
  __device__ Arrival(std::uint32_t* flags, const LaunchFlags& f, const AllReduceParams& p) {
    if (threadIdx.x != 0) return;
    if (gridDim.x == 1)
      advance_flags(flags, f, p);  // the only reader of the flags is this block, and it has read them
    else
      before_ = ptx::atom_relaxed_gpu_add_u32(flags + kArrivalWord, 1u);  // relaxed; result used at the end
  }
  /// At the end of the block's work.
  __device__ void finish(std::uint32_t* flags, const LaunchFlags& f, const AllReduceParams& p) const {
    if (threadIdx.x == 0 && gridDim.x > 1 && before_ == gridDim.x - 1) advance_flags(flags, f, p);
  }

 private:
  std::uint32_t before_ = 0;
};

/// Loads input pack i (read-only for the whole launch, so the non-coherent path is fine).
__device__ __forceinline__ uint4 load_input(const void* input, std::uint32_t i) {
  return __ldg(reinterpret_cast<const uint4*>(input) + i);
}

/// Packs a thread handles per loop step (i, i + threads, ...): their loads are all in flight before the
/// first use. The protocol stores and polls are volatile asm, which the compiler keeps in order, so
/// without this each thread would have one memory operation in flight at a time.
inline constexpr int kUnroll = ::ar::kPacksPerLoopStep;  // reference/kernel_schedule.h

/// Loads and sanitises input packs base + u * threads (those below `last`).
template <DType T>
__device__ __forceinline__ void load_input_batch(const void* input, std::uint32_t base, std::uint32_t threads,
                                                 std::uint32_t last, uint4 (&v)[kUnroll]) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const std::uint32_t i = base + u * threads;
    if (i < last) v[u] = sanitize_negative_zero<T>(load_input(input, i));
  }
}
/// TWOSHOT's gather: the j-th pack, in token order, of the round's tokens that rank `rank` does not own,
/// as a pack index from the round's first token (tokens t0 + row * W + src for every src != rank; a
/// partial last row yields its sources below the round's end first, so counting stops in the right place).
__device__ __forceinline__ std::uint32_t other_token_pack(std::uint32_t j, std::uint32_t row_packs, std::uint32_t world,
                                                          std::uint32_t rank) {
  const std::uint32_t other = j / row_packs, c = j - other * row_packs;
  const std::uint32_t row = other / (world - 1), k = other - row * (world - 1);
  const std::uint32_t src = k < rank ? k : k + 1;
  return (row * world + src) * row_packs + c;
}

__device__ __forceinline__ void store_output(void* output, std::uint32_t i, uint4 v) {
  reinterpret_cast<uint4*>(output)[i] = v;
}

}  // namespace ar::cuda::detail
