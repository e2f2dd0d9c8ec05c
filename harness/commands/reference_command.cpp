// mnnvl-ar reference: the bit-exact all-reduce of a [W, N, D] .npy on the CPU, and with --residual and
// --gamma the fused residual-add + RMSNorm that follows it.
#include <chrono>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/commands/commands.h"
#include "harness/commands/fused_options.h"
#include "harness/commands/options.h"
#include "harness/io/exit_codes.h"
#include "harness/io/npy.h"
#include "harness/io/output_file.h"
#include "harness/io/quant_files.h"
#include "harness/io/rank_inputs.h"
#include "reference/all_reduce.h"
#include "reference/explain.h"

namespace ar {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The fused call: every output (and the quantised ones with --quant) goes through one OutputSet, made (and so
// checked) before the inputs are read, so that a refusal or a failed write leaves none of the files.
int reference_fused(const std::string& input, const std::optional<DType>& dtype, Strategy strategy, Profile profile,
                    Engine engine, const po::variables_map& vm, const FusedArgs& fused_args,
                    const std::optional<QuantOptions>& quant, const QuantArgs& quant_args, const std::string& output,
                    std::ostream& out, std::ostream& err) {
  check_fused_profile(profile);
  std::vector<std::string> paths{output, fused_args.residual_out}, flags{"--output", "--residual-out"};
  if (quant) {
    paths.push_back(quant_args.quant_out);
    flags.emplace_back("--quant-out");
    if (has_scale_out(quant->mode)) {
      paths.push_back(quant_args.scale_out);
      flags.emplace_back("--scale-out");
    }
  }
  OutputSet files(paths, flags);
  const auto start = std::chrono::steady_clock::now();
  const RankInputs in = load_rank_inputs(input, dtype);
  if (quant) check_quant_input(input, in, *quant);
  FusedInputs fused = load_fused_inputs(vm, fused_args, in, strategy, profile);
  fused.options.engine = engine;
  FusedQuantResult result;
  if (quant)
    result = fused_quant_reference(input, in, fused, *quant);
  else
    result.fused = fused_reference(input, in, fused);
  files.file(0).write(encode_npy(result.fused.normalized));
  files.file(1).write(encode_npy(result.fused.residual_out));
  if (quant) {
    files.file(2).write(encode_quant_out(result.quant));
    if (has_scale_out(quant->mode)) files.file(3).write(encode_scale_out(result.quant));
  }
  files.commit();
  const NormLaunch& l = result.fused.launch;
  fmt::print(out,
             "wrote {} (normalised) and {} (residual): [{}, {}] {}, {}{}/{} fused, W = {}, eps {}, weight bias {}, "
             "{} SMs: {}cluster of {} x {} threads, {} load(s), {:.3f} s\n",
             output, fused_args.residual_out, in.shape.tokens, in.shape.hidden, dtype_name(in.shape.dtype),
             strategy == Strategy::kAuto ? "auto -> " : "", strategy_name(l.strategy), profile_name(profile),
             in.shape.world_size, format_fp32(fused.options.epsilon), format_fp32(fused.options.weight_bias),
             fused.options.sm_count, l.cluster_launch ? "" : "no ", l.cluster_size(), l.block_size(),
             l.loads_per_thread(), seconds_since(start));
  if (quant) {
    const QuantizedOutput& q = result.quant;
    fmt::print(out, "quantised ({}): wrote {} (codes, {})", describe_quant(*quant), quant_args.quant_out,
               quant_out_description(q.mode, q.tokens, q.hidden));
    if (has_scale_out(q.mode))
      fmt::print(out, " and {} ({})", quant_args.scale_out,
                 scale_out_description(q.mode, q.layout, q.tokens, q.hidden));
    fmt::print(out, "\n");
  }
  if (result.fused.normalized_undefined_on_gpu)
    fmt::print(err, "mnnvl-ar reference: warning: {}\n", undefined_norm_warning(l));
  return kExitOk;
}

}  // namespace

int reference_command(const CommandArgs& args, std::ostream& out, std::ostream& err) {
  std::string input, output, strategy_text, profile_text, dtype_text, engine_text;
  FusedArgs fused_args;
  QuantArgs quant_args;
  po::options_description options("options");
  // clang-format off
  options.add_options()
      ("input,i", po::value(&input)->required(), "every rank's input, [W, N, D] .npy (<f4 fp32, <f2 fp16, <u2 bf16 bits)")
      ("output,o", po::value(&output)->required(), "where to write the [N, D] result, same storage as the input")
      ("strategy,s", po::value(&strategy_text)->default_value("auto"), "oneshot | twoshot | auto (ONESHOT iff N*D*W*E <= 1 MiB)")
      ("profile,p", po::value(&profile_text)->default_value("flashinfer"), "flashinfer | ieee | trtllm | invariant")
      ("dtype,d", po::value(&dtype_text)->default_value(""), "bf16 to read <u2 words as bf16; otherwise from the file")
      ("engine", po::value(&engine_text)->default_value("fast"), "fast (SIMD host fold, fast fused rows) | scalar (the element-wise model)");
  // clang-format on
  add_fused_options(options, fused_args, /*with_output=*/true);
  add_quant_options(options, quant_args, QuantFiles::kWrites);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar reference --input X.npy --output Y.npy [--strategy auto] [--profile flashinfer] [--dtype bf16]\n"
      "       [--residual R.npy --gamma G.npy --residual-out RO.npy [--eps E] [--weight-bias B] [--sms 132]\n"
      "        [--quant fp8|fp8-dynamic|nvfp4 --quant-out Q.npy [--scale-out S.npy] [--quant-scale X]\n"
      "         [--scale-layout swizzled|linear]]]",
      "Computes, bit for bit, what FlashInfer's MNNVL all-reduce returns on every rank for the stacked\n"
      "inputs X ([W, N, D]): sanitise -0 to +0, widen to fp32, fold in ascending rank order (chunks of 8\n"
      "ranks for ONESHOT at W >= 16, of min(W, 16) for TWOSHOT, each from +0), flush-to-zero adds, one RN-even\n"
      "narrowing, and TWOSHOT maps a -0 result to +0. Profiles: flashinfer (as shipped), ieee (same order, no\n"
      "FTZ), trtllm (TensorRT-LLM: seeded with rank 0, no chunking), invariant (batch-invariant: below W = 16\n"
      "the order both strategies share, with IEEE adds; from W = 16 the exact sum rounded once).\n\n"
      "With --residual R ([N, D]) and --gamma G ([D]), both of the input's dtype, it computes FlashInfer's fused\n"
      "all-reduce + residual-add + RMSNorm instead: Y gets the normalised output and RO the residual output\n"
      "(AR + residual), both [N, D]. The row's sum of squares follows the kernel's launch shape, which depends\n"
      "on N and --sms (the GPU's SM count); eps defaults to torch.finfo(dtype).eps as in FlashInfer's Python\n"
      "(2^-7 bf16, 2^-10 fp16, 2^-23 fp32). Profiles flashinfer, ieee and invariant. A shape whose normalised\n"
      "output the GPU leaves undefined is written with a warning (docs/fused.md).\n\n"
      "With --quant it also writes the quantised output of FlashInfer's *_quant op (SPEC 13, docs/quant.md):\n"
      "  fp8          Q = e4m3(y * rcp(X)), uint8 [N, D]; X = --quant-scale (output_scale, default 1); no S\n"
      "  fp8-dynamic  Q uint8 [N, D] and S the fp32 [N, 1] token scales max(absmax / 448, 2^-9 / 448)\n"
      "  nvfp4        Q uint8 [N, D / 2] (e2m1, element 2i in the low nibble) and S the e4m3 block scales, one\n"
      "               per 16 elements, as uint8: swizzled (default) [N rounded up to 128, D / 16 rounded up\n"
      "               to 4], the bytes of FlashInfer's 128 x 4 tiles in order, or linear [N, D / 16];\n"
      "               X = the global scale g (default 1); bf16 or fp16 only, D a multiple of 16.\n"
      "X may be any finite fp32 (0 and negative values give what the kernel computes from them). NVFP4 here\n"
      "has Blackwell's (sm_100) semantics: FlashInfer's own NVFP4 on sm_90 (H100/H200) returns all-zero codes\n"
      "and leaves S untouched. `mnnvl-ar dequant` decodes Q and S.\n\n"
      "examples:\n  mnnvl-ar reference -i x.npy -o y.npy --strategy twoshot && mnnvl-ar diff y.npy expected.npy\n"
      "  mnnvl-ar reference -i x.npy -d bf16 -o y.npy --residual r.npy --gamma g.npy --residual-out ro.npy --eps "
      "1e-6\n"
      "  mnnvl-ar reference -i x.npy -d bf16 -o y.npy --residual r.npy --gamma g.npy --residual-out ro.npy \\\n"
      "      --quant nvfp4 --quant-out q.npy --scale-out s.npy\n\n"
      "exit codes: 0 written, 2 bad usage or input (nothing is written)"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;
  const Strategy strategy = strategy_option(strategy_text);
  const Profile profile = profile_option(profile_text);
  if (engine_text != "fast" && engine_text != "scalar")
    throw UsageError(fmt::format("unknown engine '{}' (choose fast or scalar)", engine_text));
  const Engine engine = engine_text == "fast" ? Engine::kFast : Engine::kScalar;
  const bool fused = fused_requested(vm, fused_args, /*with_output=*/true);
  const std::optional<QuantOptions> quant = quant_requested(vm, quant_args, fused, QuantFiles::kWrites);
  if (fused)
    return reference_fused(input, optional_dtype_option(dtype_text), strategy, profile, engine, vm, fused_args, quant,
                           quant_args, output, out, err);
  check_output_path(output);  // before the work, so a typo costs nothing

  const auto start = std::chrono::steady_clock::now();
  const RankInputs in = load_rank_inputs(input, optional_dtype_option(dtype_text));
  const HostTensor result = reference_all_reduce(in.tensor, strategy, profile, engine);
  write_npy(output, result);
  const double seconds = seconds_since(start);
  const Strategy resolved = resolve_strategy(strategy, in.shape);
  fmt::print(out, "wrote {}: [{}, {}] {}, {}{}/{}, W = {}, {:.3f} s\n", output, in.shape.tokens, in.shape.hidden,
             dtype_name(in.shape.dtype), strategy == Strategy::kAuto ? "auto -> " : "", strategy_name(resolved),
             profile_name(profile), in.shape.world_size, seconds);
  return kExitOk;
}

}  // namespace ar
