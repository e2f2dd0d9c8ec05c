#include "reference/explain.h"

#include <optional>

#include <fmt/format.h>

#include "reference/exact_sum.h"

namespace ar {
namespace {

// The exact real value a fold holds after each rank (open chunk included), and the sign a zero would have.
struct PartialSum {
  ExactSum value;
  bool negative_zero = false;
  bool operator==(const PartialSum& o) const {
    return value == o.value && (!value.is_zero() || negative_zero == o.negative_zero);
  }
};

struct RankStates {
  std::vector<PartialSum> after_rank;              // index = rank
  std::vector<std::vector<std::size_t>> steps_of;  // the steps that rank caused, chunk closes included
};

std::string format_partial(const PartialSum& p) {
  if (p.value.is_zero()) return p.negative_zero ? "-0" : "+0";
  return fmt::format("{:.17g}", p.value.to_double());
}

RankStates partial_sums(const ExplainedFold& fold) {
  const int world = fold.order.world_size;
  RankStates rs{std::vector<PartialSum>(world), std::vector<std::vector<std::size_t>>(world)};
  if (fold.order.exact) {  // no rounding until the end: the running sums are the exact prefix sums
    ExactSum running;
    for (int r = 0; r < world; ++r) {
      running.add_fp32(fold.trace.widened[r]);
      rs.after_rank[r].value = running;
    }
    return rs;
  }
  std::uint32_t acc = 0, chunk = 0;
  bool chunk_open = false;
  int last_rank = -1;
  const auto& steps = fold.trace.steps;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const FoldStep& s = steps[i];
    switch (s.kind) {
      case FoldStep::Kind::kSeed:
        acc = s.after;
        last_rank = s.rank;
        break;
      case FoldStep::Kind::kAddRank:
        last_rank = s.rank;
        if (fold.order.chunk == 0) {
          acc = s.after;
        } else {
          chunk = s.after;
          chunk_open = true;
        }
        break;
      case FoldStep::Kind::kCloseChunk:
        acc = s.after;
        chunk_open = false;
        break;
      default: continue;  // narrowing and sanitising come after every rank
    }
    PartialSum p;
    p.value.add_fp32(acc);
    if (chunk_open) p.value.add_fp32(chunk);
    const bool acc_negative_zero = acc == 0x80000000u;
    p.negative_zero = acc_negative_zero && (!chunk_open || chunk == 0x80000000u);
    rs.after_rank[last_rank] = p;
    rs.steps_of[last_rank].push_back(i);
  }
  return rs;
}

std::string describe_rank_steps(const ExplainedFold& fold, const std::vector<std::size_t>& steps, DType t) {
  if (fold.order.exact)
    return fmt::format("\n    {}: no step: the sum stays exact until it is rounded once at the end", fold.label());
  std::string out;
  for (std::size_t i : steps)
    out += fmt::format("\n    {}: step {}: {}", fold.label(), i, describe_step(fold.trace.steps[i], t));
  return out;
}

FoldComparison compare(const ExplainedFold& a, const ExplainedFold& b, DType t) {
  FoldComparison c;
  c.other = &b;
  c.same_bits = a.trace.result == b.trace.result;
  if (c.same_bits) return c;
  const RankStates sa = partial_sums(a), sb = partial_sums(b);
  const int world = a.order.world_size;
  for (int r = 0; r < world; ++r) {
    if (sa.after_rank[r] == sb.after_rank[r]) continue;
    c.first_rank = r;
    c.difference = fmt::format(
        "{} gives {} and {} gives {}. Their partial sums first part after rank {}: {} then holds {} and {} holds "
        "{} (as exact reals). The steps at rank {}:{}{}",
        a.label(), format_value(a.trace.result, t), b.label(), format_value(b.trace.result, t), r, a.label(),
        format_partial(sa.after_rank[r]), b.label(), format_partial(sb.after_rank[r]), r,
        describe_rank_steps(a, sa.steps_of[r], t), describe_rank_steps(b, sb.steps_of[r], t));
    return c;
  }
  // Same accumulator, hence the same narrowing: only the TWOSHOT sanitising of -0 can separate them.
  const ExplainedFold& sanitizer = a.order.sanitize_result ? a : b;
  const ExplainedFold& keeper = a.order.sanitize_result ? b : a;
  c.difference = fmt::format(
      "{} gives {} and {} gives {}. Both folds end on the same fp32 accumulator {}; {} maps the -0 result to +0 "
      "before its broadcast (so it never looks like the Lamport sentinel), {} keeps -0.",
      a.label(), format_value(a.trace.result, t), b.label(), format_value(b.trace.result, t),
      format_fp32(a.trace.steps.back().kind == FoldStep::Kind::kSanitizeResult
                      ? a.trace.steps[a.trace.steps.size() - 2].before
                      : a.trace.steps.back().before),
      sanitizer.label(), keeper.label());
  return c;
}

}  // namespace

