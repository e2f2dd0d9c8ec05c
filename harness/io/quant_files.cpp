#include "harness/io/quant_files.h"

#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/io/exit_codes.h"
#include "harness/io/npy.h"

namespace ar {
namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

}  // namespace

std::vector<std::int64_t> quant_out_shape(QuantMode mode, std::int64_t tokens, std::int64_t hidden) {
  return {tokens, mode == QuantMode::kNvfp4 ? hidden / 2 : hidden};
}

std::vector<std::int64_t> scale_out_shape(QuantMode mode, ScaleLayout layout, std::int64_t tokens,
                                          std::int64_t hidden) {
  switch (mode) {
    case QuantMode::kFp8Dynamic: return {tokens, 1};
    case QuantMode::kNvfp4:
      if (layout == ScaleLayout::kLinear) return {tokens, scale_blocks(hidden)};
      // Whole 128 x 4 tiles: as many bytes as scale_bytes().
      return {(tokens + 127) / 128 * 128, (scale_blocks(hidden) + 3) / 4 * 4};
    case QuantMode::kNone:
    case QuantMode::kFp8: break;
  }
  return {};
}

std::string quant_out_description(QuantMode mode, std::int64_t tokens, std::int64_t hidden) {
  return fmt::format("uint8 {} = {}", mode == QuantMode::kNvfp4 ? "[N, D / 2]" : "[N, D]",
                     shape_text(quant_out_shape(mode, tokens, hidden)));
}

std::string scale_out_description(QuantMode mode, ScaleLayout layout, std::int64_t tokens, std::int64_t hidden) {
  const std::vector<std::int64_t> shape = scale_out_shape(mode, layout, tokens, hidden);
  if (mode == QuantMode::kFp8Dynamic) return fmt::format("fp32 [N, 1] = {}", shape_text(shape));
  if (mode != QuantMode::kNvfp4) return "none";
  if (layout == ScaleLayout::kLinear) return fmt::format("uint8 [N, D / 16] = {}", shape_text(shape));
  return fmt::format("uint8 [N rounded up to 128, D / 16 rounded up to 4] = {} (swizzled 128 x 4 tiles)",
                     shape_text(shape));
}

std::string encode_quant_out(const QuantizedOutput& q) {
  return encode_npy_bytes(quant_out_shape(q.mode, q.tokens, q.hidden), q.quant_out);
}

std::string encode_scale_out(const QuantizedOutput& q) {
  if (q.mode == QuantMode::kFp8Dynamic) {
    HostTensor t(DType::kFp32, scale_out_shape(q.mode, q.layout, q.tokens, q.hidden));
    for (std::size_t i = 0; i < q.token_scales.size(); ++i) t.set_bits(static_cast<std::int64_t>(i), q.token_scales[i]);
    return encode_npy(t);
  }
  if (q.mode == QuantMode::kNvfp4)
    return encode_npy_bytes(scale_out_shape(q.mode, q.layout, q.tokens, q.hidden), q.scale_out);
  return {};
}

void check_scale_out_given(QuantMode mode, bool given, const std::string& scale_name) {
  const std::string name(quant_mode_name(mode));
  if (has_scale_out(mode) && !given)
    throw UsageError(fmt::format("{} needs {}: its codes mean nothing without their scales", name, scale_name));
  if (!has_scale_out(mode) && given)
    throw UsageError(fmt::format("{} has no scale output ({} is for fp8-dynamic and nvfp4)", name, scale_name));
}

