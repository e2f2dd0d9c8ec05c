#include "reference/call_sequence.h"

#include <fmt/format.h>

#include <charconv>
#include <limits>

namespace ar {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      parts.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  }
  return parts;
}

[[noreturn]] void fail(std::size_t index, std::string_view call, const std::string& why) {
  throw CallSequenceError(fmt::format("call {} ('{}'): {}", index + 1, call, why));
}

/// The whole of `text` as a decimal integer >= 1: no sign, no trailing junk ("4x"), no other base, in
/// 64 bits. What the count is multiplied by is checked later (validate_shape), not here.
std::int64_t parse_count(std::size_t index, std::string_view call, std::string_view key, std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range)
    fail(index, call,
         fmt::format("{} must be an integer >= 1, got '{}', which does not fit 64 bits (at most {})", key, text,
                     std::numeric_limits<std::int64_t>::max()));
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 1)
    fail(index, call, fmt::format("{} must be an integer >= 1, got '{}'", key, text));
  return value;
}

}  // namespace

std::vector<CallSpec> parse_call_sequence(std::string_view text) {
  if (trim(text).empty()) throw CallSequenceError("the call sequence is empty (example: oneshot:N=4,twoshot:N=64)");
  std::vector<CallSpec> calls;
  const std::vector<std::string_view> items = split(text, ',');
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string_view call = items[i];
    if (call.empty()) fail(i, call, "empty call (two commas in a row, or a trailing comma?)");
    const std::vector<std::string_view> fields = split(call, ':');
    CallSpec spec;
    if (auto s = parse_strategy(fields[0])) {
      spec.strategy = *s;
    } else {
      fail(i, call, fmt::format("unknown strategy '{}' (choose oneshot, twoshot or auto)", fields[0]));
    }
    for (std::size_t f = 1; f < fields.size(); ++f) {
      const std::string_view field = fields[f];
      if (field == "fused") {
        if (spec.fused) fail(i, call, "fused is given twice");
        spec.fused = true;
        continue;
      }
      const std::size_t eq = field.find('=');
      if (eq == std::string_view::npos)
        fail(i, call,
             fmt::format("parameter '{}' is not KEY=VALUE (keys: N, D, dtype, quant, layout) or the flag fused", field));
      const std::string_view key = trim(field.substr(0, eq));
      const std::string_view value = trim(field.substr(eq + 1));
      const auto once = [&](bool already) {
        if (already) fail(i, call, fmt::format("{} is given twice", key));
      };
      if (key == "N") {
        once(spec.tokens.has_value());
        spec.tokens = parse_count(i, call, key, value);
      } else if (key == "D") {
        once(spec.hidden.has_value());
        spec.hidden = parse_count(i, call, key, value);
      } else if (key == "dtype") {
        once(spec.dtype.has_value());
        const auto t = parse_dtype(value);
        if (!t) fail(i, call, fmt::format("unknown dtype '{}' (choose bf16, fp16 or fp32)", value));
        spec.dtype = *t;
      } else if (key == "quant") {
        once(spec.quant.has_value());
        const auto q = parse_quant_mode(value);
        if (!q || *q == QuantMode::kNone)
          fail(i, call, fmt::format("unknown quant mode '{}' (choose fp8, fp8-dynamic or nvfp4)", value));
        spec.quant = *q;
      } else if (key == "layout") {
        once(spec.layout.has_value());
        const auto l = parse_scale_layout(value);
        if (!l) fail(i, call, fmt::format("unknown scale layout '{}' (choose swizzled or linear)", value));
        spec.layout = *l;
      } else {
        fail(i, call, fmt::format("unknown parameter '{}' (keys: N, D, dtype, quant, layout; flag: fused)", key));
      }
    }
    if (spec.layout && spec.quant != QuantMode::kNvfp4)
      fail(i, call, "layout= is NVFP4's block-scale layout: it needs quant=nvfp4");
    calls.push_back(spec);
  }
  return calls;
}

std::vector<ResolvedCall> resolve_calls(std::span<const CallSpec> calls, int world_size, const CallDefaults& defaults) {
  std::vector<ResolvedCall> resolved;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const CallSpec& c = calls[i];
    ResolvedCall r;
    r.requested = c.strategy;
    r.quant = c.quant.value_or(QuantMode::kNone);
    r.layout = c.layout.value_or(ScaleLayout::kSwizzled128x4);
    r.fused = c.fused || r.quant != QuantMode::kNone;
    r.shape = {world_size, c.tokens.value_or(defaults.tokens), c.hidden.value_or(defaults.hidden),
               c.dtype.value_or(defaults.dtype)};
    const auto refuse = [&](const std::string& why) {
      throw CallSequenceError(fmt::format("call {} ({} N={} D={} {}): {}", i + 1, strategy_name(c.strategy),
                                          r.shape.tokens, r.shape.hidden, dtype_name(r.shape.dtype), why));
    };
    if (auto why = validate_shape(r.shape)) refuse(*why);
    try {
      validate_quant(QuantOptions{r.quant, kFp32One, r.layout}, r.shape.dtype, r.shape.hidden);
    } catch (const std::invalid_argument& e) {
      refuse(e.what());
    }
    resolved.push_back(r);
  }
  return resolved;
}

std::string format_call_sequence(std::span<const ResolvedCall> calls) {
  std::string text;
  for (const ResolvedCall& c : calls) {
    if (!text.empty()) text += ',';
    text += fmt::format("{}:N={}:D={}:dtype={}{}", strategy_name(c.requested), c.shape.tokens, c.shape.hidden,
                        dtype_name(c.shape.dtype), c.fused ? ":fused" : "");
    if (c.quant != QuantMode::kNone) text += fmt::format(":quant={}", quant_mode_name(c.quant));
    if (c.quant == QuantMode::kNvfp4 && c.layout != ScaleLayout::kSwizzled128x4)
      text += fmt::format(":layout={}", scale_layout_name(c.layout));
  }
  return text;
}

}  // namespace ar
