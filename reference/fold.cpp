#include "reference/fold.h"

#include <stdexcept>

#include "reference/exact_sum.h"

namespace ar {

std::uint32_t reduce_element(std::span<const std::uint32_t> per_rank, DType t, const ReductionOrder& order,
                             FoldTrace* trace) {
  const int world = order.world_size;
  if (static_cast<int>(per_rank.size()) != world) throw std::invalid_argument("reduce_element: wrong rank count");
  if (trace) *trace = FoldTrace{};

  // 1-2. Sanitise (-0 -> +0, so written data never equals the Lamport sentinel) and widen exactly.
  const auto widened = [&](int r) {
    const std::uint32_t clean = sanitize_negative_zero(per_rank[r], t);
    const std::uint32_t wide = widen_to_fp32(clean, t);
    if (trace) {
      trace->raw.push_back(per_rank[r]);
      trace->sanitized.push_back(clean);
      trace->widened.push_back(wide);
    }
    return wide;
  };
  const auto add = [&](FoldStep step, std::uint32_t acc, std::uint32_t operand) {
    const Fp32AddDetail d = add_fp32_detailed(acc, operand, order.ftz);
    if (trace) {
      step.before = acc;
      step.operand = operand;
      step.after = d.result;
      step.add = d;
      trace->steps.push_back(step);
    }
    return d.result;
  };

  // 3. Fold in ascending rank order, or (exact) sum exactly and round once.
  std::uint32_t acc = 0;  // +0.0f
  if (order.exact) {
    ExactSum exact;
    for (int r = 0; r < world; ++r) exact.add_fp32(widened(r));
    std::uint32_t out = exact.round_to(float_format(t));
    if (trace) {
      // Rounded: a finite sum that T does not hold (overflow to Inf included).
      ExactSum back;
      back.add_fp32(widen_to_fp32(out, t));
      const bool inexact = !exact.is_nan() && !exact.is_infinite() && !(back == exact);
      trace->steps.push_back(
          {.kind = FoldStep::Kind::kExactSum, .after = out, .inexact = inexact, .exact_value = exact.to_double()});
    }
    if (order.sanitize_result) out = sanitize_negative_zero(out, t);  // never changes: an exact zero is +0
    if (trace) trace->result = out;
    return out;
  }
  if (order.chunk == 0) {
    int first = 0;
    if (order.seed_with_first) {
      acc = widened(0);
      if (trace) trace->steps.push_back({.kind = FoldStep::Kind::kSeed, .rank = 0, .operand = acc, .after = acc});
      first = 1;
    }
    for (int r = first; r < world; ++r) acc = add({.kind = FoldStep::Kind::kAddRank, .rank = r}, acc, widened(r));
  } else {
    for (int c = 0; c < order.chunk_count(); ++c) {
      std::uint32_t chunk_sum = 0;
      for (int r = c * order.chunk; r < (c + 1) * order.chunk; ++r)
        chunk_sum = add({.kind = FoldStep::Kind::kAddRank, .rank = r, .chunk = c}, chunk_sum, widened(r));
      acc = add({.kind = FoldStep::Kind::kCloseChunk, .chunk = c}, acc, chunk_sum);
    }
  }

  // 4. Narrow once, RN-even, canonical NaN.
  std::uint32_t out = narrow_from_fp32(acc, t);
  if (trace) {
    const bool exact = t == DType::kFp32 || is_nan(acc, kFp32Format) || widen_to_fp32(out, t) == acc;
    trace->steps.push_back({.kind = FoldStep::Kind::kNarrow, .before = acc, .after = out, .inexact = !exact});
  }
  // 5. TWOSHOT sanitises its sum before re-entering a Lamport buffer.
  if (order.sanitize_result) {
    const std::uint32_t clean = sanitize_negative_zero(out, t);
    if (trace)
      trace->steps.push_back(
          {.kind = FoldStep::Kind::kSanitizeResult, .before = out, .after = clean, .changed = clean != out});
    out = clean;
  }
  if (trace) trace->result = out;
  return out;
}

}  // namespace ar
