// Reading and writing NumPy .npy files (format 1.0-3.0, C order, little-endian <u2 / <f2 / <f4), the
// exchange format of every mnnvl-ar command. Bad files raise UsageError naming what is wrong; the header is
// parsed strictly (harness/io/npy_header.h) and the data size checked before anything is allocated; writes
// go through harness/io/output_file.h, so a failed or killed write never leaves a half-written output.
#pragma once

#include <optional>
#include <string>

#include "harness/io/exit_codes.h"
#include "harness/io/output_file.h"
#include "reference/tensor.h"

namespace ar {

/// Reads `path`. `<u2` holds raw bf16 bits and needs `as_dtype = bf16`; `<f2` is fp16 and `<f4` fp32 (an
/// explicit `as_dtype` must then agree).
HostTensor read_npy(const std::string& path, std::optional<DType> as_dtype = std::nullopt);

/// The .npy bytes of `t` (format 1.0, header padded to 64 bytes).
std::string encode_npy(const HostTensor& t);

/// Writes `t` to `path` atomically (OutputFile).
void write_npy(const std::string& path, const HostTensor& t);

}  // namespace ar
