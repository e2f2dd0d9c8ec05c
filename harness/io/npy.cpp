#include "harness/io/npy.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <unistd.h>

namespace ar {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMaxHeaderBytes = 1 << 16;

std::string header_field(const std::string& header, const std::string& key, const std::string& path) {
  const std::regex re("['\"]" + key + "['\"]\\s*:\\s*(\\([^)]*\\)|'[^']*'|\"[^\"]*\"|True|False)");
  std::smatch m;
  if (!std::regex_search(header, m, re))
    throw UsageError(fmt::format("'{}' is not a valid .npy file: its header has no '{}'", path, key));
  return m[1].str();
}

}  // namespace

HostTensor read_npy(const std::string& path, std::optional<DType> as_dtype) {
  // Read the header first, then the data straight into the tensor: inputs can be hundreds of MiB.
  std::ifstream file(path, std::ios::binary);
  if (!file) throw UsageError(fmt::format("cannot open '{}' for reading", path));
  file.seekg(0, std::ios::end);
  const auto file_size = static_cast<std::size_t>(file.tellg());
  file.seekg(0);
  std::string bytes(std::min<std::size_t>(file_size, kMaxHeaderBytes + 12), '\0');
  file.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!file) throw UsageError(fmt::format("error while reading '{}'", path));
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    throw UsageError(fmt::format("'{}' is not a .npy file (no \\x93NUMPY magic)", path));
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (std::size_t(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw UsageError(fmt::format("'{}' is truncated inside its .npy header", path));
    for (int i = 0; i < 4; ++i) header_len |= std::size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    throw UsageError(fmt::format("'{}' has .npy format version {}, which is not supported (1, 2, 3 are)", path, major));
  }
  if (header_len > kMaxHeaderBytes || header_start + header_len > bytes.size())
    throw UsageError(fmt::format("'{}' is truncated or corrupt: its .npy header claims {} bytes", path, header_len));
  const std::string header = bytes.substr(header_start, header_len);

  std::string descr = header_field(header, "descr", path);
  descr = descr.substr(1, descr.size() - 2);
  if (header_field(header, "fortran_order", path) != "False")
    throw UsageError(fmt::format("'{}' is in Fortran order; write it in C order (numpy.ascontiguousarray)", path));
  std::vector<std::int64_t> shape;
  const std::string shape_text = header_field(header, "shape", path);
  {
    std::string inner = shape_text.substr(1, shape_text.size() - 2);
    std::stringstream ss(inner);
    std::string item;
    while (std::getline(ss, item, ',')) {
      const auto first = item.find_first_not_of(" \t");
      if (first == std::string::npos) continue;
      std::size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(item.substr(first), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || v < 0)
        throw UsageError(fmt::format("'{}' has a corrupt shape {} in its .npy header", path, shape_text));
      shape.push_back(v);
    }
  }

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
    throw UsageError(fmt::format("'{}' has dtype '{}'; supported are <f4 (fp32), <f2 (fp16) and <u2 (bf16 bits)",
                                 path, descr));
  }
  if (as_dtype && *as_dtype != dtype)
    throw UsageError(fmt::format("'{}' holds {} but --dtype {} was given", path, dtype_name(dtype), dtype_name(*as_dtype)));

  std::size_t want = static_cast<std::size_t>(dtype_bytes(dtype));
  for (std::int64_t d : shape) want *= static_cast<std::size_t>(d);
  const std::size_t data_start = header_start + header_len;
  if (file_size - data_start != want)
    throw UsageError(fmt::format("'{}' is truncated or has trailing bytes: shape {} of {} needs {} data bytes, the file "
                                 "has {}", path, shape_text, dtype_name(dtype), want, file_size - data_start));
  HostTensor t(dtype, shape, HostTensor::kUninitialized);
  file.clear();
  file.seekg(static_cast<std::streamoff>(data_start));
  file.read(reinterpret_cast<char*>(t.bytes().data()), static_cast<std::streamsize>(want));
  if (!file) throw UsageError(fmt::format("error while reading the data of '{}'", path));
  return t;
}

void write_file_atomically(const std::string& path, const std::string& contents) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const fs::path temp = dir / fmt::format(".{}.tmp{}", target.filename().string(), ::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw UsageError(fmt::format("cannot write '{}': the folder is missing or not writable", path));
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) {
      std::error_code ignored;
      fs::remove(temp, ignored);
      throw UsageError(fmt::format("cannot write '{}': write failed (disk full?)", path));
    }
  }
  std::error_code ec;
  fs::rename(temp, target, ec);
  if (ec) {
    fs::remove(temp, ec);
    throw UsageError(fmt::format("cannot write '{}': {}", path, ec.message()));
  }
}

std::string encode_npy(const HostTensor& t) {
  std::string shape;
  for (std::int64_t d : t.shape()) shape += fmt::format("{}, ", d);
  if (t.shape().size() > 1) shape.resize(shape.size() - 2);
  else if (t.shape().size() == 1) shape.resize(shape.size() - 1);
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}",
                                   dtype_info(t.dtype()).npy_descr, shape);
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
  bytes.append(reinterpret_cast<const char*>(t.bytes().data()), t.bytes().size());
  return bytes;
}

void write_npy(const std::string& path, const HostTensor& t) { write_file_atomically(path, encode_npy(t)); }

}  // namespace ar
