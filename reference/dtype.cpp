#include "reference/dtype.h"

namespace ar {

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& info : kDTypeTable)
    if (info.name == name) return info.dtype;
  if (name == "bfloat16") return DType::kBf16;
  if (name == "float16" || name == "half") return DType::kFp16;
  if (name == "float32" || name == "float") return DType::kFp32;
  return std::nullopt;
}

}  // namespace ar
