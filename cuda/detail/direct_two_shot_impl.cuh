// Body of two_shot_direct: TWOSHOT's direct path for large plain calls (docs/large-messages.md; the simulator's
// model of it is sim/direct_kernels.cpp, phase for phase). The same owners and the same fold as
// two_shot_rs_st_ag, so the same bits; but the rows go as plain stores into each rank's direct region
// (reference DirectRegion), and one flag per (kind, source, block) publishes a block's round, so no data word is
// polled and nothing is cleared.
//
// Per round, the packs of the tokens rank o owns (t % W == o) form o's list, in token order; thread
// g = blockIdx.x * blockDim.x + threadIdx.x takes the items g, g + B*T, ... of every list, on every rank. So block
// b reads only what block b of each other rank wrote, and every rank must launch the same grid (the plan follows
// the shape and the device only).
//
// Internal to cuda/: included by cuda/two_shot.cu only.
#pragma once

#include "cuda/detail/two_shot_steps.cuh"

namespace ar::cuda::detail {

/// Packs a thread handles per step of the reduce loop (their loads in flight together); 4 spilled.
inline constexpr int kDirectUnroll = 2;
/// Packs a thread handles per step of the scatter and gather loops, which only copy.
inline constexpr int kDirectCopyUnroll = 4;

/// Blocks an SM of the direct kernels: 128 registers a thread. At 80 (kMinBlocksPerSm) every 16-bit kernel
/// spilled (the outer fold of W > 16 keeps a second set of accumulators live), and a streaming kernel needs
/// loads in flight more than threads.
inline constexpr int kDirectMinBlocksPerSm = 2;

/// Sources whose rows fold_direct_rows loads at once for each pack of a step (kDirectUnroll packs): at 80 registers,
/// a group of kPollGroup = 4 spilled.
inline constexpr int kDirectGroup = 2;

/// The direct regions of a launch and the offsets in them (reference DirectRegion; sim/direct_kernels.cpp
/// scatter_row, broadcast_row, flag_of).
struct DirectRows {
  const AllReduceParams& p;
  std::uint32_t world, rank, row_packs;

