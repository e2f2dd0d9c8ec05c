// The seam between the mnnvl-ar commands that need a GPU (`run`, `bench`) and the CUDA layer. The commands
// use only this interface; gpu_backend_cuda.cpp implements it over cuda/ when the CUDA layer is built, and
// gpu_backend_none.cpp (chosen by harness/CMakeLists.txt otherwise) says that no GPU work can run, so the
// commands print a clear message and exit 2 instead of failing to build or to start.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "reference/strategy.h"
#include "reference/tensor.h"
#include "reference/workspace.h"

namespace ar {

struct GpuDevice {
  int ordinal = 0;
  int device_count = 0;
  std::string name;
  std::string compute_capability;  ///< "9.0"
  int sm_count = 0;
  std::int64_t memory_bytes = 0;
  std::int64_t l2_bytes = 0;
  int clock_mhz = 0;
  std::string driver;        ///< kernel module version ("580.159.04"), or empty
  std::string cuda_driver;   ///< CUDA version the driver supports ("13.0")
  std::string cuda_runtime;  ///< runtime linked into this binary
};

/// One call on the GPU.
struct GpuCall {
  ProblemShape shape;
  Strategy strategy = Strategy::kAuto;
  Profile profile = Profile::kFlashInfer;
  bool pdl = false;
};

/// A device wait that gave up, turned into words.
struct GpuTimeout {
  std::string message;
  int rank = -1;   ///< the rank that waited
  int peer = -1;   ///< the rank it waited for (-1: its own blocks)
  std::uint32_t call = 0;
};

/// W virtual ranks on one GPU sharing one workspace.
class GpuRanks {
 public:
  virtual ~GpuRanks() = default;
  virtual std::int64_t buffer_bytes() const = 0;  ///< BPB of the workspace
  /// Why `call` cannot run on this group (nullopt when it can).
  virtual std::optional<std::string> cannot_run(const GpuCall& call) = 0;
  /// "2 ranks x 66 blocks x 256 threads, 512 tokens per round"
  virtual std::string launch_shape(const GpuCall& call) = 0;
  /// Copies [W, N, D] into every rank's input.
  virtual void upload(const HostTensor& input) = 0;
  /// Poisons the outputs, runs `call` on `ranks` (empty: all) and waits. A timeout comes back as a value;
  /// the workspace is then reset.
  virtual std::optional<GpuTimeout> run(const GpuCall& call, std::span<const int> ranks = {}) = 0;
  virtual HostTensor output(int rank, const ProblemShape& shape) = 0;  ///< [N, D]
  virtual LamportFlags flags(int rank) = 0;
  /// Mean microseconds per call (see cuda::VirtualGroup::time_us). Throws on a timeout.
  virtual double time_us(const GpuCall& call, int warmup, int iterations, int graph_launches) = 0;
};

/// The machine's limits measured in this run.
struct GpuLimits {
  double launch_eager_us = 0;
  double launch_graph_us = 0;
  double copy_gbps = 0;           ///< device-to-device copy, bytes read + written per second / 1e9
  std::int64_t copy_bytes = 0;
};

/// NCCL's all-reduce over every visible GPU, one rank each.
class NcclAllReduce {
 public:
  virtual ~NcclAllReduce() = default;
  virtual std::string version() const = 0;
  virtual int ranks() const = 0;
  virtual double time_us(std::int64_t bytes_per_rank, DType dtype, int warmup, int iterations) = 0;
};

class GpuBackend {
 public:
  virtual ~GpuBackend() = default;
  /// Why GPU commands cannot run here (no CUDA layer in this build, no driver, no device); nullopt if they can.
  virtual std::optional<std::string> unavailable() = 0;
  virtual GpuDevice device(int ordinal) = 0;
  struct GroupOptions {
    int device = 0;
    int world_size = 2;
    std::int64_t buffer_bytes_request = 0;
    std::int64_t io_bytes_per_rank = 0;
    std::uint64_t timeout_ns = 10'000'000'000ull;
    std::int64_t round_bytes = -1;  ///< -1: the kernels' default
  };
  virtual std::unique_ptr<GpuRanks> open(const GroupOptions& options) = 0;
  virtual GpuLimits measure_limits(int device, std::int64_t copy_bytes) = 0;
  /// NCCL loaded from `library` over every visible GPU; throws std::runtime_error naming the problem.
  virtual std::unique_ptr<NcclAllReduce> open_nccl(const std::string& library) = 0;
};

/// The backend this binary was built with.
std::unique_ptr<GpuBackend> make_gpu_backend();

}  // namespace ar
