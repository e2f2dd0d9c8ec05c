#include "harness/commands/option_names.h"

#include <fmt/format.h>

#include "harness/io/exit_codes.h"

namespace ar {

DType dtype_option(const std::string& name) {
  if (auto t = parse_dtype(name)) return *t;
  throw UsageError(fmt::format("unknown dtype '{}' (choose bf16, fp16 or fp32)", name));
}

std::optional<DType> optional_dtype_option(const std::string& name) {
  if (name.empty()) return std::nullopt;
  return dtype_option(name);
}

Strategy strategy_option(const std::string& name) {
  if (auto s = parse_strategy(name)) return *s;
  throw UsageError(fmt::format("unknown strategy '{}' (choose oneshot, twoshot or auto)", name));
}

Profile profile_option(const std::string& name) {
  if (auto p = parse_profile(name)) return *p;
  throw UsageError(fmt::format("unknown profile '{}' (choose flashinfer, ieee, trtllm or invariant)", name));
}

}  // namespace ar
