// NCCL's all-reduce as a baseline for `mnnvl-ar bench`: loaded with dlopen at run time (never linked), one
// communicator per GPU given, all in this process (ncclCommInitAll), NVLink SHARP/multicast (NVLS) forced
// off. Timed as the kernels are: events on every GPU's stream, eager launches or CUDA-graph replay.
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
  /// `iterations` timed with events on every GPU's stream (the slowest GPU's time). With graph_launches > 0
  /// the iterations are captured in one CUDA graph per GPU (as nccl-tests -G) and replayed that many times.
  double time_us(std::int64_t bytes_per_rank, DType dtype, int warmup, int iterations, int graph_launches);

 private:
  struct Api;
  std::unique_ptr<Api> api_;
  void* handle_ = nullptr;
  std::vector<int> devices_;
  std::vector<void*> comms_, send_, recv_, streams_;
  std::int64_t capacity_ = 0;
  void enqueue(std::size_t count, DType dtype);  // one grouped all-reduce on every GPU
  void synchronize();
  std::string version_;
};

}  // namespace ar::cuda
