// Reading and writing NumPy .npy files (format 1.0-3.0, C order, little-endian <u2 / <f2 / <f4), the
// exchange format of every mnnvl-ar command. Bad files raise UsageError naming what is wrong; writes go to a
// temporary name that is renamed into place, so a failed write never leaves a half-written output.
#pragma once

#include <optional>
#include <string>

#include "harness/io/exit_codes.h"
#include "reference/tensor.h"

namespace ar {

/// Reads `path`. `<u2` holds raw bf16 bits and needs `as_dtype = bf16`; `<f2` is fp16 and `<f4` fp32 (an
/// explicit `as_dtype` must then agree).
HostTensor read_npy(const std::string& path, std::optional<DType> as_dtype = std::nullopt);

/// The .npy bytes of `t` (format 1.0, header padded to 64 bytes).
std::string encode_npy(const HostTensor& t);

/// Writes `t` to `path` atomically (temporary file + rename).
void write_npy(const std::string& path, const HostTensor& t);

/// Writes `contents` to `path` atomically. Shared by every command that writes a file.
void write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace ar
