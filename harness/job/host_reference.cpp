#include "harness/job/host_reference.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "harness/io/golden_cases.h"
#include "reference/all_reduce.h"
#include "reference/float_bits.h"
#include "reference/workspace.h"

namespace ar {
namespace {

int thread_count(int wanted, std::int64_t work_items) {
  int n = wanted > 0 ? wanted : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return static_cast<int>(std::clamp<std::int64_t>(work_items, 1, n));
}

/// Runs f(begin, end) over [0, count) split into `threads` contiguous ranges.
template <class F>
void parallel_ranges(std::int64_t count, int threads, F f) {
  std::vector<std::thread> pool;
  const std::int64_t per = ceil_div(count, threads);
  for (int t = 0; t < threads; ++t) {
    const std::int64_t b = per * t, e = std::min(count, b + per);
    if (b >= e) break;
    pool.emplace_back([=, &f] { f(b, e); });
  }
  for (auto& th : pool) th.join();
}

}  // namespace

HostTensor parallel_reference(const HostTensor& input, Strategy strategy, Profile profile, int threads) {
  const ProblemShape s = shape_of_input(input);
  const Strategy resolved = resolve_strategy(strategy, s);
  const int n = thread_count(threads, s.tokens);
  if (n == 1) return reference_all_reduce(input, resolved, profile);
  HostTensor out(s.dtype, {s.tokens, s.hidden});
  const std::int64_t row = s.hidden * dtype_bytes(s.dtype);
  parallel_ranges(s.tokens, n, [&](std::int64_t b, std::int64_t e) {
    HostTensor part(s.dtype, {s.world_size, e - b, s.hidden});
    for (int r = 0; r < s.world_size; ++r)
      std::memcpy(part.bytes().data() + r * (e - b) * row, input.bytes().data() + (r * s.tokens + b) * row,
                  static_cast<std::size_t>((e - b) * row));
    const HostTensor folded = reference_all_reduce(part, resolved, profile);
    std::memcpy(out.bytes().data() + b * row, folded.bytes().data(), static_cast<std::size_t>((e - b) * row));
  });
  return out;
}

FusedOptions fused_options(const GpuNorm& norm, Strategy strategy, Profile profile) {
  return FusedOptions{.strategy = strategy,
                      .profile = profile,
                      .sm_count = norm.sm_count,
                      .epsilon = norm.epsilon,
                      .weight_bias = norm.weight_bias};
}

FusedResult parallel_fused_reference(const HostTensor& input, const HostTensor& residual, const HostTensor& gamma,
                                     const FusedOptions& options, int threads) {
  const ProblemShape s = shape_of_input(input);
  const int n = thread_count(threads, s.tokens);
  // Small calls, and the shapes the model refuses (it says why), go through the model itself.
  if (n == 1 || validate_shape(s) || options.profile == Profile::kTrtllm || residual.dtype() != s.dtype ||
      gamma.dtype() != s.dtype || residual.shape() != std::vector<std::int64_t>{s.tokens, s.hidden} ||
      gamma.shape() != std::vector<std::int64_t>{s.hidden})
    return reference_fused_rms_norm(input, residual, gamma, options);
  const Strategy resolved = resolve_strategy(options.strategy, s);
  FusedResult out;
  out.launch = norm_launch_for(options.profile, resolved, s.tokens, s.hidden, s.dtype, options.sm_count);
  out.normalized_undefined_on_gpu = out.launch.exited_threads() > 0;
  out.normalized = HostTensor(s.dtype, {s.tokens, s.hidden});
  out.residual_out = HostTensor(s.dtype, {s.tokens, s.hidden});
  out.row_scales.resize(static_cast<std::size_t>(s.tokens));
  const HostTensor all_reduced = parallel_reference(input, resolved, options.profile, n);
  const NormArithmetic arithmetic = norm_arithmetic(options);
  const std::vector<std::uint32_t> gamma_bits = gamma.bits_range(0, s.hidden);
  parallel_ranges(s.tokens, n, [&](std::int64_t b, std::int64_t e) {
    std::vector<std::uint32_t> normalized(gamma_bits.size()), residual_out(gamma_bits.size());
    for (std::int64_t t = b; t < e; ++t) {
      out.row_scales[static_cast<std::size_t>(t)] =
          fused_rms_norm_row(out.launch, arithmetic, all_reduced.bits_range(t * s.hidden, s.hidden),
                             residual.bits_range(t * s.hidden, s.hidden), gamma_bits, normalized, residual_out);
      for (std::int64_t d = 0; d < s.hidden; ++d) {
        out.normalized.set_bits(t * s.hidden + d, normalized[static_cast<std::size_t>(d)]);
        out.residual_out.set_bits(t * s.hidden + d, residual_out[static_cast<std::size_t>(d)]);
      }
    }
  });
  return out;
}

BitDiff compare_fast(const HostTensor& a, const HostTensor& b) {
  if (a.dtype() == b.dtype() && a.shape() == b.shape() &&
      std::memcmp(a.bytes().data(), b.bytes().data(), a.bytes().size()) == 0) {
    BitDiff d;
    d.elements = a.size();
    return d;
  }
  return compare_bits(a, b);
}

HostTensor seeded_random_input(DType dtype, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed,
                               int spread) {
  HostTensor in(dtype, {world, tokens, hidden});
  const FloatFormat f = float_format(dtype);
  const std::int64_t count = in.size();
  parallel_ranges(count, thread_count(0, count / (1 << 16) + 1), [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      const std::uint64_t r = seeded_bits(seed, static_cast<std::uint64_t>(i));
      const std::uint32_t sign = (r >> 63) ? f.sign_mask() : 0u;
      const int exponent = static_cast<int>((r >> 32) % std::uint64_t(2 * spread + 1)) - spread;
      const std::uint32_t fraction = static_cast<std::uint32_t>(r) & f.fraction_mask();
      in.set_bits(i, sign | (std::uint32_t(exponent + f.bias()) << f.fraction_bits) | fraction);
    }
  });
  return in;
}

CallTraffic call_traffic(Strategy resolved, const ProblemShape& s, bool direct) {
  const std::int64_t w = s.world_size, row = s.hidden * dtype_bytes(s.dtype), shard = s.tokens * row;
  CallTraffic t;
  t.input_reads = w * shard;
  t.output_writes = w * shard;
  if (direct) {
    // Each of the N rows goes to its owner from the W - 1 other ranks, and back from the owner to them: (W - 1) N
    // rows stored and read in SCATTER, as many in BROADCAST.
    t.lamport_stores = 2 * (w - 1) * shard;
    t.lamport_loads = 2 * (w - 1) * shard;
    return t;
  }
  const ClearRecord record = clear_record(resolved, s);
  for (int st = 0; st < record.stages; ++st) t.clears += w * static_cast<std::int64_t>(record.bytes[st]);
  if (resolved == Strategy::kOneShot) {
    t.lamport_stores = w * w * shard;                    // every shard into every rank's buffer
    t.lamport_loads = w * (w <= 8 ? w - 1 : w) * shard;  // remote slots (W <= 8) or all slots
  } else {
    // Rank r owns M_r = #{t < N : t % W == r} tokens; summed over ranks the owners receive and read W*N rows
    // of SCATTER, store N rows into each of W BROADCAST buffers, and every rank reads N rows of BROADCAST.
    t.lamport_stores = w * shard + w * shard;  // scatter (N rows per rank) + broadcast (W x N rows)
    t.lamport_loads = w * shard + w * shard;   // scatter reads (W x N rows) + broadcast reads
  }
  return t;
}

}  // namespace ar
