// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex. The golden manifest records one per file.
#pragma once

#include <string>
#include <string_view>

namespace ar {

std::string sha256_hex(std::string_view bytes);

}  // namespace ar
