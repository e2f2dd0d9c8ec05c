// validate_shape's size rule: W x N x D x E within kMaxTensorBytes (2^48), checked without wrapping, so that
// code that validated a shape may multiply freely. Tags: [boundary] the largest shape that fits and the
// smallest that does not, per dtype; [wrapping] the shapes whose products wrapped.
#include <catch2/catch.hpp>

#include <limits>
#include <string>

#include <fmt/format.h>

#include "reference/strategy.h"
#include "reference/tensor.h"
#include "reference/workspace.h"

using namespace ar;

namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

std::string refusal(const ProblemShape& s) { return validate_shape(s).value_or("valid"); }

}  // namespace

TEST_CASE("validate_shape: the largest N that fits and the next, per dtype and world size", "[cpu][boundary]") {
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    const std::int64_t e = dtype_bytes(t), pack = elements_per_pack(t);
    for (int w : {2, 64})
      for (std::int64_t d : {pack, std::int64_t{4096}}) {
        // Every factor is a power of two, so the largest N makes exactly 2^48 bytes.
        const std::int64_t n = kMaxTensorBytes / (w * d * e);
        INFO(dtype_name(t) << " W = " << w << " D = " << d << " N = " << n);
        REQUIRE(n * w * d * e == kMaxTensorBytes);
        CHECK(validate_shape({w, n, d, t}) == std::nullopt);
        const std::string past = refusal({w, n + 1, d, t});
        CHECK_THAT(past, Catch::Contains(fmt::format("W x N x D x E = {} x {} x {} x {} = {} bytes is more than", w,
                                                     n + 1, d, e, (n + 1) * w * d * e)));
        CHECK_THAT(past, Catch::Contains("2^48"));
      }
  }
}

TEST_CASE("validate_shape: the largest D that fits and the next pack, per dtype", "[cpu][boundary]") {
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    const std::int64_t e = dtype_bytes(t), pack = elements_per_pack(t);
    const std::int64_t d = kMaxTensorBytes / (2 * e);  // W = 2, N = 1
    INFO(dtype_name(t) << " D = " << d);
    REQUIRE(d % pack == 0);
    CHECK(validate_shape({2, 1, d, t}) == std::nullopt);
    CHECK_THAT(refusal({2, 1, d + pack, t}), Catch::Contains("is more than"));
  }
}

TEST_CASE("validate_shape: the last size that fits 64 bits and the first that overflows, per dtype",
          "[cpu][boundary]") {
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    const std::int64_t e = dtype_bytes(t), d = elements_per_pack(t);
    const std::int64_t n = kMax / (2 * d * e);  // W x N x D x E = 2^63 - 32: past 2^48, still a 64-bit number
    INFO(dtype_name(t) << " N = " << n);
    CHECK_THAT(refusal({2, n, d, t}), Catch::Contains(fmt::format("= {} bytes is more than", n * 2 * d * e)));
    CHECK_THAT(refusal({2, n + 1, d, t}),
               Catch::Contains(fmt::format("W x N x D x E = 2 x {} x {} x {} bytes overflows 64 bits", n + 1, d, e)));
    CHECK_THAT(refusal({2, kMax, d, t}), Catch::Contains("overflows 64 bits"));
    CHECK_THAT(refusal({64, 1, kMax - kMax % d, t}), Catch::Contains("overflows 64 bits"));
  }
}

TEST_CASE("the other checks come first: a bad N, D or W is named, not its product", "[cpu][boundary]") {
  CHECK_THAT(refusal({2, -1, 8, DType::kBf16}), Catch::Contains("N must be at least 1 (got -1)"));
  CHECK_THAT(refusal({2, kMax, -8, DType::kBf16}), Catch::Contains("D must be at least 1 (got -8)"));
  CHECK_THAT(refusal({2, kMax, kMax, DType::kBf16}), Catch::Contains("not a multiple of 8"));
  CHECK_THAT(refusal({3, kMax, 8, DType::kBf16}), Catch::Contains("world size 3"));
}

TEST_CASE("a validated shape's sizes multiply freely: the largest ones give exact buffer sizes", "[cpu][boundary]") {
  const ProblemShape two{2, kMaxTensorBytes / 32, 8, DType::kBf16};  // 2^48 bytes in all
  REQUIRE(validate_shape(two) == std::nullopt);
  CHECK(two.bytes_per_rank() == kMaxTensorBytes / 2);
  CHECK(oneshot_buffer_bytes(two) == kMaxTensorBytes);
  CHECK(twoshot_buffer_bytes(two) == kMaxTensorBytes);  // 2 x round_up(2^43, 2) x 8 x 2
  CHECK(resolve_strategy(Strategy::kAuto, two) == Strategy::kTwoShot);
  // Too large for the kernels, said in words, not wrapped.
  CHECK_THAT(check_fits_workspace(Strategy::kAuto, two, kMaxBufferBytes).value(), Catch::Contains("32-bit"));
  // W = 64, N odd: TWOSHOT pads N to a multiple of W.
  const ProblemShape wide{64, kMaxTensorBytes / 1024 - 1, 8, DType::kBf16};
  REQUIRE(validate_shape(wide) == std::nullopt);
  CHECK(twoshot_buffer_bytes(wide) == 2 * (kMaxTensorBytes / 1024) * 8 * 2);
}

TEST_CASE("AUTO's 1 MiB rule at its edge, and for a product that overflows", "[cpu][boundary]") {
  CHECK(resolve_strategy(Strategy::kAuto, {8, 8192, 8, DType::kBf16}) == Strategy::kOneShot);  // exactly 1 MiB
  CHECK(resolve_strategy(Strategy::kAuto, {8, 8193, 8, DType::kBf16}) == Strategy::kTwoShot);
  // Unchecked, N x D x W x E = 4 x 274177 x 538243370485768 x 2 wrapped to 64 bytes: ONESHOT.
  CHECK(resolve_strategy(Strategy::kAuto, {4, 274177, 538243370485768, DType::kBf16}) == Strategy::kTwoShot);
}

TEST_CASE("the issue's wrapping shapes are refused by validate_shape, naming the product", "[cpu][wrapping]") {
  // (2, 2**59 + 1, 8) of fp16: 32 bytes when wrapped.
  CHECK_THAT(refusal({2, (std::int64_t{1} << 59) + 1, 8, DType::kFp16}),
             Catch::Contains("W x N x D x E = 2 x 576460752303423489 x 8 x 2 bytes overflows 64 bits"));
  // (2, 2**62, 8) of fp32: 0 bytes when wrapped.
  CHECK_THAT(refusal({2, std::int64_t{1} << 62, 8, DType::kFp32}),
             Catch::Contains("2 x 4611686018427387904 x 8 x 4 bytes overflows 64 bits"));
  // compare -n 4294967296 --hidden 4294967296 (W = 16, bf16).
  CHECK_THAT(refusal({16, std::int64_t{1} << 32, std::int64_t{1} << 32, DType::kBf16}),
             Catch::Contains("16 x 4294967296 x 4294967296 x 2 bytes overflows 64 bits"));
  // sim --calls oneshot:N=274177:D=538243370485768 (W = 4, bf16): 64 bytes when wrapped.
  CHECK_THAT(refusal({4, 274177, 538243370485768, DType::kBf16}),
             Catch::Contains("4 x 274177 x 538243370485768 x 2 bytes overflows 64 bits"));
}
