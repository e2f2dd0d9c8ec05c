// NCCL's all-reduce as a baseline for `mnnvl-ar bench`: loaded with dlopen at run time (never linked), one
// communicator per visible GPU in this process (ncclCommInitAll), NVLink SHARP/multicast (NVLS) forced off.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reference/dtype.h"

namespace ar::cuda {

class NcclBaseline {
 public:
  /// Loads `library` (a path, or a name the dynamic loader finds, e.g. "libnccl.so.2") and creates one
  /// communicator per device in `devices` (at least 2). Throws std::runtime_error naming the problem.
  NcclBaseline(const std::string& library, const std::vector<int>& devices);
  ~NcclBaseline();
  NcclBaseline(const NcclBaseline&) = delete;
  NcclBaseline& operator=(const NcclBaseline&) = delete;

  std::string version() const { return version_; }
  int ranks() const { return static_cast<int>(devices_.size()); }

  /// Mean microseconds per all-reduce (sum) of `bytes_per_rank` on every GPU: `warmup` untimed, then
  /// `iterations` timed with the host clock between device synchronisations (nccl-tests style).
  double time_us(std::int64_t bytes_per_rank, DType dtype, int warmup, int iterations);

 private:
  struct Api;
  std::unique_ptr<Api> api_;
  void* handle_ = nullptr;
  std::vector<int> devices_;
  std::vector<void*> comms_, send_, recv_, streams_;
  std::int64_t capacity_ = 0;
  std::string version_;
};

}  // namespace ar::cuda
