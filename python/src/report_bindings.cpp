// Results that print like the CLI: each function returns (the CLI's text, a dict of the result's fields),
// which the package wraps in an object whose str() is that text. `source` names the tensor in the text, as
// the CLI names the file.
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include "harness/commands/accuracy_table.h"
#include "harness/commands/element_report.h"
#include "harness/commands/fused_explain.h"
#include "harness/commands/fused_report.h"
#include "harness/commands/option_names.h"
#include "harness/commands/tensor_format.h"
#include "harness/io/exit_codes.h"
#include "python/src/bindings.h"
#include "python/src/bits.h"
#include "reference/accuracy.h"
#include "reference/bit_diff.h"

namespace ar::python {
namespace {

void check_element(const ProblemShape& s, std::int64_t token, std::int64_t col) {
  if (token < 0 || token >= s.tokens)
    throw UsageError(fmt::format("token {} is outside [0, {}) (the input has N = {} tokens)", token, s.tokens, s.tokens));
  if (col < 0 || col >= s.hidden)
    throw UsageError(fmt::format("col {} is outside [0, {}) (the input has D = {})", col, s.hidden, s.hidden));
}

nb::tuple explain(const BitsIn& x, const std::string& dtype, std::int64_t token, std::int64_t col,
                  const std::string& strategy, const std::string& profile, const std::string& source) {
  const DType t = dtype_option(dtype);
  const Strategy requested = strategy_option(strategy);
  const Profile p = profile_option(profile);
  const RankInputs in = rank_inputs(x, t);
  const ProblemShape& s = in.shape;
  check_element(s, token, col);
  std::vector<std::uint32_t> column(static_cast<std::size_t>(s.world_size));
  for (int r = 0; r < s.world_size; ++r) column[r] = in.tensor.bits((r * s.tokens + token) * s.hidden + col);
  const ElementExplanation e = explain_element(column, t, resolve_strategy(requested, s), p);

  std::ostringstream text;
  print_element_explanation(text, source, s, token, col, requested, e);
  nb::dict results, differences;
  for (const ExplainedFold& f : e.folds) results[f.label().c_str()] = f.trace.result;
  for (const FoldComparison& c : e.comparisons)
    if (!c.same_bits) differences[c.other->label().c_str()] = c.difference;
  nb::dict fields;
  fields["strategy"] = std::string(strategy_name(e.folds[0].strategy));
  fields["profile"] = std::string(profile_name(p));
  fields["result"] = e.folds[0].trace.result;
  fields["correctly_rounded"] = e.correctly_rounded;
  fields["results"] = results;
  fields["differences"] = differences;
  return nb::make_tuple(text.str(), fields);
}

nb::tuple explain_fused(const BitsIn& x, const BitsIn& residual, const BitsIn& gamma, const std::string& dtype,
                        std::int64_t token, std::int64_t col, const std::string& strategy, const std::string& profile,
                        int sm_count, std::optional<double> eps, double weight_bias, const std::string& source,
                        const std::optional<std::string>& quant, std::optional<double> quant_scale,
                        const std::optional<std::string>& scale_layout) {
  const DType t = dtype_option(dtype);
  const RankInputs in = rank_inputs(x, t);
  check_element(in.shape, token, col);
  // The quantisation's settings are checked before any work, by the CLI's rules under the package's names.
  std::optional<QuantOptions> q;
  if (quant) q = quant_settings(*quant, quant_scale, scale_layout, {"quant", "quant_scale", "scale_layout"});
  else if (quant_scale || scale_layout) throw UsageError("quant_scale and scale_layout need quant");
  FusedInputs f;
  f.options = fused_options(t, strategy_option(strategy), profile_option(profile), sm_count, eps, weight_bias,
                            "sm_count");
  f.residual = tensor_of(residual, t, "residual");
  f.gamma = tensor_of(gamma, t, "gamma");
  std::ostringstream text;
  const FusedElementExplanation e = print_fused_explanation(text, source, in, f, token, col);
  if (q) print_quant_explanation(text, source, in, f, *q, token, col);
  nb::dict fields;
  fields["strategy"] = std::string(strategy_name(e.launch.strategy));
  fields["profile"] = std::string(profile_name(f.options.profile));
  fields["normalized"] = e.normalized;
  fields["residual_out"] = e.pre;
  fields["sum_of_squares"] = e.row.sum;
  fields["rsqrt_input"] = e.row.rsqrt_input;
  fields["scale"] = e.row.rsqrt_output;
  fields["block_size"] = e.launch.block_size();
  fields["cluster_size"] = e.launch.cluster_size();
  fields["loads_per_thread"] = e.launch.loads_per_thread();
  if (q) fields["quant"] = std::string(quant_mode_name(q->mode));
  return nb::make_tuple(text.str(), fields);
}

nb::tuple diff(const BitsIn& a, const BitsIn& b, const std::string& dtype, const std::string& name_a,
               const std::string& name_b) {
  const DType t = dtype_option(dtype);
  const HostTensor ta = tensor_of(a, t, name_a.c_str()), tb = tensor_of(b, t, name_b.c_str());
  if (ta.shape() != tb.shape())
    throw UsageError(fmt::format("'{}' has shape ({}) but '{}' has shape ({})", name_a, fmt::join(ta.shape(), ", "),
                                 name_b, fmt::join(tb.shape(), ", ")));
  const BitDiff d = compare_bits(ta, tb);
  std::ostringstream text;
  print_bit_diff(text, d, ta, name_a, name_b);
  nb::dict fields;
  fields["elements"] = d.elements;
  fields["differing"] = d.differing;
  fields["zero_sign_only"] = d.zero_sign_only;
  fields["nan_mismatches"] = d.nan_mismatches;
  fields["max_ulp"] = d.max_ulp;
  nb::dict histogram;
  for (std::size_t i = 0; i < d.histogram.size(); ++i) histogram[kUlpBucketNames[i]] = d.histogram[i];
  fields["histogram"] = histogram;
  if (d.differing != 0) {
    fields["first_index"] = d.first_index;
    fields["first"] = nb::make_tuple(d.first_a, d.first_b);
  }
  return nb::make_tuple(text.str(), fields);
}

nb::tuple accuracy(const BitsIn& x, const std::string& dtype, const std::string& source) {
  const RankInputs in = rank_inputs(x, dtype_option(dtype));
  AccuracyReport report;
  {
    nb::gil_scoped_release unlocked;
    report = accuracy_report(in.tensor, every_strategy_and_profile());
  }
  std::ostringstream text;
  print_accuracy_table(text, source, report);
  return nb::make_tuple(text.str(), accuracy_json(report).dump());
}

nb::tuple accuracy_fused(const BitsIn& x, const BitsIn& residual, const BitsIn& gamma, const std::string& dtype,
                         int sm_count, std::optional<double> eps, double weight_bias, const std::string& source) {
  const DType t = dtype_option(dtype);
  const RankInputs in = rank_inputs(x, t);
  FusedInputs f;
  f.options = fused_options(t, Strategy::kAuto, Profile::kFlashInfer, sm_count, eps, weight_bias, "sm_count");
  f.residual = tensor_of(residual, t, "residual");
  f.gamma = tensor_of(gamma, t, "gamma");
  std::ostringstream warnings, text, json;
  const FusedAccuracyReport report = fused_report(source, in, f, warnings);
  print_fused_accuracy(text, source, in, f, report, /*json=*/false);
  print_fused_accuracy(json, source, in, f, report, /*json=*/true);
  return nb::make_tuple(text.str(), json.str(), warnings.str());
}

}  // namespace

void bind_reports(nb::module_& m) {
  m.def("explain", &explain, nb::arg("x"), nb::arg("dtype"), nb::arg("token"), nb::arg("col"), nb::arg("strategy"),
        nb::arg("profile"), nb::arg("source"));
  m.def("explain_fused", &explain_fused, nb::arg("x"), nb::arg("residual"), nb::arg("gamma"), nb::arg("dtype"),
        nb::arg("token"), nb::arg("col"), nb::arg("strategy"), nb::arg("profile"), nb::arg("sm_count"),
        nb::arg("eps").none(), nb::arg("weight_bias"), nb::arg("source"), nb::arg("quant").none() = nb::none(),
        nb::arg("quant_scale").none() = nb::none(), nb::arg("scale_layout").none() = nb::none());
  m.def("diff", &diff, nb::arg("a"), nb::arg("b"), nb::arg("dtype"), nb::arg("name_a"), nb::arg("name_b"));
  m.def("accuracy", &accuracy, nb::arg("x"), nb::arg("dtype"), nb::arg("source"),
        "Returns (the table's text, the JSON of `mnnvl-ar accuracy --json`).");
  m.def("accuracy_fused", &accuracy_fused, nb::arg("x"), nb::arg("residual"), nb::arg("gamma"), nb::arg("dtype"),
        nb::arg("sm_count"), nb::arg("eps").none(), nb::arg("weight_bias"), nb::arg("source"),
        "The fused call's accuracy table: (text, JSON, warnings), as `mnnvl-ar accuracy --residual --gamma`.");
}

}  // namespace ar::python
