#include "reference/strategy.h"

#include <fmt/format.h>

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
  return std::nullopt;
}

Strategy resolve_strategy(Strategy requested, const ProblemShape& s) {
  if (requested != Strategy::kAuto) return requested;
  const std::int64_t bytes = s.tokens * s.hidden * s.world_size * dtype_bytes(s.dtype);
  return bytes <= kOneShotMaxBytes ? Strategy::kOneShot : Strategy::kTwoShot;
}

}  // namespace ar
