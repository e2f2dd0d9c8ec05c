// Element types of the all-reduce and their one table of facts (name, size, .npy descriptor).
// Everything that switches on a dtype derives from kDTypeTable; nothing keeps a parallel list.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ar {

/// The three element types FlashInfer's MNNVL all-reduce accepts.
enum class DType : std::uint8_t { kBf16, kFp16, kFp32 };

struct DTypeInfo {
  DType dtype;
  std::string_view name;       ///< as written on the command line and in JSON
  std::string_view npy_descr;  ///< .npy descriptor of its storage (bf16 is stored as raw `<u2` bits)
  int bytes;                   ///< element size E
};

inline constexpr std::array<DTypeInfo, 3> kDTypeTable{{
    {DType::kBf16, "bf16", "<u2", 2},
    {DType::kFp16, "fp16", "<f2", 2},
    {DType::kFp32, "fp32", "<f4", 4},
}};

constexpr const DTypeInfo& dtype_info(DType t) { return kDTypeTable[static_cast<std::size_t>(t)]; }
constexpr int dtype_bytes(DType t) { return dtype_info(t).bytes; }
constexpr std::string_view dtype_name(DType t) { return dtype_info(t).name; }
/// Elements in one 16-byte pack (8 for 16-bit types, 4 for fp32).
constexpr int elements_per_pack(DType t) { return 16 / dtype_bytes(t); }

/// Parses "bf16" | "fp16" | "fp32" (also "bfloat16", "float16", "half", "float32", "float").
std::optional<DType> parse_dtype(std::string_view name);

}  // namespace ar
