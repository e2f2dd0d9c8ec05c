// Host errors of the CUDA layer. Plain C++ (no CUDA headers), so the harness and tests can catch them.
#pragma once

#include <stdexcept>
#include <string>

namespace ar {

/// A failed CUDA runtime or driver call: the error code and name, the expression and where it was.
/// Thrown by AR_CUDA_CHECK (cuda/detail/check.h) after the runtime's sticky last error was cleared.
class CudaError : public std::runtime_error {
 public:
  CudaError(int code, std::string name, std::string expression, std::string where, std::string detail);
  int code() const { return code_; }
  const std::string& name() const { return name_; }
  const std::string& expression() const { return expression_; }
  const std::string& where() const { return where_; }

 private:
  int code_;
  std::string name_;
  std::string expression_;
  std::string where_;
};

}  // namespace ar
