// Status: what can_implement() answers. A refusal is a value naming the problem, not an exception.
#pragma once

#include <string>
#include <utility>

namespace ar::cuda {

enum class StatusCode {
  kOk,
  kInvalidShape,       ///< validate_shape() refused the shape
  kUnsupported,        ///< a profile, dtype or world size this build does not run
  kWorkspaceTooSmall,  ///< check_fits_workspace() refused the call
  kNotResident,        ///< the ranks of one launch cannot all be resident at once (they poll each other)
  kBadArguments,       ///< inconsistent arguments (slots, pointers)
};

struct Status {
  StatusCode code = StatusCode::kOk;
  std::string message;  ///< empty when ok

  bool ok() const { return code == StatusCode::kOk; }
  static Status success() { return {}; }
  static Status failure(StatusCode c, std::string why) { return {c, std::move(why)}; }
};

}  // namespace ar::cuda
