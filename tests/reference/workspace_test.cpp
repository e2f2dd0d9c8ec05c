// Workspace arithmetic of SPEC section 2, with values computed by hand, and its sizes at the 32-bit and 64-bit
// limits ([boundary], [wrapping]).
#include <catch2/catch.hpp>

#include "reference/workspace.h"

#include <limits>
#include <set>
#include <stdexcept>

using namespace ar;

TEST_CASE("buffer bytes per strategy", "[cpu]") {
  const ProblemShape s{8, 9, 7168, DType::kBf16};
  CHECK(oneshot_buffer_bytes(s) == 9ll * 7168 * 8 * 2);      // N*D*W*E
  CHECK(twoshot_buffer_bytes(s) == 2ll * 2 * 8 * 7168 * 2);  // 2*ceil(9/8)*8*D*E
  CHECK(required_buffer_bytes(Strategy::kAuto, s) == oneshot_buffer_bytes(s));
}

TEST_CASE("default workspace request: max of ONESHOT up to 1 MiB and TWOSHOT at max tokens", "[cpu]") {
  // W=8, bf16, D=7168, max 128 tokens: Nos = min(1 MiB / (8*2*7168), 128) = 9 -> 1,032,192 bytes;
  // twoshot(128) = 2*16*8*7168*2 = 3,670,016 bytes (already a multiple of 32).
  const BufferRequest r = request_buffer_bytes({8, 128, 7168, DType::kBf16});
  CHECK(r.bytes == 3670016);
  CHECK_FALSE(r.error);
  // Rounded up to 32: a user request of 33 bytes becomes 64.
  CHECK(request_buffer_bytes({2, 1, 8, DType::kBf16}, 33).bytes == 64);
  CHECK(request_buffer_bytes({2, 1, 8, DType::kBf16}, 0x100000000ll).error.value().find("UINT32_MAX") !=
        std::string::npos);
}

TEST_CASE("BPB from an allocation and stage geometry", "[cpu]") {
  CHECK(buffer_bytes_from_usable(2 * 1024 * 1024 - 2048) == (2 * 1024 * 1024 - 2048) / 3 / 32 * 32);
  const std::int64_t bpb = 699040;  // a multiple of 32
  CHECK(stage_offset_bytes(0, 0, 1, bpb) == 0);
  CHECK(stage_offset_bytes(2, 0, 1, bpb) == 2 * bpb);
  CHECK(stage_offset_bytes(1, 1, 2, bpb) == 3 * (bpb / 2));  // (i*S + s) * (BPB/S)
  CHECK((bpb / 2) % 16 == 0);
}

TEST_CASE("flags: initial state, rotation and clear records", "[cpu]") {
  LamportFlags f = initial_flags(4096);
  CHECK(f.words == std::array<std::uint32_t, 9>{0, 2, 4096, 0, 0, 0, 0, 0, 0});
  const ProblemShape one{4, 3, 16, DType::kBf16}, two{4, 5, 16, DType::kBf16};
  const ClearRecord r1 = clear_record(Strategy::kOneShot, one);
  CHECK(r1.stages == 1);
  CHECK(r1.bytes == std::array<std::uint32_t, 4>{3 * 16 * 4 * 2, 0, 0, 0});
  const ClearRecord r2 = clear_record(Strategy::kTwoShot, two);
  CHECK(r2.stages == 2);
  CHECK(r2.bytes == std::array<std::uint32_t, 4>{8 * 16 * 2, 5 * 16 * 2, 0, 0});  // round_up(5,4)*D*E, N*D*E
  // Launch k uses buffer (k-1) mod 3 and clears the previous launch's buffer.
  f = advance_flags(f, r1);
  CHECK(f.words == std::array<std::uint32_t, 9>{1, 0, 4096, 1, 384, 0, 0, 0, 0});
  f = advance_flags(f, r2);
  CHECK(f.words == std::array<std::uint32_t, 9>{2, 1, 4096, 2, 256, 160, 0, 0, 0});
  f = advance_flags(f, r1);
  CHECK(f.current_buffer() == 0);
  CHECK(f.dirty_buffer() == 2);
}

TEST_CASE("a call must fit the workspace and the kernels' integer widths", "[cpu]") {
  const ProblemShape s{8, 10, 7168, DType::kBf16};
  CHECK(check_fits_workspace(Strategy::kTwoShot, s, twoshot_buffer_bytes(s)) == std::nullopt);
  CHECK(check_fits_workspace(Strategy::kTwoShot, s, twoshot_buffer_bytes(s) - 32).value().find("insufficient") !=
        std::string::npos);
  const ProblemShape huge{64, 4096, 16384, DType::kFp32};  // N*D*W = 2^32 elements
  CHECK(check_fits_workspace(Strategy::kOneShot, huge, 1ll << 40).value().find("32-bit") != std::string::npos);
}

