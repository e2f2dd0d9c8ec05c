#include "harness/commands/run_report.h"

#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "reference/explain.h"

namespace ar {

std::int64_t RunResult::elements() const {
  std::int64_t n = 0;
  for (const RunRow& r : rows) n += r.elements;
  return n;
}

std::int64_t RunResult::mismatches() const {
  std::int64_t n = 0;
  for (const RunRow& r : rows) n += r.mismatches;
  return n;
}

std::string RunResult::verdict() const {
  return timeout ? "timeout" : (mismatches() || flag_failures) ? "mismatch" : "ok";
}

std::string fused_companion_path(const std::string& dumped_input, const std::string& what) {
  const std::string suffix = ".in.npy";
  const std::string stem = dumped_input.ends_with(suffix) ? dumped_input.substr(0, dumped_input.size() - suffix.size())
                                                         : dumped_input;
  return stem + "." + what + ".npy";
}

namespace {

/// A fused call's first difference: which output, and how to see the element's computation on the CPU.
void print_fused_difference(std::ostream& out, const FirstMismatch& m, std::int64_t token, std::int64_t col) {
  const ProblemShape& s = m.row.call.shape;
  fmt::print(out, "\nfirst difference: call {} ({}, fused), rank {}, {} [{}, {}]: GPU ({}) {} but the reference ({}) "
             "expects {}\n",
             m.row.index, m.row.label, m.rank, m.residual_out ? "residual_out" : "normalised output", token, col,
             profile_name(m.row.call.profile), format_value(m.gpu, s.dtype), profile_name(m.row.expect),
             format_value(m.expected, s.dtype));
  const bool dumped = !m.dumped_input.empty();
  fmt::print(out, "reproduce on the CPU: mnnvl-ar explain --input {} -d {} -t {} -c {} -s {} -p {} --residual {} "
             "--gamma {} --sms {}\n",
             dumped ? m.dumped_input : "<the call's input; save it with --dump DIR>", dtype_name(s.dtype), token, col,
             strategy_name(m.row.resolved), profile_name(m.row.expect),
             dumped ? fused_companion_path(m.dumped_input, "residual") : "<residual>",
             dumped ? fused_companion_path(m.dumped_input, "gamma") : "<gamma>", m.row.call.norm->sm_count);
}

}  // namespace

void print_explanation(std::ostream& out, const FirstMismatch& m) {
  const ProblemShape& s = m.row.call.shape;
  if (m.row.call.norm) {
    print_fused_difference(out, m, m.index / s.hidden, m.index % s.hidden);
    return;
  }
  const std::int64_t token = m.index / s.hidden, col = m.index % s.hidden;
  std::vector<std::uint32_t> column(s.world_size);
  for (int r = 0; r < s.world_size; ++r) column[r] = m.input.bits((r * s.tokens + token) * s.hidden + col);
  const ElementExplanation e = explain_element(column, s.dtype, m.row.resolved, m.row.expect);
  fmt::print(out, "\nfirst difference: call {} ({}), rank {}, element [{}, {}]: GPU ({}) {} but {} ({}) expects {}\n",
             m.row.index, m.row.label, m.rank, token, col, profile_name(m.row.call.profile),
             format_value(m.gpu, s.dtype), m.row.label == "seq" ? "the reference" : "the golden file",
             profile_name(m.row.expect), format_value(m.expected, s.dtype));
  const ExplainedFold& fold = e.folds[0];
  fmt::print(out, "{}: {}\n", fold.label(), describe(fold.order));
  for (int r = 0; r < s.world_size; ++r)
    fmt::print(out, "  rank {:>2} input {}\n", r, format_value(fold.trace.raw[r], s.dtype));
  for (std::size_t i = 0; i < fold.trace.steps.size(); ++i)
    fmt::print(out, "  step {:>2}  {}\n", i, describe_step(fold.trace.steps[i], s.dtype));
  for (const FoldComparison& c : e.comparisons)
    if (!c.same_bits && c.other && c.other->trace.result == m.gpu)
      fmt::print(out, "the GPU's bits are what {} computes: {}\n", c.other->label(), c.difference);
  fmt::print(out, "reproduce on the CPU: mnnvl-ar explain --input {} -t {} -c {} -s {} -p {}{}\n",
             m.dumped_input.empty() ? "<the call's input; save it with --dump DIR>" : m.dumped_input, token, col,
             strategy_name(m.row.resolved), profile_name(m.row.expect), s.dtype == DType::kBf16 ? " -d bf16" : "");
}

void print_run_report(std::ostream& out, const RunResult& result) {
  constexpr const char* kRow = "{:>5}  {:<28} {:<29} {:>6} {:>6} {:<5} {:>3} {:<10} {:<3} {:>10} {:>10} {:>8} {:>5}\n";
  fmt::print(out, kRow, "call", "case", "strategy", "N", "D", "dtype", "W", "profile", "pdl", "elements", "mismatches",
             "disagree", "flags");
  for (const RunRow& r : result.rows) {
    std::string strategy = r.call.strategy == Strategy::kAuto ? fmt::format("auto->{}", strategy_name(r.resolved))
                                                              : std::string(strategy_name(r.resolved));
    if (r.direct) strategy += " (direct)";
    if (r.call.norm) strategy += "+norm";
    if (r.call.norm && r.call.norm->quant != QuantMode::kNone)  // its elements count the codes and scales too
      strategy += fmt::format("+{}", quant_mode_name(r.call.norm->quant));
    fmt::print(out, kRow, r.index, r.label, strategy, r.call.shape.tokens, r.call.shape.hidden,
               dtype_name(r.call.shape.dtype), r.call.shape.world_size, profile_name(r.call.profile),
               r.call.pdl ? "on" : "off", r.elements, r.mismatches, r.ranks_disagreeing, r.flags_ok ? "ok" : "BAD");
  }
  const std::string verdict = result.verdict();
  fmt::print(out, "\n{} calls, {} elements compared, {} mismatches, {} flag differences{} ({:.1f} s): {}\n",
             result.rows.size() - (result.timeout ? 1 : 0), result.elements(), result.mismatches(),
             result.flag_failures, result.timeout ? ", stopped by a timeout" : "", result.seconds,
             verdict == "ok" ? "every output bit-exact" : verdict);
  if (result.timeout) fmt::print(out, "\ntimeout: {}\n", result.timeout->message);
  if (result.first) print_explanation(out, *result.first);
}

std::string run_json(const RunSettings& s, const RunPlace& place, const RunResult& result) {
  const GpuDevice& dev = place.device;
  nlohmann::json j;
  j["command"] = "run";
  j["device"] = {{"name", dev.name},
                 {"compute_capability", dev.compute_capability},
                 {"sms", dev.sm_count},
                 {"driver", dev.driver},
                 {"cuda_driver", dev.cuda_driver},
                 {"cuda_runtime", dev.cuda_runtime}};
  j["job"] = {{"processes", place.processes},
              {"launcher", place.launcher},
              {"handles", place.handles},
              {"handles_summary", place.handles_summary},
              {"gpus", place.gpus}};
  j["inputs"] = s.inputs_text;
  j["seed"] = s.seed;
  j["calls_text"] = s.kind == InputKind::kGolden ? "golden" : s.calls_text;
  j["timeout_ms"] = s.timeout_ms;
  j["direct_from_bytes"] = s.direct_from_bytes;
  j["rows"] = nlohmann::json::array();
  for (const RunRow& r : result.rows) {
    nlohmann::json row{{"call", r.index},
                       {"case", r.label},
                       {"requested", strategy_name(r.call.strategy)},
                       {"strategy", strategy_name(r.resolved)},
                       {"tokens", r.call.shape.tokens},
                       {"hidden", r.call.shape.hidden},
                       {"dtype", dtype_name(r.call.shape.dtype)},
                       {"world_size", r.call.shape.world_size},
                       {"profile", profile_name(r.call.profile)},
                       {"expect", profile_name(r.expect)},
                       {"pdl", r.call.pdl},
                       {"fused", r.call.norm.has_value()},
                       {"direct", r.direct},
                       {"seed", r.seed},
                       {"elements", r.elements},
                       {"mismatches", r.mismatches},
                       {"ranks_disagreeing", r.ranks_disagreeing},
                       {"flags_ok", r.flags_ok},
                       {"ms", r.ms}};
    if (!r.digests.empty()) row["output_sha256"] = r.digests;
    if (r.call.norm)
      row["norm"] = {{"epsilon_bits", r.call.norm->epsilon},
                     {"weight_bias_bits", r.call.norm->weight_bias},
                     {"sm_count", r.call.norm->sm_count}};
    j["rows"].push_back(row);
  }
  if (!result.batches.empty()) {
    j["batches"] = nlohmann::json::array();
    for (const BatchSummary& b : result.batches)
      j["batches"].push_back({{"world_size", b.world},
                              {"dtype", dtype_name(b.dtype)},
                              {"profile", profile_name(b.profile)},
                              {"strategy", strategy_name(b.strategy)},
                              {"fused", b.fused},
                              {"quant", quant_mode_name(b.quant)},
                              {"sm_count", b.sm_count},
                              {"hidden", b.hidden},
                              {"max_tokens", b.max_tokens},
                              {"batch_sizes", b.batch_sizes},
                              {"boundaries", b.boundaries},
                              {"probes", b.probes},
                              {"gpu_distinct_rows", b.gpu_distinct},
                              {"model_distinct_rows", b.model_distinct},
                              {"pairs_disagreeing", b.pairs_disagreeing},
                              {"ok", b.ok}});
  }
  j["summary"] = {{"calls", result.rows.size()},       {"elements", result.elements()},
                  {"mismatches", result.mismatches()}, {"flag_differences", result.flag_failures},
                  {"result", result.verdict()},        {"seconds", result.seconds}};
  if (result.timeout)
    j["timeout"] = {{"message", result.timeout->message},
                    {"rank", result.timeout->rank},
                    {"peer", result.timeout->peer},
                    {"call", result.timeout->call}};
  return j.dump(2) + "\n";
}

}  // namespace ar
