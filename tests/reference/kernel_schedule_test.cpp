// Tests of our kernels' schedule (reference/kernel_schedule.h), which cuda/ and sim/ both read: the rounds a
// call is split into.
#include "reference/kernel_schedule.h"

#include <catch2/catch.hpp>

namespace ar {
namespace {

TEST_CASE("round_tokens: the whole call by default, at most N, TWOSHOT a multiple of W", "[cpu]") {
  const ProblemShape s{4, 10, 16, DType::kBf16};
  CHECK(round_tokens(Strategy::kOneShot, s, 0) == 10);
  CHECK(round_tokens(Strategy::kOneShot, s, 3) == 3);
  CHECK(round_tokens(Strategy::kOneShot, s, 25) == 10);
  CHECK(round_tokens(Strategy::kTwoShot, s, 0) == 12);  // rounds up past N: every round starts at a rank-0 token
  CHECK(round_tokens(Strategy::kTwoShot, s, 3) == 4);
  CHECK(round_tokens(Strategy::kTwoShot, s, 5) == 8);
  CHECK(round_count(10, 3) == 4);
  CHECK(round_count(10, 12) == 1);
}

}  // namespace
}  // namespace ar
