// The rendezvous parser: round trips, and fuzzing with random and mutated bytes (it must reject or accept
// cleanly, never crash or over-read: run under the asan preset to check the latter).
#include <catch2/catch.hpp>

#include <random>

#include "harness/job/wire_format.h"

using namespace ar::wire;

namespace {

const std::string kSomeTag(kTagBytes, '\x5a');

}  // namespace

TEST_CASE("frames round-trip, also when split at every byte", "[cpu]") {
  const Frame f{FrameType::kGather, 7, 3, std::string("payload\0with\xff bytes", 19), kSomeTag};
  const std::string bytes = encode(f) + encode({FrameType::kAbort, 1, 4, "stop", std::string(kTagBytes, '\1')}) +
                            encode({FrameType::kChallenge, 0, 0, std::string(kNonceBytes, '\7'), {}});
  for (std::size_t split = 0; split <= bytes.size(); ++split) {
    FrameDecoder d;
    d.feed(std::string_view(bytes).substr(0, split));
    std::vector<Frame> got;
    while (auto g = d.next()) got.push_back(*g);
    d.feed(std::string_view(bytes).substr(split));
    while (auto g = d.next()) got.push_back(*g);
    REQUIRE_FALSE(d.failed());
    REQUIRE(got.size() == 3);
    CHECK(got[0].type == FrameType::kGather);
    CHECK(got[0].sender == 7);
    CHECK(got[0].sequence == 3);
    CHECK(got[0].payload == f.payload);
    CHECK(got[0].tag == kSomeTag);
    CHECK(got[1].payload == "stop");
    CHECK(got[1].tag == std::string(kTagBytes, '\1'));
    CHECK(got[2].type == FrameType::kChallenge);
    CHECK(got[2].payload == std::string(kNonceBytes, '\7'));
    CHECK(got[2].tag.empty());
  }
}

TEST_CASE("the frames after the handshake carry a tag, the handshake's do not", "[cpu]") {
  for (FrameType t : {FrameType::kGather, FrameType::kGathered, FrameType::kAbort}) {
    CHECK(is_authenticated(t));
    CHECK_THROWS_WITH(encode({t, 0, 0, "x", {}}), Catch::Contains("needs a tag of 32 bytes, not 0"));
  }
  for (FrameType t : {FrameType::kChallenge, FrameType::kHello, FrameType::kWelcome, FrameType::kRefused}) {
    CHECK_FALSE(is_authenticated(t));
    CHECK_THROWS_AS(encode({t, 0, 0, "x", kSomeTag}), std::invalid_argument);
  }
  // A tagged type whose body is too short to hold the tag is refused before anything is read from it.
  std::string bytes = encode({FrameType::kHello, 1, 0, std::string(20, 'h'), {}});
  bytes[6] = static_cast<char>(FrameType::kGathered);
  FrameDecoder d;
  d.feed(bytes);
  CHECK_FALSE(d.next());
  CHECK_THAT(d.error().value(), Catch::Contains("gathered values message of 24 bytes is outside the allowed 36.."));
}

TEST_CASE("what a tag covers: the counter, the header fields and the payload", "[cpu]") {
  const Frame f{FrameType::kGathered, 0, 5, "plan", kSomeTag};
  const std::string base = authenticated_content(f, 9);
  CHECK(base != authenticated_content(f, 10));  // a replay at another position
  Frame other = f;
  other.sequence = 6;
  CHECK(base != authenticated_content(other, 9));
  other = f;
  other.type = FrameType::kAbort;
  CHECK(base != authenticated_content(other, 9));
  other = f;
  other.sender = 1;
  CHECK(base != authenticated_content(other, 9));
  other = f;
  other.payload = "plam";
  CHECK(base != authenticated_content(other, 9));
  other = f;
  other.tag = std::string(kTagBytes, '\0');  // the tag itself is not covered
  CHECK(base == authenticated_content(other, 9));
}

