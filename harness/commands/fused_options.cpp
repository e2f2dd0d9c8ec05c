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

// FlashInfer narrows eps (and the bias) to fp32 on the host, so a double beyond fp32's range becomes Inf.
std::uint32_t fp32_parameter(const char* flag, double value) {
  const std::uint32_t bits = fp32_from_double(value);
  if (is_inf(bits, kFp32Format) || is_nan(bits, kFp32Format))
    throw UsageError(fmt::format("--{} {} is not a finite number as the fp32 the kernel holds", flag, value));
  return bits;
}

// No GPU has more than a thousand SMs, and a typo such as 13200 should not pass as one.
void check_sm_count(const char* flag, int sms) {
  if (sms < 1 || sms > kMaxSmCount) throw UsageError(fmt::format("{} {} is outside [1, {}]", flag, sms, kMaxSmCount));
}

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

void check_fused_profile(Profile profile) {
  if (profile == Profile::kTrtllm)
    throw UsageError("the fused call is modelled for the flashinfer, ieee and invariant profiles, not trtllm");
}

FusedInputs load_fused_inputs(const po::variables_map& vm, const FusedArgs& args, const RankInputs& in,
                              Strategy strategy, Profile profile) {
  const ProblemShape& s = in.shape;
  FusedInputs f;
  f.residual = read_companion("residual", args.residual, s, {s.tokens, s.hidden}, "[N, D]");
  f.gamma = read_companion("gamma", args.gamma, s, {s.hidden}, "[D]");
  f.options.strategy = strategy;
  f.options.profile = profile;
  f.options.sm_count = args.sms;
  f.options.epsilon = given(vm, "eps") ? fp32_parameter("eps", args.eps) : default_epsilon(s.dtype);
  f.options.weight_bias = fp32_parameter("weight-bias", args.weight_bias);
  return f;
}

namespace {

// The model refuses with std::invalid_argument what FlashInfer's dispatcher refuses (a row too wide for
// any launch); the user needs the file and the shape to act on it.
template <class Call>
auto refusing_as_usage(const std::string& input_path, const RankInputs& in, const FusedInputs& f, Call call) {
  try {
    return call();
  } catch (const std::invalid_argument& e) {
    const ProblemShape& s = in.shape;
    throw UsageError(fmt::format("'{}' ([{}, {}, {}] {}, {} SMs): the fused call cannot run: {}", input_path,
                                 s.world_size, s.tokens, s.hidden, dtype_name(s.dtype), f.options.sm_count, e.what()));
  }
}

}  // namespace

FusedResult fused_reference(const std::string& input_path, const RankInputs& in, const FusedInputs& f) {
  return refusing_as_usage(input_path, in, f,
                           [&] { return reference_fused_rms_norm(in.tensor, f.residual, f.gamma, f.options); });
}

FusedElementExplanation fused_explanation(const std::string& input_path, const RankInputs& in, const FusedInputs& f,
                                          std::int64_t token, std::int64_t col) {
  return refusing_as_usage(
      input_path, in, f, [&] { return explain_fused_element(in.tensor, f.residual, f.gamma, f.options, token, col); });
}

std::string undefined_norm_warning(const NormLaunch& launch) {
  return fmt::format(
      "the GPU's normalised output is undefined for this shape: ONESHOT launches {} block(s) of {} threads for "
      "{} packs a row, and the {} thread(s) beyond the row return before the block reduction, so the lanes and "
      "shared-memory slots they would fill are never written. The model counts them as +0; the residual output "
      "is exact (docs/fused.md)",
      launch.cluster_size(), launch.block_size(), launch.packs_per_row, launch.exited_threads());
}

}  // namespace ar
