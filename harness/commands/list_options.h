// The list options of the GPU commands (`--world 2,8`, `--dtype bf16,fp16`, `--strategy all`, `--pdl both`,
// sizes such as 4K), parsed in one place so that `run` and `bench` accept the same spellings and refuse
// the same mistakes with the same messages. Every item must be whole: "2x" is not 2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference/fused_quant.h"
#include "reference/strategy.h"

namespace ar {

/// "a,b,c" -> {"a", "b", "c"}; an empty item is kept (and refused by the parsers below).
std::vector<std::string> split_list(const std::string& text);

/// `option` ("--world") names the option in messages. "all" -> every supported world size.
std::vector<int> world_list_option(const std::string& option, const std::string& text);
/// "all" -> bf16, fp16, fp32.
std::vector<DType> dtype_list_option(const std::string& option, const std::string& text);
/// "all" -> oneshot, twoshot, auto.
std::vector<Strategy> strategy_list_option(const std::string& option, const std::string& text);
/// The profiles the kernels run: a list of flashinfer, ieee and invariant, "both" (flashinfer, ieee) or "all";
/// trtllm is refused (a reference-only model).
std::vector<Profile> kernel_profile_list_option(const std::string& option, const std::string& text);
/// The quantised outputs: a list of fp8, fp8-dynamic and nvfp4, or "all"; "" -> none.
std::vector<QuantMode> quant_list_option(const std::string& option, const std::string& text);
/// on / 1, off / 0, or both.
std::vector<bool> pdl_list_option(const std::string& option, const std::string& text);

/// The longest wait any option may ask for: a day. Longer ones would overflow the nanosecond counters of
/// the device waits, and no real wait is that long.
inline constexpr double kMaxTimeoutMs = 86'400'000;
/// Refuses a timeout outside (0, kMaxTimeoutMs], or [0, kMaxTimeoutMs] when `zero_waits_forever`.
void check_timeout_ms(const std::string& option, double ms, bool zero_waits_forever);

/// "4K" -> 4096, "256M", "1G", "128" (bytes, positive).
std::int64_t size_option(const std::string& option, const std::string& text);
/// --direct-from: 0 (no call takes the direct path) or a size as size_option reads it ("16M"); a negative
/// number is refused as such.
std::int64_t direct_from_option(const std::string& option, const std::string& text);
/// 4096 -> "4K", 268435456 -> "256M", 100 -> "100".
std::string size_text(std::int64_t bytes);

}  // namespace ar
