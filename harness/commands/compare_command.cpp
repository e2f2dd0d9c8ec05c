// mnnvl-ar compare: the main job. Folds one input with ONESHOT and TWOSHOT under every profile and shows,
// side by side, which give the same bits, how far each is from the exact sum, and where they first differ;
// with --residual and --gamma the same for the fused residual add + RMSNorm (fused_report.h).
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "harness/commands/commands.h"
#include "harness/commands/fused_options.h"
#include "harness/commands/fused_report.h"
#include "harness/commands/options.h"
#include "harness/commands/tensor_format.h"
#include "harness/io/exit_codes.h"
#include "harness/io/golden_cases.h"
#include "harness/io/npy.h"
#include "harness/io/rank_inputs.h"
#include "reference/accuracy.h"
#include "reference/all_reduce.h"
#include "reference/bit_diff.h"

namespace ar {
namespace {

/// The input compared: a file, or the built-in adversarial case.
struct CompareInput {
  RankInputs in;
  CompareSource source;
};

CompareInput compare_input(const po::variables_map& vm, const std::string& input, const std::string& dtype_text,
                           int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed) {
  CompareInput c;
  if (vm.count("input")) {
    for (const char* name : {"world-size", "tokens", "hidden", "seed"})
      if (option_given(vm, name))
        throw UsageError(fmt::format("--{} shapes the built-in case; with --input the file's shape is compared", name));
    c.in = load_rank_inputs(input, optional_dtype_option(dtype_text));
    c.source = {input, fmt::format("-i {}", input), true, input};
    return c;
  }
  const DType t = dtype_text.empty() ? DType::kBf16 : dtype_option(dtype_text);
  ProblemShape shape{world, tokens, hidden, t};
  if (auto why = validate_shape(shape)) throw UsageError(*why);
  if (shape.elements_per_rank() * world > (std::int64_t{1} << 28))
    throw UsageError("the built-in case is limited to 2^28 elements in all; pass --input for larger ones");
  c.in = {adversarial_input(t, world, tokens, hidden, seed), shape};
  c.source = {fmt::format("built-in adversarial case (seed {})", seed),
              fmt::format("-d {} -w {} -n {} --hidden {} --seed {}", dtype_name(t), world, tokens, hidden, seed), false,
              ""};
  return c;
}

// The all-reduce's table: every strategy and profile against ONESHOT/flashinfer and the exact sum.
void print_all_reduce_compare(std::ostream& out, const CompareInput& c, bool json) {
  const ProblemShape& s = c.in.shape;
  std::vector<std::pair<Strategy, Profile>> runs;
  for (Strategy st : {Strategy::kOneShot, Strategy::kTwoShot})
    for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kTrtllm, Profile::kInvariant})
      runs.emplace_back(st, p);
  const AccuracyReport acc = accuracy_report(c.in.tensor, runs);
  const HostTensor baseline = reference_all_reduce(c.in.tensor, Strategy::kOneShot, Profile::kFlashInfer);

  nlohmann::json rows = nlohmann::json::array();
  if (!json) {
    fmt::print(out, "input: {}: {}, W = {}, N = {}, D = {}; auto -> {}\n\n", c.source.description, dtype_name(s.dtype),
               s.world_size, s.tokens, s.hidden, strategy_name(resolve_strategy(Strategy::kAuto, s)));
    fmt::print(out, "{:<20} {:>14} {:>17} {:>8} {:>9}  {}\n", "strategy/profile", "differ from", "correctly", "max ULP",
               "mean ULP", "order");
    fmt::print(out, "{:<20} {:>14} {:>17} {:>8} {:>9}\n", "", "row 1", "rounded", "", "");
  }
  std::string first_difference;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto [strategy, profile] = runs[i];
    const AccuracyRow& row = acc.rows[i];
    const HostTensor result = reference_all_reduce(c.in.tensor, strategy, profile);
    const BitDiff d = compare_bits(baseline, result);
    const std::string label = fmt::format("{}/{}", strategy_name(strategy), profile_name(profile));
    const std::string order = describe(reduction_order(strategy, profile, s.world_size));
    rows.push_back({{"strategy", strategy_name(strategy)},
                    {"profile", profile_name(profile)},
                    {"order", order},
                    {"differ_from_oneshot_flashinfer", d.differing},
                    {"correctly_rounded", row.correctly_rounded},
                    {"elements", row.elements},
                    {"max_ulp", row.max_ulp},
                    {"mean_ulp", row.mean_ulp},
                    {"ulp_histogram", row.histogram}});
    // The headline is ONESHOT vs TWOSHOT as shipped; other rows speak only when that pair agrees.
    const bool headline = strategy == Strategy::kTwoShot && profile == Profile::kFlashInfer;
    if (d.differing && (first_difference.empty() || headline)) {
      const std::int64_t token = d.first_index / s.hidden, col = d.first_index % s.hidden;
      first_difference = fmt::format(
          "oneshot/flashinfer and {} first differ at [{}, {}]. To see why:\n  mnnvl-ar compare {} --save-input x.npy"
          " && mnnvl-ar explain -i x.npy{} -t {} -c {} --strategy oneshot",
          label, token, col, c.source.options, s.dtype == DType::kBf16 ? " --dtype bf16" : "", token, col);
    }
    if (!json)
      fmt::print(out, "{:<20} {:>14} {:>17} {:>8} {:>9.4f}  {}\n", label, i == 0 ? "-" : std::to_string(d.differing),
                 fmt::format("{}/{}", row.correctly_rounded, row.elements), row.max_ulp, row.mean_ulp, order);
  }
  if (json) {
    nlohmann::json j{{"source", c.source.description},
                     {"dtype", dtype_name(s.dtype)},
                     {"world_size", s.world_size},
                     {"tokens", s.tokens},
                     {"hidden", s.hidden},
                     {"auto", strategy_name(resolve_strategy(Strategy::kAuto, s))},
                     {"rows", rows}};
    fmt::print(out, "{}\n", j.dump(2));
    return;
  }
  fmt::print(
      out, "\n{}\n",
      first_difference.empty() ? "all strategies and profiles agree bit for bit on this input." : first_difference);
}

}  // namespace

