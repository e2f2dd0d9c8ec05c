// The exact sum and the ULP report.
#include <catch2/catch.hpp>

#include "reference/accuracy.h"
#include "reference/exact_sum.h"

using namespace ar;

TEST_CASE("ExactSum adds without rounding and rounds once", "[cpu]") {
  ExactSum s;
  s.add_fp32(0x4B800000);  // 2^24
  s.add_fp32(0x3F800000);  // 1
  s.add_fp32(0x3F800000);  // 1: 2^24 + 2, representable
  CHECK(s.round_to(kFp32Format) == 0x4B800001u);
  s.add_fp32(0xCB800000);  // -2^24 -> 2
  CHECK(s.round_to(kFp32Format) == 0x40000000u);
  CHECK(s.round_to(kBf16Format) == 0x4000u);
  ExactSum tiny;
  tiny.add_fp32(0x00000001);  // 2^-149
  tiny.add_fp32(0x7F7FFFFF);  // max + 2^-149: sticky only, rounds to max
  CHECK(tiny.round_to(kFp32Format) == 0x7F7FFFFFu);
  ExactSum inf;
  inf.add_fp32(0x7F800000);
  inf.add_fp32(0xFF800000);
  CHECK(inf.is_nan());
  CHECK(inf.round_to(kBf16Format) == 0x7FFFu);
  ExactSum zero;
  zero.add_fp32(0x3F800000);
  zero.add_fp32(0xBF800000);
  CHECK(zero.is_zero());
  CHECK(zero.round_to(kFp32Format) == 0u);
}

TEST_CASE("accuracy report counts against the exact sum", "[cpu]") {
  // One element: ranks [2^24, 1, -2^24, 1] (bf16). Exact 2; every order here gives 1 (one ULP of 1.0 in bf16
  // is 2^-7, so 1 vs 2 is 128 ULPs).
  HostTensor in(DType::kBf16, {4, 1, 8});
  const std::uint32_t col[4] = {0x4B80, 0x3F80, 0xCB80, 0x3F80};
  for (int r = 0; r < 4; ++r)
    for (int d = 0; d < 8; ++d) in.set_bits(r * 8 + d, d == 0 ? col[r] : 0x3F80);  // other columns: 4.0 exactly
  const AccuracyReport rep = accuracy_report(in, {{Strategy::kOneShot, Profile::kFlashInfer}});
  REQUIRE(rep.rows.size() == 1);
  CHECK(rep.rows[0].elements == 8);
  CHECK(rep.rows[0].correctly_rounded == 7);
  CHECK(rep.rows[0].max_ulp == 128);
  CHECK(rep.rows[0].histogram[0] == 7);
  CHECK(rep.rows[0].histogram[6] == 1);  // 16-255
}
