#include "harness/io/sha256.h"

#include <array>
#include <stdexcept>

#include <fmt/format.h>
#include <openssl/evp.h>

namespace ar {

// libcrypto's SHA-256 rather than our own: a vetted implementation, and several times faster on the
// multi-gigabyte outputs the GPU checks digest (it uses the CPU's SHA extensions where present).
std::string sha256_hex(std::string_view bytes) {
  std::array<unsigned char, 32> digest{};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1 ||
      length != digest.size())
    throw std::runtime_error("SHA-256 failed in libcrypto");
  std::string hex;
  hex.reserve(2 * digest.size());
  for (unsigned char b : digest) hex += fmt::format("{:02x}", b);
  return hex;
}

}  // namespace ar
