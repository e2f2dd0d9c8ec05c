// The model's outputs: the plain all-reduce and the fused residual-add + RMSNorm, for any strategy and
// profile. The model runs without the GIL, so other Python threads go on meanwhile.
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include "harness/commands/fused_inputs.h"
#include "harness/commands/option_names.h"
#include "harness/io/exit_codes.h"
#include "python/src/bindings.h"
#include "python/src/bits.h"
#include "reference/accuracy.h"
#include "reference/all_reduce.h"

namespace ar::python {
namespace {

nb::tuple all_reduce(const BitsIn& x, const std::string& dtype, const std::string& strategy,
                     const std::string& profile) {
  const DType t = dtype_option(dtype);
  const Strategy s = strategy_option(strategy);
  const Profile p = profile_option(profile);
  const HostTensor input = tensor_of(x, t, "x");
  const Strategy resolved = resolve_strategy(s, shape_of_input(input));
  HostTensor out;
  {
    nb::gil_scoped_release unlocked;
    out = reference_all_reduce(input, s, p);
  }
  return nb::make_tuple(array_of(std::move(out)), std::string(strategy_name(resolved)));
}

nb::tuple fused(const BitsIn& x, const BitsIn& residual, const BitsIn& gamma, const std::string& dtype,
                const std::string& strategy, const std::string& profile, int sm_count, std::optional<double> eps,
                double weight_bias) {
  const DType t = dtype_option(dtype);
  FusedInputs f;
  f.options = fused_options(t, strategy_option(strategy), profile_option(profile), sm_count, eps, weight_bias,
                            "sm_count");
  const RankInputs in = rank_inputs(x, t);
  f.residual = tensor_of(residual, t, "residual");
  f.gamma = tensor_of(gamma, t, "gamma");
  FusedResult r;
  {
    nb::gil_scoped_release unlocked;
    r = fused_reference("x", in, f);
  }
  std::optional<std::string> warning;
  if (r.normalized_undefined_on_gpu) warning = undefined_norm_warning(r.launch);
  return nb::make_tuple(array_of(std::move(r.normalized)), array_of(std::move(r.residual_out)),
                        std::string(strategy_name(r.launch.strategy)), warning);
}

BitsOut correctly_rounded(const BitsIn& x, const std::string& dtype) {
  const HostTensor input = tensor_of(x, dtype_option(dtype), "x");
  HostTensor out;
  {
    nb::gil_scoped_release unlocked;
    out = correctly_rounded_sum(input);
  }
  return array_of(std::move(out));
}

std::string resolve(int world, std::int64_t tokens, std::int64_t hidden, const std::string& dtype,
                    const std::string& strategy) {
  const ProblemShape shape{world, tokens, hidden, dtype_option(dtype)};
  if (auto why = validate_shape(shape)) throw UsageError(fmt::format("x: {}", *why));
  return std::string(strategy_name(resolve_strategy(strategy_option(strategy), shape)));
}

}  // namespace

void bind_model(nb::module_& m) {
  m.def("all_reduce", &all_reduce, nb::arg("x"), nb::arg("dtype"), nb::arg("strategy"), nb::arg("profile"),
        "x: [W, N, D] raw bits. Returns (the [N, D] sum's bits, the strategy AUTO resolved to).");
  m.def("correctly_rounded", &correctly_rounded, nb::arg("x"), nb::arg("dtype"),
        "x: [W, N, D] raw bits. The exact per-element sums rounded once to the dtype (the best any order gives).");
  m.def("resolve_strategy", &resolve, nb::arg("world"), nb::arg("tokens"), nb::arg("hidden"), nb::arg("dtype"),
        nb::arg("strategy"), "The strategy a call of this shape runs (AUTO by the 1 MiB rule).");
  m.def("fused", &fused, nb::arg("x"), nb::arg("residual"), nb::arg("gamma"), nb::arg("dtype"), nb::arg("strategy"),
        nb::arg("profile"), nb::arg("sm_count"), nb::arg("eps").none(), nb::arg("weight_bias"),
        "Returns (normalized bits, residual_out bits, the resolved strategy, the undefined-output warning or None).");
}

}  // namespace ar::python
