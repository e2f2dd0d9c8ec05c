// The PTX operations the Lamport kernels use, modelled one to one with the names cuda/ptx.cuh gives them. The
// simulated kernel programs (sim/lamport_kernel.cpp) touch memory through these and nothing else, so the
// simulator's vocabulary is the kernel's. Each operation says below what ordering and atomicity it gives; the
// memory model behind them is described in sim/memory_model.h.
//
// Arithmetic is not an operation here: the kernels' sums are reference::reduce_element on the bits they polled.
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
};
inline constexpr std::array<std::string_view, 9> kOpNames{"st_v4",
                                                          "st_u32",
                                                          "multimem_st_v4",
                                                          "ld_v4",
                                                          "ld_volatile_v4",
                                                          "ld_volatile_u32",
                                                          "red_release_gpu_add_u32",
                                                          "bar_cta_sync",
                                                          "fence_acq_rel_gpu"};
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
  /// 16 bytes land at word `word` of every rank's buffer, each rank and each 8-byte half on its own schedule. Our kernels
  /// never issue it (no multicast on our machines); the simulator offers it as the other writer form.
  void multimem_st_v4(std::uint32_t word, const Pack& value, Ghost ghost);

  /// `ld.global.v4.b32`: plain 16-byte load (the flags, read once at kernel start). Each word may come from a
  /// different moment relative to stores still in flight.
  Pack ld_v4(Address a);

  /// `ld.volatile.global.v4.u32`: the Lamport poll. Not acquire, not atomic as a whole: the four words may be
  /// read at different moments. Returns false while the read is still in progress (a torn read continues at the
  /// CTA's next step); true when all four words are in `words` (with their ghosts for the checker).
  bool ld_volatile_v4(Address a, Pack& words, std::array<Ghost, 4>& ghosts);

  /// `ld.volatile.global.u32`: the spin on the arrival counter (flag word 8).
  std::uint32_t ld_volatile_u32(Address a);

  /// `red.release.gpu.global.add.u32`: the arrival increment, applied atomically at once. Release at GPU
  /// scope: the CTA's earlier stores to its own rank's memory are delivered first; stores to peers are not
  /// covered by GPU scope and stay in flight.
  void red_release_gpu_add_u32(Address a, std::uint32_t value);

  /// `barrier.cta.sync`: the CTA barrier before the arrival. The simulator runs a CTA's threads in program
  /// order, so it orders nothing further; it is modelled for the trace and to keep the vocabulary complete.
  void bar_cta_sync();

  /// `fence.acq_rel.gpu`: after the relaxed counter spin observed every release, makes it an acquire (our
  /// kernels; FlashInfer has none). In this model a load takes its value when it executes and is never
  /// satisfied later (no load buffering), so the fence has nothing left to order: it is modelled for the
  /// vocabulary and the trace. The limitation is the model's, not a proof that the fence is unnecessary.
  void fence_acq_rel_gpu();

 private:
  Simulation& sim_;
  CtaState& cta_;
};

}  // namespace ar::sim
