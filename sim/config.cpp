#include "sim/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "reference/checked_math.h"
#include "sim/call_context.h"

namespace ar::sim {

SimConfig make_sim_config(int world_size, std::vector<ResolvedCall> calls, std::optional<std::int64_t> buffer_bytes,
                          int packs_per_cta, Writer writer, Mutation mutation) {
  if (!is_supported_world_size(world_size))
    throw std::invalid_argument(
        fmt::format("world size {} is not supported (supported: {})", world_size, world_sizes_text()));
  if (calls.empty()) throw std::invalid_argument("the call sequence is empty");
  if (packs_per_cta < 1 || packs_per_cta > kMaxPacksPerCta)
    throw std::invalid_argument(
        fmt::format("packs per CTA must be in [1, {}], got {}", kMaxPacksPerCta, packs_per_cta));
  std::int64_t needed = 0;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    if (calls[i].shape.world_size != world_size)
      throw std::invalid_argument(
          fmt::format("call {} has world size {}, the workspace {}", i + 1, calls[i].shape.world_size, world_size));
    if (auto why = validate_shape(calls[i].shape)) throw std::invalid_argument(fmt::format("call {}: {}", i + 1, *why));
    needed = std::max(needed, required_buffer_bytes(calls[i].requested, calls[i].shape));
  }
  // Every call is valid here, so `needed` is far below INT64_MAX and its rounding cannot wrap.
  const std::int64_t bpb = buffer_bytes.value_or(round_up(needed, kBufferAlignment));
  if (bpb <= 0 || bpb % kBufferAlignment != 0)
    throw std::invalid_argument(
        fmt::format("the buffer size {} bytes is not a positive multiple of {} (two stages of 16-byte packs)", bpb,
                    kBufferAlignment));
  // BPB is flag word 2, a 32-bit word: a larger one would be stored truncated.
  if (bpb > kMaxBufferBytes)
    throw std::invalid_argument(fmt::format(
        "the buffer size {} bytes is above the 32-bit limit {} (BPB is a 32-bit flag word)", bpb, kMaxBufferBytes));
  for (std::size_t i = 0; i < calls.size(); ++i)
    if (auto why = check_fits_workspace(calls[i].requested, calls[i].shape, bpb))
      throw std::invalid_argument(fmt::format("call {}: {}", i + 1, *why));
  const std::optional<std::int64_t> simulated = checked_product({world_size, kLamportBufferCount, bpb});
  if (!simulated || *simulated > kMaxSimulatedBytes)
    throw std::invalid_argument(fmt::format(
        "the workspace is too large to simulate: {} ranks x {} x {} bytes exceeds {} MiB; use fewer tokens or a "
        "smaller hidden size",
        world_size, kLamportBufferCount, bpb, kMaxSimulatedBytes >> 20));
  for (std::size_t i = 0; i < calls.size(); ++i) {
    std::vector<GridShape> grids;
    try {
      grids = flashinfer_grids(calls[i], packs_per_cta, kDefaultSmCount);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(fmt::format("call {} (fused): {}", i + 1, e.what()));
    }
    for (const GridShape& g : grids)
      if (g.ctas > kMaxCtasPerLaunch || g.lanes > kMaxLanesPerCta)
        throw std::invalid_argument(
            fmt::format("call {} needs {} CTAs of {} threads per rank, more than the "
                        "simulator's {} CTAs of {} threads",
                        i + 1, g.ctas, g.lanes, kMaxCtasPerLaunch, kMaxLanesPerCta));
  }
  SimConfig c;
  c.world_size = world_size;
  c.calls = std::move(calls);
  c.buffer_bytes = bpb;
  c.packs_per_cta = packs_per_cta;
  c.writer = writer;
  c.mutation = mutation;
  return c;
}

std::optional<Protocol> parse_protocol(std::string_view name) {
  for (std::size_t i = 0; i < kProtocolNames.size(); ++i)
    if (kProtocolNames[i] == name) return static_cast<Protocol>(i);
  return std::nullopt;
}

bool takes_direct_path(const SimConfig& c, const ResolvedCall& call) {
  return c.protocol == Protocol::kOurs && takes_direct_path(call.strategy(), call.fused, call.shape, c.direct_from_bytes);
}

bool mutation_applies(Mutation m, Protocol p) {
  const MutationInfo& info = mutation_info(m);
  return p == Protocol::kOurs ? info.ours : info.flashinfer;
}

