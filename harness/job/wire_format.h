// The rendezvous wire format: length-prefixed frames with a fixed 16-byte header, decoded by a streaming
// parser that never trusts its input (bounded sizes, known types only, a tag where the type needs one). It
// is pure, so tests fuzz it; the rendezvous computes and checks the tags.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ar::wire {

inline constexpr std::uint32_t kMagic = 0x52414E4Du;  // "MNAR" little-endian
/// 2: the mutual handshake (challenge, proofs) and a tag on every frame after it. A build speaking 1 sent
/// its token in clear; the decoder refuses it by this number.
inline constexpr std::uint16_t kVersion = 2;
inline constexpr std::size_t kHeaderBytes = 16;
inline constexpr std::uint32_t kMaxPayloadBytes = 1u << 20;  // plans, handles and addresses are small
/// What a peer that has not proved itself may send: a handshake message is a few short fields.
inline constexpr std::uint32_t kMaxHandshakePayloadBytes = 4096;
inline constexpr std::size_t kNonceBytes = 32;  ///< each side's fresh random challenge
inline constexpr std::size_t kTagBytes = 32;    ///< an HMAC-SHA256: a handshake proof or a frame's tag

enum class FrameType : std::uint16_t {
  // The handshake: no tag (no session key exists yet); each side proves the token inside the payload.
  kHello = 1,      ///< rank -> rank 0: rank, world size, program version, its nonce, its proof
  kWelcome = 2,    ///< rank 0 -> rank: accepted; payload = rank 0's proof
  kRefused = 3,    ///< rank 0 -> rank: refused, payload = reason
  kChallenge = 7,  ///< rank 0 -> rank, first on every connection: rank 0's nonce
  // After the handshake: each carries a tag under the session key of its direction.
  kGather = 4,    ///< rank -> rank 0: this rank's contribution to an all-gather
  kGathered = 5,  ///< rank 0 -> rank: every contribution, in rank order
  kAbort = 6,     ///< either way: stop now, payload = reason (a peer died, plans differ...)
};

/// Whether frames of `type` carry a tag (kTagBytes after the payload).
bool is_authenticated(FrameType type);

struct Frame {
  FrameType type = FrameType::kHello;
  std::uint32_t sender = 0;    ///< rank of the sender
  std::uint32_t sequence = 0;  ///< all-gather round (0 for the handshake)
  std::string payload;
  std::string tag;  ///< kTagBytes for an authenticated type, empty for a handshake type
};

/// Frame bytes: magic u32 | version u16 | type u16 | sender u32 | body length u32, then the body: the
/// sequence u32, the payload and, for an authenticated type, the tag. Little-endian. Throws
/// std::invalid_argument when the tag's size does not fit the type.
std::string encode(const Frame& f);

/// The bytes a frame's tag covers: the direction's frame counter u64, then type, sender, sequence and the
/// payload (last, so the layout is unambiguous). The counter makes a frame replayed, dropped or reordered
/// within a connection fail its check.
std::string authenticated_content(const Frame& f, std::uint64_t counter);

/// Incremental decoder: feed bytes as they arrive; complete frames come out in order. Any violation (bad
/// magic or version, unknown type, a payload over the limit, a tag missing) makes the stream invalid for
/// good, with a reason.
class FrameDecoder {
 public:
  explicit FrameDecoder(std::uint32_t max_payload = kMaxPayloadBytes) : max_payload_(max_payload) {}
  /// The largest payload accepted from now on: small until the peer has proved itself.
  void set_max_payload(std::uint32_t max_payload) { max_payload_ = max_payload; }
  void feed(std::string_view bytes);
  /// The next complete frame, if any.
  std::optional<Frame> next();
  bool failed() const { return error_.has_value(); }
  const std::optional<std::string>& error() const { return error_; }

 private:
  std::uint32_t max_payload_;
  std::string buffer_;
  std::size_t consumed_ = 0;
  std::optional<std::string> error_;
};

/// Payload helpers: a list of byte strings, each prefixed by its u32 length; decoding rejects malformed lists.
std::string encode_list(const std::vector<std::string>& items);
std::optional<std::vector<std::string>> decode_list(std::string_view payload, std::size_t max_items);

/// A frame type's name for messages (kGathered -> "gathered-values").
std::string_view type_name(FrameType type);

}  // namespace ar::wire
