// What one simulation runs: the world size, the call sequence on one workspace, the Lamport buffer size (BPB,
// a parameter as SPEC section 2 says), the protocol (FlashInfer's or our kernels'), the CTA geometry, the writer
// form and the mutation. Built and validated by make_sim_config (plus protocol_conflict for the fields set after
// it); the harness and the tests construct it, Simulation and the search read it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "reference/call_sequence.h"
#include "reference/fused_launch.h"
#include "reference/reduction_order.h"
#include "reference/workspace.h"
#include "sim/mutation.h"

namespace ar::sim {

/// How a pack reaches the other ranks' buffers.
enum class Writer : std::uint8_t {
  kUnicast,    ///< ours: W plain st_v4 stores, one per rank, at the same offset
  kMulticast,  ///< FlashInfer's: one multimem_st_v4 to the multicast address
};
inline constexpr std::array<std::string_view, 2> kWriterNames{"unicast", "multicast"};
constexpr std::string_view writer_name(Writer w) { return kWriterNames[static_cast<std::size_t>(w)]; }

/// Which kernels' protocol the CTAs run.
enum class Protocol : std::uint8_t {
  /// FlashInfer's (SPEC sections 4-5): a CTA per (token, packs), red.release arrival, grid thread 0 spins on the
  /// counter, rotates the flags and resets the counter; polls reload a whole pass (chunk) until it is clean.
  kFlashInfer,
  /// Our kernels' (cuda/ one_shot_st_ld_r, two_shot_rs_st_ag; docs/kernels.md, the departures from
  /// FlashInfer): a grid of blocks striding over flat pack indices in rounds, a relaxed atomic arrival right after the flag read, the
  /// last block to arrive advances the flags after its work (a one-block rank at once), each slot polled until
  /// full in groups, clears after the polls, and the call counter in flag word 12. Unicast stores only.
  kOurs,
};
inline constexpr std::array<std::string_view, 2> kProtocolNames{"flashinfer", "ours"};
constexpr std::string_view protocol_name(Protocol p) { return kProtocolNames[static_cast<std::size_t>(p)]; }
std::optional<Protocol> parse_protocol(std::string_view name);

/// Where a CTA arrives on the counter (flag word 8); FlashInfer's protocol only.
enum class Arrival : std::uint8_t {
  kFlashInfer,  ///< FlashInfer (SPEC 4.2): ONESHOT after its store, TWOSHOT after both clears
  /// Right after reading the flags, red.release, and an acquire fence after CTA 0's counter spin: the arrival our
  /// kernels were first designed with, kept as a variant of FlashInfer's protocol. They arrive as Protocol::kOurs.
  kAfterFlags,
};
inline constexpr std::array<std::string_view, 2> kArrivalNames{"flashinfer", "after-flags"};
constexpr std::string_view arrival_name(Arrival a) { return kArrivalNames[static_cast<std::size_t>(a)]; }

struct SimConfig {
  int world_size = 2;
  std::vector<ResolvedCall> calls;
  std::int64_t buffer_bytes = 0;   ///< BPB: bytes per Lamport buffer, a multiple of 32
  int packs_per_cta = 1;           ///< threads per CTA, one 16-byte pack each (FlashInfer's fused norm launches
                                   ///< take their own shape, reference/fused_launch.h)
  int sm_count = kDefaultSmCount;  ///< SMs, which FlashInfer's fused launch shape depends on (adjustGridConfig)
  Writer writer = Writer::kUnicast;
  Mutation mutation = Mutation::kNone;
  /// The kernels sanitise every element (-0 -> +0). SPEC section 4.1 infers that only the odd (high-half)
  /// 16-bit elements need it, because only they can complete a 0x80000000 word; tests switch the even ones off to
  /// check that claim.
  bool sanitize_even_elements = true;
  /// CTAs of one launch resident at once per rank (0: all of them). A CTA holds its slot until it exits; the
  /// others wait to be dispatched, in grid order or (dispatch_in_order = false) in any order the schedule picks.
  /// SPEC section 4.5 infers that cross-rank progress needs roughly in-order dispatch once a grid exceeds
  /// residency; this models it.
  int resident_ctas = 0;
  bool dispatch_in_order = true;
  Arrival arrival = Arrival::kFlashInfer;
  Protocol protocol = Protocol::kFlashInfer;
  /// Protocol::kOurs: at most this many blocks per rank (the kernels' cap: every block of every rank must be
  /// resident). 0: as many as give one pack per thread, the kernels' choice when the device holds them all.
  /// Fewer blocks make each thread stride over several packs.
  int max_blocks_per_rank = 0;
  /// Protocol::kOurs: tokens per round (the kernels' round_bytes, as tokens); 0: the whole call in one round.
  /// TWOSHOT rounds up to a multiple of W, as the kernels do.
  std::int64_t round_tokens = 0;
  /// Protocol::kOurs: plain TWOSHOT calls of at least this many bytes a rank take the direct path (flags
  /// publish plain stores in a region beside the Lamport buffers: sim/direct_kernels.cpp,
  /// docs/large-messages.md); 0: none does.
  std::int64_t direct_from_bytes = 0;
};

/// Whether call `call` of `c` takes the direct path (see SimConfig::direct_from_bytes).
bool takes_direct_path(const SimConfig& c, const ResolvedCall& call);

/// Why the protocol-specific fields of `c` do not go together (our kernels are unicast only and arrive their
/// own way; FlashInfer's grid has no block cap or rounds; a mutation must apply to the protocol), or nullopt.
std::optional<std::string> protocol_conflict(const SimConfig& c);

/// Whether mutation `m` changes `p`'s kernels (see MutationInfo: each entry says how it maps onto ours).
bool mutation_applies(Mutation m, Protocol p);

/// The limits that keep one simulation small enough to run many schedules of.
inline constexpr std::int64_t kMaxSimulatedBytes = 256ll << 20;  ///< all ranks' buffers together
inline constexpr std::int64_t kMaxCtasPerLaunch = 1 << 16;
inline constexpr int kMaxPacksPerCta = 1024;
/// rmsNormLamport without a cluster: up to 1024 threads of 8 loads each.
inline constexpr int kMaxLanesPerCta = kMaxBlockSize * kMaxLoadsPerThread;

/// Builds a config. `buffer_bytes` defaults to what the largest call needs, rounded up to 32 bytes; given, it
/// must be a multiple of 32 and fit every call. A fused call must have a shape FlashInfer's fused kernels launch
/// (norm_launch). Throws std::invalid_argument naming the problem.
SimConfig make_sim_config(int world_size, std::vector<ResolvedCall> calls, std::optional<std::int64_t> buffer_bytes,
                          int packs_per_cta, Writer writer, Mutation mutation);

/// One line: "W=4 BPB=512 unicast ppc=1 calls=oneshot:N=3:D=16:dtype=bf16,..." (mutation when not none; the
/// protocol and its geometry when ours).
std::string describe(const SimConfig& c);

/// The arguments of `mnnvl-ar sim` that select exactly this config (without schedule or seed).
std::string command_arguments(const SimConfig& c);

/// The fold order the simulated kernels use for a call: the flashinfer profile's order with the mutation's
/// change (no-result-sanitize drops TWOSHOT's -0 -> +0). rank-order is applied to the operands, not here.
ReductionOrder kernel_order(const SimConfig& c, Strategy resolved);

}  // namespace ar::sim