std::optional<std::string> protocol_conflict(const SimConfig& c) {
  if (c.max_blocks_per_rank < 0)
    return fmt::format("the block cap must be >= 0 (0: no cap), got {}", c.max_blocks_per_rank);
  if (c.round_tokens < 0) return fmt::format("tokens per round must be >= 0 (0: one round), got {}", c.round_tokens);
  if (c.direct_from_bytes < 0)
    return fmt::format("the direct path's threshold must be >= 0 bytes (0: no call takes it), got {}",
                       c.direct_from_bytes);
  if (c.direct_from_bytes > 0 && c.protocol != Protocol::kOurs)
    return std::string("the direct path belongs to our kernels (the ours protocol)");
  if (!mutation_applies(c.mutation, c.protocol))
    return fmt::format("mutation {} does not apply to the {} protocol", mutation_name(c.mutation),
                       protocol_name(c.protocol));
  if (c.protocol == Protocol::kOurs) {
    if (c.writer != Writer::kUnicast)
      return std::string("our kernels store with unicast st_v4 only; the multicast writer is FlashInfer's");
    if (c.arrival != Arrival::kFlashInfer)
      return std::string(
          "the arrival variants belong to FlashInfer's protocol; our kernels arrive their own way (relaxed atomic "
          "right after the flag read, the last block advances the flags)");
    return std::nullopt;
  }
  if (c.max_blocks_per_rank != 0 || c.round_tokens != 0)
    return std::string(
        "a block cap and rounds belong to our kernels' grid (the ours protocol); FlashInfer's grid is one CTA per "
        "token and packs");
  return std::nullopt;
}

std::string describe(const SimConfig& c) {
  std::string text = fmt::format("W={} BPB={} {} packs/CTA={} calls={}", c.world_size, c.buffer_bytes,
                                 writer_name(c.writer), c.packs_per_cta, format_call_sequence(c.calls));
  if (c.mutation != Mutation::kNone) text += fmt::format(" mutation={}", mutation_name(c.mutation));
  if (c.resident_ctas > 0)
    text += fmt::format(" resident={} dispatch={}", c.resident_ctas, c.dispatch_in_order ? "in-order" : "any");
  if (c.arrival != Arrival::kFlashInfer) text += fmt::format(" arrival={}", arrival_name(c.arrival));
  if (c.protocol != Protocol::kFlashInfer) {
    text += fmt::format(" protocol={}", protocol_name(c.protocol));
    if (c.max_blocks_per_rank > 0) text += fmt::format(" blocks<={}", c.max_blocks_per_rank);
    if (c.round_tokens > 0) text += fmt::format(" tokens/round={}", c.round_tokens);
    if (c.direct_from_bytes > 0) text += fmt::format(" direct-from={}", c.direct_from_bytes);
  }
  return text;
}

std::string command_arguments(const SimConfig& c) {
  std::string text = fmt::format("--world-size {} --calls {} --buffer-bytes {}", c.world_size,
                                 format_call_sequence(c.calls), c.buffer_bytes);
  if (c.packs_per_cta != 1) text += fmt::format(" --packs-per-cta {}", c.packs_per_cta);
  if (c.writer != Writer::kUnicast) text += fmt::format(" --writer {}", writer_name(c.writer));
  if (c.mutation != Mutation::kNone) text += fmt::format(" --mutation {}", mutation_name(c.mutation));
  if (c.resident_ctas > 0)
    text += fmt::format(" --resident-ctas {} --dispatch {}", c.resident_ctas, c.dispatch_in_order ? "in-order" : "any");
  if (c.arrival != Arrival::kFlashInfer) text += fmt::format(" --arrival {}", arrival_name(c.arrival));
  if (c.protocol != Protocol::kFlashInfer) {
    text += fmt::format(" --protocol {}", protocol_name(c.protocol));
    if (c.max_blocks_per_rank > 0) text += fmt::format(" --blocks-per-rank {}", c.max_blocks_per_rank);
    if (c.round_tokens > 0) text += fmt::format(" --tokens-per-round {}", c.round_tokens);
    if (c.direct_from_bytes > 0) text += fmt::format(" --direct-from {}", c.direct_from_bytes);
  }
  return text;
}

ReductionOrder kernel_order(const SimConfig& c, Strategy resolved) {
  ReductionOrder order = reduction_order(resolved, Profile::kFlashInfer, c.world_size);
  if (c.mutation == Mutation::kNoResultSanitize) order.sanitize_result = false;
  return order;
}

}  // namespace ar::sim
