#include "harness/commands/fused_options.h"

#include <stdexcept>

#include <fmt/format.h>

#include "harness/io/exit_codes.h"
#include "harness/io/npy.h"
#include "harness/io/quant_files.h"
#include "reference/float_bits.h"
#include "reference/float_ops.h"

namespace ar {
namespace {

// A residual or gamma file: the input's dtype (bf16 stays <u2 bits, as the input's --dtype says) and
// `shape`. The reader's message names the file; the note says what the file must be.
HostTensor read_companion(const char* flag, const std::string& path, const ProblemShape& s,
                          const std::vector<std::int64_t>& shape, const char* shape_name) {
  // The shape from the header first: a file of the wrong shape is refused before its data is read.
  std::vector<std::int64_t> got;
  HostTensor t;
  try {
    got = read_npy_shape(path);
    if (got == shape) t = read_npy(path, s.dtype);
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("--{}: {} (it must hold the input's dtype, {})", flag, e.what(), dtype_name(s.dtype)));
  }
  if (got != shape)
    throw UsageError(fmt::format("--{} '{}' is [{}]; it must be {} = [{}] for the input's [W, N, D] = [{}, {}, {}]",
                                 flag, path, fmt::join(got, ", "), shape_name, fmt::join(shape, ", "), s.world_size,
                                 s.tokens, s.hidden));
  return t;
}

}  // namespace

void add_fused_options(po::options_description& options, FusedArgs& args, bool with_output) {
  // clang-format off
  options.add_options()
      ("residual", po::value(&args.residual), "fused call: the residual, [N, D] .npy of the input's dtype")
      ("gamma", po::value(&args.gamma), "fused call: the RMSNorm weight, [D] .npy of the input's dtype")
      ("eps", po::value(&args.eps), "fused call: epsilon (default torch.finfo(dtype).eps, as FlashInfer's Python does)")
      ("weight-bias", po::value(&args.weight_bias)->default_value(0), "fused call: added to gamma (1 for Gemma-style norms)")
      ("sms", po::value(&args.sms)->default_value(kDefaultSmCount), "fused call: the GPU's SM count, which decides the launch shape (1..1024)");
  if (with_output)
    options.add_options()
        ("residual-out", po::value(&args.residual_out), "fused call: where to write the [N, D] residual output (AR + residual)");
  // clang-format on
}

bool fused_requested(const po::variables_map& vm, const FusedArgs& args, bool with_output) {
  const bool residual = option_given(vm, "residual"), gamma = option_given(vm, "gamma");
  if (residual != gamma)
    throw UsageError(fmt::format("--{} needs --{}: the fused call takes both the residual and gamma",
                                 residual ? "residual" : "gamma", residual ? "gamma" : "residual"));
  if (!residual) {
    for (const char* name : {"eps", "weight-bias", "sms", "residual-out"})
      if (option_given(vm, name))
        throw UsageError(fmt::format("--{} belongs to the fused call: give --residual and --gamma too", name));
    return false;
  }
  if (with_output && !option_given(vm, "residual-out"))
    throw UsageError("--residual-out is required with --residual: the fused call writes the residual output there");
  check_sm_count("--sms", args.sms);
  return true;
}

FusedInputs load_fused_inputs(const po::variables_map& vm, const FusedArgs& args, const RankInputs& in,
                              Strategy strategy, Profile profile) {
  const ProblemShape& s = in.shape;
  FusedInputs f;
  f.residual = read_companion("residual", args.residual, s, {s.tokens, s.hidden}, "[N, D]");
  f.gamma = read_companion("gamma", args.gamma, s, {s.hidden}, "[D]");
  f.options = fused_options(s.dtype, strategy, profile, args.sms,
                            option_given(vm, "eps") ? std::optional<double>(args.eps) : std::nullopt, args.weight_bias,
                            "--sms");
  return f;
}

void add_quant_options(po::options_description& options, QuantArgs& args, QuantFiles files) {
  const bool reads = files == QuantFiles::kReads;
  // clang-format off
  options.add_options()
      ("quant", po::value(&args.mode), reads ? "the codes' format, as given to `reference`: fp8, fp8-dynamic or nvfp4"
                                             : "fused call: quantise the normalised output as FlashInfer's *_quant op "
                                               "does: fp8 (static e4m3), fp8-dynamic (a scale per token) or nvfp4 "
                                               "(bf16/fp16, D % 16 == 0)")
      ("quant-scale", po::value(&args.scale), "fp8: the output_scale (values times rcp(scale)); nvfp4: the global "
                                              "scale g; default 1, any finite fp32; refused for fp8-dynamic")
      ("scale-layout", po::value(&args.layout), "nvfp4: scale_out's layout, swizzled (SWIZZLED_128x4, the default) "
                                                "or linear");
  if (files == QuantFiles::kWrites)
    options.add_options()
        ("quant-out", po::value(&args.quant_out), "with --quant, required: where the codes go, uint8 [N, D] (fp8 modes) "
                                                  "or [N, D / 2] (nvfp4, element 2i in the low nibble)")
        ("scale-out", po::value(&args.scale_out), "fp8-dynamic and nvfp4, required: where the scales go, fp32 [N, 1] "
                                                  "token scales (fp8-dynamic) or the e4m3 block scales as uint8 "
                                                  "(nvfp4: swizzled [N rounded up to 128, D / 16 rounded up to 4], "
                                                  "the tiles' bytes in order; linear [N, D / 16])");
  if (files == QuantFiles::kReads)
    options.add_options()
        ("quant-out", po::value(&args.quant_out)->required(), "the codes `reference --quant` wrote: uint8 [N, D] "
                                                              "(fp8 modes) or [N, D / 2] (nvfp4)")
        ("scale-out", po::value(&args.scale_out), "fp8-dynamic: the fp32 [N, 1] token scales; nvfp4: the uint8 "
                                                  "block scales of the layout (required for both)");
  // clang-format on
}

QuantOptions quant_options(const po::variables_map& vm, const QuantArgs& args) {
  return quant_settings(args.mode, option_given(vm, "quant-scale") ? std::optional<double>(args.scale) : std::nullopt,
                        option_given(vm, "scale-layout") ? std::optional<std::string>(args.layout) : std::nullopt);
}

std::optional<QuantOptions> quant_requested(const po::variables_map& vm, const QuantArgs& args, bool fused,
                                            QuantFiles files) {
  if (!option_given(vm, "quant")) {
    for (const char* name : {"quant-scale", "scale-layout", "quant-out", "scale-out"})
      if (option_given(vm, name))
        throw UsageError(fmt::format("--{} belongs to the quantised output: give --quant too", name));
    return std::nullopt;
  }
  if (!fused) throw UsageError("--quant quantises the fused call's normalised output: give --residual and --gamma too");
  const QuantOptions q = quant_options(vm, args);
  if (files != QuantFiles::kWrites) return q;
  const std::string name(quant_mode_name(q.mode));
  if (!option_given(vm, "quant-out"))
    throw UsageError(fmt::format("--quant-out is required with --quant: the {} codes are written there", name));
  if (has_scale_out(q.mode) && !option_given(vm, "scale-out"))
    throw UsageError(fmt::format("--scale-out is required with --quant {}: its {} are written there", name,
                                 q.mode == QuantMode::kNvfp4 ? "block scales" : "token scales"));
  if (!has_scale_out(q.mode) && option_given(vm, "scale-out"))
    throw UsageError(
        "--scale-out is for fp8-dynamic and nvfp4: static fp8 has no scale output (FlashInfer returns None for it)");
  return q;
}

}  // namespace ar
