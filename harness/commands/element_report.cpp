#include "harness/commands/element_report.h"

#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

namespace ar {
namespace {

void print_fold(std::ostream& out, const ExplainedFold& fold, DType t) {
  fmt::print(out, "{}: {}\n", fold.label(), describe(fold.order));
  int chunk = -1;
  for (std::size_t i = 0; i < fold.trace.steps.size(); ++i) {
    const FoldStep& s = fold.trace.steps[i];
    if (s.kind == FoldStep::Kind::kAddRank && s.chunk >= 0 && s.chunk != chunk) {
      chunk = s.chunk;
      fmt::print(out, "  -- chunk {}: ranks {}..{}, starts from +0 --\n", chunk, chunk * fold.order.chunk,
                 (chunk + 1) * fold.order.chunk - 1);
    }
    fmt::print(out, "  step {:>2}  {}\n", i, describe_step(s, t));
  }
}

}  // namespace

void print_element_explanation(std::ostream& out, const std::string& source, const ProblemShape& s,
                               std::int64_t token, std::int64_t col, Strategy requested,
                               const ElementExplanation& e) {
  const ExplainedFold& main = e.folds[0];
  fmt::print(out, "element [{}, {}] of {}: W = {}, {}, N = {}, D = {}\n", token, col, source, s.world_size,
             dtype_name(s.dtype), s.tokens, s.hidden);
  if (requested == Strategy::kAuto)
    fmt::print(out, "auto -> {}: N*D*W*E = {} bytes {} 1 MiB\n", strategy_name(main.strategy),
               s.tokens * s.hidden * s.world_size * dtype_bytes(s.dtype),
               main.strategy == Strategy::kOneShot ? "<=" : ">");
  fmt::print(out, "\ninputs (rank: as given -> sanitised -> fp32 operand):\n");
  for (int r = 0; r < s.world_size; ++r) {
    const bool sanitized = main.trace.raw[r] != main.trace.sanitized[r];
    fmt::print(out, "  rank {:>2}: {}{} -> {}\n", r, format_value(main.trace.raw[r], s.dtype),
               sanitized ? " -> +0 (sanitised)" : "", format_fp32(main.trace.widened[r]));
  }
  fmt::print(out, "\n");
  print_fold(out, main, s.dtype);
  fmt::print(out, "result: {}\nexact sum rounded once: {}\n\n", format_value(main.trace.result, s.dtype),
             format_value(e.correctly_rounded, s.dtype));

  fmt::print(out, "the same element under every strategy and profile:\n");
  for (const ExplainedFold& f : e.folds)
    fmt::print(out, "  {:<20} {:<24} {}\n", f.label(), format_value(f.trace.result, s.dtype),
               &f == &main                           ? "(this one)"
               : f.trace.result == main.trace.result ? "same bits"
                                                     : "DIFFERENT");
  for (const FoldComparison& c : e.comparisons) {
    if (c.same_bits) continue;
    fmt::print(out, "\nwhy {} and {} differ:\n  {}\n", main.label(), c.other->label(), c.difference);
  }
}

}  // namespace ar