  __device__ __forceinline__ std::uint8_t* region(std::uint32_t r) const {
    return reinterpret_cast<std::uint8_t*>(p.peers.base[r]) + p.direct_offset;
  }
  /// SCATTER row [t / W][source], pack c (the Lamport SCATTER stage's layout).
  __device__ __forceinline__ std::uint64_t scatter(std::uint32_t t, std::uint32_t source, std::uint32_t c) const {
    return ((std::uint64_t(t / world) * world + source) * row_packs + c) * 16;
  }
  /// BROADCAST row t, pack c.
  __device__ __forceinline__ std::uint64_t broadcast(std::uint32_t t, std::uint32_t c) const {
    return p.direct_broadcast + (std::uint64_t(t) * row_packs + c) * 16;
  }
  /// The flag that block `block` of rank `source` publishes `kind` with, in `reader`'s region (its first word).
  __device__ __forceinline__ std::uint32_t* flag(std::uint32_t reader, DirectFlag kind, std::uint32_t source,
                                                 std::uint32_t block) const {
    const std::uint64_t index = (std::uint64_t(static_cast<int>(kind)) * world + source) * p.direct_max_blocks + block;
    return reinterpret_cast<std::uint32_t*>(region(reader) + p.direct_flags + index * 16);
  }
};

/// The packs of `owner`'s list in the round (the tokens t0 + owner, t0 + owner + W, ... below t1).
__device__ __forceinline__ std::uint32_t list_packs(const RankLaunch& my, const RoundRange& in, std::uint32_t owner) {
  return in.t1 - in.t0 > owner ? (in.t1 - in.t0 - owner + my.world - 1) / my.world * my.row_packs : 0;
}
/// Item i of `owner`'s list: its token and its pack in the row.
__device__ __forceinline__ void list_item(const RankLaunch& my, const RoundRange& in, std::uint32_t owner,
                                          std::uint32_t i, std::uint32_t& t, std::uint32_t& c) {
  const std::uint32_t j = i / my.row_packs;
  c = i - j * my.row_packs;
  t = in.t0 + owner + j * my.world;
}

/// Calls each(u, t, c) for each of this thread's items of `owner`'s list, kSteps of them a step: first(u, t, c)
/// for every item of the step (to put its loads in flight), then each(u, t, c).
template <int kSteps, class First, class Each>
__device__ __forceinline__ void for_each_list_item(const RankLaunch& my, const RoundRange& in, std::uint32_t owner,
                                                   First&& first, Each&& each) {
  const std::uint32_t n = list_packs(my, in, owner);
  for (std::uint32_t base = my.tid; base < n; base += kSteps * my.threads) {
    std::uint32_t t[kSteps], c[kSteps];
#pragma unroll
    for (int u = 0; u < kSteps; ++u)
      if (base + u * my.threads < n) {
        list_item(my, in, owner, base + u * my.threads, t[u], c[u]);
        first(u, t[u], c[u]);
      }
#pragma unroll
    for (int u = 0; u < kSteps; ++u)
      if (base + u * my.threads < n) each(u, t[u], c[u]);
  }
}

/// The out-of-line part of a flag wait: loads the flag (acquire) until it holds `value`. False when the wait
/// gave up (its budget spent, recorded, or another wait of the launch gave up).
static __device__ __noinline__ bool wait_for_flag(const std::uint32_t* flag, std::uint32_t seen, std::uint32_t value,
                                                  WaitContext ctx, std::int32_t peer, std::uint32_t round) {
  WaitBudget budget;
  while (seen != value) {
    if (!budget.keep_waiting(ctx, peer, round, blockIdx.x, uint4{seen, value, 0u, 0u})) return false;
    seen = ptx::ld_acquire_sys_u32(flag);
  }
  return true;
}

/// A block's publication of its round: the barrier puts every thread's stores before thread 0's release, which
/// stores `value` into the flag (kind, me, block) of every other rank.
__device__ __forceinline__ void publish_round(const DirectRows& d, DirectFlag kind, std::uint32_t value) {
  ptx::bar_cta_sync();
  if (threadIdx.x != 0) return;
  for (std::uint32_t q = 0; q < d.world; ++q)
    if (q != d.rank) ptx::st_release_sys_u32(d.flag(q, kind, d.rank, blockIdx.x), value);
}

/// Thread 0 acquires the flag (kind, q, block) of every other rank q once it holds `value`, and resets it to the
/// initial fill (a plain store: the block's next release, or the end of the launch, publishes it before q can
/// store the flag again, which q does only after that release). So a flag holds a value only while it is
/// published and unread, and no stale value can pass for a new one, however old. The barrier after it lets every
/// thread of the block read what they published. False (for every thread) when a wait gave up.
__device__ __forceinline__ bool await_round(const DirectRows& d, DirectFlag kind, std::uint32_t value,
                                            const WaitContext& ctx, std::uint32_t round) {
  bool ok = true;
  if (threadIdx.x == 0)
    for (std::uint32_t q = 0; q < d.world && ok; ++q) {
      if (q == d.rank) continue;
      std::uint32_t* flag = d.flag(d.rank, kind, q, blockIdx.x);
      const std::uint32_t seen = ptx::ld_acquire_sys_u32(flag);
      if (seen != value) ok = wait_for_flag(flag, seen, value, ctx, static_cast<std::int32_t>(q), round);
      if (ok) ptx::st_u32(flag, kEmptyWord);
    }
  return !ptx::bar_cta_sync_or(!ok);
}

/// Folds sources [begin, end) of up to kDirectUnroll packs of my list into `part` (from +0, rank order): my own values
/// from `own`, every other source's from its SCATTER row (plain loads: the flags published them). The loads of a
/// group of sources are in flight for every pack of the step at once.
template <DType T, bool kFtz>
__device__ __forceinline__ void fold_direct_sources(const DirectRows& d, const std::uint32_t (&t)[kDirectUnroll],
                                                    const std::uint32_t (&c)[kDirectUnroll], int count,
                                                    const uint4 (&own)[kDirectUnroll], int begin, int end,
                                                    float (&part)[kDirectUnroll][Pack<T>::kElements]) {
  constexpr int E = Pack<T>::kElements;
  const int me = static_cast<int>(d.rank);
  const std::uint8_t* region = d.region(d.rank);
#pragma unroll
  for (int u = 0; u < kDirectUnroll; ++u)
#pragma unroll
    for (int e = 0; e < E; ++e) part[u][e] = 0.0f;
  for (int g0 = begin; g0 < end; g0 += kDirectGroup) {
    const int n = end - g0 < kDirectGroup ? end - g0 : kDirectGroup;
    uint4 v[kDirectUnroll][kDirectGroup];
#pragma unroll
    for (int u = 0; u < kDirectUnroll; ++u)
#pragma unroll
      for (int i = 0; i < kDirectGroup; ++i)
        if (u < count && i < n)
          v[u][i] =
              g0 + i == me ? own[u] : ptx::ld_v4(region + d.scatter(t[u], static_cast<std::uint32_t>(g0 + i), c[u]));
#pragma unroll
    for (int u = 0; u < kDirectUnroll; ++u)
#pragma unroll
      for (int i = 0; i < kDirectGroup; ++i)
        if (u < count && i < n)
#pragma unroll
          for (int e = 0; e < E; ++e) part[u][e] = add_f32<kFtz>(part[u][e], Pack<T>::widen(v[u][i], e));
  }
}

/// The fold of up to kDirectUnroll packs of my list in rank order, exactly as fold_slots folds a Lamport row
/// (ReductionOrder chunk: 0 = one flat fold; K = chunks of K ranks from +0, then their sums from +0).
template <DType T, bool kFtz>
__device__ __forceinline__ void fold_direct_rows(const DirectRows& d, const std::uint32_t (&t)[kDirectUnroll],
                                                 const std::uint32_t (&c)[kDirectUnroll], int count,
                                                 const uint4 (&own)[kDirectUnroll],
                                                 float (&acc)[kDirectUnroll][Pack<T>::kElements]) {
  constexpr int E = Pack<T>::kElements;
  const int world = static_cast<int>(d.world), chunk = d.p.chunk;
  const int per_chunk = chunk == 0 ? world : chunk;
  // The first chunk straight into `acc` (the outer fold's first add is +0 + chunk): for W <= 16, the only one,
  // so no second set of accumulators is live (at 80 registers one spilled).
  fold_direct_sources<T, kFtz>(d, t, c, count, own, 0, per_chunk, acc);
  if (chunk == 0) return;
#pragma unroll
  for (int u = 0; u < kDirectUnroll; ++u)
#pragma unroll
    for (int e = 0; e < E; ++e) acc[u][e] = add_f32<kFtz>(0.0f, acc[u][e]);
  for (int c0 = per_chunk; c0 < world; c0 += per_chunk) {
    float part[kDirectUnroll][E];
    fold_direct_sources<T, kFtz>(d, t, c, count, own, c0, c0 + per_chunk, part);
#pragma unroll
    for (int u = 0; u < kDirectUnroll; ++u)
#pragma unroll
      for (int e = 0; e < E; ++e) acc[u][e] = add_f32<kFtz>(acc[u][e], part[u][e]);
  }
}

template <DType T, bool kFtz, bool kExact>
__global__ void __launch_bounds__(kBlockThreads, kDirectMinBlocksPerSm)
    two_shot_direct(const __grid_constant__ AllReduceParams p) {
  // Phases 0 and 1 as every kernel: wait for the previous launch (PDL: no store of this launch may come
  // before it completed, docs/large-messages.md), read this rank's flags and arrive.
  uint4 unused[kUnroll];
  const RankLaunch my = begin_rank_launch<T>(p, unused, /*chunk=*/0, /*preload=*/false);
  const DirectRows d{p, my.world, my.rank, my.row_packs};
  std::uint8_t* const lamport = my.own_base();
  const WaitContext scatter_waits{&p, &my.f, my.slot.rank, WaitSite::kDirectScatterFlag, /*stage=*/0};
  const WaitContext broadcast_waits{&p, &my.f, my.slot.rank, WaitSite::kDirectBroadcastFlag, /*stage=*/1};

  for (std::uint32_t round = 0; round < my.rounds; ++round) {
    const RoundRange in = my.round_range(round);  // in.t0 % W == 0
    const std::uint32_t value = ::ar::direct_flag_value(my.f.call, round);

    // 2. Scatter: my packs of each other owner's list into its SCATTER row [t / W][me].
    for (std::uint32_t o = 0; o < my.world; ++o) {
      if (o == my.rank) continue;
      uint4 v[kDirectCopyUnroll];
      for_each_list_item<kDirectCopyUnroll>(
          my, in, o,
          [&](int u, std::uint32_t t, std::uint32_t c) {
            v[u] = sanitize_negative_zero<T>(load_input(my.slot.input, t * my.row_packs + c));
          },
          [&](int u, std::uint32_t t, std::uint32_t c) { ptx::st_v4(d.region(o) + d.scatter(t, my.rank, c), v[u]); });
    }
    // 3. This round's share of the Lamport stages a previous launch left dirty (a direct launch records none).
    clear_dirty_share(lamport, my.f, 0, round, my.rounds, my.tid, my.threads);
    clear_dirty_share(lamport, my.f, 1, round, my.rounds, my.tid, my.threads);
    // 4. Publish the scatter.
    publish_round(d, DirectFlag::kScatter, value);

    // 5. Reduce: once every source's scatter is published, fold each pack of my list from the W - 1 SCATTER
    // rows and my own input, in rank order; write it out and into every other rank's BROADCAST row.
    if (!await_round(d, DirectFlag::kScatter, value, scatter_waits, round)) return;  // recorded: end the launch
    {
      uint4 own[kDirectUnroll];
      std::uint32_t ts[kDirectUnroll], cs[kDirectUnroll];
      int count = 0;
      const auto deliver = [&](std::uint32_t t, std::uint32_t c, const uint4& sum) {
        store_output(my.slot.output, t * my.row_packs + c, sum);
        for (std::uint32_t q = 0; q < my.world; ++q)
          if (q != my.rank) ptx::st_v4(d.region(q) + d.broadcast(t, c), sum);
      };
      for_each_list_item<kDirectUnroll>(
          my, in, my.rank,
          [&](int u, std::uint32_t t, std::uint32_t c) {
            own[u] = sanitize_negative_zero<T>(load_input(my.slot.input, t * my.row_packs + c));
            ts[u] = t;
            cs[u] = c;
            count = u + 1;
          },
          [&](int u, std::uint32_t t, std::uint32_t c) {
            if constexpr (kExact) {
              // The invariant fold reads its W values as a Lamport row's slots (first, stride): my own pack goes
              // into my own SCATTER row first, written and read by this thread alone.
              std::uint8_t* row = d.region(my.rank) + d.scatter(t, 0, c);
              ptx::st_v4(row + std::uint64_t(my.rank) * my.slot_stride, own[u]);
              uint4 sum;
              if (!invariant_fold_slots<T>(row, my.slot_stride, static_cast<int>(my.world), t, c, sum, scatter_waits))
                return;  // cannot happen: every row is full (a data word is never the sentinel)
              deliver(t, c, sum);
            } else {
              if (u != 0) return;  // the first item folds the whole step
              float acc[kDirectUnroll][Pack<T>::kElements];
              fold_direct_rows<T, kFtz>(d, ts, cs, count, own, acc);
#pragma unroll
              for (int k = 0; k < kDirectUnroll; ++k)
                if (k < count) deliver(ts[k], cs[k], narrow_pack<T>(acc[k], p.sanitize_result != 0));
            }
          });
    }
    // 6. Publish the broadcast.
    publish_round(d, DirectFlag::kBroadcast, value);

    // 7. Gather: once every other owner's broadcast is published, copy its rows out.
    if (!await_round(d, DirectFlag::kBroadcast, value, broadcast_waits, round)) return;
    for (std::uint32_t o = 0; o < my.world; ++o) {
      if (o == my.rank) continue;
      uint4 v[kDirectCopyUnroll];
      for_each_list_item<kDirectCopyUnroll>(
          my, in, o,
          [&](int u, std::uint32_t t, std::uint32_t c) { v[u] = ptx::ld_v4(d.region(my.rank) + d.broadcast(t, c)); },
          [&](int u, std::uint32_t t, std::uint32_t c) { store_output(my.slot.output, t * my.row_packs + c, v[u]); });
    }
  }

  // The last block of the rank to arrive advances the flags.
  my.finish();
}

}  // namespace ar::cuda::detail
