// The fused call's quantised outputs (SPEC section 13): computing them, decoding them and comparing another
// implementation's with them. The settings are checked by the CLI's rules (quant_settings) under the
// package's argument names, and the arrays by the checks `dequant` makes on its files (quant_files.h).
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include "harness/commands/fused_inputs.h"
#include "harness/commands/option_names.h"
#include "harness/io/exit_codes.h"
#include "harness/io/quant_files.h"
#include "python/src/bindings.h"
#include "python/src/bits.h"

namespace ar::python {
namespace {

constexpr QuantSettingNames kNames{"quant", "quant_scale", "scale_layout"};

QuantOptions settings(const std::string& quant, std::optional<double> quant_scale,
                      const std::optional<std::string>& scale_layout) {
  return quant_settings(quant, quant_scale, scale_layout, kNames);
}

/// quant_out and scale_out as the model's QuantizedOutput: dynamic FP8's scales come as raw uint32 words (the
/// package views float32 so), the other arrays as bytes. `prefix` names them ("", "expected ").
QuantizedOutput quantized(const QuantOptions& q, const BitsIn& quant_out, const std::optional<BitsIn>& scale_out,
                          const std::string& prefix) {
  const std::string codes = prefix + "quant_out", scales = prefix + "scale_out";
  check_scale_out_given(q.mode, scale_out.has_value(), scales);
  QuantizedOutput out = quant_codes(q.mode, q.layout, bytes_of(quant_out, codes.c_str()), codes);
  if (q.mode == QuantMode::kFp8Dynamic)
    set_token_scales(out, tensor_of(*scale_out, DType::kFp32, scales.c_str()), scales, codes);
  if (q.mode == QuantMode::kNvfp4) set_block_scales(out, bytes_of(*scale_out, scales.c_str()), scales, codes);
  return out;
}

nb::tuple fused_quant(const BitsIn& x, const BitsIn& residual, const BitsIn& gamma, const std::string& dtype,
                      const std::string& strategy, const std::string& profile, int sm_count, std::optional<double> eps,
                      double weight_bias, const std::string& quant, std::optional<double> quant_scale,
                      const std::optional<std::string>& scale_layout) {
  const DType t = dtype_option(dtype);
  FusedInputs f;
  f.options =
      fused_options(t, strategy_option(strategy), profile_option(profile), sm_count, eps, weight_bias, "sm_count");
  const QuantOptions q = settings(quant, quant_scale, scale_layout);
  const RankInputs in = rank_inputs(x, t);
  f.residual = tensor_of(residual, t, "residual");
  f.gamma = tensor_of(gamma, t, "gamma");
  FusedQuantResult r;
  {
    nb::gil_scoped_release unlocked;
    r = fused_quant_reference("x", in, f, q);
  }
  std::optional<std::string> warning;
  if (r.fused.normalized_undefined_on_gpu) warning = undefined_norm_warning(r.fused.launch);
  const QuantizedOutput& out = r.quant;
  nb::object scale_out = nb::none();
  if (out.mode == QuantMode::kFp8Dynamic) {
    HostTensor scales(DType::kFp32, scale_out_shape(out.mode, out.layout, out.tokens, out.hidden));
    for (std::size_t i = 0; i < out.token_scales.size(); ++i)
      scales.set_bits(static_cast<std::int64_t>(i), out.token_scales[i]);
    scale_out = nb::cast(array_of(std::move(scales)));
  } else if (out.mode == QuantMode::kNvfp4) {
    scale_out = nb::cast(
        array_of_bytes(std::move(r.quant.scale_out), scale_out_shape(out.mode, out.layout, out.tokens, out.hidden)));
  }
  nb::object quant_out =
      nb::cast(array_of_bytes(std::move(r.quant.quant_out), quant_out_shape(out.mode, out.tokens, out.hidden)));
  return nb::make_tuple(array_of(std::move(r.fused.normalized)), array_of(std::move(r.fused.residual_out)), quant_out,
                        scale_out, std::string(strategy_name(r.fused.launch.strategy)), describe_quant(q), warning);
}

BitsOut dequantize_bits(const BitsIn& quant_out, const std::optional<BitsIn>& scale_out, const std::string& quant,
                        std::optional<double> quant_scale, const std::optional<std::string>& scale_layout) {
  const QuantOptions q = settings(quant, quant_scale, scale_layout);
  const QuantizedOutput codes = quantized(q, quant_out, scale_out, "");
  HostTensor values;
  {
    nb::gil_scoped_release unlocked;
    values = dequantize(codes, q.scale);
  }
  return array_of(std::move(values));
}

nb::tuple compare(const BitsIn& quant_out, const std::optional<BitsIn>& scale_out, const BitsIn& expected_quant_out,
                  const std::optional<BitsIn>& expected_scale_out, const std::string& quant,
                  const std::optional<std::string>& scale_layout) {
  const QuantOptions q = settings(quant, std::nullopt, scale_layout);
  const QuantizedOutput expected = quantized(q, expected_quant_out, expected_scale_out, "expected ");
  const QuantizedOutput actual = quantized(q, quant_out, scale_out, "");
  if (actual.tokens != expected.tokens || actual.hidden != expected.hidden)
    throw UsageError(fmt::format("quant_out holds N = {}, D = {} ({} codes); the expected output has N = {}, D = {}",
                                 actual.tokens, actual.hidden, quant_mode_name(q.mode), expected.tokens,
                                 expected.hidden));
  const QuantDiff d = compare_quant(actual, expected);
  return nb::make_tuple(d.elements, d.differing, d.first);
}

}  // namespace

void bind_quant(nb::module_& m) {
  m.def("fused_quant", &fused_quant, nb::arg("x"), nb::arg("residual"), nb::arg("gamma"), nb::arg("dtype"),
        nb::arg("strategy"), nb::arg("profile"), nb::arg("sm_count"), nb::arg("eps").none(), nb::arg("weight_bias"),
        nb::arg("quant"), nb::arg("quant_scale").none(), nb::arg("scale_layout").none(),
        "Returns (normalized bits, residual_out bits, quant_out bytes, scale_out (uint32 words of fp32 [N, 1], the "
        "layout's bytes, or None), the resolved strategy, the quantisation described, the undefined-output warning "
        "or None).");
  m.def("dequantize", &dequantize_bits, nb::arg("quant_out"), nb::arg("scale_out").none(), nb::arg("quant"),
        nb::arg("quant_scale").none(), nb::arg("scale_layout").none(),
        "quant_out: uint8 codes; scale_out: dynamic FP8's scales as uint32 words, NVFP4's bytes, or None. Returns "
        "the [N, D] fp32 values' bits.");
  m.def("compare_quant", &compare, nb::arg("quant_out"), nb::arg("scale_out").none(), nb::arg("expected_quant_out"),
        nb::arg("expected_scale_out").none(), nb::arg("quant"), nb::arg("scale_layout").none(),
        "Returns (elements compared, elements differing, the first difference or '').");
}

}  // namespace ar::python