QuantizedOutput quant_codes(QuantMode mode, ScaleLayout layout, ByteArray codes, const std::string& what) {
  if (mode == QuantMode::kNone) throw UsageError("no quantisation mode given");
  if (codes.shape.size() != 2)
    throw UsageError(fmt::format("{} is {}; {} codes are {}", what, shape_text(codes.shape), quant_mode_name(mode),
                                 mode == QuantMode::kNvfp4 ? "[N, D / 2]" : "[N, D]"));
  if (codes.shape[0] < 1 || codes.shape[1] < 1)
    throw UsageError(fmt::format("{} is {}: a quantised output holds at least one token of at least one code", what,
                                 shape_text(codes.shape)));
  QuantizedOutput q;
  q.mode = mode;
  q.layout = layout;
  q.tokens = codes.shape[0];
  q.hidden = mode == QuantMode::kNvfp4 ? 2 * codes.shape[1] : codes.shape[1];
  if (mode == QuantMode::kNvfp4 && q.hidden % kNvfp4BlockElements != 0)
    throw UsageError(fmt::format("{} is {}: NVFP4 codes are [N, D / 2], so D = {}, which is not a multiple of 16", what,
                                 shape_text(codes.shape), q.hidden));
  q.quant_out = std::move(codes.bytes);
  return q;
}

namespace {

std::string codes_context(const QuantizedOutput& q, const std::string& codes_name) {
  return fmt::format("N = {}, D = {} (from {})", q.tokens, q.hidden, codes_name);
}

}  // namespace

void set_token_scales(QuantizedOutput& q, const HostTensor& scales, const std::string& what,
                      const std::string& codes_name) {
  const std::string want = scale_out_description(q.mode, q.layout, q.tokens, q.hidden);
  if (scales.dtype() != DType::kFp32)
    throw UsageError(
        fmt::format("{} holds {}; dynamic FP8's token scales are {}", what, dtype_name(scales.dtype()), want));
  const bool column = scales.shape() == std::vector<std::int64_t>{q.tokens, 1};
  if (!column && scales.shape() != std::vector<std::int64_t>{q.tokens})
    throw UsageError(fmt::format("{} is {}; for {} it must be {}", what, shape_text(scales.shape()),
                                 codes_context(q, codes_name), want));
  q.token_scales.resize(static_cast<std::size_t>(q.tokens));
  for (std::int64_t i = 0; i < q.tokens; ++i) q.token_scales[static_cast<std::size_t>(i)] = scales.bits(i);
}

void set_block_scales(QuantizedOutput& q, ByteArray scales, const std::string& what, const std::string& codes_name) {
  const std::vector<std::int64_t> shape = scale_out_shape(q.mode, q.layout, q.tokens, q.hidden);
  const auto bytes = static_cast<std::size_t>(scale_bytes(q.layout, q.tokens, q.hidden));
  if (scales.shape != shape && scales.shape != std::vector<std::int64_t>{static_cast<std::int64_t>(bytes)})
    throw UsageError(fmt::format("{} is {} ({} bytes); for {} the {} layout takes {}, {} bytes", what,
                                 shape_text(scales.shape), scales.bytes.size(), codes_context(q, codes_name),
                                 scale_layout_name(q.layout),
                                 scale_out_description(q.mode, q.layout, q.tokens, q.hidden), bytes));
  q.scale_out = std::move(scales.bytes);
}

QuantizedOutput read_quant_files(QuantMode mode, ScaleLayout layout, const std::string& quant_path,
                                 const std::optional<std::string>& scale_path, const std::string& quant_flag,
                                 const std::string& scale_flag) {
  if (mode == QuantMode::kNone) throw UsageError("no quantisation mode given");
  check_scale_out_given(mode, scale_path.has_value(), scale_flag);
  QuantizedOutput q =
      quant_codes(mode, layout, read_npy_bytes(quant_path, quant_flag), fmt::format("{} '{}'", quant_flag, quant_path));
  if (!scale_path) return q;
  const std::string scale_what = fmt::format("{} '{}'", scale_flag, *scale_path);
  if (mode == QuantMode::kFp8Dynamic) {
    HostTensor scales;
    try {
      scales = read_npy(*scale_path, DType::kFp32);
    } catch (const UsageError& e) {
      throw UsageError(fmt::format("{}: {} (dynamic FP8's token scales are {})", scale_flag, e.what(),
                                   scale_out_description(mode, layout, q.tokens, q.hidden)));
    }
    set_token_scales(q, scales, scale_what, quant_flag);
    return q;
  }
  set_block_scales(q, read_npy_bytes(*scale_path, scale_flag), scale_what, quant_flag);
  return q;
}

}  // namespace ar
