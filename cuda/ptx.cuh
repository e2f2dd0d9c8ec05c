// Every PTX instruction the kernels and the GPU checks use, each wrapped once, with the ordering it gives.
//
// Where each is modelled: the memory and synchronisation operations of the Lamport protocol under the same
// names in sim/ops.h, so the kernels and the simulator share one vocabulary; the arithmetic in reference/
// (float_bits, float_ops, quant_formats; the MUFU approximations in reference/mufu.h); the shuffles, votes
// and shared-memory and cluster operations of the fused row's reductions by the reference's tree
// (fused_rms_norm), which says what they compute, not how. Hints (prefetches) and the probes' timers and
// flags move no data of a call and have no model. Nothing here, or anywhere in this project, uses multimem
// instructions or NVLink multicast.
#pragma once

#include <cstdint>

#include "cuda/arch.cuh"

namespace ar::cuda::ptx {

/// st.global.v4.u32: a plain (weak) 16-byte store. No ordering with other memory operations; each aligned
/// 32-bit word lands whole, so a poller sees every word either as the old sentinel or as the new value.
__device__ __forceinline__ void st_v4(void* ptr, uint4 v) {
  asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(ptr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
               : "memory");
}

/// ld.volatile.global.v4.u32: a 16-byte poll that bypasses L1 and is re-issued on every call. Relaxed, not
/// acquire: it orders nothing. The memory model promises single-copy atomicity only per 64 bits (in
/// practice per aligned 32-bit word), so callers test all four words.
__device__ __forceinline__ uint4 ld_volatile_v4(const void* ptr) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(ptr)
               : "memory");
  return v;
}

/// ld.global.v4.u32: a plain (weak) 16-byte load of a direct row (TWOSHOT's direct path). It reads what a
/// flag published once the block's thread 0 acquired the flag and a bar.sync followed; never the non-coherent
/// path (ld.global.nc), which may serve a line cached before the flag.
__device__ __forceinline__ uint4 ld_v4(const void* ptr) {
  uint4 v;
  asm volatile("ld.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(ptr)
               : "memory");
  return v;
}

/// st.release.sys.global.u32: a direct flag's publication. Every memory operation of this thread before it
/// (and, through a preceding bar.sync, of its block) is visible to any thread, on any GPU, whose acquire
/// reads the value.
__device__ __forceinline__ void st_release_sys_u32(std::uint32_t* ptr, std::uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(ptr), "r"(v) : "memory");
}

/// ld.acquire.sys.global.u32: a direct flag's wait. Once it reads a published value, this thread (and,
/// through a following bar.sync, its block) sees every store the publisher released with it.
__device__ __forceinline__ std::uint32_t ld_acquire_sys_u32(const std::uint32_t* ptr) {
  std::uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(ptr) : "memory");
  return v;
}

/// ld.volatile.global.u32: a 32-bit poll (the arrival counter, the abort word). Relaxed; orders nothing.
__device__ __forceinline__ std::uint32_t ld_volatile_u32(const std::uint32_t* ptr) {
  std::uint32_t v;
  asm volatile("ld.volatile.global.u32 %0, [%1];" : "=r"(v) : "l"(ptr) : "memory");
  return v;
}

/// st.global.u32: a plain (weak) 32-bit store. No ordering.
__device__ __forceinline__ void st_u32(std::uint32_t* ptr, std::uint32_t v) {
  asm volatile("st.global.u32 [%0], %1;" ::"l"(ptr), "r"(v) : "memory");
}

/// st.relaxed.sys.global.u32: a 32-bit store at system scope. Relaxed: it orders nothing, but it is a
/// strong store, so another GPU (or process) polling the word sees it without any fence. Used only by the
/// peer ping-pong of `mnnvl-ar probe`; the all-reduce kernels (and the simulator) do not use it.
__device__ __forceinline__ void st_relaxed_sys_u32(std::uint32_t* ptr, std::uint32_t v) {
  asm volatile("st.relaxed.sys.global.u32 [%0], %1;" ::"l"(ptr), "r"(v) : "memory");
}

