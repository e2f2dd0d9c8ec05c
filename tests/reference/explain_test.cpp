// explain names the step that makes two orders differ.
#include <catch2/catch.hpp>

#include <vector>

#include "reference/explain.h"

using namespace ar;

TEST_CASE("explain finds the chunk boundary where ONESHOT and TWOSHOT part (W = 16)", "[cpu]") {
  std::vector<std::uint32_t> v(16, 0x3F80);  // the 10.7 case: [2^24, 1 x14, -2^24]
  v[0] = 0x4B80;
  v[15] = 0xCB80;
  const ElementExplanation e = explain_element(v, DType::kBf16, Strategy::kOneShot, Profile::kFlashInfer);
  CHECK(e.folds[0].trace.result == 0x40E0);
  CHECK(e.correctly_rounded == 0x4160);  // exact 14
  const FoldComparison* twoshot = nullptr;
  for (const auto& c : e.comparisons)
    if (c.other->strategy == Strategy::kTwoShot && c.other->profile == Profile::kFlashInfer) twoshot = &c;
  REQUIRE(twoshot != nullptr);
  CHECK_FALSE(twoshot->same_bits);
  // After rank 8 ONESHOT holds 2^24 + (chunk 1 = 1) exactly, TWOSHOT has rounded 2^24 + 1 back to 2^24.
  CHECK(twoshot->first_rank == 8);
  CHECK_THAT(twoshot->difference, Catch::Contains("chunk 1 += rank 8") && Catch::Contains("[rounded]"));
}

TEST_CASE("explain attributes ONESHOT's -0 at W = 2 to TWOSHOT's outer +0 add", "[cpu]") {
  // SPEC section 3: TWOSHOT computes A(+0, S); with S = -0 that is +0, before any sanitising.
  const std::vector<std::uint32_t> v{0x8081, 0x0080};
  const ElementExplanation e = explain_element(v, DType::kBf16, Strategy::kOneShot, Profile::kFlashInfer);
  CHECK(e.folds[0].trace.result == 0x8000);
  int checked = 0;
  for (const auto& c : e.comparisons) {
    if (c.other->strategy != Strategy::kTwoShot || c.other->profile != Profile::kFlashInfer) continue;
    CHECK_FALSE(c.same_bits);
    CHECK(c.first_rank == 1);
    CHECK_THAT(c.difference,
               Catch::Contains("then holds -0") && Catch::Contains("holds +0") && Catch::Contains("acc += chunk 0"));
    ++checked;
  }
  CHECK(checked == 1);
}

TEST_CASE("explain attributes an FTZ difference to the flushing add", "[cpu]") {
  const std::vector<std::uint32_t> v{0x0001, 0x0001};
  const ElementExplanation e = explain_element(v, DType::kBf16, Strategy::kOneShot, Profile::kFlashInfer);
  int checked = 0;
  for (const auto& c : e.comparisons) {
    if (c.other->profile != Profile::kIeee || c.other->strategy != Strategy::kOneShot) continue;
    CHECK_FALSE(c.same_bits);  // FTZ gives +0, IEEE the subnormal sum 0x0002
    CHECK(c.first_rank == 0);
    CHECK_THAT(c.difference, Catch::Contains("FTZ flushed the operand"));
    ++checked;
  }
  CHECK(checked == 1);
}
