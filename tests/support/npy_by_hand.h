// .npy files written by hand, for tests of the reader: the header may claim any shape and the data need not
// match it, which no well-behaved writer allows.
#pragma once

#include <cstddef>
#include <string>

namespace ar::test {

/// The bytes of a format 1.0 .npy file: `header_dict` padded to 64 bytes, then `data_bytes` bytes of 0x01.
inline std::string npy_with_header(const std::string& header_dict, std::size_t data_bytes) {
  std::string header = header_dict;
  while ((10 + header.size() + 1) % 64) header.push_back(' ');
  header.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size() & 0xFF));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  return bytes + header + std::string(data_bytes, '\x01');
}

}  // namespace ar::test
