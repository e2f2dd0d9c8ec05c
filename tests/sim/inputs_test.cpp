// The simulator's inputs: a pure function of (seed, call, rank, element), with every protocol-breaking pattern
// present early in every call.
#include "sim/inputs.h"

#include <catch2/catch.hpp>
#include <set>

#include "reference/float_bits.h"
#include "reference/workspace.h"

namespace ar::sim {
namespace {

TEST_CASE("inputs are a pure function of the seed", "[cpu]") {
  const HostTensor a = make_call_inputs(7, 2, 4, 3, 16, DType::kBf16);
  const HostTensor b = make_call_inputs(7, 2, 4, 3, 16, DType::kBf16);
  const HostTensor c = make_call_inputs(8, 2, 4, 3, 16, DType::kBf16);
  const HostTensor d = make_call_inputs(7, 3, 4, 3, 16, DType::kBf16);
  CHECK(a == b);
  CHECK_FALSE(a == c);
  CHECK_FALSE(a == d);  // each call gets fresh data, so stale data from an earlier call is never mistaken for new
  CHECK(a.shape() == std::vector<std::int64_t>{4, 3, 16});
}

TEST_CASE("the first eight words of every call cycle through every pattern", "[cpu]") {
  for (std::uint64_t seed : {1ull, 2ull, 99ull}) {
    for (int call = 0; call < 5; ++call) {
      std::set<InputPattern> seen;
      for (std::int64_t w = 0; w < 8; ++w) seen.insert(input_pattern(seed, call, w));
      CHECK(seen.size() == 5);
    }
  }
}

TEST_CASE("the protocol-breaking patterns have the bits they promise", "[cpu]") {
  const int world = 4;
  const HostTensor t = make_call_inputs(3, 0, world, 1, 64, DType::kBf16);
  const std::int64_t count = 64;
  bool sentinel = false, ftz = false, cancel = false;
  for (std::int64_t word = 0; word < 32; ++word) {
    const InputPattern p = input_pattern(3, 0, word);
    for (int r = 0; r < world; ++r) {
      const std::uint32_t lo = t.bits(r * count + 2 * word), hi = t.bits(r * count + 2 * word + 1);
      const std::uint32_t w = lo | (hi << 16);
      if (p == InputPattern::kSentinelPair && w == kLamportEmptyWord) sentinel = true;
      if (p == InputPattern::kFtzWord && (w & 0xFF800000u) == 0x80000000u && w != kLamportEmptyWord) ftz = true;
      if (p == InputPattern::kCancel && r == 0 && hi == 0x8081u) cancel = true;
    }
  }
  CHECK(sentinel);
  CHECK(ftz);
  CHECK(cancel);
}

}  // namespace
}  // namespace ar::sim
