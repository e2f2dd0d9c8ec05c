#include "harness/commands/list_options.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "harness/commands/options.h"
#include "harness/io/exit_codes.h"

namespace ar {
namespace {

/// The whole of `text` as a non-negative integer, or nullopt.
std::optional<std::int64_t> whole_number(const std::string& text) {
  std::int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [at, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || at != end || v < 0) return std::nullopt;
  return v;
}

/// Refuses an item named twice in a list option (a world size run twice, a dtype timed twice).
template <class T>
void refuse_repeat(const std::string& option, const std::vector<T>& out, const T& item, const std::string& text) {
  if (std::find(out.begin(), out.end(), item) != out.end())
    throw UsageError(fmt::format("{} names '{}' twice", option, text));
}

}  // namespace

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  if (!text.empty() && text.back() == ',') out.emplace_back();
  return out;
}

std::vector<int> world_list_option(const std::string& option, const std::string& text) {
  if (text == "all") return {kWorldSizes.begin(), kWorldSizes.end()};
  std::vector<int> out;
  for (const std::string& item : split_list(text)) {
    const auto w = whole_number(item);
    if (!w) throw UsageError(fmt::format("{}: '{}' is not a number (give e.g. 2,8 or all)", option, item));
    if (*w > std::numeric_limits<int>::max() || !is_supported_world_size(static_cast<int>(*w)))
      throw UsageError(fmt::format("{}: {} is not a supported world size ({})", option, item, world_sizes_text()));
    refuse_repeat(option, out, static_cast<int>(*w), item);
    out.push_back(static_cast<int>(*w));
  }
  if (out.empty()) throw UsageError(fmt::format("{} names no world size", option));
  return out;
}

std::vector<DType> dtype_list_option(const std::string& option, const std::string& text) {
  if (text == "all") return {DType::kBf16, DType::kFp16, DType::kFp32};
  std::vector<DType> out;
  for (const std::string& item : split_list(text)) {
    const DType t = dtype_option(item);
    refuse_repeat(option, out, t, item);
    out.push_back(t);
  }
  if (out.empty()) throw UsageError(fmt::format("{} names no dtype", option));
  return out;
}

std::vector<Strategy> strategy_list_option(const std::string& option, const std::string& text) {
  if (text == "all") return {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto};
  std::vector<Strategy> out;
  for (const std::string& item : split_list(text)) {
    const Strategy st = strategy_option(item);
    refuse_repeat(option, out, st, item);
    out.push_back(st);
  }
  if (out.empty()) throw UsageError(fmt::format("{} names no strategy", option));
  return out;
}

std::vector<Profile> kernel_profile_list_option(const std::string& option, const std::string& text) {
  if (text == "both") return {Profile::kFlashInfer, Profile::kIeee};
  if (text == "all") return {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant};
  std::vector<Profile> out;
  for (const std::string& item : split_list(text)) {
    const Profile p = profile_option(item);
    if (p == Profile::kTrtllm)
      throw UsageError(fmt::format(
          "{} trtllm is a reference-only model; the kernels run flashinfer, ieee and invariant (both, all)", option));
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  if (out.empty()) throw UsageError(fmt::format("{} names no profile", option));
  return out;
}

std::vector<QuantMode> quant_list_option(const std::string& option, const std::string& text) {
  if (text.empty()) return {};
  if (text == "all") return {QuantMode::kFp8, QuantMode::kFp8Dynamic, QuantMode::kNvfp4};
  std::vector<QuantMode> out;
  for (const std::string& item : split_list(text)) {
    const auto m = parse_quant_mode(item);
    if (!m || *m == QuantMode::kNone)
      throw UsageError(fmt::format("{} '{}' is not a quantised output (choose fp8, fp8-dynamic, nvfp4 or all)", option,
                                   item));
    if (std::find(out.begin(), out.end(), *m) == out.end()) out.push_back(*m);
  }
  return out;
}

std::vector<bool> pdl_list_option(const std::string& option, const std::string& text) {
  if (text == "both") return {false, true};
  if (text == "on" || text == "1") return {true};
  if (text == "off" || text == "0") return {false};
  throw UsageError(fmt::format("{} '{}': choose on, off or both", option, text));
}

void check_timeout_ms(const std::string& option, double ms, bool zero_waits_forever) {
  if (zero_waits_forever ? !(ms >= 0) : !(ms > 0))
    throw UsageError(zero_waits_forever ? fmt::format("{} must be >= 0 (0 = wait forever)", option)
                                        : fmt::format("{} must be positive", option));
  if (ms > kMaxTimeoutMs)
    throw UsageError(
        fmt::format("{} {} is longer than a day ({} ms), the longest wait allowed", option, ms, kMaxTimeoutMs));
}

std::int64_t size_option(const std::string& option, const std::string& text) {
  if (text.empty()) throw UsageError(fmt::format("{}: empty size", option));
  int shift = 0;
  std::string digits = text;
  switch (text.back()) {
    case 'K':
    case 'k':
      shift = 10;
      digits.pop_back();
      break;
    case 'M':
    case 'm':
      shift = 20;
      digits.pop_back();
      break;
    case 'G':
    case 'g':
      shift = 30;
      digits.pop_back();
      break;
    default: break;
  }
  const auto v = whole_number(digits);
  if (!v || *v <= 0 || *v > (std::numeric_limits<std::int64_t>::max() >> shift))
    throw UsageError(fmt::format("{} '{}' is not a size (a positive number with an optional K, M or G)", option, text));
  return *v << shift;
}

std::int64_t direct_from_option(const std::string& option, const std::string& text) {
  std::int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [at, ec] = std::from_chars(text.data(), end, v);
  if (!text.empty() && ec == std::errc() && at == end && v <= 0) {
    if (v < 0)
      throw UsageError(fmt::format("{} must be >= 0 (0: no call takes the direct path), got {}", option, text));
    return 0;
  }
  return size_option(option, text);
}

std::string size_text(std::int64_t bytes) {
  if (bytes % (std::int64_t(1) << 30) == 0) return fmt::format("{}G", bytes >> 30);
  if (bytes % (std::int64_t(1) << 20) == 0) return fmt::format("{}M", bytes >> 20);
  if (bytes % (std::int64_t(1) << 10) == 0) return fmt::format("{}K", bytes >> 10);
  return fmt::format("{}", bytes);
}

}  // namespace ar
