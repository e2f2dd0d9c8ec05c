// The header of a NumPy .npy file, parsed strictly: the preamble (magic, version 1.0, 2.0 or 3.0, header
// length) and the header dict, a Python literal with exactly the keys 'descr', 'fortran_order' and 'shape'
// in any order, each once. Nothing is evaluated and nothing recurses: a header is read in one pass, in
// time and memory linear in its length, whatever bytes it holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ar {

/// The preamble: where the header dict is.
struct NpyPreamble {
  int major = 1;
  std::size_t header_start = 10;  ///< bytes before the dict (magic, version, length)
  std::size_t header_bytes = 0;   ///< length of the dict, padding and newline included
};

/// The largest header the reader accepts (numpy writes about 128 bytes; the format allows 4 GiB).
inline constexpr std::size_t kMaxNpyHeaderBytes = std::size_t(1) << 20;

/// Reads the first bytes of a file (at least 12 if it has them). Returns the preamble, or an error message
/// (what is wrong, without the file name).
struct NpyPreambleResult {
  std::optional<NpyPreamble> preamble;
  std::string error;
};
NpyPreambleResult parse_npy_preamble(std::string_view first_bytes);

struct NpyHeader {
  std::string descr;  ///< e.g. "<f4"
  bool fortran_order = false;
  std::vector<std::int64_t> shape;  ///< each entry in [0, INT64_MAX]
};

struct NpyHeaderResult {
  std::optional<NpyHeader> header;
  std::string error;  ///< what is wrong and where (byte offset in the dict)
};
/// Parses the header dict (the bytes after the preamble).
NpyHeaderResult parse_npy_header(std::string_view dict);

}  // namespace ar