TEST_CASE("workspace request at the UINT32 limit: the last multiple of 32 fits, one byte more does not",
          "[cpu][boundary]") {
  const ProblemShape s{2, 1, 8, DType::kBf16};
  const BufferRequest last = request_buffer_bytes(s, 4294967264);  // UINT32_MAX - 31
  CHECK(last.bytes == 4294967264);
  CHECK_FALSE(last.error);
  const BufferRequest past = request_buffer_bytes(s, 4294967265);  // rounds up to 2^32
  CHECK(past.bytes == 4294967296);
  CHECK_THAT(past.error.value(), Catch::Contains("UINT32_MAX = 4294967295"));
  // Requests whose rounding would wrap int64 are refused, not wrapped to a small size.
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  CHECK_THAT(request_buffer_bytes(s, kMax).error.value(), Catch::Contains("UINT32_MAX"));
  CHECK_THAT(request_buffer_bytes(s, kMax - 30).error.value(), Catch::Contains("UINT32_MAX"));
  CHECK_THAT(request_buffer_bytes(s, -32).error.value(), Catch::Contains("negative"));
  // Without a request, the shape is checked first (D = 0 divided by zero; an overflow wrapped).
  CHECK_THAT(request_buffer_bytes({2, 1, 0, DType::kBf16}).error.value(), Catch::Contains("D must be at least 1"));
  CHECK_THAT(request_buffer_bytes({4, 274177, 538243370485768, DType::kBf16}).error.value(),
             Catch::Contains("overflows 64 bits"));
}

TEST_CASE("a call at the kernels' 32-bit limits: the last N that fits and the next", "[cpu][boundary]") {
  // fp32, W = 2, D = 4: ONESHOT needs 32 N bytes (N x D x W = 8 N elements, far from 2^31).
  const ProblemShape last{2, 134217727, 4, DType::kFp32}, next{2, 134217728, 4, DType::kFp32};
  CHECK(oneshot_buffer_bytes(last) == 4294967264);
  CHECK(check_fits_workspace(Strategy::kOneShot, last, kMaxBufferBytes) == std::nullopt);
  CHECK(clear_record(Strategy::kOneShot, last).bytes[0] == 4294967264u);
  CHECK_THAT(check_fits_workspace(Strategy::kOneShot, next, kMaxBufferBytes).value(),
             Catch::Contains("needs 4294967296 bytes per Lamport buffer, above the 32-bit limit 4294967295"));
  // TWOSHOT pads N to a multiple of W: at N = 134217727 it already needs 2^32.
  CHECK(twoshot_buffer_bytes({2, 134217726, 4, DType::kFp32}) == 4294967232);
  CHECK(check_fits_workspace(Strategy::kTwoShot, {2, 134217726, 4, DType::kFp32}, kMaxBufferBytes) == std::nullopt);
  CHECK_THAT(check_fits_workspace(Strategy::kTwoShot, last, kMaxBufferBytes).value(), Catch::Contains("32-bit limit"));
  // bf16, W = 2, D = 8: the int element count reaches 2^31 first.
  CHECK(check_fits_workspace(Strategy::kOneShot, {2, 134217727, 8, DType::kBf16}, kMaxBufferBytes) == std::nullopt);
  CHECK_THAT(check_fits_workspace(Strategy::kOneShot, {2, 134217728, 8, DType::kBf16}, kMaxBufferBytes).value(),
             Catch::Contains("N*D*W = 2147483648 elements exceeds the kernels' 32-bit int arithmetic"));
}

TEST_CASE("buffer sizes of a shape that overflows throw, naming it, instead of wrapping", "[cpu][wrapping]") {
  // N x D x W x E = 4 x 274177 x 538243370485768 x 2 wrapped to 64 bytes: a 64-byte workspace "fit" it.
  const ProblemShape wrapped{4, 274177, 538243370485768, DType::kBf16};
  CHECK_THROWS_WITH(oneshot_buffer_bytes(wrapped), Catch::Contains("ONESHOT's Lamport buffer") &&
                                                       Catch::Contains("N = 274177, D = 538243370485768") &&
                                                       Catch::Contains("overflows 64 bits"));
  CHECK_THROWS_WITH(twoshot_buffer_bytes(wrapped), Catch::Contains("TWOSHOT's Lamport buffer"));
  CHECK_THROWS_AS(required_buffer_bytes(Strategy::kAuto, wrapped), std::invalid_argument);
  // round_up(N, W) alone overflows at N = INT64_MAX.
  CHECK_THROWS_AS(twoshot_buffer_bytes({2, std::numeric_limits<std::int64_t>::max(), 8, DType::kBf16}),
                  std::invalid_argument);
  CHECK_THAT(check_fits_workspace(Strategy::kOneShot, wrapped, 64).value(), Catch::Contains("overflows 64 bits"));
}

