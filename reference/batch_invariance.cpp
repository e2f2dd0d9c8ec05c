#include "reference/batch_invariance.h"

#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "reference/all_reduce.h"
#include "reference/explain.h"
#include "reference/float_bits.h"
#include "reference/fused_rms_norm.h"

namespace ar {
namespace {

std::string describe_launch(const NormLaunch& l) {
  return fmt::format("{} block{} of {} threads, {} load{}{}, {}, {}", l.cluster_size(), l.cluster_size() == 1 ? "" : "s",
                     l.block_size(), l.loads_per_thread(), l.loads_per_thread() == 1 ? "" : "s",
                     l.cluster_launch ? " (cluster)" : "", l.squares_in_t ? "squares in T" : "fma squares",
                     l.gamma_first ? "((wb + g) x) scale" : "(x scale) (wb + g)");
}

std::vector<std::uint32_t> row_of(const HostTensor& t) { return t.bits_range(0, t.size()); }

NormArithmetic arithmetic_of(const BatchQuestion& q) {
  return norm_arithmetic(FusedOptions{.profile = q.profile, .epsilon = q.epsilon, .weight_bias = q.weight_bias});
}

/// The fused row under `path`: its normalised output, and its residual_out (when asked for), with its trace
/// (the sum of squares and the scale).
std::vector<std::uint32_t> fused_row(const BatchQuestion& q, const TokenPath& path, const TokenInputs& in,
                                     RowTrace& trace, std::vector<std::uint32_t>* residual_out = nullptr) {
  const std::vector<std::uint32_t> ar = row_of(reference_all_reduce(in.input, path.strategy, q.profile));
  std::vector<std::uint32_t> normalized(ar.size()), pre(ar.size());
  fused_rms_norm_row(*path.launch, arithmetic_of(q), ar, row_of(in.residual), row_of(in.gamma), normalized, pre,
                     &trace);
  if (residual_out != nullptr) *residual_out = std::move(pre);
  return normalized;
}

/// Where the plain paths part for element d: explain's comparison of the two folds.
std::string plain_parting(const BatchQuestion& q, const TokenPath& a, const TokenPath& b, const TokenInputs& in,
                          std::int64_t d) {
  std::vector<std::uint32_t> column(static_cast<std::size_t>(q.world_size));
  for (int r = 0; r < q.world_size; ++r) column[static_cast<std::size_t>(r)] = in.input.bits(r * q.hidden + d);
  const ElementExplanation e = explain_element(column, q.dtype, a.strategy, q.profile);
  for (const FoldComparison& c : e.comparisons)
    if (c.other != nullptr && c.other->strategy == b.strategy && c.other->profile == q.profile) return c.difference;
  return "";
}

/// Where the fused paths part: the all-reduce (a strategy change), else the row's sum of squares, else the
/// scale, else the output products.
std::string fused_parting(const BatchQuestion& q, const TokenPath& a, const TokenPath& b, const TokenInputs& in,
                          std::int64_t d) {
  if (a.strategy != b.strategy) {
    const HostTensor x = reference_all_reduce(in.input, a.strategy, q.profile);
    const HostTensor y = reference_all_reduce(in.input, b.strategy, q.profile);
    for (std::int64_t i = 0; i < x.size(); ++i)
      if (x.bits(i) != y.bits(i))
        return fmt::format("the all-reduce already differs at element {} ({} against {}): {}", i,
                           format_value(x.bits(i), q.dtype), format_value(y.bits(i), q.dtype),
                           plain_parting(q, a, b, in, i));
  }
  RowTrace ta, tb;
  (void)fused_row(q, a, in, ta);
  (void)fused_row(q, b, in, tb);
  if (ta.sum != tb.sum)
    return fmt::format(
        "the row's sum of squares is {} under the first tree and {} under the second, so the "
        "scale is {} against {}",
        format_fp32(ta.sum), format_fp32(tb.sum), format_fp32(ta.rsqrt_output), format_fp32(tb.rsqrt_output));
  if (ta.rsqrt_output != tb.rsqrt_output)
    return fmt::format("the same sum of squares {} gives the scale {} against {}", format_fp32(ta.sum),
                       format_fp32(ta.rsqrt_output), format_fp32(tb.rsqrt_output));
  return fmt::format("the same scale {}; the output products come in another order (element {})",
                     format_fp32(ta.rsqrt_output), d);
}

}  // namespace

bool TokenPath::operator==(const TokenPath& o) const {
  // The strategy itself decides nothing: what it brings (the order, the tree, the arithmetic of the norm)
  // is compared instead, so two strategies with one computation (the invariant profile's) are one path.
  if (!(order == o.order) || launch.has_value() != o.launch.has_value()) return false;
  if (!launch) return true;
  const NormLaunch &x = *launch, &y = *o.launch;
  return x.grid == y.grid && x.cluster_launch == y.cluster_launch && x.packs_per_block == y.packs_per_block &&
         x.squares_in_t == y.squares_in_t && x.gamma_first == y.gamma_first &&
         x.idle_threads_exit == y.idle_threads_exit;
}

std::string TokenPath::describe() const { return describe(strategy_name(strategy)); }

std::string TokenPath::describe(std::string_view strategies) const {
  std::string s = fmt::format("{}: {}", strategies, ::ar::describe(order));
  if (launch) s += fmt::format("; tree {}", describe_launch(*launch));
  return s;
}

std::string TokenRange::describe() const {
  if (strategy_switches.empty()) return path.describe();
  std::string strategies(strategy_name(path.strategy));
  for (std::size_t i = 0; i < strategy_switches.size(); ++i) {
    const auto& [from, s] = strategy_switches[i];
    strategies += fmt::format(" up to N = {}, {} from {}", from - 1, strategy_name(s), from);
  }
  return path.describe(strategies);
}

TokenPath token_path(const BatchQuestion& q, std::int64_t tokens) {
  const ProblemShape shape{q.world_size, tokens, q.hidden, q.dtype};
  if (auto why = validate_shape(shape)) throw std::invalid_argument(*why);
  TokenPath path;
  path.strategy = resolve_strategy(q.strategy, shape);
  path.order = reduction_order(path.strategy, q.profile, q.world_size);
  if (q.fused) path.launch = norm_launch_for(q.profile, path.strategy, tokens, q.hidden, q.dtype, q.sm_count);
  return path;
}

std::vector<TokenRange> token_ranges(const BatchQuestion& q, std::int64_t max_tokens) {
  std::vector<TokenRange> ranges;
  for (std::int64_t n = 1; n <= max_tokens; ++n) {
    TokenPath path;
    try {
      path = token_path(q, n);
    } catch (const std::invalid_argument&) {
      break;  // no call of this N (or more) runs
    }
    if (!ranges.empty() && ranges.back().path == path) {
      TokenRange& r = ranges.back();
      const Strategy current = r.strategy_switches.empty() ? r.path.strategy : r.strategy_switches.back().second;
      if (path.strategy != current) r.strategy_switches.emplace_back(n, path.strategy);
      r.last = n;
    } else {
      ranges.push_back({n, n, path, {}});
    }
  }
  return ranges;
}

bool differ_only_in_zero_sign(const TokenPath& a, const TokenPath& b) {
  if (a.launch || b.launch) return false;
  const auto single_fold = [](const ReductionOrder& o) {
    return !o.seed_with_first && (o.chunk == 0 || o.chunk == o.world_size);
  };
  return single_fold(a.order) && single_fold(b.order) && a.order.exact == b.order.exact && a.order.ftz == b.order.ftz &&
         a.order.world_size == b.order.world_size;
}

HostTensor token_output(const BatchQuestion& q, const TokenPath& path, const TokenInputs& inputs) {
  if (!path.launch) return reference_all_reduce(inputs.input, path.strategy, q.profile);
  RowTrace trace;
  const std::vector<std::uint32_t> row = fused_row(q, path, inputs, trace);
  HostTensor out(q.dtype, {1, q.hidden});
  for (std::size_t i = 0; i < row.size(); ++i) out.set_bits(static_cast<std::int64_t>(i), row[i]);
  return out;
}

std::vector<std::uint32_t> token_quant_words(const BatchQuestion& q, const TokenPath& path, const TokenInputs& in) {
  if (!path.launch || q.quant.mode == QuantMode::kNone)
    throw std::invalid_argument("token_quant_words: the question is not a quantised fused call");
  RowTrace trace;
  std::vector<std::uint32_t> residual_out;
  const std::vector<std::uint32_t> normalized = fused_row(q, path, in, trace, &residual_out);
  FusedResult one;
  one.launch = *path.launch;
  one.row_scales = {trace.rsqrt_output};
  one.normalized = HostTensor(q.dtype, {1, q.hidden});
  one.residual_out = HostTensor(q.dtype, {1, q.hidden});
  for (std::size_t d = 0; d < normalized.size(); ++d) {
    one.normalized.set_bits(static_cast<std::int64_t>(d), normalized[d]);
    one.residual_out.set_bits(static_cast<std::int64_t>(d), residual_out[d]);
  }
  FusedOptions options;
  options.strategy = path.strategy;
  options.profile = q.profile;
  options.sm_count = q.sm_count;
  options.epsilon = q.epsilon;
  options.weight_bias = q.weight_bias;
  return quant_row_words(quantize_fused(one, in.gamma, options, q.quant), 0);
}

Witness find_witness(const BatchQuestion& q, const TokenPath& a, const TokenPath& b, const TokenInputSource& source,
                     int tries) {
  Witness w;
  const FloatFormat f = float_format(q.dtype);
  for (int i = 0; i < tries && !w.found; ++i) {
    TokenInputs in = source(i);
    ++w.tried;
    const HostTensor x = token_output(q, a, in), y = token_output(q, b, in);
    bool zero_sign_only = true;
    for (std::int64_t d = 0; d < x.size(); ++d) {
      if (x.bits(d) == y.bits(d)) continue;
      if (!w.found) {
        w.found = true;
        w.index = d;
        w.before = x.bits(d);
        w.after = y.bits(d);
      }
      zero_sign_only = zero_sign_only && is_zero(x.bits(d), f) && is_zero(y.bits(d), f);
    }
    if (!w.found) continue;
    w.zero_sign_only = zero_sign_only;
    w.parts = q.fused ? fused_parting(q, a, b, in, w.index) : plain_parting(q, a, b, in, w.index);
    w.inputs = std::move(in);
  }
  return w;
}

}  // namespace ar
