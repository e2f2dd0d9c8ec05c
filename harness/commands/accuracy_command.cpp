// mnnvl-ar accuracy: what each reduction order costs, against the exact sum, in ULPs; with --residual and
// --gamma what the fused residual add + RMSNorm costs, against its correctly rounded outputs.
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "harness/commands/commands.h"
#include "harness/commands/fused_options.h"
#include "harness/commands/fused_report.h"
#include "harness/commands/options.h"
#include "harness/io/exit_codes.h"
#include "harness/io/rank_inputs.h"
#include "reference/accuracy.h"
#include "reference/bit_diff.h"

namespace ar {

int accuracy_command(const CommandArgs& args, std::ostream& out, std::ostream& err) {
  std::string input, dtype_text;
  FusedArgs fused_args;
  po::options_description options("options");
  // clang-format off
  options.add_options()("input,i", po::value(&input)->required(), "[W, N, D] .npy")(
      "dtype,d", po::value(&dtype_text)->default_value(""), "bf16 to read <u2 words as bf16")(
      "json", "print the report as JSON");
  // clang-format on
  add_fused_options(options, fused_args, /*with_output=*/false);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar accuracy --input X.npy [--dtype bf16] [--json]\n"
      "       [--residual R.npy --gamma G.npy [--eps E] [--weight-bias B] [--sms 132]]",
      "Sums every element exactly (a 320-bit fixed-point accumulator: no rounding at all), rounds that once\n"
      "to the dtype, and reports for each strategy and profile how many outputs equal it and the distance of\n"
      "the others in ULPs: max, mean and a histogram, plus the largest absolute error in fp64.\n\n"
      "With --residual R ([N, D]) and --gamma G ([D]) of the input's dtype it measures the fused all-reduce +\n"
      "residual add + RMSNorm instead (docs/fused.md): both strategies under flashinfer and ieee, the normalised\n"
      "output's and the residual output's distance from their correctly rounded values in ULPs.\n" +
          std::string(kFusedCorrectlyRoundedHelp) +
          "\n\nexamples:\n  mnnvl-ar accuracy -i x.npy\n"
          "  mnnvl-ar accuracy -i x.npy --dtype bf16 --residual r.npy --gamma g.npy --weight-bias 1 --json\n\n"
          "exit codes: 0 ok, 2 bad usage or input"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;

  const bool fused = fused_requested(vm, fused_args, /*with_output=*/false);
  const RankInputs in = load_rank_inputs(input, optional_dtype_option(dtype_text));
  if (fused) {
    const FusedInputs f = load_fused_inputs(vm, fused_args, in, Strategy::kAuto, Profile::kFlashInfer);
    print_fused_accuracy(out, input, in, f, fused_report(input, in, f, err), vm.count("json") != 0);
    return kExitOk;
  }
  std::vector<std::pair<Strategy, Profile>> runs;
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
    for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kTrtllm, Profile::kInvariant}) runs.emplace_back(s, p);
  const AccuracyReport report = accuracy_report(in.tensor, runs);
  if (vm.count("json")) {
    nlohmann::json rows = nlohmann::json::array();
    for (const AccuracyRow& r : report.rows)
      rows.push_back({{"strategy", strategy_name(r.strategy)},
                      {"profile", profile_name(r.profile)},
                      {"elements", r.elements},
                      {"correctly_rounded", r.correctly_rounded},
                      {"max_ulp", r.max_ulp},
                      {"mean_ulp", r.mean_ulp},
                      {"max_abs_error", r.max_abs_error},
                      {"nan_outputs", r.nan_outputs},
                      {"ulp_histogram", r.histogram}});
    fmt::print(out, "{}\n", nlohmann::json{{"histogram_buckets", kUlpBucketNames}, {"rows", rows}}.dump(2));
    return kExitOk;
  }
  fmt::print(out, "{}: {}, W = {}, N = {}, D = {}; error against the exact sum rounded once to {}\n\n", input,
             dtype_name(in.shape.dtype), in.shape.world_size, in.shape.tokens, in.shape.hidden,
             dtype_name(in.shape.dtype));
  fmt::print(out, "{:<20} {:>12} {:>8} {:>9} {:>12}   ULP histogram ({})\n", "strategy/profile", "exact", "max ULP",
             "mean ULP", "max |err|", fmt::join(kUlpBucketNames, " | "));
  for (const AccuracyRow& r : report.rows)
    fmt::print(out, "{:<20} {:>12} {:>8} {:>9.4f} {:>12.4g}   {}\n",
               fmt::format("{}/{}", strategy_name(r.strategy), profile_name(r.profile)),
               fmt::format("{}/{}", r.correctly_rounded, r.elements), r.max_ulp, r.mean_ulp, r.max_abs_error,
               fmt::join(r.histogram, " | "));
  return kExitOk;
}

}  // namespace ar
