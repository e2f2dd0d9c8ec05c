// Strategies, arithmetic profiles and the problem shape, with the validation and AUTO rules of SPEC section 2.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "reference/dtype.h"

namespace ar {

enum class Strategy : std::uint8_t { kOneShot, kTwoShot, kAuto };

/// Arithmetic profiles (SPEC section 12): what stack's bits the reference reproduces.
enum class Profile : std::uint8_t {
  kFlashInfer,  ///< FlashInfer as built (-use_fast_math): FTZ fp32 adds, chunked folds, sanitised twoshot
  kIeee,        ///< the same order without FTZ: what a kernel built without fast-math computes
  kTrtllm,      ///< TensorRT-LLM's order: seeded with rank 0, no chunking, twoshot result not sanitised
  /// This project's batch-invariant arithmetic (SPEC section 14): no order, the exact sum of the W values
  /// rounded once (ReductionOrder::exact), and a fused norm whose tree, arithmetic and correctly rounded
  /// rsqrt follow from W, D and T alone, so a token's bits never depend on N, AUTO, the SM count or the launch
  kInvariant,
};

/// Whether a profile's fp32 arithmetic flushes subnormals (FTZ, as -use_fast_math builds): flashinfer and
/// trtllm do; ieee and invariant keep them.
constexpr bool flushes_subnormals(Profile p) { return p == Profile::kFlashInfer || p == Profile::kTrtllm; }

inline constexpr std::array<std::string_view, 3> kStrategyNames{"oneshot", "twoshot", "auto"};
inline constexpr std::array<std::string_view, 4> kProfileNames{"flashinfer", "ieee", "trtllm", "invariant"};
/// The world sizes the kernels, the simulator and the reference support, ascending.
inline constexpr std::array<int, 6> kWorldSizes{2, 4, 8, 16, 32, 64};
inline constexpr int kMaxWorldSize = kWorldSizes.back();

constexpr std::string_view strategy_name(Strategy s) { return kStrategyNames[static_cast<std::size_t>(s)]; }
constexpr std::string_view profile_name(Profile p) { return kProfileNames[static_cast<std::size_t>(p)]; }
std::optional<Strategy> parse_strategy(std::string_view name);
std::optional<Profile> parse_profile(std::string_view name);
constexpr bool is_supported_world_size(int w) {
  for (int s : kWorldSizes)
    if (s == w) return true;
  return false;
}
/// kWorldSizes for messages: "2, 4, 8, 16, 32, 64", or with `last` before the last one: "2, 4, 8, 16, 32 or 64".
std::string world_sizes_text(std::string_view last = ", ");

/// One all-reduce call: every rank contributes a [tokens, hidden] tensor of `dtype`. Its numbers come from
/// users (a file's shape, N= and D= of a call, options), so nothing may multiply them before validate_shape
/// has accepted them; after that, products of them and small constants fit (kMaxTensorBytes).
struct ProblemShape {
  int world_size = 0;
  std::int64_t tokens = 0;
  std::int64_t hidden = 0;
  DType dtype = DType::kBf16;

  /// N x D and N x D x E: on a shape validate_shape accepted only (they are not checked).
  std::int64_t elements_per_rank() const { return tokens * hidden; }
  std::int64_t bytes_per_rank() const { return elements_per_rank() * dtype_bytes(dtype); }
};

/// Why a shape cannot run, in words naming the problem; nullopt when it is valid. Checks the world-size
/// set, N > 0, D > 0, D a multiple of 16/sizeof(T) (one 16-byte pack), and that the input's size
/// W x N x D x E neither overflows 64 bits nor exceeds kMaxTensorBytes (the message names the product).
std::optional<std::string> validate_shape(const ProblemShape& shape);

/// AUTO's threshold: ONESHOT iff N*D*W*E <= 1 MiB (inclusive; FlashInfer writes it 64*1024*8*2).
inline constexpr std::int64_t kOneShotMaxBytes = 64 * 1024 * 8 * 2;

/// Resolves AUTO by the rule above; ONESHOT and TWOSHOT pass through. Total: a product that overflows is
/// more than 1 MiB.
Strategy resolve_strategy(Strategy requested, const ProblemShape& shape);

}  // namespace ar
