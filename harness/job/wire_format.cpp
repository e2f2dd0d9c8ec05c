#include "harness/job/wire_format.h"

#include <stdexcept>

#include <fmt/format.h>

namespace ar::wire {
namespace {

// Frame header layout (16 bytes): magic u32 | version u16 | type u16 | sender u32 | length u32, then the
// sequence number is the body's first u32 (so the header stays 16 bytes and every field is checked).
void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>(v >> 8));
}
std::uint32_t get_u32(std::string_view in, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}
std::uint16_t get_u16(std::string_view in, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(in[at]) | (static_cast<unsigned char>(in[at + 1]) << 8));
}

bool known_type(std::uint16_t t) { return t >= 1 && t <= 7; }

std::size_t tag_bytes(FrameType type) { return is_authenticated(type) ? kTagBytes : 0; }

}  // namespace

bool is_authenticated(FrameType type) {
  return type == FrameType::kGather || type == FrameType::kGathered || type == FrameType::kAbort;
}

std::string_view type_name(FrameType type) {
  switch (type) {
    case FrameType::kHello: return "hello";
    case FrameType::kWelcome: return "welcome";
    case FrameType::kRefused: return "refusal";
    case FrameType::kChallenge: return "challenge";
    case FrameType::kGather: return "all-gather contribution";
    case FrameType::kGathered: return "gathered values";
    case FrameType::kAbort: return "abort";
  }
  return "unknown";
}

std::string encode(const Frame& f) {
  if (f.tag.size() != tag_bytes(f.type))
    throw std::invalid_argument(fmt::format("the {} message needs a tag of {} bytes, not {}", type_name(f.type),
                                            tag_bytes(f.type), f.tag.size()));
  std::string out;
  out.reserve(kHeaderBytes + 4 + f.payload.size() + f.tag.size());
  put_u32(out, kMagic);
  put_u16(out, kVersion);
  put_u16(out, static_cast<std::uint16_t>(f.type));
  put_u32(out, f.sender);
  put_u32(out, static_cast<std::uint32_t>(4 + f.payload.size() + f.tag.size()));
  put_u32(out, f.sequence);
  out += f.payload;
  out += f.tag;
  return out;
}

std::string authenticated_content(const Frame& f, std::uint64_t counter) {
  std::string out;
  out.reserve(8 + 2 + 4 + 4 + f.payload.size());
  put_u64(out, counter);
  put_u16(out, static_cast<std::uint16_t>(f.type));
  put_u32(out, f.sender);
  put_u32(out, f.sequence);
  out += f.payload;
  return out;
}

void FrameDecoder::feed(std::string_view bytes) {
  if (error_) return;
  buffer_.append(bytes);
}

std::optional<Frame> FrameDecoder::next() {
  if (error_) return std::nullopt;
  const std::string_view rest = std::string_view(buffer_).substr(consumed_);
  if (rest.size() < kHeaderBytes) return std::nullopt;
  if (get_u32(rest, 0) != kMagic) {
    error_ = "not an mnnvl-ar rendezvous stream (bad magic)";
    return std::nullopt;
  }
  if (get_u16(rest, 4) != kVersion) {
    error_ = fmt::format("rendezvous protocol version {} (this program speaks {}: is it the same build?)",
                         get_u16(rest, 4), kVersion);
    return std::nullopt;
  }
  const std::uint16_t type_code = get_u16(rest, 6);
  if (!known_type(type_code)) {
    error_ = fmt::format("unknown rendezvous message type {}", type_code);
    return std::nullopt;
  }
  const auto type = static_cast<FrameType>(type_code);
  const std::size_t tag = tag_bytes(type);
  const std::uint32_t length = get_u32(rest, 12);
  const std::size_t min_length = 4 + tag, max_length = 4 + std::size_t{max_payload_} + tag;
  if (length < min_length || length > max_length) {
    error_ = fmt::format("rendezvous {} message of {} bytes is outside the allowed {}..{}", type_name(type), length,
                         min_length, max_length);
    return std::nullopt;
  }
  if (rest.size() < kHeaderBytes + length) return std::nullopt;
  Frame f;
  f.type = type;
  f.sender = get_u32(rest, 8);
  f.sequence = get_u32(rest, kHeaderBytes);
  f.payload = std::string(rest.substr(kHeaderBytes + 4, length - 4 - tag));
  f.tag = std::string(rest.substr(kHeaderBytes + length - tag, tag));
  consumed_ += kHeaderBytes + length;
  if (consumed_ > (1u << 16) && consumed_ * 2 > buffer_.size()) {  // keep the buffer from growing forever
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  return f;
}

std::string encode_list(const std::vector<std::string>& items) {
  std::string out;
  put_u32(out, static_cast<std::uint32_t>(items.size()));
  for (const auto& item : items) {
    put_u32(out, static_cast<std::uint32_t>(item.size()));
    out += item;
  }
  return out;
}

std::optional<std::vector<std::string>> decode_list(std::string_view payload, std::size_t max_items) {
  if (payload.size() < 4) return std::nullopt;
  const std::uint32_t count = get_u32(payload, 0);
  if (count > max_items) return std::nullopt;
  std::vector<std::string> items;
  std::size_t at = 4;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (payload.size() - at < 4) return std::nullopt;
    const std::uint32_t n = get_u32(payload, at);
    at += 4;
    if (payload.size() - at < n) return std::nullopt;
    items.emplace_back(payload.substr(at, n));
    at += n;
  }
  if (at != payload.size()) return std::nullopt;
  return items;
}

}  // namespace ar::wire
