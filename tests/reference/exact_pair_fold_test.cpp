// exact_pair_fold: the one IEEE fp32 add that is the invariant profile's order at W = 2 must give the exact
// sum's bits on every input. Checked against the exact sum on pairs of values of T: every value of bf16 and
// of fp16 against 64 others chosen where the two roundings could part (tests/support/rounding_pairs.h), fp32
// on random pairs, and (hidden, `[.exhaustive]`: about 10 minutes of one core) every pair of bf16 and fp16.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "reference/fold.h"
#include "tests/support/rounding_pairs.h"

using namespace ar;

namespace {

const ReductionOrder kExactPair = exact_sum_order(2);

/// A pair of values whose two sums differ (none while a = 0xFFFFFFFF, no 16-bit value).
struct Mismatch {
  std::uint32_t a = 0xFFFFFFFFu, b = 0;
  bool found() const { return a != 0xFFFFFFFFu; }
};

bool same_bits(std::uint32_t a, std::uint32_t b, DType t, const ReductionOrder& fold) {
  const std::uint32_t v[2] = {a, b};
  return reduce_element(v, t, fold) == reduce_element(v, t, kExactPair);
}

/// Checks every a in [a_begin, a_end) against every b of T, on every core; the first mismatch found, if any.
Mismatch every_pair(DType t, std::uint32_t a_begin, std::uint32_t a_end, const ReductionOrder& fold) {
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::atomic<std::uint32_t> next_a{a_begin};
  std::vector<Mismatch> found(threads);
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      for (std::uint32_t a = next_a++; a < a_end && !found[i].found(); a = next_a++)
        for (std::uint32_t b = 0; b < 0x10000u; ++b)
          if (!same_bits(a, b, t, fold)) {
            found[i] = {a, b};
            break;
          }
    });
  for (std::thread& th : pool) th.join();
  for (const Mismatch& m : found)
    if (m.found()) return m;
  return {};
}

}  // namespace

TEST_CASE("exact_pair_fold: an IEEE flat fold of two values from +0", "[cpu]") {
  const ReductionOrder fold = exact_pair_fold();
  CHECK(fold.world_size == 2);
  CHECK_FALSE(fold.exact);
  CHECK_FALSE(fold.ftz);
  CHECK(fold.chunk == 0);
  CHECK_FALSE(fold.seed_with_first);
  // It is the invariant profile's order at W = 2 (the -0 test, a no-op here, aside), and it is checked below
  // against the exact sum, not against that order.
  ReductionOrder invariant = reduction_order(Strategy::kTwoShot, Profile::kInvariant, 2);
  invariant.sanitize_result = false;
  CHECK(invariant == fold);
  CHECK(kExactPair.exact);
  // An FTZ add is not the exact sum: the subnormal 0x0001 + 0x0001 flushes to +0 (bf16).
  ReductionOrder ftz = fold;
  ftz.ftz = true;
  CHECK_FALSE(same_bits(0x0001, 0x0001, DType::kBf16, ftz));
  CHECK(same_bits(0x0001, 0x0001, DType::kBf16, fold));
}

TEST_CASE("exact_pair_fold: at W = 2 one fp32 add gives the exact sum's bits (bf16, fp16: every value, 64 partners)",
          "[cpu]") {
  const ReductionOrder fold = exact_pair_fold();
  for (DType t : {DType::kBf16, DType::kFp16}) {
    const FloatFormat f = float_format(t);
    test::BitStream bits{2};
    std::int64_t checked = 0;
    for (std::uint32_t a = 0; a < 0x10000u; ++a)
      for (std::uint32_t b : test::rounding_partners(a, f, bits)) {
        ++checked;
        if (same_bits(a, b, t, fold)) continue;
        FAIL_CHECK(dtype_name(t) << ": " << std::hex << a << " + " << b);
      }
    CHECK(checked == 64 * 0x10000);
  }
}

TEST_CASE("exact_pair_fold: at W = 2 one fp32 add is the exact sum rounded once (fp32, random pairs)", "[cpu]") {
  const ReductionOrder fold = exact_pair_fold();
  test::BitStream bits{3};
  for (int i = 0; i < 1'000'000; ++i) {
    const std::uint32_t a = bits.next();
    // b anywhere, or within 30 binades of a (bits below fp32's reach), or a's negation.
    std::uint32_t b = bits.next();
    const int field = std::clamp(int(a >> 23 & 0xFF) + int(b % 61) - 30, 0, 255);
    if (i % 3 == 1) b = (b & 0x807FFFFFu) | (std::uint32_t(field) << 23);
    if (i % 7 == 2) b = a ^ 0x80000000u;
    if (!same_bits(a, b, DType::kFp32, fold)) FAIL_CHECK(std::hex << a << " + " << b);
  }
}

TEST_CASE("exact_pair_fold: at W = 2 one fp32 add gives the exact sum's bits on every pair of bf16 and of fp16",
          "[.exhaustive]") {
  const ReductionOrder fold = exact_pair_fold();
  for (DType t : {DType::kBf16, DType::kFp16}) {
    const Mismatch m = every_pair(t, 0, 0x10000u, fold);
    INFO(dtype_name(t) << ": " << std::hex << m.a << " + " << m.b);
    CHECK_FALSE(m.found());
  }
}
