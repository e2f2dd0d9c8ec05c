// The PTX operations the Lamport kernels use, modelled one to one with the names cuda/ptx.cuh gives them. The
// simulated kernel programs (sim/flashinfer_kernels.cpp, sim/our_kernels.cpp) touch memory through these and nothing
// else, so the simulator's vocabulary is the kernel's. Each operation says below what ordering and atomicity it
// gives; the memory model behind them is described in sim/memory_model.h.
//
// Who issues what:
// - both protocols: st_v4, st_u32, ld_v4 (the flag read), ld_volatile_v4 (the polls), bar_cta_sync;
// - FlashInfer's protocol only: multimem_st_v4 (its multicast writer; not in cuda/ptx.cuh, our kernels never
//   issue it), red_release_gpu_add_u32 (its arrival) and ld_volatile_u32 (CTA 0's spin on the counter);
// - our kernels only (Protocol::kOurs): atom_relaxed_gpu_add_u32 (the arrival) and ld_u32 (the call counter);
// - FlashInfer's fused calls only: barrier_cluster_arrive and barrier_cluster_wait (the cluster arrival of the
//   fused ONESHOT and of rmsNormLamport's cluster launch), griddepcontrol_launch_dependents and
//   griddepcontrol_wait (the PDL pair between the fused TWOSHOT's two kernels);
// - our kernels' direct path of large TWOSHOT calls only (sim/direct_kernels.cpp): st_release_sys_u32 (a block
//   publishes its stores with a flag) and ld_acquire_sys_u32 (the flag wait); its data goes out with st_v4 and
//   comes in with ld_v4, with no poll, and st_u32 resets each flag a reader took;
// - fence_acq_rel_gpu: only the Arrival::kAfterFlags variant of FlashInfer's protocol (the arrival our kernels
//   were first designed with); neither FlashInfer nor our kernels issue it, and cuda/ptx.cuh does not wrap it.
// ld_u32 and the flag read's ld_v4 are the plain loads the compiler emits for the kernels' C++ flag reads; the
// direct path's row reads are cuda/ptx.cuh's ld_v4. Every memory instruction the all-reduce kernels issue through cuda/ptx.cuh is modelled here except
// ld_volatile_u32's use on our kernels' abort word and the griddepcontrol pair of the plain kernels: the
// simulator has no wait budgets (a wait that can never end is reported as a deadlock instead), and a plain
// kernel's griddepcontrol.wait at its very top is modelled by launching it only once the previous grid has
// completed (sim/simulation.h). Wrappers that only other kernels use (the
// probes') are not modelled. Non-memory instructions (add.ftz/add.rn, cvt, mov %globaltimer,
// nanosleep) need no model: arithmetic is reference::reduce_element on the bits a CTA polled, and time is the
// schedule. Neither do the prefetch hints (prefetch.global.L1 of gamma, cp.async.bulk.prefetch.L2 of a fused
// row's residual and Lamport values): they return nothing, order nothing and change no memory. The kernels'
// input loads (ld.global.nc) and output stores touch only the rank's private tensors, not the protocol's
// memory, so they are not modelled either; nor are the fused rows' reductions (warp shuffles and redux, and
// ld.shared, red.shared.max and the shared::cluster stores of the warp and block sums), which touch only a
// block's or cluster's own shared memory, ordered by its own barriers.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "sim/memory_model.h"

namespace ar::sim {

class Simulation;
struct CtaState;

/// One 16-byte vector as four 32-bit words (word 0 at the lowest address).
using Pack = std::array<std::uint32_t, 4>;

/// A word in one rank's memory (three Lamport buffers, then the flags).
struct Address {
  int rank = 0;
  std::uint32_t word = 0;
};

/// The modelled operations, for traces and counts.
enum class Op : std::uint8_t {
  kStV4,
  kStU32,
  kMultimemStV4,
  kLdV4,
  kLdVolatileV4,
  kLdVolatileU32,
  kRedReleaseGpuAddU32,
  kBarCtaSync,
  kFenceAcqRelGpu,
  kAtomRelaxedGpuAddU32,
  kLdU32,
  kBarrierClusterArrive,
  kBarrierClusterWait,
  kGriddepcontrolLaunchDependents,
  kGriddepcontrolWait,
  kStReleaseSysU32,
  kLdAcquireSysU32,
};
inline constexpr std::array<std::string_view, 17> kOpNames{"st_v4",
                                                           "st_u32",
                                                           "multimem_st_v4",
                                                           "ld_v4",
                                                           "ld_volatile_v4",
                                                           "ld_volatile_u32",
                                                           "red_release_gpu_add_u32",
                                                           "bar_cta_sync",
                                                           "fence_acq_rel_gpu",
                                                           "atom_relaxed_gpu_add_u32",
                                                           "ld_u32",
                                                           "barrier_cluster_arrive",
                                                           "barrier_cluster_wait",
                                                           "griddepcontrol_launch_dependents",
                                                           "griddepcontrol_wait",
                                                           "st_release_sys_u32",
                                                           "ld_acquire_sys_u32"};
constexpr std::string_view op_name(Op op) { return kOpNames[static_cast<std::size_t>(op)]; }

/// The operations as one CTA issues them. Cheap to construct per step; `ghost` arguments tell the checker what
/// a store is (data of which call, a clear, a flag update) and are invisible to every kernel.
class Ops {
 public:
  Ops(Simulation& sim, CtaState& cta) : sim_(sim), cta_(cta) {}

  /// `st.global.v4.b32`: plain 16-byte store, aligned. No ordering with any other access. Becomes visible per
  /// aligned 8-byte half, each half on its own (the only single-copy atomicity PTX guarantees for it), so a
  /// reader may see one half and not the other.
  void st_v4(Address a, const Pack& value, Ghost ghost);

