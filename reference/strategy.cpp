#include "reference/strategy.h"

#include <fmt/format.h>

#include "reference/checked_math.h"
#include "reference/tensor.h"

namespace ar {

std::optional<Strategy> parse_strategy(std::string_view name) {
  for (std::size_t i = 0; i < kStrategyNames.size(); ++i)
    if (kStrategyNames[i] == name) return static_cast<Strategy>(i);
  return std::nullopt;
}

std::optional<Profile> parse_profile(std::string_view name) {
  for (std::size_t i = 0; i < kProfileNames.size(); ++i)
    if (kProfileNames[i] == name) return static_cast<Profile>(i);
  return std::nullopt;
}

std::string world_sizes_text(std::string_view last) {
  std::string text;
  for (std::size_t i = 0; i < kWorldSizes.size(); ++i)
    text += fmt::format("{}{}", i == 0 ? "" : (i + 1 == kWorldSizes.size() ? last : ", "), kWorldSizes[i]);
  return text;
}

std::optional<std::string> validate_shape(const ProblemShape& s) {
  if (!is_supported_world_size(s.world_size))
    return fmt::format("world size {} is not supported (supported: {})", s.world_size, world_sizes_text());
  if (s.tokens <= 0) return fmt::format("the number of tokens N must be at least 1 (got {})", s.tokens);
  if (s.hidden <= 0) return fmt::format("the hidden size D must be at least 1 (got {})", s.hidden);
  const int pack = elements_per_pack(s.dtype);
  if (s.hidden % pack != 0)
    return fmt::format("hidden size D = {} is not a multiple of {} ({} elements of {} make one 16-byte pack)", s.hidden,
                       pack, pack, dtype_name(s.dtype));
  // Last, so the factors are known positive: the input's size bounds every size derived from the shape.
  const std::int64_t e = dtype_bytes(s.dtype);
  const std::optional<std::int64_t> bytes = checked_product({s.world_size, s.tokens, s.hidden, e});
  if (!bytes)
    return fmt::format(
        "the input's size W x N x D x E = {} x {} x {} x {} bytes overflows 64 bits (an input "
        "holds at most {} bytes, 2^48)",
        s.world_size, s.tokens, s.hidden, e, kMaxTensorBytes);
  if (*bytes > kMaxTensorBytes)
    return fmt::format(
        "the input's size W x N x D x E = {} x {} x {} x {} = {} bytes is more than the {} bytes "
        "(2^48) an input may hold",
        s.world_size, s.tokens, s.hidden, e, *bytes, kMaxTensorBytes);
  return std::nullopt;
}

Strategy resolve_strategy(Strategy requested, const ProblemShape& s) {
  if (requested != Strategy::kAuto) return requested;
  const std::optional<std::int64_t> bytes = checked_product({s.tokens, s.hidden, s.world_size, dtype_bytes(s.dtype)});
  return bytes && *bytes <= kOneShotMaxBytes ? Strategy::kOneShot : Strategy::kTwoShot;
}

}  // namespace ar
