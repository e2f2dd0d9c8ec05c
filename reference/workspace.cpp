#include "reference/workspace.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include "reference/checked_math.h"

namespace ar {
namespace {

/// `bytes`, or std::invalid_argument naming `what` and the shape when it overflowed.
std::int64_t size_or_throw(std::optional<std::int64_t> bytes, const char* what, const ProblemShape& s) {
  if (!bytes)
    throw std::invalid_argument(fmt::format("{} of W = {}, N = {}, D = {}, {} overflows 64 bits", what, s.world_size,
                                            s.tokens, s.hidden, dtype_name(s.dtype)));
  return *bytes;
}

}  // namespace

std::int64_t oneshot_buffer_bytes(const ProblemShape& s) {
  return size_or_throw(checked_product({s.tokens, s.hidden, s.world_size, dtype_bytes(s.dtype)}),
                       "ONESHOT's Lamport buffer N x D x W x E", s);
}

std::int64_t twoshot_buffer_bytes(const ProblemShape& s) {
  // 2 x ceil(N/W) x W x D x E, with ceil(N/W) x W = round_up(N, W).
  const std::optional<std::int64_t> padded_tokens = checked_round_up(s.tokens, s.world_size);
  return size_or_throw(
      padded_tokens ? checked_product({2, *padded_tokens, s.hidden, dtype_bytes(s.dtype)}) : std::nullopt,
      "TWOSHOT's Lamport buffer 2 x ceil(N/W) x W x D x E", s);
}

std::int64_t required_buffer_bytes(Strategy strategy, const ProblemShape& s) {
  return resolve_strategy(strategy, s) == Strategy::kOneShot ? oneshot_buffer_bytes(s) : twoshot_buffer_bytes(s);
}

BufferRequest request_buffer_bytes(const ProblemShape& max_shape, std::optional<std::int64_t> user_bytes) {
  std::int64_t bytes = 0;
  if (user_bytes) {
    if (*user_bytes < 0) return {0, fmt::format("the Lamport buffer size {} bytes is negative", *user_bytes)};
    bytes = *user_bytes;
  } else {
    if (auto why = validate_shape(max_shape)) return {0, *why};
    const std::int64_t per_token = std::int64_t(max_shape.world_size) * dtype_bytes(max_shape.dtype) * max_shape.hidden;
    ProblemShape oneshot_shape = max_shape;
    oneshot_shape.tokens = std::min(kOneShotMaxBytes / per_token, max_shape.tokens);
    bytes = std::max(oneshot_buffer_bytes(oneshot_shape), twoshot_buffer_bytes(max_shape));
  }
  // Compared before the rounding too: a request near INT64_MAX would wrap when rounded up.
  const std::optional<std::int64_t> rounded = checked_round_up(bytes, kBufferAlignment);
  if (!rounded || *rounded > kMaxBufferBytes)
    return {rounded.value_or(bytes),
            fmt::format("the Lamport buffer size {} bytes is greater than the maximum supported size "
                        "(UINT32_MAX = {})",
                        rounded.value_or(bytes), kMaxBufferBytes)};
  return {*rounded, std::nullopt};
}

LamportFlags initial_flags(std::uint32_t buffer_bytes) {
  LamportFlags f;
  f.words = {0, 2, buffer_bytes, 0, 0, 0, 0, 0, 0};
  return f;
}

ClearRecord clear_record(Strategy strategy, const ProblemShape& s, bool direct) {
  if (direct) return ClearRecord{};
  const Strategy resolved = resolve_strategy(strategy, s);
  const std::int64_t row_bytes = s.hidden * dtype_bytes(s.dtype);
  ClearRecord r;
  r.stages = stage_count(resolved);
  if (resolved == Strategy::kOneShot) {
    r.bytes[0] = static_cast<std::uint32_t>(oneshot_buffer_bytes(s));
  } else {
    r.bytes[0] = static_cast<std::uint32_t>(round_up(s.tokens, s.world_size) * row_bytes);
    r.bytes[1] = static_cast<std::uint32_t>(s.tokens * row_bytes);
  }
  return r;
}

DirectRegion direct_region(int world, std::int64_t scatter_bytes, std::int64_t broadcast_bytes,
                           std::int64_t max_blocks) {
  DirectRegion d;
  d.world = world;
  d.max_blocks = max_blocks;
  d.broadcast = round_up(scatter_bytes, kPackBytes);
  d.flags = d.broadcast + round_up(broadcast_bytes, kPackBytes);
  d.bytes = d.flags + 2 * static_cast<std::int64_t>(world) * max_blocks * kPackBytes;
  return d;
}

std::int64_t direct_scatter_bytes(const ProblemShape& s) {
  return round_up(s.tokens, s.world_size) * s.hidden * dtype_bytes(s.dtype);
}
std::int64_t direct_broadcast_bytes(const ProblemShape& s) { return s.tokens * s.hidden * dtype_bytes(s.dtype); }

DirectRegion direct_region_for(const ProblemShape& max_shape) {
  return direct_region(max_shape.world_size, direct_scatter_bytes(max_shape), direct_broadcast_bytes(max_shape),
                       kMaxDirectBlocks);
}

bool takes_direct_path(Strategy resolved, bool fused, const ProblemShape& s, std::int64_t direct_from_bytes) {
  return direct_from_bytes > 0 && !fused && resolved == Strategy::kTwoShot && s.bytes_per_rank() >= direct_from_bytes;
}

std::optional<std::string> check_fits_direct_region(const ProblemShape& s, const DirectRegion& d) {
  if (d.bytes == 0) return std::string("the workspace has no direct region (it was sized for no direct call)");
  if (d.world != s.world_size)
    return fmt::format("the direct region is for W = {} but the call has W = {}", d.world, s.world_size);
  const std::int64_t scatter = direct_scatter_bytes(s), broadcast = direct_broadcast_bytes(s);
  if (scatter > d.broadcast || broadcast > d.flags - d.broadcast)
    return fmt::format("the call's direct rows ({} SCATTER and {} BROADCAST bytes) exceed the workspace's direct "
                       "region ({} and {} bytes); size the workspace for the largest direct call",
                       scatter, broadcast, d.broadcast, d.flags - d.broadcast);
  return std::nullopt;
}

LamportFlags advance_flags(const LamportFlags& f, const ClearRecord& launched) {
  LamportFlags next;
  next.words = {(f.current_buffer() + 1) % kLamportBufferCount,
                f.current_buffer(),
                f.buffer_bytes(),
                static_cast<std::uint32_t>(launched.stages),
                launched.bytes[0],
                launched.bytes[1],
                launched.bytes[2],
                launched.bytes[3],
                0};
  return next;
}

std::optional<std::string> check_fits_workspace(Strategy strategy, const ProblemShape& s, std::int64_t buffer_bytes) {
  if (auto why = validate_shape(s)) return why;
  const Strategy resolved = resolve_strategy(strategy, s);
  const std::int64_t elements = s.tokens * s.hidden * s.world_size;
  if (elements > std::numeric_limits<std::int32_t>::max())
    return fmt::format("N*D*W = {} elements exceeds the kernels' 32-bit int arithmetic (max {})", elements,
                       std::numeric_limits<std::int32_t>::max());
  const std::int64_t need = required_buffer_bytes(resolved, s);
  if (need > kMaxBufferBytes)
    return fmt::format("{} needs {} bytes per Lamport buffer, above the 32-bit limit {}", strategy_name(resolved), need,
                       kMaxBufferBytes);
  if (need > buffer_bytes)
    return fmt::format(
        "the buffer size in the workspace is insufficient: {} needs {} bytes per Lamport buffer, "
        "the workspace has {}",
        strategy_name(resolved), need, buffer_bytes);
  return std::nullopt;
}

}  // namespace ar
