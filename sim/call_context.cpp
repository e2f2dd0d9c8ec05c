#include "sim/call_context.h"

#include <algorithm>
#include <stdexcept>

#include "reference/all_reduce.h"
#include "reference/kernel_schedule.h"
#include "sim/inputs.h"

namespace ar::sim {
namespace {

/// Our kernels' grid for a call (cuda/ plan_launch and tokens_per_round, with tokens per round given directly
/// and the residency cap as a parameter): rounds of R tokens (reference round_tokens: TWOSHOT rounds R up to a
/// multiple of W), and one thread per pack of a round unless the cap leaves fewer blocks.
void plan_our_grid(const SimConfig& config, CallContext& c) {
  const std::int64_t n = c.shape.tokens;
  const std::int64_t rt = round_tokens(c.strategy, c.shape, config.round_tokens);
  c.tokens_per_round = rt;
  c.rounds = round_count(n, rt);
  std::int64_t blocks = std::max<std::int64_t>(1, ceil_div(std::min(rt, n) * c.packs_per_token, config.packs_per_cta));
  if (config.max_blocks_per_rank > 0) blocks = std::min<std::int64_t>(blocks, config.max_blocks_per_rank);
  c.ctas = blocks;
  c.ctas_per_token = 1;
}

}  // namespace

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
    c.order = kernel_order(config, c.strategy);
    c.record = clear_record(c.strategy, c.shape);
    c.elements_per_pack = elements_per_pack(c.shape.dtype);
    c.packs_per_token = c.shape.hidden / c.elements_per_pack;
    c.ctas_per_token = ceil_div(c.packs_per_token, config.packs_per_cta);
    c.ctas = c.shape.tokens * c.ctas_per_token;
    // Poll passes follow the fold's chunks (SPEC section 4.4): one pass over the remote ranks for ONESHOT
    // W <= 8, else one pass per chunk of `order.chunk` ranks, own slot included.
    c.own_from_registers = c.strategy == Strategy::kOneShot && c.order.chunk == 0;
    c.poll_chunk = c.order.chunk == 0 ? config.world_size : c.order.chunk;
    // Our kernels poll every slot, their own included, in groups within the same chunks.
    if (config.protocol == Protocol::kOurs) {
      c.own_from_registers = false;
      plan_our_grid(config, c);
    }
    c.input = make_call_inputs(seed, c.index, config.world_size, c.shape.tokens, c.shape.hidden, c.shape.dtype);
    // The expected output is the reference's, for the unmutated protocol: a mutation must show as a failure.
    c.expected = reference_all_reduce(c.input, c.strategy, Profile::kFlashInfer);
    calls.push_back(std::move(c));
  }
  return calls;
}

}  // namespace ar::sim
