#include "harness/commands/fused_report.h"

#include <ostream>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "harness/io/exit_codes.h"
#include "reference/bit_diff.h"
#include "reference/explain.h"
#include "reference/float_bits.h"

namespace ar {

const char* const kFusedCorrectlyRoundedHelp =
    "\"Correctly rounded\" for the fused call means: residual_out* = RN_T(exact all-reduce + residual), the exact\n"
    "sum rounded once to T, and normalized* = RN_T(pre* / sqrt(sum(pre*^2) / D + eps) * (wb + gamma)) with\n"
    "pre* = residual_out*, eps and wb the fp32 values the kernel holds: the exact value of that expression\n"
    "(an exact sum of squares, exact comparisons with T's rounding boundaries) rounded once to T, with\n"
    "subnormals and no flush-to-zero. It is the best any implementation whose residual output is in T could\n"
    "give; the ULP distances are to it.";

namespace {

std::vector<std::pair<Strategy, Profile>> fused_runs() {
  std::vector<std::pair<Strategy, Profile>> runs;
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
    for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant}) runs.emplace_back(s, p);
  return runs;
}

std::string launch_text(const NormLaunch& l) {
  return fmt::format("{}{} x {} threads, {}", l.cluster_launch ? "cluster of " : "no cluster, ", l.cluster_size(),
                     l.block_size(),
                     l.squares_in_t ? "squares in T" : "fp32 fma squares");
}

nlohmann::json launch_json(const NormLaunch& l) {
  return {{"cluster_launch", l.cluster_launch},
          {"cluster_size", l.cluster_size()},
          {"block_size", l.block_size()},
          {"loads_per_thread", l.loads_per_thread()}};
}

nlohmann::json stats_json(const UlpStats& s) {
  return {{"elements", s.elements},       {"correctly_rounded", s.correctly_rounded},
          {"nan_outputs", s.nan_outputs}, {"max_ulp", s.max_ulp},
          {"mean_ulp", s.mean_ulp},       {"ulp_histogram", s.histogram}};
}

nlohmann::json fused_json(const FusedInputs& f) {
  return {{"eps_bits", f.options.epsilon},
          {"eps", to_double(f.options.epsilon, DType::kFp32)},
          {"weight_bias_bits", f.options.weight_bias},
          {"weight_bias", to_double(f.options.weight_bias, DType::kFp32)},
          {"sm_count", f.options.sm_count}};
}

std::string fused_line(const FusedInputs& f) {
  return fmt::format("eps {}, weight bias {}, {} SMs", format_fp32(f.options.epsilon),
                     format_fp32(f.options.weight_bias), f.options.sm_count);
}

std::string label(const FusedAccuracyRow& r) {
  return fmt::format("{}/{}", strategy_name(r.strategy), profile_name(r.profile));
}

// The fused options that give `explain` (or `compare`) the same call.
std::string fused_options_text(const FusedArgs& args, const FusedInputs& f) {
  return fmt::format("--residual {} --gamma {} --eps {} --weight-bias {} --sms {}", args.residual, args.gamma,
                     to_double(f.options.epsilon, DType::kFp32), to_double(f.options.weight_bias, DType::kFp32),
                     f.options.sm_count);
}

}  // namespace

FusedAccuracyReport fused_report(const std::string& input_path, const RankInputs& in, const FusedInputs& fused,
                                 std::ostream& err) {
  FusedAccuracyReport report;
  try {
    report = fused_accuracy_report(in.tensor, fused.residual, fused.gamma, fused.options, fused_runs());
  } catch (const std::invalid_argument& e) {
    const ProblemShape& s = in.shape;
    throw UsageError(fmt::format("'{}' ([{}, {}, {}] {}, {} SMs): the fused call cannot run: {}", input_path,
                                 s.world_size, s.tokens, s.hidden, dtype_name(s.dtype), fused.options.sm_count,
                                 e.what()));
  }
  for (const FusedAccuracyRow& r : report.rows)
    if (r.result.normalized_undefined_on_gpu && r.profile == Profile::kFlashInfer)
      fmt::print(err, "mnnvl-ar: warning: {}\n", undefined_norm_warning(r.result.launch));
  return report;
}

