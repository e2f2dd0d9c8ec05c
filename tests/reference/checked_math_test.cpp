// checked_math.h at the edges of int64: the one helper every size computed from user input goes through.
// Tags: [boundary] for the limits themselves, [wrapping] for the shapes whose products wrapped.
#include <catch2/catch.hpp>

#include <limits>
#include <vector>

#include "reference/checked_math.h"

using namespace ar;

namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kHalfPastMax = kMax / 2 + 1;  // 2^62: twice it is 2^63, one past INT64_MAX

}  // namespace

TEST_CASE("checked_mul: 0, 1, INT64_MAX, the first product past it, negatives", "[cpu][boundary]") {
  CHECK(checked_mul(0, 0) == 0);
  CHECK(checked_mul(0, kMax) == 0);
  CHECK(checked_mul(kMax, 0) == 0);
  CHECK(checked_mul(1, 1) == 1);
  CHECK(checked_mul(1, kMax) == kMax);
  CHECK(checked_mul(kMax, 1) == kMax);
  CHECK(checked_mul(kMax / 2, 2) == kMax - 1);
  CHECK(checked_mul(kHalfPastMax, 2) == std::nullopt);
  CHECK(checked_mul(2, kHalfPastMax) == std::nullopt);
  CHECK(checked_mul(kMax, 2) == std::nullopt);
  CHECK(checked_mul(kMax, kMax) == std::nullopt);
  // Around the square root: floor(sqrt(INT64_MAX)) squared fits, one more does not.
  CHECK(checked_mul(3037000499, 3037000499) == 9223372030926249001);
  CHECK(checked_mul(3037000500, 3037000500) == std::nullopt);
  // A size is never negative: even a product that would fit (-1 x -1, -1 x 0) is refused.
  CHECK(checked_mul(-1, 1) == std::nullopt);
  CHECK(checked_mul(1, -1) == std::nullopt);
  CHECK(checked_mul(-1, -1) == std::nullopt);
  CHECK(checked_mul(-1, 0) == std::nullopt);
  CHECK(checked_mul(kMin, 1) == std::nullopt);
  static_assert(checked_mul(kHalfPastMax, 2) == std::nullopt, "usable in constant expressions");
}

TEST_CASE("checked_add: 0, INT64_MAX, the first sum past it, negatives", "[cpu][boundary]") {
  CHECK(checked_add(0, 0) == 0);
  CHECK(checked_add(kMax, 0) == kMax);
  CHECK(checked_add(0, kMax) == kMax);
  CHECK(checked_add(kMax - 1, 1) == kMax);
  CHECK(checked_add(kMax, 1) == std::nullopt);
  CHECK(checked_add(kHalfPastMax, kHalfPastMax - 1) == kMax);
  CHECK(checked_add(kHalfPastMax, kHalfPastMax) == std::nullopt);
  CHECK(checked_add(kMax, kMax) == std::nullopt);
  CHECK(checked_add(-1, 1) == std::nullopt);
  CHECK(checked_add(1, -1) == std::nullopt);
  CHECK(checked_add(kMin, kMax) == std::nullopt);
}

TEST_CASE("checked_product: none, one, INT64_MAX, the first product past it, zeros and negatives", "[cpu][boundary]") {
  CHECK(checked_product({}) == 1);
  CHECK(checked_product({0}) == 0);
  CHECK(checked_product({1}) == 1);
  CHECK(checked_product({kMax}) == kMax);
  CHECK(checked_product({1, kMax, 1}) == kMax);
  CHECK(checked_product({0, kMax}) == 0);
  CHECK(checked_product({kMax / 2, 2}) == kMax - 1);
  CHECK(checked_product({kHalfPastMax, 2}) == std::nullopt);
  CHECK(checked_product({2, kHalfPastMax}) == std::nullopt);
  CHECK(checked_product({std::int64_t{1} << 31, std::int64_t{1} << 31}) == kHalfPastMax);
  CHECK(checked_product({std::int64_t{1} << 31, std::int64_t{1} << 31, 2}) == std::nullopt);
  // A zero does not hide an overflow of the other factors, wherever it stands.
  CHECK(checked_product({0, std::int64_t{1} << 40, std::int64_t{1} << 40}) == std::nullopt);
  CHECK(checked_product({std::int64_t{1} << 40, std::int64_t{1} << 40, 0}) == std::nullopt);
  CHECK(checked_product({0, std::int64_t{1} << 31, std::int64_t{1} << 31}) == 0);
  CHECK(checked_product({-1}) == std::nullopt);
  CHECK(checked_product({0, -1}) == std::nullopt);
  CHECK(checked_product({-1, -1}) == std::nullopt);
  const std::vector<std::int64_t> shape{2, 3, 16, 2};
  CHECK(checked_product(shape) == 192);
}

TEST_CASE("checked_round_up: exact multiples, the last multiple below INT64_MAX, bad divisors", "[cpu][boundary]") {
  CHECK(checked_round_up(0, 32) == 0);
  CHECK(checked_round_up(1, 32) == 32);
  CHECK(checked_round_up(32, 32) == 32);
  CHECK(checked_round_up(33, 32) == 64);
  CHECK(checked_round_up(kMax, 1) == kMax);
  CHECK(checked_round_up(kMax - 32, 32) == kMax - 31);  // 2^63 - 32, the last multiple of 32
  CHECK(checked_round_up(kMax - 31, 32) == kMax - 31);
  CHECK(checked_round_up(kMax - 30, 32) == std::nullopt);  // would be 2^63
  CHECK(checked_round_up(kMax, 32) == std::nullopt);
  CHECK(checked_round_up(kMax, 2) == std::nullopt);
  CHECK(checked_round_up(-1, 32) == std::nullopt);
  CHECK(checked_round_up(5, 0) == std::nullopt);
  CHECK(checked_round_up(5, -4) == std::nullopt);
}

TEST_CASE("the issue's products that wrapped are refused by checked_product", "[cpu][wrapping]") {
  // (2, 2**59 + 1, 8) of fp16 wrapped to 32 bytes; (2, 2**62, 8) to 0.
  CHECK(checked_product({2, (std::int64_t{1} << 59) + 1, 8, 2}) == std::nullopt);
  CHECK(checked_product({2, std::int64_t{1} << 62, 8, 2}) == std::nullopt);
  // compare -n 4294967296 --hidden 4294967296 at W = 16, bf16.
  CHECK(checked_product({16, std::int64_t{1} << 32, std::int64_t{1} << 32, 2}) == std::nullopt);
  // sim --calls oneshot:N=274177:D=538243370485768 at W = 4, bf16 wrapped to 64 bytes.
  CHECK(checked_product({4, 274177, 538243370485768, 2}) == std::nullopt);
}