  /// `st.global.b32`: plain 4-byte store; one word, visible atomically, no ordering.
  void st_u32(Address a, std::uint32_t value, Ghost ghost);

  /// FlashInfer's multicast vector store (a `multimem` st.global.v4.f32 through the multicast address): the same
  /// 16 bytes land at word `word` of every rank's buffer, each rank and each 8-byte half on its own schedule. Our
  /// kernels never issue it (no multicast on our machines); the simulator offers it as the other writer form.
  void multimem_st_v4(std::uint32_t word, const Pack& value, Ghost ghost);

  /// `ld.global.v4.b32`: plain 16-byte load (the flags, read once at kernel start). Each word may come from a
  /// different moment relative to stores still in flight.
  Pack ld_v4(Address a);
  /// The same load with the words' provenance for the checker: the direct path's data reads, made after the
  /// flag that publishes them (ld_acquire_sys_u32) and not polled.
  Pack ld_v4(Address a, std::array<Ghost, 4>& ghosts);

  /// `ld.volatile.global.v4.u32`: the Lamport poll. Not acquire, not atomic as a whole: the four words may be
  /// read at different moments. Returns false while the read is still in progress (a torn read continues at the
  /// CTA's next step); true when all four words are in `words` (with their ghosts for the checker).
  bool ld_volatile_v4(Address a, Pack& words, std::array<Ghost, 4>& ghosts);

  /// `ld.global.u32`: plain 4-byte load (our kernels' read of the call counter, flag word 12, with the other
  /// flags). Takes its value when it executes, as every load here.
  std::uint32_t ld_u32(Address a);

  /// `ld.volatile.global.u32`: the spin on the arrival counter (flag word 8; FlashInfer's protocol).
  std::uint32_t ld_volatile_u32(Address a);

  /// `red.release.gpu.global.add.u32`: the arrival increment, applied atomically at once. Release at GPU
  /// scope: the CTA's earlier stores to its own rank's memory are delivered first; stores to peers are not
  /// covered by GPU scope and stay in flight.
  void red_release_gpu_add_u32(Address a, std::uint32_t value);

  /// `atom.relaxed.gpu.global.add.u32`: our kernels' arrival; returns the value before the add. Atomic: the
  /// read-modify-write is indivisible (stores to the word still in flight may be seen first, as the schedule
  /// decides, or land after it), so of B arrivals on a counter at 0 exactly one returns B - 1. Relaxed: it
  /// publishes nothing (unlike red_release_gpu_add_u32, the CTA's stores stay in flight). The ordering the
  /// kernels rely on is that their flag loads completed before it was issued (their values went through shared
  /// memory and bar.sync): in this model every load takes its value when it executes, so a load before the add
  /// in program order can never observe a store made after the add. The model assumes that order; it does not
  /// derive it from the PTX memory model.
  std::uint32_t atom_relaxed_gpu_add_u32(Address a, std::uint32_t value);

  /// `st.release.sys.global.u32`: the direct path's flag. Release at system scope, after the bar.sync that puts
  /// every thread's stores before thread 0's: every store the CTA issued before it, to any rank, is delivered
  /// first; the flag itself is then in flight like any store.
  void st_release_sys_u32(Address a, std::uint32_t value, Ghost ghost);

  /// `ld.acquire.sys.global.u32`: the direct path's flag wait. Acquire: the loads after it (the block's, after
  /// bar.sync) see what the release before the flag published; here every load takes its value when it
  /// executes, so they are ordered after it already.
  std::uint32_t ld_acquire_sys_u32(Address a);

  /// `barrier.cta.sync`: the CTA barrier before the arrival (and before the direct path's flag stores). The
  /// simulator runs a CTA's threads in program
  /// order, so it orders nothing further; it is modelled for the trace and to keep the vocabulary complete.
  void bar_cta_sync();

  /// `barrier.cluster.arrive` (release): this block of a cluster launch has arrived; it does not wait. Every
  /// block of FlashInfer's cluster-mode kernels arrives before the counter increment (SPEC 4.2).
  void barrier_cluster_arrive();

  /// `barrier.cluster.wait` (acquire), by cluster block 0 only, once every block of its cluster has arrived
  /// (the simulator blocks it until then). With the release of their arrivals and the cumulative release of
  /// the increment that follows, the other blocks' stores to their own rank are published with block 0's.
  void barrier_cluster_wait();

  /// `griddepcontrol.launch_dependents`: once every CTA of the grid has issued it (or exited), the next grid of
  /// the stream may be launched (PDL). It publishes nothing.
  void griddepcontrol_launch_dependents();

  /// `griddepcontrol.wait`: returns once the previous grid of the stream has completed, all its stores visible
  /// (the simulator blocks the CTA until then, and delivers the grid's stores when it completes).
  void griddepcontrol_wait();

  /// `fence.acq_rel.gpu`: after the relaxed counter spin observed every release, makes it an acquire (the
  /// Arrival::kAfterFlags variant only; FlashInfer and the current kernels have none). In this model a load takes its
  /// value when it executes and is never satisfied later (no load buffering), so the fence has nothing left to order:
  /// it is modelled for the vocabulary and the trace. The limitation is the model's, not a proof that the fence is
  /// unnecessary.
  void fence_acq_rel_gpu();

 private:
  /// A 4-byte load as every load here: stores in flight may be seen first (the schedule decides), then the word
  /// is taken at once. The three u32 loads differ only in what they order, which this model need not act on.
  std::uint32_t load_u32(Address a, Op op);

  Simulation& sim_;
  CtaState& cta_;
};

}  // namespace ar::sim