/// red.release.gpu.global.add.u32: atomic add with release semantics at GPU scope (FlashInfer's arrival;
/// kept for the simulator's vocabulary; the kernels arrive with atom_relaxed_gpu_add_u32). Every memory operation
/// this thread did before it (and, through a preceding bar.sync, its block's) happens before any acquire
/// that observes the new count.
__device__ __forceinline__ void red_release_gpu_add_u32(std::uint32_t* ptr, std::uint32_t v) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(ptr), "r"(v) : "memory");
}

/// atom.relaxed.gpu.global.add.u32: atomic add returning the old value; relaxed, so no fence and no stall
/// until the result is used. Orders nothing by itself (see Arrival in cuda/detail/lamport.cuh for why the
/// arrival needs no fence).
__device__ __forceinline__ std::uint32_t atom_relaxed_gpu_add_u32(std::uint32_t* ptr, std::uint32_t v) {
  std::uint32_t old;
  asm volatile("atom.relaxed.gpu.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(ptr), "r"(v) : "memory");
  return old;
}

/// bar.sync 0: block-wide barrier; orders the block's shared- and global-memory operations across it (CTA
/// scope).
__device__ __forceinline__ void bar_cta_sync() { asm volatile("bar.sync 0;" ::: "memory"); }

/// add.ftz.f32 (round to nearest even): subnormal operands and results become zeros of the same sign; any
/// NaN result is the canonical 0x7FFFFFFF. The FlashInfer profile (built with -use_fast_math).
__device__ __forceinline__ float add_ftz_f32(float a, float b) {
  float r;
  asm("add.ftz.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

/// add.rn.f32: IEEE add, round to nearest even, subnormals kept. The ieee profile.
__device__ __forceinline__ float add_rn_f32(float a, float b) {
  float r;
  asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

/// add.rp.f32 / add.rm.f32: IEEE adds rounded up / down, subnormals kept. The invariant profile's exact sums
/// use them for a bound that must not round the wrong way (cuda/detail/exact_fold.cuh); what a kernel outputs
/// is the reference's exact sum, whatever bound it used to get there.
__device__ __forceinline__ float add_rp_f32(float a, float b) {
  float r;
  asm("add.rp.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
__device__ __forceinline__ float add_rm_f32(float a, float b) {
  float r;
  asm("add.rm.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

/// fma.rn.ftz.f32: a * b + c with one rounding; subnormal operands and results flush (the fused norm's sum of
/// squares, and its mean square plus epsilon under fast-math). Model: reference fma_fp32(ftz = true).
__device__ __forceinline__ float fma_rn_ftz_f32(float a, float b, float c) {
  float r;
  asm("fma.rn.ftz.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(a), "f"(b), "f"(c));
  return r;
}

/// fma.rn.f32: IEEE fused multiply-add (the ieee profile). Model: reference fma_fp32(ftz = false).
__device__ __forceinline__ float fma_rn_f32(float a, float b, float c) {
  float r;
  asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(a), "f"(b), "f"(c));
  return r;
}

/// mul.ftz.f32 (round to nearest even; tininess after rounding, then flushed). Model: reference mul_fp32.
__device__ __forceinline__ float mul_ftz_f32(float a, float b) {
  float r;
  asm("mul.ftz.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

/// mul.rn.f32: IEEE multiply (the ieee profile). Model: reference mul_fp32(ftz = false).
__device__ __forceinline__ float mul_rn_f32(float a, float b) {
  float r;
  asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

/// div.rn.f32: IEEE division, what `sum / D` is without fast-math (the ieee profile). Model: reference div_fp32.
__device__ __forceinline__ float div_rn_f32(float a, float b) {
  float r;
  asm("div.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

/// cvt.rn.f32.u32: an integer to fp32, round to nearest even (the norm's float(D)). Model: fp32_from_integer.
__device__ __forceinline__ float cvt_rn_f32_u32(std::uint32_t x) {
  float r;
  asm("cvt.rn.f32.u32 %0, %1;" : "=f"(r) : "r"(x));
  return r;
}

/// add.rn.bf16x2 / add.rn.f16x2 and mul.rn.bf16x2 / mul.rn.f16x2: the 16-bit arithmetic of the fused norm
/// (its residual add, and ONESHOT's square), on the two 16-bit halves of a word at once: each half rounded
/// once to the 16-bit format, subnormals kept, exactly as the one-element instruction would (the packed form
/// halves the instructions of a pack). Operands and result are raw bit patterns. Model: reference
/// add_native / mul_native, element by element.
__device__ __forceinline__ std::uint32_t add_rn_bf16x2(std::uint32_t a, std::uint32_t b) {
  std::uint32_t r;
  asm("add.rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
__device__ __forceinline__ std::uint32_t add_rn_f16x2(std::uint32_t a, std::uint32_t b) {
  std::uint32_t r;
  asm("add.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
__device__ __forceinline__ std::uint32_t mul_rn_bf16x2(std::uint32_t a, std::uint32_t b) {
  std::uint32_t r;
  asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
__device__ __forceinline__ std::uint32_t mul_rn_f16x2(std::uint32_t a, std::uint32_t b) {
  std::uint32_t r;
  asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

/// cp.async.bulk.prefetch.L2.global: start bringing `bytes` (a multiple of 16, from a 16-byte aligned
/// address) into L2, by the SM's bulk copy unit: one instruction for a whole row; loads nothing into
/// registers and waits for nothing (a hint: a line a peer writes later is simply read again).
__device__ __forceinline__ void bulk_prefetch_l2(const void* ptr, std::uint32_t bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(ptr), "r"(bytes));
}

/// prefetch.global.L1: start bringing the line of `ptr` into L1 (a hint; loads nothing into registers).
__device__ __forceinline__ void prefetch_l1(const void* ptr) { asm volatile("prefetch.global.L1 [%0];" ::"l"(ptr)); }

/// %cluster_ctarank and %cluster_nctarank: this block's rank in its cluster, and the cluster's block count
/// (0 and 1 for a launch without clusters).
__device__ __forceinline__ std::uint32_t cluster_ctarank() {
  std::uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
__device__ __forceinline__ std::uint32_t cluster_nctarank() {
  std::uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(r));
  return r;
}

/// barrier.cluster.arrive.release + barrier.cluster.wait.acquire: every thread of every block of the cluster
/// meets here; shared-memory stores made before (into any block of the cluster) are visible after. Every
/// thread of the warp must execute it (.aligned).
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

/// mapa.shared::cluster.u32: the address, in the shared::cluster window, of the word at the address of `local`
/// (this block's shared memory) in the shared memory of block `rank` of the cluster (distributed shared memory).
__device__ __forceinline__ std::uint32_t mapa_shared_cluster(const void* local, std::uint32_t rank) {
  const std::uint32_t address = static_cast<std::uint32_t>(__cvta_generic_to_shared(local));
  std::uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(address), "r"(rank));
  return remote;
}

/// st.shared::cluster.u32: stores `v` at the address of `local` in the shared memory of block `rank` of the
/// cluster (mapa_shared_cluster). Weak; a cluster_sync orders it.
__device__ __forceinline__ void st_shared_cluster_u32(const void* local, std::uint32_t rank, std::uint32_t v) {
  asm volatile("st.shared::cluster.u32 [%0], %1;" ::"r"(mapa_shared_cluster(local, rank)), "r"(v) : "memory");
}

/// shfl.sync.bfly.b32 over the full warp: the value of lane (this lane xor mask). Every lane must call it.
__device__ __forceinline__ float shfl_bfly_f32(float v, int mask) { return __shfl_xor_sync(0xFFFFFFFFu, v, mask); }

__device__ __forceinline__ std::uint32_t shfl_bfly_u32(std::uint32_t v, int mask) {
  return __shfl_xor_sync(0xFFFFFFFFu, v, mask);
}

/// shfl.sync.idx.b32 over the full warp: lane `source`'s value. Every lane must call it.
__device__ __forceinline__ float shfl_idx_f32(float v, int source) { return __shfl_sync(0xFFFFFFFFu, v, source); }

/// shfl_idx_f32 of a 32-bit word.
__device__ __forceinline__ std::uint32_t shfl_idx_u32(std::uint32_t v, int source) {
  return __shfl_sync(0xFFFFFFFFu, v, source);
}

/// vote.sync.ballot.b32 over the full warp: bit k set where lane k passed true. Every lane must call it.
__device__ __forceinline__ std::uint32_t vote_ballot(bool predicate) { return __ballot_sync(0xFFFFFFFFu, predicate); }

/// vote_ballot, counted (popc): how many lanes passed true. Every lane must call it.
__device__ __forceinline__ int vote_count(bool predicate) { return __popc(vote_ballot(predicate)); }

/// bar.red.or.pred (__syncthreads_or): a block barrier that also tells every thread whether any passed true.
__device__ __forceinline__ bool bar_cta_sync_or(bool predicate) { return __syncthreads_or(predicate) != 0; }

/// rsqrt.approx.ftz.f32: MUFU.RSQ, the fused RMSNorm's reciprocal square root. Undocumented to the bit;
/// reference/mufu.h models it and `mnnvl-ar mufu --check` proves the model on the GPU at hand.
__device__ __forceinline__ float rsqrt_approx_ftz_f32(float x) {
  float r;
  asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

/// rsqrt.approx.f32, without FTZ: what rsqrtf is without fast-math. Modelled as rsqrt_approx_ftz_f32 is.
__device__ __forceinline__ float rsqrt_approx_f32(float x) {
  float r;
  asm("rsqrt.approx.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

/// cvt.f64.f32: fp32 to fp64, exact. The fp64 operations below are IEEE (model: the host's double
/// arithmetic); the invariant profile's rsqrt correction and its exact all-reduce sums use them.
__device__ __forceinline__ double cvt_f64_f32(float x) {
  double r;
  asm("cvt.f64.f32 %0, %1;" : "=d"(r) : "f"(x));
  return r;
}

/// mul.rn.f64.
__device__ __forceinline__ double mul_rn_f64(double a, double b) {
  double r;
  asm("mul.rn.f64 %0, %1, %2;" : "=d"(r) : "d"(a), "d"(b));
  return r;
}

/// fma.rn.f64: a * b + c, one rounding (model: std::fma on doubles).
__device__ __forceinline__ double fma_rn_f64(double a, double b, double c) {
  double r;
  asm("fma.rn.f64 %0, %1, %2, %3;" : "=d"(r) : "d"(a), "d"(b), "d"(c));
  return r;
}

/// add.rn.f64: IEEE double add. The invariant profile sums in doubles only where every partial sum is exact
/// (cuda/detail/exact_fold.cuh), so its model is the reference's exact sum (ReductionOrder::exact).
__device__ __forceinline__ double add_rn_f64(double a, double b) {
  double r;
  asm("add.rn.f64 %0, %1, %2;" : "=d"(r) : "d"(a), "d"(b));
  return r;
}

/// cvt.rn.f32.f64: narrow with one RN-even rounding, subnormals kept, overflow to +-Inf, NaN -> 0x7FFFFFFF.
/// Model: reference round_from_double.
__device__ __forceinline__ float cvt_rn_f32_f64(double x) {
  float r;
  asm("cvt.rn.f32.f64 %0, %1;" : "=f"(r) : "d"(x));
  return r;
}

/// cvt.rz.f32.f64: narrow toward zero, subnormals kept (a finite value never becomes Inf). With an
/// inexactness bit it gives round-to-odd, which a later RN-even narrowing to a format at least two bits
/// shorter turns into one correct rounding (cuda/detail/exact_fold.cuh).
__device__ __forceinline__ float cvt_rz_f32_f64(double x) {
  float r;
  asm("cvt.rz.f32.f64 %0, %1;" : "=f"(r) : "d"(x));
  return r;
}

/// rcp.approx.ftz.f32: MUFU.RCP. Modelled as rsqrt_approx_ftz_f32 is.
__device__ __forceinline__ float rcp_approx_ftz_f32(float x) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

/// div.approx.ftz.f32: compiles to MUFU.RCP of b, then FMUL.FTZ by a (the fused RMSNorm's mean square).
__device__ __forceinline__ float div_approx_ftz_f32(float a, float b) {
  float r;
  asm("div.approx.ftz.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

/// cvt.rn.bf16.f32: narrow with round to nearest even; every NaN becomes 0x7FFF; overflow gives +-Inf.
__device__ __forceinline__ std::uint16_t cvt_rn_bf16_f32(float x) {
  std::uint16_t r;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
  return r;
}

/// cvt.rn.f16.f32: narrow with round to nearest even, no FTZ; overflow to +-Inf from 65520.
__device__ __forceinline__ std::uint16_t cvt_rn_f16_f32(float x) {
  std::uint16_t r;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(x));
  return r;
}

/// cvt.rn.bf16x2.f32 / cvt.rn.f16x2.f32: two fp32 narrowed as cvt_rn_bf16_f32 / cvt_rn_f16_f32 narrow each
/// (same rounding, NaN and overflow), `hi` into bits 31..16 and `lo` into bits 15..0: one instruction a word.
__device__ __forceinline__ std::uint32_t cvt_rn_bf16x2_f32(float hi, float lo) {
  std::uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
__device__ __forceinline__ std::uint32_t cvt_rn_f16x2_f32(float hi, float lo) {
  std::uint32_t r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

/// cvt.f32.f16: exact widening (fp16 subnormals are fp32 normals).
__device__ __forceinline__ float cvt_f32_f16(std::uint16_t h) {
  float r;
  asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h));
  return r;
}

/// cvt.rn.satfinite.e4m3x2.f32: two fp32 to FP8 e4m3, `hi` into bits 15..8 and `lo` into bits 7..0 (RN-even,
/// subnormals kept, finite overflow and infinities saturate to +-448, a NaN gives 0x7F). sm_89 and later.
/// Model: reference e4m3_from_fp32 (proven on every fp32 input by `mnnvl-ar mufu --check`).
__device__ __forceinline__ std::uint16_t cvt_rn_satfinite_e4m3x2_f32(float hi, float lo) {
  std::uint16_t r = 0;
#if AR_HAS_FP8_CVT
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
#else
  __trap();  // no FP8 conversion below sm_89 (this project builds for sm_90)
#endif
  return r;
}

/// cvt.rn.f16x2.e4m3x2: two FP8 e4m3 codes (`lo` in bits 7..0) widened exactly to fp16 (e4m3's subnormals are
/// fp16 normals; a NaN code gives a NaN); the low half holds `lo`'s. sm_89 and later. Model: reference
/// fp32_from_e4m3 (one more exact widening to fp32).
__device__ __forceinline__ std::uint32_t cvt_rn_f16x2_e4m3x2(std::uint16_t codes) {
  std::uint32_t r = 0;
#if AR_HAS_FP8_CVT
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(r) : "h"(codes));
#else
  __trap();  // no FP8 conversion below sm_89 (this project builds for sm_90)
#endif
  return r;
}

/// max.ftz.f32 / max.f32, min.ftz.f32 / min.f32: a NaN operand gives the other, two NaNs a NaN; .ftz reads
/// subnormal operands as zeros of their sign. Model: reference quant_max / quant_min.
__device__ __forceinline__ float max_ftz_f32(float a, float b) {
  float r;
  asm("max.ftz.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
__device__ __forceinline__ float max_f32(float a, float b) {
  float r;
  asm("max.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
__device__ __forceinline__ float min_ftz_f32(float a, float b) {
  float r;
  asm("min.ftz.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
__device__ __forceinline__ float min_f32(float a, float b) {
  float r;
  asm("min.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

/// abs.ftz.f32 / abs.f32: the sign cleared (.ftz: a subnormal gives +0). Model: reference quant_abs.
__device__ __forceinline__ float abs_ftz_f32(float a) {
  float r;
  asm("abs.ftz.f32 %0, %1;" : "=f"(r) : "f"(a));
  return r;
}
__device__ __forceinline__ float abs_f32(float a) {
  float r;
  asm("abs.f32 %0, %1;" : "=f"(r) : "f"(a));
  return r;
}

/// max.bf16x2 / max.f16x2 on two 16-bit values a word (no flushing): per half, a NaN operand gives the other,
/// two NaNs the canonical NaN 0x7FFF. Model: reference max_or_min (NVFP4's block amax, __hmax2).
__device__ __forceinline__ std::uint32_t max_bf16x2(std::uint32_t a, std::uint32_t b) {
  std::uint32_t r;
  asm("max.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
__device__ __forceinline__ std::uint32_t max_f16x2(std::uint32_t a, std::uint32_t b) {
  std::uint32_t r;
  asm("max.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

/// redux.sync.max.u32 over the full warp: every lane gets the largest of the 32 values. Every lane must call it.
__device__ __forceinline__ std::uint32_t redux_max_u32(std::uint32_t v) {
  std::uint32_t r;
  asm volatile("redux.sync.max.u32 %0, %1, 0xFFFFFFFF;" : "=r"(r) : "r"(v));
  return r;
}

/// The address of `local` (this block's shared memory) in the shared window, computed where it stands: the
/// empty asm keeps the compiler from recomputing it later (after a barrier, where its special-register read
/// would lie on the path the block waits for).
__device__ __forceinline__ std::uint32_t shared_address_now(const void* local) {
  std::uint32_t address = static_cast<std::uint32_t>(__cvta_generic_to_shared(local));
  asm volatile("" : "+r"(address));
  return address;
}

/// ld.shared.f32 at a shared-window address (shared_address_now). Weak; a barrier orders it.
__device__ __forceinline__ float ld_shared_f32(std::uint32_t address) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(address) : "memory");
  return v;
}

/// red.shared.max.u32: the word of this block's shared memory becomes the larger, unsigned.
/// A block barrier orders it for the other threads of the block.
__device__ __forceinline__ void red_shared_max_u32(std::uint32_t* local, std::uint32_t v) {
  asm volatile("red.shared.max.u32 [%0], %1;" ::"r"(static_cast<std::uint32_t>(__cvta_generic_to_shared(local))),
               "r"(v)
               : "memory");
}

/// red.shared::cluster.max.u32: as red_shared_max_u32, on the word at the address of `local` in the shared
/// memory of block `rank` of the cluster (mapa_shared_cluster). Relaxed; a cluster_sync orders it.
__device__ __forceinline__ void red_shared_cluster_max_u32(const void* local, std::uint32_t rank, std::uint32_t v) {
  asm volatile("red.shared::cluster.max.u32 [%0], %1;" ::"r"(mapa_shared_cluster(local, rank)), "r"(v) : "memory");
}

/// griddepcontrol.wait: block until every prerequisite grid has completed and its memory is visible. A
/// no-op when the launch had no programmatic dependency (PDL off).
__device__ __forceinline__ void griddepcontrol_wait() {
#if AR_HAS_GRIDDEPCONTROL
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/// griddepcontrol.launch_dependents: allow the dependent grid (PDL) to start launching once every block of
/// this grid has issued it or exited. Gives no memory ordering: the dependent's griddepcontrol.wait does.
__device__ __forceinline__ void griddepcontrol_launch_dependents() {
#if AR_HAS_GRIDDEPCONTROL
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/// mov.u64 %globaltimer: nanoseconds of a global clock, for wait budgets. No ordering.
__device__ __forceinline__ std::uint64_t read_globaltimer() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

/// nanosleep.u32: back off a spinning warp for about `ns` nanoseconds. No ordering.
__device__ __forceinline__ void nanosleep(std::uint32_t ns) {
#if AR_HAS_NANOSLEEP
  asm volatile("nanosleep.u32 %0;" ::"r"(ns));
#endif
}

}  // namespace ar::cuda::ptx
