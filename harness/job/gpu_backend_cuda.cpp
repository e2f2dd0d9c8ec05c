// The GPU backend over the CUDA layer (cuda/): rank groups (all ranks in this process, or its share of a
// multi-process job), the facts `probe` reports, the machine's limits, NCCL, the MUFU sweep.
#include <fmt/format.h>

#include "cuda/device.h"
#include "cuda/fabric.h"
#include "cuda/mufu_sweep.h"
#include "cuda/nccl_baseline.h"
#include "cuda/nvml.h"
#include "cuda/peer_probes.h"
#include "cuda/probes.h"
#include "cuda/virtual_group.h"
#include "harness/job/gpu_backend.h"
#include "harness/job/handle_exchange.h"

namespace ar {
namespace {

cuda::VirtualGroup::Call to_cuda(const GpuCall& c) {
  cuda::VirtualGroup::Call call{c.shape, c.strategy, c.profile, c.pdl};
  if (c.norm) {
    call.norm = cuda::NormArguments{c.norm->epsilon, c.norm->weight_bias, c.norm->sm_count, c.norm->quant,
                                    c.norm->layout};
    call.separate_norm = c.norm->separate_kernel;
  }
  return call;
}

/// The exchange (when the ranks span processes) lives as long as the group: resetting the workspace uses it.
struct GroupParts {
  std::unique_ptr<RendezvousExchange> exchange;
  cuda::VirtualGroup::Options options;
};

class CudaRanks final : public GpuRanks {
 public:
  explicit CudaRanks(GroupParts parts) : exchange_(std::move(parts.exchange)), group_(parts.options) {}

  std::int64_t buffer_bytes() const override { return group_.workspace().buffer_bytes(); }
  std::vector<int> local_ranks() const override { return group_.local_ranks(); }
  int device_of(int rank) const override { return group_.device_of(rank); }

  std::optional<std::string> cannot_run(const GpuCall& call) override {
    const cuda::Status s = group_.can_run(to_cuda(call));
    if (s.ok()) return std::nullopt;
    return s.message;
  }

  std::string launch_shape(const GpuCall& call) override {
    const cuda::LaunchPlan p = group_.plan(to_cuda(call));
    const std::size_t gpus = group_.devices().size();
    std::string rows;  // how the blocks compute a fused call's rows, where not one block each
    if (p.cluster_blocks > 1)
      rows = fmt::format(" (clusters of {})", p.cluster_blocks);
    else if (cuda::in_registers(p.row_blocks))
      rows = fmt::format(" ({} a thread in registers, {} block{} a row)",
                         p.row_blocks == cuda::RowBlocks::kOnePack ? "a pack" : "two packs", p.row_replicas,
                         p.row_replicas == 1 ? "" : "s");
    return fmt::format("{}{} rank{} x {} blocks{} x {} threads, {} tokens per round",
                       gpus > 1 ? fmt::format("{} GPUs x ", gpus) : "", p.slots, p.slots == 1 ? "" : "s",
                       p.blocks_per_rank, rows, p.threads_per_block, p.tokens_per_round) +
           (p.direct ? std::string(kDirectPathLaunch) : std::string());
  }

  void upload(const HostTensor& input) override { group_.upload(input); }
  void upload_norm(const HostTensor& residual, const HostTensor& gamma) override {
    group_.upload_norm_inputs(residual, gamma);
  }

  std::optional<GpuTimeout> run(const GpuCall& call, std::span<const int> ranks) override {
    upload_quant_scale(call);
    group_.poison_outputs();
    const auto e = group_.run(to_cuda(call), ranks);
    if (!e) return std::nullopt;
    return GpuTimeout{cuda::describe_wait_error(*e), e->rank, e->peer, e->call};
  }

  HostTensor output(int rank, const ProblemShape& shape) override { return group_.download(rank, shape); }
  HostTensor residual_out(int rank, const ProblemShape& shape) override {
    return group_.download_residual_out(rank, shape);
  }
  QuantizedOutput quant_output(int rank, const ProblemShape& shape, QuantMode quant, ScaleLayout layout) override {
    return group_.download_quant(rank, shape, quant, layout);
  }
  LamportFlags flags(int rank) override { return group_.workspace().flags(rank); }
  double time_us(const GpuCall& call, int warmup, int iterations, int graph_launches,
                 const std::function<void()>& before_timing) override {
    upload_quant_scale(call);
    return group_.time_us(to_cuda(call), warmup, iterations, graph_launches, before_timing);
  }

 private:
  void upload_quant_scale(const GpuCall& call) {
    if (call.norm && call.norm->quant != QuantMode::kNone) group_.upload_quant_scale(call.norm->quant_scale);
  }

  std::unique_ptr<RendezvousExchange> exchange_;  // before group_: destroyed after it
  cuda::VirtualGroup group_;
};

class CudaNccl final : public NcclAllReduce {
 public:
  CudaNccl(const std::string& library, const std::vector<int>& devices) : nccl_(library, devices) {}
  std::string version() const override { return nccl_.version(); }
  int ranks() const override { return nccl_.ranks(); }
  double time_us(std::int64_t bytes, DType dtype, int warmup, int iterations, int graph_launches) override {
    return nccl_.time_us(bytes, dtype, warmup, iterations, graph_launches);
  }

 private:
  cuda::NcclBaseline nccl_;
};

class CudaMufuSweep final : public GpuMufuSweep {
 public:
  CudaMufuSweep(int device, std::uint64_t chunk) : sweep_(device, chunk) {}
  std::uint64_t chunk() const override { return sweep_.chunk(); }
  std::span<const std::uint32_t> run(MufuOp op, std::uint64_t first, std::uint64_t count, std::uint64_t stride,
                                     std::uint32_t divisor) override {
    return sweep_.run(op, first, count, stride, divisor);
  }

