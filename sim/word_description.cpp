#include "sim/word_description.h"

#include <fmt/format.h>

namespace ar::sim {

std::string describe_word(const SimConfig& config, int rank, std::uint32_t word) {
  const std::int64_t byte = static_cast<std::int64_t>(word) * 4;
  const std::int64_t lamport = kLamportBufferCount * config.buffer_bytes;
  if (byte < lamport)
    return fmt::format("r{} buffer {} +{} B", rank, byte / config.buffer_bytes, byte % config.buffer_bytes);
  const std::int64_t flags_bytes = kFlagsBlockWords * 4;
  if (byte < lamport + flags_bytes) return fmt::format("r{} flag word {}", rank, (byte - lamport) / 4);
  return fmt::format("r{} direct region +{} B", rank, byte - lamport - flags_bytes);
}

std::string describe_ghost(Ghost g) {
  switch (g.kind) {
    case WriteKind::kInit: return "initial fill";
    case WriteKind::kClear: return fmt::format("clear by r{} in call {}", g.writer, g.call);
    case WriteKind::kData: return fmt::format("data from r{} in call {}", g.writer, g.call);
    case WriteKind::kFlags: return fmt::format("flags of r{} in call {}", g.writer, g.call);
  }
  return "?";
}

}  // namespace ar::sim