int compare_command(const CommandArgs& args, std::ostream& out, std::ostream& err) {
  std::string input, dtype_text, save_input;
  int world = 16;
  std::int64_t tokens = 4, hidden = 64;
  std::uint64_t seed = 1;
  FusedArgs fused_args;
  po::options_description options("options");
  // clang-format off
  options.add_options()
      ("input,i", po::value(&input), "[W, N, D] .npy to compare on (default: the built-in adversarial case)")
      ("dtype,d", po::value(&dtype_text)->default_value(""), "built-in case: bf16 | fp16 | fp32 (default bf16); "
                                                             "with --input: bf16 to read <u2 words as bf16")
      ("world-size,w", po::value(&world)->default_value(16), "built-in case: W")
      ("tokens,n", po::value(&tokens)->default_value(4), "built-in case: N")
      ("hidden", po::value(&hidden)->default_value(64), "built-in case: D")
      ("seed", po::value(&seed)->default_value(1), "built-in case: seed of the random values")
      ("save-input", po::value(&save_input), "write the input compared to this .npy (to `explain` it)")
      ("json", "print the table as JSON");
  // clang-format on
  add_fused_options(options, fused_args, /*with_output=*/false);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar compare [--input X.npy | --dtype bf16 --world-size 16 --seed 1] [--save-input X.npy] [--json]\n"
      "       [--residual R.npy --gamma G.npy [--eps E] [--weight-bias B] [--sms 132]]",
      "Computes the all-reduce of one input with both strategies under the four profiles (flashinfer as\n"
      "shipped, ieee without flush-to-zero, trtllm in TensorRT-LLM's order, invariant the batch-invariant one\n"
      "of docs/invariance.md) and prints, per row, the fold order, how many elements differ from\n"
      "ONESHOT/flashinfer, how many equal the exact sum rounded once, and the largest and mean distance from\n"
      "it in ULPs. Without --input it uses a built-in adversarial case: full-mantissa values over a wide\n"
      "exponent range at W = 16 (where ONESHOT folds chunks of 8 and TWOSHOT one chunk of 16), with SPEC\n"
      "section 10's -0, FTZ, NaN, Inf and overflow scenarios on token 0.\n\n"
      "With --residual R ([N, D]) and --gamma G ([D]) of the input's dtype it compares the fused all-reduce +\n"
      "residual add + RMSNorm instead (docs/fused.md), with both strategies under flashinfer, ieee and\n"
      "invariant: per row how many normalised elements differ from ONESHOT/flashinfer's, how many are\n"
      "correctly rounded and their max and mean ULP distance, how many residual outputs are correctly\n"
      "rounded, and the launch.\n" +
          std::string(kFusedCorrectlyRoundedHelp) +
          "\n\n"
          "examples:\n  mnnvl-ar compare\n  mnnvl-ar compare --world-size 64 --dtype fp32\n"
          "  mnnvl-ar compare --save-input adv.npy && mnnvl-ar explain -i adv.npy --dtype bf16 -t 0 -c 2\n"
          "  mnnvl-ar compare -i x.npy --dtype bf16 --residual r.npy --gamma g.npy --eps 1e-6\n\n"
          "exit codes: 0 ok, 2 bad usage or input (nothing is written)"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;
  if (vm.count("save-input")) check_output_path(save_input);
  const bool fused = fused_requested(vm, fused_args, /*with_output=*/false);
  const CompareInput c = compare_input(vm, input, dtype_text, world, tokens, hidden, seed);
  if (!fused) {
    if (vm.count("save-input")) write_npy(save_input, c.in.tensor);
    print_all_reduce_compare(out, c, vm.count("json") != 0);
    return kExitOk;
  }
  // Every refusal (a residual or gamma that does not fit, a launch FlashInfer does not make) comes before the
  // input is saved.
  const FusedInputs f = load_fused_inputs(vm, fused_args, c.in, Strategy::kAuto, Profile::kFlashInfer);
  const FusedAccuracyReport report = fused_report(c.source.description, c.in, f, err);
  if (vm.count("save-input")) write_npy(save_input, c.in.tensor);
  print_fused_compare(out, c.source, c.in, fused_args, f, report, vm.count("json") != 0);
  return kExitOk;
}

}  // namespace ar
