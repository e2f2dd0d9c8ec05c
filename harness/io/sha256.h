// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex, computed by OpenSSL's libcrypto. The golden
// manifest records one per file; the GPU checks record one per rank output.
#pragma once

#include <string>
#include <string_view>

namespace ar {

/// Lowercase hex digest of `bytes` (64 characters).
std::string sha256_hex(std::string_view bytes);

}  // namespace ar