std::string ExplainedFold::label() const {
  return fmt::format("{}/{}", strategy_name(strategy), profile_name(profile));
}

std::string format_fp32(std::uint32_t bits) { return format_value(bits, DType::kFp32); }

std::string format_value(std::uint32_t bits, DType t) {
  const int digits = dtype_bytes(t) * 2;
  return fmt::format("0x{:0{}X} ({:.9g})", bits, digits, to_double(bits, t));
}

std::string describe_step(const FoldStep& s, DType t) {
  std::string notes;
  const auto note = [&notes](bool on, const char* what) {
    if (on) notes += notes.empty() ? fmt::format(" [{}", what) : fmt::format(", {}", what);
  };
  note(s.add.flushed_lhs, "FTZ flushed the accumulator");
  note(s.add.flushed_rhs, "FTZ flushed the operand");
  note(s.add.flushed_result, "FTZ flushed the subnormal sum");
  note(s.add.inexact, "rounded");
  note(s.add.nan, "NaN -> canonical 0x7FFFFFFF");
  if (!notes.empty()) notes += "]";
  switch (s.kind) {
    case FoldStep::Kind::kSeed: return fmt::format("acc = rank 0's value {} (seed, no add)", format_fp32(s.after));
    case FoldStep::Kind::kAddRank: {
      const std::string where = s.chunk >= 0 ? fmt::format("chunk {} ", s.chunk) : std::string("acc ");
      return fmt::format("{}+= rank {}: {} + {} = {}{}", where, s.rank, format_fp32(s.before), format_fp32(s.operand),
                         format_fp32(s.after), notes);
    }
    case FoldStep::Kind::kCloseChunk:
      return fmt::format("acc += chunk {}: {} + {} = {}{}", s.chunk, format_fp32(s.before), format_fp32(s.operand),
                         format_fp32(s.after), notes);
    case FoldStep::Kind::kExactSum:
      return fmt::format("exact sum of the W values {:.17g}, rounded once to {} (RN-even): {}{}", s.exact_value,
                         dtype_name(t), format_value(s.after, t), s.inexact ? " [rounded]" : " [exact]");
    case FoldStep::Kind::kNarrow:
      return fmt::format("narrow to {} (RN-even): {} -> {}{}", dtype_name(t), format_fp32(s.before),
                         format_value(s.after, t), s.inexact ? " [rounded]" : "");
    case FoldStep::Kind::kSanitizeResult:
      return fmt::format("sanitise result: {} -> {}{}", format_value(s.before, t), format_value(s.after, t),
                         s.changed ? " [-0 became +0]" : " [unchanged]");
  }
  return {};
}

ElementExplanation explain_element(std::span<const std::uint32_t> per_rank, DType t, Strategy strategy,
                                   Profile profile) {
  ElementExplanation e;
  e.dtype = t;
  e.world_size = static_cast<int>(per_rank.size());
  ExactSum exact;
  for (std::uint32_t v : per_rank) exact.add_fp32(widen_to_fp32(v, t));
  e.correctly_rounded = exact.round_to(float_format(t));

  const auto add_fold = [&](Strategy s, Profile p) {
    ExplainedFold f{s, p, reduction_order(s, p, e.world_size), {}};
    reduce_element(per_rank, t, f.order, &f.trace);
    e.folds.push_back(std::move(f));
  };
  add_fold(strategy, profile);
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
    for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kTrtllm, Profile::kInvariant})
      if (s != strategy || p != profile) add_fold(s, p);
  for (std::size_t i = 1; i < e.folds.size(); ++i) e.comparisons.push_back(compare(e.folds[0], e.folds[i], t));
  return e;
}

}  // namespace ar
