// The rendezvous parser: round trips, and fuzzing with random and mutated bytes (it must reject or accept
// cleanly, never crash or over-read: run under the asan preset to check the latter).
#include <catch2/catch.hpp>

#include <random>

#include "harness/job/wire_format.h"

using namespace ar::wire;

TEST_CASE("frames round-trip, also when split at every byte", "[cpu]") {
  const Frame f{FrameType::kGather, 7, 3, std::string("payload\0with\xff bytes", 19)};
  const std::string bytes = encode(f) + encode({FrameType::kAbort, 1, 4, "stop"});
  for (std::size_t split = 0; split <= bytes.size(); ++split) {
    FrameDecoder d;
    d.feed(std::string_view(bytes).substr(0, split));
    std::vector<Frame> got;
    while (auto g = d.next()) got.push_back(*g);
    d.feed(std::string_view(bytes).substr(split));
    while (auto g = d.next()) got.push_back(*g);
    REQUIRE_FALSE(d.failed());
    REQUIRE(got.size() == 2);
    CHECK(got[0].type == FrameType::kGather);
    CHECK(got[0].sender == 7);
    CHECK(got[0].sequence == 3);
    CHECK(got[0].payload == f.payload);
    CHECK(got[1].payload == "stop");
  }
}

TEST_CASE("malformed frames are rejected with a reason", "[cpu]") {
  std::string bytes = encode({FrameType::kHello, 1, 0, "x"});
  // A fresh decoder fed `bytes` must take no frame from them; its reason, or "" when it gives none.
  const auto rejection = [&] {
    FrameDecoder d;
    d.feed(bytes);
    CHECK_FALSE(d.next());
    return d.error().value_or("");
  };
  SECTION("bad magic") {
    bytes[0] ^= 1;
    CHECK_THAT(rejection(), Catch::Contains("bad magic"));
  }
  SECTION("unknown type") {
    bytes[6] = 99;
    CHECK_THAT(rejection(), Catch::Contains("unknown rendezvous message type 99"));
  }
  SECTION("oversized length") {
    bytes[15] = 0x7F;
    CHECK_THAT(rejection(), Catch::Contains("outside the allowed"));
  }
  SECTION("other version") {
    bytes[4] = 9;
    CHECK_THAT(rejection(), Catch::Contains("protocol version 9"));
  }
}

TEST_CASE("lists decode only when well formed", "[cpu]") {
  const std::string list = encode_list({"a", "", "ccc"});
  CHECK(decode_list(list, 3) == std::vector<std::string>{"a", "", "ccc"});
  CHECK_FALSE(decode_list(list, 2));                       // too many items
  CHECK_FALSE(decode_list(list.substr(0, list.size() - 1), 3));  // truncated
  CHECK_FALSE(decode_list(list + "x", 3));                 // trailing bytes
  CHECK_FALSE(decode_list("", 3));
}

TEST_CASE("fuzz: random and mutated streams never crash the decoder", "[cpu]") {
  std::mt19937_64 rng(20261126);
  const std::string valid = encode({FrameType::kGathered, 0, 1, encode_list({"rank0", "rank1"})}) +
                            encode({FrameType::kWelcome, 0, 0, ""});
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
    FrameDecoder d;
    std::size_t at = 0;
    while (at < bytes.size()) {  // arrive in random pieces
      const std::size_t n = 1 + rng() % 7;
      d.feed(std::string_view(bytes).substr(at, n));
      at += n;
      while (auto f = d.next()) {
        ++frames;
        (void)decode_list(f->payload, 64);
      }
    }
    rejected += d.failed() ? 1 : 0;
  }
  CHECK(frames > 0);
  CHECK(rejected > 0);
}
