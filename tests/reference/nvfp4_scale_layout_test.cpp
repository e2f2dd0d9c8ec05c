// NVFP4's block-scale layouts (reference/nvfp4_scale_layout.h): SPEC section 13's swizzled offsets worked
// by hand, and every block's byte its own and inside the buffer.
#include <catch2/catch.hpp>

#include <cstdint>
#include <utility>
#include <vector>

#include "reference/nvfp4_scale_layout.h"

using namespace ar;

TEST_CASE("NVFP4 scale layouts: SPEC's swizzled offsets, one byte per block, inside the buffer", "[cpu]") {
  // By hand from SPEC section 13's formula, D = 256 (16 blocks, 4 tiles across a row).
  CHECK(scale_offset(ScaleLayout::kSwizzled128x4, 0, 0, 256) == 0);
  CHECK(scale_offset(ScaleLayout::kSwizzled128x4, 0, 3, 256) == 3);
  CHECK(scale_offset(ScaleLayout::kSwizzled128x4, 0, 4, 256) == 512);   // the next tile across
  CHECK(scale_offset(ScaleLayout::kSwizzled128x4, 1, 0, 256) == 16);
  CHECK(scale_offset(ScaleLayout::kSwizzled128x4, 32, 0, 256) == 4);    // the second 32-row group
  CHECK(scale_offset(ScaleLayout::kSwizzled128x4, 127, 15, 256) == 3 * 512 + 31 * 16 + 3 * 4 + 3);
  CHECK(scale_offset(ScaleLayout::kSwizzled128x4, 128, 0, 256) == 4 * 512);  // the next row of tiles
  CHECK(scale_offset(ScaleLayout::kLinear, 3, 5, 256) == 3 * 16 + 5);
  // Every (token, block) has a byte of its own inside the buffer, for shapes with partial tiles too.
  for (const auto layout : {ScaleLayout::kSwizzled128x4, ScaleLayout::kLinear}) {
    for (const auto& [tokens, hidden] : {std::pair<std::int64_t, std::int64_t>{1, 16}, {130, 80}, {256, 4096}}) {
      const std::int64_t bytes = scale_bytes(layout, tokens, hidden);
      std::vector<int> used(static_cast<std::size_t>(bytes), 0);
      for (std::int64_t m = 0; m < tokens; ++m)
        for (std::int64_t k = 0; k < scale_blocks(hidden); ++k) {
          const std::int64_t at = scale_offset(layout, m, k, hidden);
          REQUIRE(at >= 0);
          REQUIRE(at < bytes);
          ++used[static_cast<std::size_t>(at)];
        }
      for (const int u : used) REQUIRE(u <= 1);
    }
  }
  CHECK(scale_bytes(ScaleLayout::kSwizzled128x4, 130, 80) == 2 * 2 * 512);
}
