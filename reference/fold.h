// The scalar model of one output element: sanitise, widen, fold in rank order, narrow (SPEC section 3), or,
// for the invariant profile's exact order, sum exactly and round once.
// It is the definition every other path (the fast host fold, the simulator, the CUDA kernels) must equal
// bit for bit. An optional trace records each step for `mnnvl-ar explain`.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "reference/float_bits.h"
#include "reference/reduction_order.h"

namespace ar {

/// One step of the fold, as `explain` prints it.
struct FoldStep {
  enum class Kind : std::uint8_t {
    kSeed,           ///< acc = rank 0's value (TensorRT-LLM)
    kAddRank,        ///< acc (or the open chunk) = A(acc, v_rank)
    kCloseChunk,     ///< acc = A(acc, chunk sum)
    kNarrow,         ///< fp32 accumulator -> T, RN-even
    kExactSum,       ///< no order (ReductionOrder::exact): the exact sum of every widened value rounded once to T
    kSanitizeResult  ///< -0 -> +0 before the TWOSHOT broadcast
  };
  Kind kind = Kind::kAddRank;
  int rank = -1;              ///< kAddRank / kSeed
  int chunk = -1;             ///< chunk index (kAddRank in a chunked order, kCloseChunk)
  std::uint32_t before = 0;   ///< accumulator (fp32 bits; T bits for kSanitizeResult) before the step
  std::uint32_t operand = 0;  ///< fp32 bits added (the rank value or the chunk sum)
  std::uint32_t after = 0;    ///< result (fp32 bits; T bits for kNarrow, kExactSum and kSanitizeResult)
  Fp32AddDetail add;          ///< flushes and rounding of the add
  bool inexact = false;       ///< kNarrow or kExactSum rounded
  double exact_value = 0;     ///< kExactSum: the exact sum (as a double, for people; NaN for "no number")
  bool changed = false;       ///< kSanitizeResult changed the value
};

struct FoldTrace {
  std::vector<std::uint32_t> raw;        ///< each rank's input bits as given
  std::vector<std::uint32_t> sanitized;  ///< after -0 -> +0
  std::vector<std::uint32_t> widened;    ///< fp32 bits entering the adds
  std::vector<FoldStep> steps;
  std::uint32_t result = 0;
};

/// Reduces one element. `per_rank[r]` holds rank r's bits of type T (16-bit types in the low half);
/// `per_rank.size()` must equal `order.world_size`. Returns the output bits of type T.
std::uint32_t reduce_element(std::span<const std::uint32_t> per_rank, DType t, const ReductionOrder& order,
                             FoldTrace* trace = nullptr);

}  // namespace ar
