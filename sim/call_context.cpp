#include "sim/call_context.h"

#include <algorithm>
#include <stdexcept>

#include "reference/all_reduce.h"
#include "reference/fused_launch.h"
#include "reference/kernel_schedule.h"
#include "sim/inputs.h"

namespace ar::sim {
namespace {

/// Our kernels' grid for a call (cuda/ plan_launch and tokens_per_round, with tokens per round given directly
/// and the residency cap as a parameter): rounds of R tokens (reference round_tokens: TWOSHOT rounds R up to a
/// multiple of W), and one thread per pack of a round unless the cap leaves fewer blocks. A fused call is the
/// same one kernel (its norm is arithmetic on the rows the kernel has read).
void plan_our_grid(const SimConfig& config, CallContext& c) {
  const std::int64_t n = c.shape.tokens;
  const std::int64_t rt = round_tokens(c.strategy, c.shape, config.round_tokens);
  c.tokens_per_round = rt;
  c.rounds = round_count(n, rt);
  std::int64_t blocks = std::max<std::int64_t>(1, ceil_div(std::min(rt, n) * c.packs_per_token, config.packs_per_cta));
  if (config.max_blocks_per_rank > 0) blocks = std::min<std::int64_t>(blocks, config.max_blocks_per_rank);
  GridShape g;
  g.ctas = blocks;
  g.lanes = config.packs_per_cta;
  c.grids = {g};
}

/// The grid of a fused norm launch: a CTA per block of each token's cluster, or one CTA per token of
/// bs threads with `loads` packs each.
GridShape norm_grid(const NormLaunch& launch, std::int64_t tokens, Kernel kernel) {
  GridShape g;
  g.kernel = kernel;
  g.cluster_launch = launch.cluster_launch;
  g.cluster = launch.cluster_launch ? launch.cluster_size() : 1;
  g.ctas_per_token = g.cluster;
  g.ctas = tokens * g.ctas_per_token;
  // Block b starts at pack b * packs_per_block; its threads and loads cover the packs up to the next block's.
  g.lanes = launch.cluster_launch ? launch.packs_per_block : launch.block_size() * launch.loads_per_thread();
  return g;
}

}  // namespace

std::vector<GridShape> flashinfer_grids(const ResolvedCall& call, int packs_per_cta, int sm_count) {
  const Strategy strategy = call.strategy();
  const ProblemShape& s = call.shape;
  GridShape plain;
  plain.ctas_per_token = ceil_div(s.hidden / elements_per_pack(s.dtype), packs_per_cta);
  plain.ctas = s.tokens * plain.ctas_per_token;
  plain.lanes = packs_per_cta;
  if (!call.fused) return {plain};
  const NormLaunch launch = norm_launch(strategy, s.tokens, s.hidden, s.dtype, sm_count);
  // ONESHOT fused: the ONESHOT protocol in the norm's cluster launch, one pack per thread (SPEC 6).
  if (strategy == Strategy::kOneShot) return {norm_grid(launch, s.tokens, Kernel::kAllReduce)};
  // TWOSHOT fused: the all-reduce kernel keeps the plain grid; rmsNormLamport follows it.
  return {plain, norm_grid(launch, s.tokens, Kernel::kNorm)};
}

std::vector<CallContext> make_call_contexts(const SimConfig& config, std::uint64_t seed) {
  if (auto why = protocol_conflict(config)) throw std::invalid_argument(*why);
  std::vector<CallContext> calls;
  calls.reserve(config.calls.size());
  for (std::size_t k = 0; k < config.calls.size(); ++k) {
    const ResolvedCall& rc = config.calls[k];
    CallContext c;
    c.index = static_cast<int>(k);
    c.strategy = rc.strategy();
    c.shape = rc.shape;
    c.fused = rc.fused;
    c.order = kernel_order(config, c.strategy);
    c.record = clear_record(c.strategy, c.shape);
    c.elements_per_pack = elements_per_pack(c.shape.dtype);
    c.packs_per_token = c.shape.hidden / c.elements_per_pack;
    // Poll passes follow the fold's chunks (SPEC section 4.4): one pass over the remote ranks for ONESHOT
    // W <= 8, else one pass per chunk of `order.chunk` ranks, own slot included.
    c.own_from_registers = c.strategy == Strategy::kOneShot && c.order.chunk == 0;
    c.poll_chunk = c.order.chunk == 0 ? config.world_size : c.order.chunk;
    // Our kernels poll every slot, their own included, in groups within the same chunks.
    if (config.protocol == Protocol::kOurs) {
      c.own_from_registers = false;
      plan_our_grid(config, c);
      if (takes_direct_path(config, rc)) {
        c.takes_direct = true;
        c.record = clear_record(c.strategy, c.shape, /*direct=*/true);
        // The mutation's layout, from this call alone; the region of the whole sequence replaces it below.
        c.direct = direct_region(config.world_size, direct_scatter_bytes(c.shape), direct_broadcast_bytes(c.shape),
                                 c.grids[0].ctas);
      }
    } else {
      c.grids = flashinfer_grids(rc, config.packs_per_cta, config.sm_count);
    }
    c.input = make_call_inputs(seed, c.index, config.world_size, c.shape.tokens, c.shape.hidden, c.shape.dtype);
    // The expected output is the reference's, for the unmutated protocol: a mutation must show as a failure. A
    // fused call's all-reduce part is the same sum (SPEC 7: AR_T, before the residual add and the norm).
    c.expected = reference_all_reduce(c.input, c.strategy, Profile::kFlashInfer);
    calls.push_back(std::move(c));
  }
  // One region for every direct call: room for the largest rows and the most blocks.
  std::int64_t scatter = 0, broadcast = 0, blocks = 0;
  for (const CallContext& c : calls) {
    if (!c.takes_direct) continue;
    scatter = std::max(scatter, direct_scatter_bytes(c.shape));
    broadcast = std::max(broadcast, direct_broadcast_bytes(c.shape));
    blocks = std::max(blocks, c.grids[0].ctas);
  }
  if (config.mutation != Mutation::kDirectPerCallLayout)
    for (CallContext& c : calls)
      if (c.takes_direct) c.direct = direct_region(config.world_size, scatter, broadcast, blocks);
  return calls;
}

std::int64_t direct_region_bytes(const std::vector<CallContext>& calls) {
  std::int64_t bytes = 0;
  for (const CallContext& c : calls)
    if (c.takes_direct) bytes = std::max(bytes, round_up(c.direct.bytes, kPackBytes));
  return bytes;
}

}  // namespace ar::sim
