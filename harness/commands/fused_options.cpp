#include "harness/commands/fused_options.h"

#include <stdexcept>

#include <fmt/format.h>

#include "harness/io/exit_codes.h"
#include "harness/io/npy.h"
#include "reference/float_bits.h"
#include "reference/float_ops.h"

namespace ar {
namespace {

bool given(const po::variables_map& vm, const char* name) { return vm.count(name) && !vm[name].defaulted(); }

// A residual or gamma file: the input's dtype (bf16 stays <u2 bits, as the input's --dtype says) and
// `shape`. The reader's message names the file; the note says what the file must be.
HostTensor read_companion(const char* flag, const std::string& path, const ProblemShape& s,
                          const std::vector<std::int64_t>& shape, const char* shape_name) {
  HostTensor t;
  try {
    t = read_npy(path, s.dtype);
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("--{}: {} (it must hold the input's dtype, {})", flag, e.what(), dtype_name(s.dtype)));
  }
  if (t.shape() != shape)
    throw UsageError(fmt::format("--{} '{}' is [{}]; it must be {} = [{}] for the input's [W, N, D] = [{}, {}, {}]",
                                 flag, path, fmt::join(t.shape(), ", "), shape_name, fmt::join(shape, ", "),
                                 s.world_size, s.tokens, s.hidden));
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
  const bool residual = given(vm, "residual"), gamma = given(vm, "gamma");
  if (residual != gamma)
    throw UsageError(fmt::format("--{} needs --{}: the fused call takes both the residual and gamma",
                                 residual ? "residual" : "gamma", residual ? "gamma" : "residual"));
  if (!residual) {
    for (const char* name : {"eps", "weight-bias", "sms", "residual-out"})
      if (given(vm, name))
        throw UsageError(fmt::format("--{} belongs to the fused call: give --residual and --gamma too", name));
    return false;
  }
  if (with_output && !given(vm, "residual-out"))
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
                            given(vm, "eps") ? std::optional<double>(args.eps) : std::nullopt, args.weight_bias,
                            "--sms");
  return f;
}

}  // namespace ar