void print_fused_compare(std::ostream& out, const CompareSource& source, const RankInputs& in, const FusedArgs& args,
                         const FusedInputs& fused, const FusedAccuracyReport& report, bool json) {
  const ProblemShape& s = in.shape;
  const HostTensor& first = report.rows.front().result.normalized;
  std::string first_difference;
  nlohmann::json rows = nlohmann::json::array();
  if (!json) {
    fmt::print(out, "input: {}: {}, W = {}, N = {}, D = {}; auto -> {}\nfused: {}\n\n", source.description,
               dtype_name(s.dtype), s.world_size, s.tokens, s.hidden,
               strategy_name(resolve_strategy(Strategy::kAuto, s)), fused_line(fused));
    fmt::print(out, "{:<20} {:>12} {:>17} {:>8} {:>9} {:>17}  {}\n", "strategy/profile", "normalised", "correctly",
               "max ULP", "mean ULP", "residual_out", "launch");
    fmt::print(out, "{:<20} {:>12} {:>17} {:>8} {:>9} {:>17}\n", "", "differ row 1", "rounded", "", "",
               "correctly rounded");
  }
  for (std::size_t i = 0; i < report.rows.size(); ++i) {
    const FusedAccuracyRow& r = report.rows[i];
    const BitDiff d = compare_bits(first, r.result.normalized);
    rows.push_back({{"strategy", strategy_name(r.strategy)},
                    {"profile", profile_name(r.profile)},
                    {"launch", launch_json(r.result.launch)},
                    {"normalized_differ_from_first", d.differing},
                    {"normalized", stats_json(r.normalized)},
                    {"residual_out", stats_json(r.residual_out)}});
    // The headline is ONESHOT vs TWOSHOT as shipped; the ieee rows speak only when that pair agrees.
    const bool headline = r.strategy == Strategy::kTwoShot && r.profile == Profile::kFlashInfer;
    if (d.differing && (first_difference.empty() || headline)) {
      const std::int64_t token = d.first_index / s.hidden, col = d.first_index % s.hidden;
      const std::string explain_input = source.from_file ? source.path : "x.npy";
      first_difference = fmt::format(
          "{} and {} first differ in the normalised output at [{}, {}]. To see why:\n  {}mnnvl-ar explain -i {}{} "
          "{} -t {} -c {} --strategy {} --profile {}",
          label(report.rows.front()), label(r), token, col,
          source.from_file ? ""
                           : fmt::format("mnnvl-ar compare {} {} --save-input x.npy && ", source.options,
                                         fused_options_text(args, fused)),
          explain_input, s.dtype == DType::kBf16 ? " --dtype bf16" : "", fused_options_text(args, fused), token, col,
          strategy_name(r.strategy), profile_name(r.profile));
    }
    if (!json)
      fmt::print(out, "{:<20} {:>12} {:>17} {:>8} {:>9.4f} {:>17}  {}\n", label(r),
                 i == 0 ? "-" : std::to_string(d.differing),
                 fmt::format("{}/{}", r.normalized.correctly_rounded, r.normalized.elements), r.normalized.max_ulp,
                 r.normalized.mean_ulp, fmt::format("{}/{}", r.residual_out.correctly_rounded, r.residual_out.elements),
                 launch_text(r.result.launch));
  }
  if (json) {
    const nlohmann::json j{{"source", source.description},
                           {"dtype", dtype_name(s.dtype)},
                           {"world_size", s.world_size},
                           {"tokens", s.tokens},
                           {"hidden", s.hidden},
                           {"auto", strategy_name(resolve_strategy(Strategy::kAuto, s))},
                           {"fused", fused_json(fused)},
                           {"histogram_buckets", kUlpBucketNames},
                           {"rows", rows}};
    fmt::print(out, "{}\n", j.dump(2));
    return;
  }
  fmt::print(out,
             "\ncorrectly rounded: the exact RMSNorm of pre* = RN_T(exact all-reduce + residual), rounded once "
             "(mnnvl-ar compare --help)\n{}\n",
             first_difference.empty() ? "both strategies and profiles give the same normalised bits on this input."
                                      : first_difference);
}

void print_fused_accuracy(std::ostream& out, const std::string& input_path, const RankInputs& in,
                          const FusedInputs& fused, const FusedAccuracyReport& report, bool json) {
  if (json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const FusedAccuracyRow& r : report.rows)
      rows.push_back({{"strategy", strategy_name(r.strategy)},
                      {"profile", profile_name(r.profile)},
                      {"launch", launch_json(r.result.launch)},
                      {"normalized", stats_json(r.normalized)},
                      {"residual_out", stats_json(r.residual_out)}});
    fmt::print(
        out, "{}\n",
        nlohmann::json{{"fused", fused_json(fused)}, {"histogram_buckets", kUlpBucketNames}, {"rows", rows}}.dump(2));
    return;
  }
  const ProblemShape& s = in.shape;
  fmt::print(out,
             "{}: {}, W = {}, N = {}, D = {}; fused: {}\nerror against the correctly rounded fused outputs "
             "(mnnvl-ar accuracy --help)\n\n",
             input_path, dtype_name(s.dtype), s.world_size, s.tokens, s.hidden, fused_line(fused));
  fmt::print(out, "{:<20} {:>15} {:>8} {:>9} {:>15} {:>8}   normalised ULP histogram ({})\n", "strategy/profile",
             "normalised", "max ULP", "mean ULP", "residual_out", "max ULP", fmt::join(kUlpBucketNames, " | "));
  for (const FusedAccuracyRow& r : report.rows)
    fmt::print(out, "{:<20} {:>15} {:>8} {:>9.4f} {:>15} {:>8}   {}\n", label(r),
               fmt::format("{}/{}", r.normalized.correctly_rounded, r.normalized.elements), r.normalized.max_ulp,
               r.normalized.mean_ulp, fmt::format("{}/{}", r.residual_out.correctly_rounded, r.residual_out.elements),
               r.residual_out.max_ulp, fmt::join(r.normalized.histogram, " | "));
}

}  // namespace ar
