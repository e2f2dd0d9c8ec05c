// Exit codes of every mnnvl-ar command, for scripts: 0 ok, 1 a check found a difference, 2 bad usage or input.
#pragma once

#include <stdexcept>
#include <string>

namespace ar {

inline constexpr int kExitOk = 0;
inline constexpr int kExitDifference = 1;  ///< a comparison, simulation or run found a difference or failure
inline constexpr int kExitUsage = 2;       ///< bad flags, a bad or missing file, an unsupported shape, no GPU

/// Bad usage or input: the command prints the message and exits with kExitUsage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ar
