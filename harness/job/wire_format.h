// The rendezvous wire format: length-prefixed frames with a fixed 16-byte header, decoded by a streaming
// parser that never trusts its input (bounded sizes, known types only). It is pure, so tests fuzz it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ar::wire {

inline constexpr std::uint32_t kMagic = 0x52414E4Du;     // "MNAR" little-endian
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kHeaderBytes = 16;
inline constexpr std::uint32_t kMaxPayloadBytes = 1u << 20;  // plans, handles and addresses are small

enum class FrameType : std::uint16_t {
  kHello = 1,     ///< rank -> rank 0: token, rank, world size, program version
  kWelcome = 2,   ///< rank 0 -> rank: accepted
  kRefused = 3,   ///< rank 0 -> rank: refused, payload = reason
  kGather = 4,    ///< rank -> rank 0: this rank's contribution to an all-gather
  kGathered = 5,  ///< rank 0 -> rank: every contribution, in rank order
  kAbort = 6,     ///< either way: stop now, payload = reason (a peer died, plans differ...)
};

struct Frame {
  FrameType type = FrameType::kHello;
  std::uint32_t sender = 0;     ///< rank of the sender
  std::uint32_t sequence = 0;   ///< all-gather round (0 for the handshake)
  std::string payload;
};

/// Frame bytes: magic u32 | version u16 | type u16 | sender u32 | body length u32, then the body: the
/// sequence u32 and the payload. Little-endian.
std::string encode(const Frame& f);

/// Incremental decoder: feed bytes as they arrive; complete frames come out in order. Any violation (bad
/// magic or version, unknown type, oversized payload) makes the stream invalid for good, with a reason.
class FrameDecoder {
 public:
  void feed(std::string_view bytes);
  /// The next complete frame, if any.
  std::optional<Frame> next();
  bool failed() const { return error_.has_value(); }
  const std::optional<std::string>& error() const { return error_; }

 private:
  std::string buffer_;
  std::size_t consumed_ = 0;
  std::optional<std::string> error_;
};

/// Payload helpers: a list of byte strings, each prefixed by its u32 length; decoding rejects malformed lists.
std::string encode_list(const std::vector<std::string>& items);
std::optional<std::vector<std::string>> decode_list(std::string_view payload, std::size_t max_items);

}  // namespace ar::wire
