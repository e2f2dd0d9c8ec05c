// HostTensor's size is checked before anything is allocated, the [W, N, D] view of it never truncates W, and
// two tensors of different shapes never compare as equal. Tags: [wrapping] the shapes, [boundary] the
// limits.
#include <catch2/catch.hpp>

#include <stdexcept>

#include "reference/all_reduce.h"
#include "reference/bit_diff.h"
#include "reference/tensor.h"

using namespace ar;

TEST_CASE("HostTensor refuses the issue's wrapping shapes before allocating, naming the shape", "[cpu][wrapping]") {
  // Unchecked, (2, 2**59 + 1, 8) of fp16 was 32 bytes and (2, 2**62, 8) of fp32 none at all.
  CHECK_THROWS_AS(HostTensor(DType::kFp16, {2, (std::int64_t{1} << 59) + 1, 8}), std::invalid_argument);
  CHECK_THROWS_WITH(
      HostTensor(DType::kFp16, {2, (std::int64_t{1} << 59) + 1, 8}),
      Catch::Contains("shape (2, 576460752303423489, 8) of fp16") && Catch::Contains("overflows 64 bits"));
  CHECK_THROWS_WITH(
      HostTensor(DType::kFp32, {2, std::int64_t{1} << 62, 8}, HostTensor::kUninitialized),
      Catch::Contains("shape (2, 4611686018427387904, 8) of fp32") && Catch::Contains("overflows 64 bits"));
  CHECK_THROWS_WITH(HostTensor(DType::kBf16, {16, std::int64_t{1} << 32, std::int64_t{1} << 32}),
                    Catch::Contains("overflows 64 bits"));
}

TEST_CASE("HostTensor: negative dimensions, the 2^48-byte limit, zeros that hide an overflow", "[cpu][boundary]") {
  CHECK_THROWS_WITH(HostTensor(DType::kBf16, {2, -1, 8}), Catch::Contains("(2, -1, 8)") && Catch::Contains("negative"));
  // One element past 2^48 bytes: refused by the limit, not by the allocator.
  CHECK_THROWS_WITH(HostTensor(DType::kBf16, {(kMaxTensorBytes / 2) + 1}),
                    Catch::Contains("needs 281474976710658 bytes, more than the 281474976710656 (2^48)"));
  CHECK_THROWS_WITH(HostTensor(DType::kFp32, {2, kMaxTensorBytes / 8 + 1, 1}, HostTensor::kUninitialized),
                    Catch::Contains("more than"));
  // Empty, but its other factors overflow: a caller that drops the zero would wrap.
  CHECK_THROWS_WITH(HostTensor(DType::kBf16, {0, std::int64_t{1} << 62, 8}), Catch::Contains("overflows 64 bits"));
  CHECK(HostTensor(DType::kBf16, {0, std::int64_t{1} << 40, 8}).bytes().empty());
  CHECK(HostTensor(DType::kFp32, {2, 3, 4}).bytes().size() == 96);
}

TEST_CASE("shape_of_input never truncates W: a first dimension of 2**32 + 2 is not W = 2", "[cpu][boundary]") {
  const HostTensor empty(DType::kBf16, {(std::int64_t{1} << 32) + 2, 0, 8});
  CHECK_THROWS_WITH(shape_of_input(empty), Catch::Contains("world size 4294967298"));
  CHECK_THROWS_WITH(shape_of_input(HostTensor(DType::kBf16, {65, 0, 8})), Catch::Contains("world size 65"));
  CHECK(shape_of_input(HostTensor(DType::kBf16, {64, 0, 8})).world_size == 64);
}

TEST_CASE("compare_bits: tensors of different shapes never compare as equal, even with the same bytes",
          "[cpu][boundary]") {
  const HostTensor flat(DType::kBf16, {16}), square(DType::kBf16, {2, 8}), other(DType::kFp16, {2, 8});
  REQUIRE(flat.bytes().size() == square.bytes().size());
  CHECK_THROWS_WITH(compare_bits(flat, square), Catch::Contains("different shapes"));
  CHECK_THROWS_WITH(compare_bits(square, other), Catch::Contains("different dtypes"));
  CHECK_FALSE(flat == square);
  CHECK(compare_bits(square, square).differing == 0);
}
