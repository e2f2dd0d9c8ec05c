#include "harness/io/npy.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/io/input_file.h"
#include "harness/io/npy_header.h"
#include "harness/io/output_file.h"
#include "reference/checked_math.h"

namespace ar {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

DType npy_dtype(const std::string& path, const std::string& descr, std::optional<DType> as_dtype) {
  DType dtype;
  if (descr == "<u2" || descr == "|u2") {
    if (as_dtype != DType::kBf16)
      throw UsageError(fmt::format("'{}' holds raw 16-bit words (<u2); pass --dtype bf16 to read them as bf16", path));
    dtype = DType::kBf16;
  } else if (descr == "<f2") {
    dtype = DType::kFp16;
  } else if (descr == "<f4") {
    dtype = DType::kFp32;
  } else {
    throw UsageError(
        fmt::format("'{}' has dtype '{}'; supported are <f4 (fp32), <f2 (fp16) and <u2 (bf16 bits)", path, descr));
  }
  if (as_dtype && *as_dtype != dtype)
    throw UsageError(
        fmt::format("'{}' holds {} but --dtype {} was given", path, dtype_name(dtype), dtype_name(*as_dtype)));
  return dtype;
}

}  // namespace

namespace {

/// The header of an open .npy file, read and checked (C order), and where its data starts.
struct OpenedNpy {
  NpyHeader header;
  std::int64_t data_start = 0;
  std::int64_t data_bytes = 0;  ///< the file's bytes after the header
};

OpenedNpy open_npy(const InputFile& file, const std::string& path) {
  // The header first, bounded by its stated length; the data only once its size matches the shape.
  const std::int64_t file_size = file.regular_size();
  std::string first(static_cast<std::size_t>(std::min<std::int64_t>(file_size, 12)), '\0');
  file.read_exactly(first.data(), first.size(), 0);
  const NpyPreambleResult pre = parse_npy_preamble(first);
  if (!pre.preamble) throw UsageError(fmt::format("'{}': {}", path, pre.error));
  const std::int64_t data_start = static_cast<std::int64_t>(pre.preamble->header_start + pre.preamble->header_bytes);
  if (data_start > file_size)
    throw UsageError(fmt::format("'{}' is truncated: its .npy header claims {} bytes, the file has {} in all", path,
                                 pre.preamble->header_bytes, file_size));
  std::string dict(pre.preamble->header_bytes, '\0');
  file.read_exactly(dict.data(), dict.size(), static_cast<std::int64_t>(pre.preamble->header_start));
  const NpyHeaderResult parsed = parse_npy_header(dict);
  if (!parsed.header) throw UsageError(fmt::format("'{}' has a malformed .npy header: {}", path, parsed.error));
  if (parsed.header->fortran_order)
    throw UsageError(fmt::format("'{}' is in Fortran order; write it in C order (numpy.ascontiguousarray)", path));
  return {*parsed.header, data_start, file_size - data_start};
}

/// The data bytes `shape` of `element_bytes` needs, refused when they are not the file's.
std::int64_t checked_data_bytes(const std::string& path, const OpenedNpy& npy, int element_bytes,
                                std::string_view type_name) {
  const std::string shape_text = fmt::format("({})", fmt::join(npy.header.shape, ", "));
  std::vector<std::int64_t> factors = npy.header.shape;
  factors.push_back(element_bytes);
  const std::optional<std::int64_t> want = checked_product(factors);
  if (!want)
    throw UsageError(fmt::format("'{}' has shape {} of {}: its size overflows 64 bits", path, shape_text, type_name));
  if (npy.data_bytes != *want)
    throw UsageError(
        fmt::format("'{}' is truncated or has trailing bytes: shape {} of {} needs {} data bytes, the "
                    "file has {}",
                    path, shape_text, type_name, *want, npy.data_bytes));
  return *want;
}

/// The header of a .npy file of `descr` and `shape` (format 1.0, padded so the data starts on 64 bytes).
std::string npy_header(std::string_view descr, const std::vector<std::int64_t>& dims) {
  std::string shape;
  for (std::int64_t d : dims) shape += fmt::format("{}, ", d);
  if (dims.size() > 1)
    shape.resize(shape.size() - 2);
  else if (dims.size() == 1)
    shape.resize(shape.size() - 1);
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, shape);
  // Pad with spaces so the data starts on a 64-byte boundary; the header ends with '\n'.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes(kMagic, 6);
  bytes.push_back('\x01');
  bytes.push_back('\x00');
  bytes.push_back(static_cast<char>(header.size() & 0xFF));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  bytes += header;
  return bytes;
}

/// make() for a file's data of `bytes`; a machine that cannot hold them gets a message naming the file, not
/// an abort (a header may state any size its file really has: a sparse file of a TiB is cheap to make).
template <class Make>
auto allocate_for(const std::string& path, std::int64_t bytes, Make&& make) {
  try {
    return make();
  } catch (const std::bad_alloc&) {
    throw UsageError(fmt::format("'{}' holds {} data bytes: more than this machine can allocate", path, bytes));
  }
}

}  // namespace

HostTensor read_npy(const std::string& path, std::optional<DType> as_dtype) {
  // Inputs can be hundreds of MiB: the data goes straight into the tensor.
  const InputFile file(path, ".npy input");
  const OpenedNpy npy = open_npy(file, path);
  const DType dtype = npy_dtype(path, npy.header.descr, as_dtype);
  const std::int64_t want = checked_data_bytes(path, npy, dtype_bytes(dtype), dtype_name(dtype));
  HostTensor t = allocate_for(path, want, [&] { return HostTensor(dtype, npy.header.shape, HostTensor::kUninitialized); });
  file.read_exactly(t.bytes().data(), static_cast<std::size_t>(want), npy.data_start);
  return t;
}

std::vector<std::int64_t> read_npy_shape(const std::string& path) {
  const InputFile file(path, ".npy input");
  return open_npy(file, path).header.shape;
}

ByteArray read_npy_bytes(const std::string& path, const std::string& what) {
  const InputFile file(path, ".npy input");
  const OpenedNpy npy = open_npy(file, path);
  if (npy.header.descr != "|u1" && npy.header.descr != "<u1")
    throw UsageError(
        fmt::format("{} '{}' has dtype '{}'; it must hold bytes (|u1, numpy.uint8)", what, path, npy.header.descr));
  const std::int64_t want = checked_data_bytes(path, npy, 1, "uint8");
  if (want > kMaxTensorBytes)
    throw UsageError(fmt::format("{} '{}' holds {} bytes, more than this build reads", what, path, want));
  ByteArray a = allocate_for(path, want, [&] {
    return ByteArray{npy.header.shape, std::vector<std::uint8_t>(static_cast<std::size_t>(want))};
  });
  file.read_exactly(a.bytes.data(), a.bytes.size(), npy.data_start);
  return a;
}

std::string encode_npy_bytes(const std::vector<std::int64_t>& shape, std::span<const std::uint8_t> bytes) {
  std::string out = npy_header("|u1", shape);
  out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return out;
}

std::string encode_npy(const HostTensor& t) {
  std::string bytes = npy_header(dtype_info(t.dtype()).npy_descr, t.shape());
  bytes.append(reinterpret_cast<const char*>(t.bytes().data()), t.bytes().size());
  return bytes;
}

void write_npy(const std::string& path, const HostTensor& t) { write_file_atomically(path, encode_npy(t)); }

}  // namespace ar
