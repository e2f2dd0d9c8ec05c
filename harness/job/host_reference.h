// The host side of checking and timing a GPU call (`run`, `bench`, `probe`): the reference computed on
// several threads (the same bits as reference_all_reduce), a bit comparison that is fast when nothing
// differs, seeded full-mantissa inputs made on several threads, and the memory traffic a call must move
// (SPEC section 5), which bench divides by the measured copy bandwidth.
#pragma once

#include <cstdint>

#include "harness/job/gpu_backend.h"
#include "reference/bit_diff.h"
#include "reference/fused_rms_norm.h"
#include "reference/strategy.h"
#include "reference/tensor.h"

namespace ar {

/// reference_all_reduce(input, strategy, profile) computed over token ranges on `threads` threads (0: the
/// hardware's count). AUTO is resolved on the whole shape first.
HostTensor parallel_reference(const HostTensor& input, Strategy strategy, Profile profile, int threads = 0);

/// The model's options for a GPU fused call of `strategy` and `profile` (its epsilon, weight bias, SM count).
FusedOptions fused_options(const GpuNorm& norm, Strategy strategy, Profile profile);

/// reference_fused_rms_norm(input, residual, gamma, options) with the all-reduce and the rows computed on
/// `threads` threads (0: the hardware's count): the same launch (of the whole N) and the same bits.
FusedResult parallel_fused_reference(const HostTensor& input, const HostTensor& residual, const HostTensor& gamma,
                                     const FusedOptions& options, int threads = 0);

/// compare_bits(a, b), but a memcmp first: equal tensors cost one pass at memory speed.
BitDiff compare_fast(const HostTensor& a, const HostTensor& b);

/// Full-mantissa values: sign random, exponent in [-spread, spread], mantissa random, all from
/// seeded_bits(seed, flat index), made on several threads. Same bits for the same arguments everywhere.
HostTensor seeded_random_input(DType dtype, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed,
                               int spread);

/// Bytes one call moves through memory, summed over all W ranks, counted as SPEC section 5 does (payload,
/// not re-polls), with the clear of the previous call's bytes taken to be this call's own record. `direct`: a
/// call on TWOSHOT's direct path (docs/large-messages.md), whose rows go through the direct region instead (counted
/// as its Lamport stores and loads): no rank's own rows, no clears.
struct CallTraffic {
  std::int64_t input_reads = 0;     ///< every rank reads its shard
  std::int64_t lamport_stores = 0;  ///< ONESHOT: W copies of every shard; TWOSHOT: scatter + broadcast
  std::int64_t lamport_loads = 0;   ///< polls that find data (ONESHOT W<=8 skips the rank's own slot)
  std::int64_t clears = 0;          ///< sentinel stores over the previous call's bytes
  std::int64_t output_writes = 0;
  std::int64_t total() const { return input_reads + lamport_stores + lamport_loads + clears + output_writes; }
};
CallTraffic call_traffic(Strategy resolved, const ProblemShape& shape, bool direct = false);

}  // namespace ar