 private:
  cuda::MufuSweep sweep_;
};

class CudaBackend final : public GpuBackend {
 public:
  std::optional<std::string> unavailable() override { return cuda::unavailable_reason(); }
  int device_count() override { return cuda::device_count(); }

  GpuDevice device(int ordinal) override {
    const cuda::DeviceInfo d = cuda::device_info(ordinal);
    GpuDevice g;
    g.ordinal = d.ordinal;
    g.device_count = d.device_count;
    g.name = d.name;
    g.compute_capability = fmt::format("{}.{}", d.cc_major, d.cc_minor);
    g.sm_count = d.sm_count;
    g.memory_bytes = d.memory_bytes;
    g.l2_bytes = d.l2_bytes;
    g.clock_mhz = d.clock_mhz;
    g.driver = d.kernel_driver;
    g.cuda_driver = d.driver_string;
    g.cuda_runtime = fmt::format("{}.{}", d.runtime_version / 1000, (d.runtime_version % 1000) / 10);
    g.pci_bus_id = d.pci_bus_id;
    g.vmm = d.vmm_supported;
    g.posix_handles = d.posix_handles_supported;
    g.fabric_handles = d.fabric_handles_supported;
    g.multicast = d.multicast_supported;
    return g;
  }

  std::unique_ptr<GpuRanks> open(const GroupOptions& o) override {
    GroupParts parts;
    cuda::VirtualGroup::Options& v = parts.options;
    v.device = o.device;
    v.devices = o.devices;
    if (!o.devices.empty() && !o.local_ranks.empty() && static_cast<int>(o.local_ranks.size()) < o.world_size)
      throw std::invalid_argument("a group of a multi-process job runs on one GPU per process");
    v.world_size = o.world_size;
    v.buffer_bytes_request = o.buffer_bytes_request;
    v.io_bytes_per_rank = o.io_bytes_per_rank;
    v.norm_io = o.norm_io;
    v.timeout_ns = o.timeout_ns;
    if (o.round_bytes >= 0) v.round_bytes = o.round_bytes;
    v.direct_from_bytes = o.direct_from_bytes;
    v.direct_scatter_bytes = o.direct_scatter_bytes;
    v.direct_broadcast_bytes = o.direct_broadcast_bytes;
    v.local_ranks = o.local_ranks;
    if (!o.local_ranks.empty() && static_cast<int>(o.local_ranks.size()) < o.world_size) {
      if (o.rendezvous == nullptr) throw std::invalid_argument("a group of a multi-process job needs the rendezvous");
      parts.exchange = std::make_unique<RendezvousExchange>(*o.rendezvous, o.job_name);
      v.exchange = parts.exchange.get();
      v.handle_type = o.handles == HandleKind::kFabric ? cuda::HandleType::kFabric : cuda::HandleType::kPosixFd;
    }
    return std::make_unique<CudaRanks>(std::move(parts));
  }

  GpuNvml nvml(int ordinal) override {
    GpuNvml n;
    std::string bus;
    try {
      bus = cuda::device_info(ordinal).pci_bus_id;
    } catch (const std::exception& e) {
      n.error = e.what();
      return n;
    }
    const cuda::NvmlReport r = cuda::nvml_report(bus);
    n.loaded = r.loaded;
    n.error = r.error;
    n.driver_version = r.driver_version;
    n.link_count = r.link_count;
    n.links_note = r.links_note;
    for (const cuda::NvLinkState& l : r.links)
      n.links.push_back(GpuLink{l.link, l.active, l.version, l.speed_mbps, l.remote_pci_bus_id, l.replay, l.recovery,
                                l.crc_flit, l.crc_data});
    const cuda::FabricFacts& f = r.fabric;
    n.fabric = GpuFabric{f.queried,   f.error,        f.state,       f.status,        f.status_text,
                         f.clique_id, f.cluster_uuid, f.health_mask, f.health_summary};
    return n;
  }

  GpuImex imex() override {
    const cuda::ImexChannels c = cuda::imex_channels();
    return GpuImex{c.directory, c.channels, c.driver_registered};
  }

  std::optional<std::string> try_fabric_allocation(int ordinal) override {
    return cuda::try_fabric_allocation(ordinal);
  }

  GpuPeers measure_peers(const std::vector<int>& devices) override {
    const cuda::PeerMeasurements m = cuda::measure_peers(devices);
    return GpuPeers{m.devices, m.access, m.round_trip_us, m.oneway_gbps, m.twoway_gbps, m.errors};
  }

  GpuLimits measure_limits(int device, std::int64_t copy_bytes) override {
    const cuda::LaunchOverhead l = cuda::measure_launch_overhead(device);
    const cuda::CopyBandwidth c = cuda::measure_copy_bandwidth(device, copy_bytes);
    return {l.eager_us, l.graph_us, c.gbps(), c.bytes};
  }

  std::unique_ptr<NcclAllReduce> open_nccl(const std::string& library, const std::vector<int>& devices) override {
    return std::make_unique<CudaNccl>(library, devices);
  }

  std::unique_ptr<GpuMufuSweep> open_mufu_sweep(int device, std::uint64_t chunk) override {
    return std::make_unique<CudaMufuSweep>(device, chunk);
  }
};

}  // namespace

std::unique_ptr<GpuBackend> make_gpu_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace ar
