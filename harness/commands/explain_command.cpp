// mnnvl-ar explain: the addition tree of one output element, and why strategies and profiles disagree on it;
// with --residual and --gamma, the same for the fused residual-add + RMSNorm (fused_explain.h).
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/commands/commands.h"
#include "harness/commands/element_report.h"
#include "harness/commands/fused_explain.h"
#include "harness/commands/fused_options.h"
#include "harness/commands/options.h"
#include "harness/io/exit_codes.h"
#include "harness/io/rank_inputs.h"
#include "reference/explain.h"

namespace ar {
int explain_command(const CommandArgs& args, std::ostream& out, std::ostream&) {
  std::string input, strategy_text, profile_text, dtype_text;
  std::int64_t token = -1, col = -1;
  FusedArgs fused_args;
  QuantArgs quant_args;
  po::options_description options("options");
  // clang-format off
  options.add_options()
      ("input,i", po::value(&input)->required(), "every rank's input, [W, N, D] .npy")
      ("token,t", po::value(&token)->required(), "token (row) of the element, 0 <= T < N")
      ("col,c", po::value(&col)->required(), "column of the element, 0 <= C < D")
      ("strategy,s", po::value(&strategy_text)->default_value("auto"), "oneshot | twoshot | auto")
      ("profile,p", po::value(&profile_text)->default_value("flashinfer"), "flashinfer | ieee | trtllm | invariant")
      ("dtype,d", po::value(&dtype_text)->default_value(""), "bf16 to read <u2 words as bf16");
  // clang-format on
  add_fused_options(options, fused_args, /*with_output=*/false);
  add_quant_options(options, quant_args, QuantFiles::kNone);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar explain --input X.npy --token T --col C [--strategy auto] [--profile flashinfer]\n"
      "       [--residual R.npy --gamma G.npy [--eps E] [--weight-bias B] [--sms 132]\n"
      "        [--quant fp8|fp8-dynamic|nvfp4 [--quant-scale X] [--scale-layout swizzled|linear]]]",
      "Prints how output element [T, C] is computed: each rank's input as given, sanitised (-0 -> +0) and\n"
      "widened to fp32; every fp32 add with its operands and accumulator in hex and decimal, chunk boundaries,\n"
      "FTZ flushes and roundings; the narrowing; the TWOSHOT -0 sanitising. Then it folds the same element\n"
      "with every other strategy and profile, and for each that gives other bits names the rank after which\n"
      "the partial sums first part as real numbers, and the steps there (or the sanitising, when only the\n"
      "sign of zero differs).\n\n"
      "With --residual and --gamma (as for `reference`) it explains element [T, C] of the fused residual-add +\n"
      "RMSNorm instead: the launch shape and the thread that loads the element, pre = AR + residual, the row's\n"
      "sum of squares (the owning thread, its warp's butterfly, the block's second level, the cluster fold),\n"
      "float(D), rcp(D), the rsqrt's input and output, wb + gamma, both products in the strategy's order and\n"
      "the narrowing; then the same under the other strategy, and where the two part.\n\n"
      "With --quant (as for `reference`) it then follows the element through the quantisation under the\n"
      "chosen strategy: fp8: the value, 1 / output_scale, their product, the e4m3 code; fp8-dynamic: which\n"
      "values the strategy quantises (ONESHOT the T outputs, TWOSHOT and the invariant profile the fp32\n"
      "values), the token's absmax, its scale (and the 2^-9 / 448 floor), the quotient, the clamp, the code;\n"
      "nvfp4: its block, the block's amax, the block scale's input, code and value, the element scale, the\n"
      "product, the e2m1 code and its nibble, and the block scale's byte in the layout. Then the code the\n"
      "other strategy gives. NVFP4 follows Blackwell (sm_100); FlashInfer's own returns zeros on sm_90.\n\n"
      "examples (find an element first with `mnnvl-ar compare --input X.npy`):\n"
      "  mnnvl-ar explain -i x.npy -t 0 -c 5 --strategy oneshot\n"
      "  mnnvl-ar explain -i x.npy -d bf16 -t 0 -c 5 --residual r.npy --gamma g.npy\n"
      "  mnnvl-ar explain -i x.npy -d bf16 -t 0 -c 5 --residual r.npy --gamma g.npy --quant nvfp4\n\n"
      "exit codes: 0 ok, 2 bad usage or input"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;

  const Strategy strategy = strategy_option(strategy_text);
  const Profile profile = profile_option(profile_text);
  const bool fused = fused_requested(vm, fused_args, /*with_output=*/false);
  if (fused) check_fused_profile(profile);
  const std::optional<QuantOptions> quant = quant_requested(vm, quant_args, fused, QuantFiles::kNone);
  const RankInputs in = load_rank_inputs(input, optional_dtype_option(dtype_text));
  if (quant) check_quant_input(input, in, *quant);
  const ProblemShape& s = in.shape;
  if (token < 0 || token >= s.tokens)
    throw UsageError(
        fmt::format("--token {} is outside [0, {}) (the input has N = {} tokens)", token, s.tokens, s.tokens));
  if (col < 0 || col >= s.hidden)
    throw UsageError(fmt::format("--col {} is outside [0, {}) (the input has D = {})", col, s.hidden, s.hidden));
  if (fused) {
    const FusedInputs fused_inputs = load_fused_inputs(vm, fused_args, in, strategy, profile);
    print_fused_explanation(out, input, in, fused_inputs, token, col);
    if (quant) print_quant_explanation(out, input, in, fused_inputs, *quant, token, col);
    return kExitOk;
  }

  const Strategy resolved = resolve_strategy(strategy, s);
  std::vector<std::uint32_t> column(s.world_size);
  for (int r = 0; r < s.world_size; ++r) column[r] = in.tensor.bits((r * s.tokens + token) * s.hidden + col);
  const ElementExplanation e = explain_element(column, s.dtype, resolved, profile);

  print_element_explanation(out, input, s, token, col, strategy, e);
  return kExitOk;
}

}  // namespace ar
