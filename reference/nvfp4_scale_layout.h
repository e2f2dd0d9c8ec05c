// Where NVFP4's block scales go in `scale_out` (SPEC section 13): one e4m3 byte per block of 16 elements, block
// k of token m, in FlashInfer's two layouts. SWIZZLED_128x4 (the default) tiles the [N, D/16] scales into
// 128 x 4 tiles of 512 bytes, rows of tiles in token order, and within a tile interleaves four 32-row groups
// so that one 16-byte read gives a row's four scales of each group; LINEAR is row-major.
#pragma once

#include <cstdint>

namespace ar {

enum class ScaleLayout { kSwizzled128x4, kLinear };

/// Scale blocks per token: D / 16 (D must be a multiple of 16).
constexpr std::int64_t scale_blocks(std::int64_t hidden) { return hidden / 16; }

/// The byte offset of token m's block k. Swizzled: (m / 128) * ceil(D / 64) * 512 + (k / 4) * 512 +
/// (m % 32) * 16 + ((m % 128) / 32) * 4 + k % 4.
constexpr std::int64_t scale_offset(ScaleLayout layout, std::int64_t m, std::int64_t k, std::int64_t hidden) {
  if (layout == ScaleLayout::kLinear) return m * scale_blocks(hidden) + k;
  const std::int64_t tiles_per_row = (hidden + 63) / 64;  // ceil(D / 64): tiles of 4 blocks across a row
  return (m / 128) * tiles_per_row * 512 + (k / 4) * 512 + (m % 32) * 16 + ((m % 128) / 32) * 4 + k % 4;
}

/// Bytes `scale_out` needs for N tokens: swizzled, whole tiles (N rounded up to 128, D / 16 up to 4);
/// linear, N * D / 16. What FlashInfer writes into the bytes of a partial tile that belong to no block is not
/// modelled.
constexpr std::int64_t scale_bytes(ScaleLayout layout, std::int64_t tokens, std::int64_t hidden) {
  if (layout == ScaleLayout::kLinear) return tokens * scale_blocks(hidden);
  return (tokens + 127) / 128 * ((hidden + 63) / 64) * 512;
}

}  // namespace ar