TEST_CASE("the direct path's region: SCATTER, BROADCAST, then a flag a (kind, source, block)", "[cpu]") {
  // W = 8, N = 9 bf16 D = 7168: SCATTER rows for round_up(9, 8) = 16 tokens, BROADCAST for 9.
  const ProblemShape s{8, 9, 7168, DType::kBf16};
  CHECK(direct_scatter_bytes(s) == 16ll * 7168 * 2);
  CHECK(direct_broadcast_bytes(s) == 9ll * 7168 * 2);
  const DirectRegion d = direct_region(8, direct_scatter_bytes(s), direct_broadcast_bytes(s), 3);
  CHECK(d.broadcast == 16ll * 7168 * 2);
  CHECK(d.flags == 25ll * 7168 * 2);
  CHECK(d.bytes == d.flags + 2 * 8 * 3 * 16);
  // Every (kind, source, block) has its own 16-byte flag, inside the region.
  std::set<std::int64_t> flags;
  for (DirectFlag kind : {DirectFlag::kScatter, DirectFlag::kBroadcast})
    for (int source = 0; source < 8; ++source)
      for (std::int64_t block = 0; block < 3; ++block) {
        const std::int64_t at = d.flag(kind, source, block);
        CHECK(at % 16 == 0);
        CHECK(at >= d.flags);
        CHECK(at + 16 <= d.bytes);
        flags.insert(at);
      }
  CHECK(flags.size() == 2 * 8 * 3);
  // Sizes not a multiple of 16 still start the next part on a pack (fp32 D = 4 is 16 bytes a row; 8 is not).
  CHECK(direct_region(2, 8, 8, 1).flags == 32);
  // A flag's value: consecutive rounds, and the last round of a call and the first of the next, differ.
  CHECK(direct_flag_value(1, 0) == 2);
  CHECK(direct_flag_value(1, 1) == 3);
  CHECK(direct_flag_value(1, 2) == direct_flag_value(1, 0));
  CHECK(direct_flag_value(2, 0) != direct_flag_value(1, 0));
  CHECK(direct_flag_value(2, 0) != direct_flag_value(1, 1));
  CHECK(direct_flag_value(2, 0) != direct_flag_value(1, 3));
  // Never the initial fill, also where 2 * epoch passes 2^31; and consecutive values still differ there.
  for (std::uint32_t epoch : {0x3FFFFFFFu, 0x40000000u, 0x40000001u, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu})
    for (std::int64_t round : {0, 1}) {
      CHECK(direct_flag_value(epoch, round) != kLamportEmptyWord);
      CHECK(direct_flag_value(epoch, round) != direct_flag_value(epoch, round + 1));
      CHECK(direct_flag_value(epoch + 1, 0) != direct_flag_value(epoch, round));
    }
}

TEST_CASE("which calls take the direct path, and whether their rows fit a workspace's region", "[cpu]") {
  const ProblemShape s{4, 64, 4096, DType::kBf16};  // 512 KiB a rank
  CHECK(takes_direct_path(Strategy::kTwoShot, false, s, s.bytes_per_rank()));
  CHECK_FALSE(takes_direct_path(Strategy::kTwoShot, false, s, s.bytes_per_rank() + 1));  // below the threshold
  CHECK_FALSE(takes_direct_path(Strategy::kTwoShot, false, s, 0));                       // 0: no call
  CHECK_FALSE(takes_direct_path(Strategy::kTwoShot, true, s, 1));                        // fused: never
  CHECK_FALSE(takes_direct_path(Strategy::kOneShot, false, s, 1));                       // ONESHOT: never
  // The region for a largest shape holds it and every smaller call, and no larger one.
  const DirectRegion d = direct_region_for(s);
  CHECK(d.max_blocks == kMaxDirectBlocks);
  CHECK_FALSE(check_fits_direct_region(s, d));
  CHECK_FALSE(check_fits_direct_region({4, 3, 4096, DType::kBf16}, d));
  CHECK_FALSE(check_fits_direct_region({4, 64, 2048, DType::kFp32}, d));
  CHECK_THAT(check_fits_direct_region({4, 65, 4096, DType::kBf16}, d).value(),
             Catch::Contains("exceed the workspace's direct region"));
  CHECK_THAT(check_fits_direct_region({8, 8, 4096, DType::kBf16}, d).value(), Catch::Contains("W = 4"));
  CHECK_THAT(check_fits_direct_region(s, DirectRegion{}).value(), Catch::Contains("no direct region"));
  // A direct call leaves the Lamport buffers untouched: it records nothing for the next launch to clear.
  CHECK(clear_record(Strategy::kTwoShot, s).stages == 2);
  CHECK(clear_record(Strategy::kTwoShot, s, /*direct=*/true) == ClearRecord{});
}
