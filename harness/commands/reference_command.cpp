// mnnvl-ar reference: the bit-exact all-reduce of a [W, N, D] .npy on the CPU.
#include <chrono>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/commands/commands.h"
#include "harness/commands/options.h"
#include "harness/io/exit_codes.h"
#include "harness/io/npy.h"
#include "harness/io/rank_inputs.h"
#include "reference/all_reduce.h"

namespace ar {

int reference_command(const CommandArgs& args, std::ostream& out, std::ostream&) {
  std::string input, output, strategy_text, profile_text, dtype_text, engine_text;
  po::options_description options("options");
  // clang-format off
  options.add_options()
      ("input,i", po::value(&input)->required(), "every rank's input, [W, N, D] .npy (<f4 fp32, <f2 fp16, <u2 bf16 bits)")
      ("output,o", po::value(&output)->required(), "where to write the [N, D] result, same storage as the input")
      ("strategy,s", po::value(&strategy_text)->default_value("auto"), "oneshot | twoshot | auto (ONESHOT iff N*D*W*E <= 1 MiB)")
      ("profile,p", po::value(&profile_text)->default_value("flashinfer"), "flashinfer | ieee | trtllm")
      ("dtype,d", po::value(&dtype_text)->default_value(""), "bf16 to read <u2 words as bf16; otherwise from the file")
      ("engine", po::value(&engine_text)->default_value("fast"), "fast (SIMD host fold) | scalar (the element-wise model)");
  // clang-format on
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar reference --input X.npy --output Y.npy [--strategy auto] [--profile flashinfer] [--dtype bf16]",
      "Computes, bit for bit, what FlashInfer's MNNVL all-reduce returns on every rank for the stacked\n"
      "inputs X ([W, N, D]): sanitise -0 to +0, widen to fp32, fold in ascending rank order (chunks of 8\n"
      "ranks for ONESHOT at W >= 16, of min(W, 16) for TWOSHOT, each from +0), flush-to-zero adds, one RN-even\n"
      "narrowing, and TWOSHOT maps a -0 result to +0. Profiles: flashinfer (as shipped), ieee (same order, no\n"
      "FTZ), trtllm (TensorRT-LLM: seeded with rank 0, no chunking).\n\n"
      "example:\n  mnnvl-ar reference -i x.npy -o y.npy --strategy twoshot && mnnvl-ar diff y.npy expected.npy\n\n"
      "exit codes: 0 written, 2 bad usage or input (nothing is written)"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;
  check_output_path(output);  // before the work, so a typo costs nothing

  const Strategy strategy = strategy_option(strategy_text);
  const Profile profile = profile_option(profile_text);
  if (engine_text != "fast" && engine_text != "scalar")
    throw UsageError(fmt::format("unknown engine '{}' (choose fast or scalar)", engine_text));
  const auto start = std::chrono::steady_clock::now();
  const RankInputs in = load_rank_inputs(input, optional_dtype_option(dtype_text));
  const HostTensor result =
      reference_all_reduce(in.tensor, strategy, profile, engine_text == "fast" ? Engine::kFast : Engine::kScalar);
  write_npy(output, result);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Strategy resolved = resolve_strategy(strategy, in.shape);
  fmt::print(out, "wrote {}: [{}, {}] {}, {}{}/{}, W = {}, {:.3f} s\n", output, in.shape.tokens, in.shape.hidden,
             dtype_name(in.shape.dtype), strategy == Strategy::kAuto ? "auto -> " : "", strategy_name(resolved),
             profile_name(profile), in.shape.world_size, seconds);
  return kExitOk;
}

}  // namespace ar
