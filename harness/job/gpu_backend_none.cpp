// The GPU backend of a build without the CUDA layer: every GPU command stops with this message (exit 2).
#include <stdexcept>

#include "harness/job/gpu_backend.h"

namespace ar {
namespace {

constexpr const char* kNoCuda =
    "this mnnvl-ar was built without the CUDA layer, so it cannot run kernels (configure with "
    "-DMNNVL_AR_CUDA=ON where nvcc is installed, then run it on a machine with an NVIDIA GPU)";

class NoGpu final : public GpuBackend {
 public:
  std::optional<std::string> unavailable() override { return std::string(kNoCuda); }
  int device_count() override { return 0; }
  GpuDevice device(int) override { throw std::runtime_error(kNoCuda); }
  std::unique_ptr<GpuRanks> open(const GroupOptions&) override { throw std::runtime_error(kNoCuda); }
  GpuNvml nvml(int) override { throw std::runtime_error(kNoCuda); }
  GpuImex imex() override { throw std::runtime_error(kNoCuda); }
  std::optional<std::string> try_fabric_allocation(int) override { throw std::runtime_error(kNoCuda); }
  GpuPeers measure_peers(const std::vector<int>&) override { throw std::runtime_error(kNoCuda); }
  GpuLimits measure_limits(int, std::int64_t) override { throw std::runtime_error(kNoCuda); }
  std::unique_ptr<NcclAllReduce> open_nccl(const std::string&, const std::vector<int>&) override {
    throw std::runtime_error(kNoCuda);
  }
  std::unique_ptr<GpuMufuSweep> open_mufu_sweep(int, std::uint64_t) override { throw std::runtime_error(kNoCuda); }
};

}  // namespace

std::unique_ptr<GpuBackend> make_gpu_backend() { return std::make_unique<NoGpu>(); }

}  // namespace ar
