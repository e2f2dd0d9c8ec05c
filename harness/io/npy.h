// Reading and writing NumPy .npy files (format 1.0-3.0, C order, little-endian <u2 / <f2 / <f4, and |u1 bytes
// for the quantised outputs), the exchange format of every mnnvl-ar command. Bad files raise UsageError naming what is
// wrong; the header is parsed strictly (harness/io/npy_header.h) and the data size checked before anything is
// allocated; writes go through harness/io/output_file.h, so a failed or killed write never leaves a half-written
// output.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "harness/io/exit_codes.h"
#include "harness/io/output_file.h"
#include "reference/tensor.h"

namespace ar {

/// Reads `path`. `<u2` holds raw bf16 bits and needs `as_dtype = bf16`; `<f2` is fp16 and `<f4` fp32 (an
/// explicit `as_dtype` must then agree).
HostTensor read_npy(const std::string& path, std::optional<DType> as_dtype = std::nullopt);

/// The shape in `path`'s .npy header, read and checked as read_npy reads it, without the data (a companion
/// file's shape is checked before its data is read).
std::vector<std::int64_t> read_npy_shape(const std::string& path);

/// The .npy bytes of `t` (format 1.0, header padded to 64 bytes).
std::string encode_npy(const HostTensor& t);

/// Writes `t` to `path` atomically (OutputFile).
void write_npy(const std::string& path, const HostTensor& t);

/// A .npy array of bytes (`|u1`, NumPy's uint8): the quantised outputs' codes and block scales.
struct ByteArray {
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;  ///< C order
};

/// Reads `path`, which must hold uint8 (`|u1` or `<u1`); `what` names it in messages ("--quant-out").
/// Throws UsageError naming the file and the problem.
ByteArray read_npy_bytes(const std::string& path, const std::string& what);

/// The .npy bytes (`|u1`, format 1.0) of `bytes` under `shape`, whose product must be bytes.size().
std::string encode_npy_bytes(const std::vector<std::int64_t>& shape, std::span<const std::uint8_t> bytes);

}  // namespace ar
