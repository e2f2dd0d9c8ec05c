// The GPU backend over the CUDA layer (cuda/): virtual-rank groups, the machine's limits, NCCL.
#include <fmt/format.h>

#include "cuda/device.h"
#include "cuda/nccl_baseline.h"
#include "cuda/probes.h"
#include "cuda/virtual_group.h"
#include "harness/gpu_backend.h"

namespace ar {
namespace {

cuda::VirtualGroup::Call to_cuda(const GpuCall& c) { return {c.shape, c.strategy, c.profile, c.pdl}; }

class CudaRanks final : public GpuRanks {
 public:
  explicit CudaRanks(const cuda::VirtualGroup::Options& o) : group_(o) {}

  std::int64_t buffer_bytes() const override { return group_.workspace().buffer_bytes(); }

  std::optional<std::string> cannot_run(const GpuCall& call) override {
    const cuda::Status s = group_.can_run(to_cuda(call));
    if (s.ok()) return std::nullopt;
    return s.message;
  }

  std::string launch_shape(const GpuCall& call) override {
    const cuda::LaunchPlan p = group_.plan(to_cuda(call));
    return fmt::format("{} ranks x {} blocks x {} threads, {} tokens per round", p.slots, p.blocks_per_rank,
                       p.threads_per_block, p.tokens_per_round);
  }

  void upload(const HostTensor& input) override { group_.upload(input); }

  std::optional<GpuTimeout> run(const GpuCall& call, std::span<const int> ranks) override {
    group_.poison_outputs();
    const auto e = group_.run(to_cuda(call), ranks);
    if (!e) return std::nullopt;
    return GpuTimeout{cuda::describe_wait_error(*e), e->rank, e->peer, e->call};
  }

  HostTensor output(int rank, const ProblemShape& shape) override { return group_.download(rank, shape); }
  LamportFlags flags(int rank) override { return group_.workspace().flags(rank); }
  double time_us(const GpuCall& call, int warmup, int iterations, int graph_launches) override {
    return group_.time_us(to_cuda(call), warmup, iterations, graph_launches);
  }

 private:
  cuda::VirtualGroup group_;
};

class CudaNccl final : public NcclAllReduce {
 public:
  CudaNccl(const std::string& library, const std::vector<int>& devices) : nccl_(library, devices) {}
  std::string version() const override { return nccl_.version(); }
  int ranks() const override { return nccl_.ranks(); }
  double time_us(std::int64_t bytes, DType dtype, int warmup, int iterations) override {
    return nccl_.time_us(bytes, dtype, warmup, iterations);
  }

 private:
  cuda::NcclBaseline nccl_;
};

class CudaBackend final : public GpuBackend {
 public:
  std::optional<std::string> unavailable() override { return cuda::unavailable_reason(); }

  GpuDevice device(int ordinal) override {
    const cuda::DeviceInfo d = cuda::device_info(ordinal);
    return GpuDevice{d.ordinal,
                     d.device_count,
                     d.name,
                     fmt::format("{}.{}", d.cc_major, d.cc_minor),
                     d.sm_count,
                     d.memory_bytes,
                     d.l2_bytes,
                     d.clock_mhz,
                     d.kernel_driver,
                     d.driver_string,
                     fmt::format("{}.{}", d.runtime_version / 1000, (d.runtime_version % 1000) / 10)};
  }

  std::unique_ptr<GpuRanks> open(const GroupOptions& o) override {
    cuda::VirtualGroup::Options v;
    v.device = o.device;
    v.world_size = o.world_size;
    v.buffer_bytes_request = o.buffer_bytes_request;
    v.io_bytes_per_rank = o.io_bytes_per_rank;
    v.timeout_ns = o.timeout_ns;
    if (o.round_bytes >= 0) v.round_bytes = o.round_bytes;
    return std::make_unique<CudaRanks>(v);
  }

  GpuLimits measure_limits(int device, std::int64_t copy_bytes) override {
    const cuda::LaunchOverhead l = cuda::measure_launch_overhead(device);
    const cuda::CopyBandwidth c = cuda::measure_copy_bandwidth(device, copy_bytes);
    return {l.eager_us, l.graph_us, c.gbps(), c.bytes};
  }

  std::unique_ptr<NcclAllReduce> open_nccl(const std::string& library) override {
    std::vector<int> devices(static_cast<std::size_t>(cuda::device_count()));
    for (std::size_t i = 0; i < devices.size(); ++i) devices[i] = static_cast<int>(i);
    return std::make_unique<CudaNccl>(library, devices);
  }
};

}  // namespace

std::unique_ptr<GpuBackend> make_gpu_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace ar