TEST_CASE("malformed frames are rejected with a reason", "[cpu]") {
  std::string bytes = encode({FrameType::kHello, 1, 0, "x", {}});
  SECTION("bad magic") {
    bytes[0] ^= 1;
    FrameDecoder d;
    d.feed(bytes);
    CHECK_FALSE(d.next());
    CHECK_THAT(d.error().value(), Catch::Contains("bad magic"));
  }
  SECTION("unknown type") {
    bytes[6] = 99;
    FrameDecoder d;
    d.feed(bytes);
    CHECK_FALSE(d.next());
    CHECK_THAT(d.error().value(), Catch::Contains("unknown rendezvous message type 99"));
  }
  SECTION("oversized length") {
    bytes[15] = 0x7F;
    FrameDecoder d;
    d.feed(bytes);
    CHECK_FALSE(d.next());
    CHECK_THAT(d.error().value(), Catch::Contains("outside the allowed"));
  }
  SECTION("other version, such as a build that sent its token in clear") {
    bytes[4] = 1;
    FrameDecoder d;
    d.feed(bytes);
    CHECK_FALSE(d.next());
    CHECK_THAT(d.error().value(), Catch::Contains("protocol version 1 (this program speaks 2"));
  }
  SECTION("a payload over the handshake's limit, announced in the header before the payload is sent") {
    const std::string big = encode({FrameType::kHello, 1, 0, std::string(kMaxHandshakePayloadBytes + 1, 'h'), {}});
    FrameDecoder d(kMaxHandshakePayloadBytes);
    d.feed(std::string_view(big).substr(0, kHeaderBytes));
    CHECK_FALSE(d.next());
    CHECK_THAT(d.error().value(), Catch::Contains("hello message of 4101 bytes is outside the allowed 4..4100"));
    FrameDecoder after_handshake(kMaxHandshakePayloadBytes);
    after_handshake.set_max_payload(kMaxPayloadBytes);
    after_handshake.feed(big);
    CHECK(after_handshake.next().has_value());
  }
}

TEST_CASE("lists decode only when well formed", "[cpu]") {
  const std::string list = encode_list({"a", "", "ccc"});
  CHECK(decode_list(list, 3) == std::vector<std::string>{"a", "", "ccc"});
  CHECK_FALSE(decode_list(list, 2));                             // too many items
  CHECK_FALSE(decode_list(list.substr(0, list.size() - 1), 3));  // truncated
  CHECK_FALSE(decode_list(list + "x", 3));                       // trailing bytes
  CHECK_FALSE(decode_list("", 3));
}

TEST_CASE("fuzz: random and mutated streams never crash the decoder", "[cpu]") {
  std::mt19937_64 rng(20261126);
  // Every frame type, tagged and not, so mutations reach each one's length rule.
  const std::string valid =
      encode({FrameType::kChallenge, 0, 0, std::string(kNonceBytes, 'n'), {}}) +
      encode({FrameType::kHello,
              1,
              0,
              encode_list({"1", "2", "0.1.0", std::string(kNonceBytes, 'm'), std::string(kTagBytes, 'p')}),
              {}}) +
      encode({FrameType::kWelcome, 0, 0, std::string(kTagBytes, 'q'), {}}) +
      encode({FrameType::kRefused, 0, 0, "no", {}}) +
      encode({FrameType::kGathered, 0, 1, encode_list({"rank0", "rank1"}), kSomeTag}) +
      encode({FrameType::kGather, 1, 1, "rank1", kSomeTag}) + encode({FrameType::kAbort, 1, 2, "stop", kSomeTag});
  int frames = 0, rejected = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string bytes;
    if (round % 2 == 0) {
      bytes.resize(rng() % 64);
      for (auto& c : bytes) c = static_cast<char>(rng());
    } else {
      bytes = valid;
      for (int m = 0; m < 1 + int(rng() % 4); ++m) bytes[rng() % bytes.size()] = static_cast<char>(rng());
      bytes.resize(rng() % (bytes.size() + 1));
    }
    // Half the rounds decode with the handshake's limit, as a listener does before a peer has proved itself.
    FrameDecoder d(round % 4 < 2 ? kMaxHandshakePayloadBytes : kMaxPayloadBytes);
    std::size_t at = 0;
    while (at < bytes.size()) {  // arrive in random pieces
      const std::size_t n = 1 + rng() % 7;
      d.feed(std::string_view(bytes).substr(at, n));
      at += n;
      while (auto f = d.next()) {
        ++frames;
        CHECK(f->tag.size() == (is_authenticated(f->type) ? kTagBytes : 0));
        (void)decode_list(f->payload, 64);
      }
    }
    rejected += d.failed() ? 1 : 0;
  }
  CHECK(frames > 0);
  CHECK(rejected > 0);
}
