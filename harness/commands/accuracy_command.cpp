// mnnvl-ar accuracy: what each reduction order costs, against the exact sum, in ULPs; with --residual and
// --gamma what the fused residual add + RMSNorm costs, against its correctly rounded outputs.
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "harness/commands/commands.h"
#include "harness/commands/accuracy_table.h"
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
      "residual add + RMSNorm instead (docs/fused.md): both strategies under flashinfer, ieee and invariant,\n"
      "the normalised output's and the residual output's distance from their correctly rounded values in ULPs.\n" +
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
  const AccuracyReport report = accuracy_report(in.tensor, every_strategy_and_profile());
  if (vm.count("json"))
    fmt::print(out, "{}\n", accuracy_json(report).dump(2));
  else
    print_accuracy_table(out, input, report);
  return kExitOk;
}

}  // namespace ar
