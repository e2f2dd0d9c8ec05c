// The seam between the mnnvl-ar commands that need a GPU (`run`, `bench`, `probe`, `mufu`) and the CUDA layer. The
// commands use only this interface; gpu_backend_cuda.cpp implements it over cuda/ when the CUDA layer is
// built, and gpu_backend_none.cpp (chosen by harness/CMakeLists.txt otherwise) says that no GPU work can
// run, so the commands print a clear message and exit 2 instead of failing to build or to start.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "harness/job/handle_choice.h"
#include "reference/fused_quant.h"
#include "reference/mufu_sweep.h"
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
  std::string pci_bus_id;    ///< "0000:1b:00.0"
  // Device attributes only: nothing is created to learn them.
  bool vmm = false;             ///< virtual memory management (the workspace needs it)
  bool posix_handles = false;   ///< POSIX file-descriptor handles
  bool fabric_handles = false;  ///< fabric handles (the attribute; the driver may still refuse one)
  bool multicast = false;       ///< NVLink multicast (reported only; never used)
};

/// One NVLink, as NVML reports it.
struct GpuLink {
  int link = 0;
  bool active = false;
  std::optional<unsigned> version;
  std::optional<std::uint64_t> speed_mbps;
  std::string remote_pci_bus_id;
  std::optional<std::uint64_t> replay, recovery, crc_flit, crc_data;
};

/// NVML's fabric facts for one GPU.
struct GpuFabric {
  bool queried = false;
  std::string error;
  int state = -1;
  int status = -1;
  std::string status_text;
  std::uint32_t clique_id = 0;
  std::array<std::uint8_t, 16> cluster_uuid{};
  std::optional<std::uint32_t> health_mask;
  std::optional<std::uint8_t> health_summary;
};

/// What NVML (loaded at run time) says about one GPU.
struct GpuNvml {
  bool loaded = false;
  std::string error;
  std::string driver_version;
  std::optional<int> link_count;
  std::vector<GpuLink> links;
  std::string links_note;
  GpuFabric fabric;
};

/// The IMEX channels this process can open.
struct GpuImex {
  bool directory = false;
  std::vector<std::string> channels;
  bool driver_registered = false;
};

/// Peer access and peer measurements between the GPUs of one process.
struct GpuPeers {
  std::vector<int> devices;
  std::vector<std::vector<bool>> access;
  std::vector<std::vector<std::optional<double>>> round_trip_us, oneway_gbps, twoway_gbps;
  std::vector<std::string> errors;
};

/// What makes a GPU call the fused all-reduce + residual add + RMSNorm (reference FusedOptions).
struct GpuNorm {
  std::uint32_t epsilon = 0;      ///< fp32 bits
  std::uint32_t weight_bias = 0;  ///< fp32 bits
  int sm_count = 0;               ///< the SM count whose launch the summation tree follows
  /// The plain all-reduce, then the norm as a kernel of its own (the same bits; bench's baseline).
  bool separate_kernel = false;
  /// The quantised output after the norm (SPEC section 13), its NVFP4 scale layout, and the output_scale
  /// (fp32 bits) every rank holds on the device.
  QuantMode quant = QuantMode::kNone;
  ScaleLayout layout = ScaleLayout::kSwizzled128x4;
  std::uint32_t quant_scale = kFp32One;
};

/// One call on the GPU.
struct GpuCall {
  ProblemShape shape;
  Strategy strategy = Strategy::kAuto;
  Profile profile = Profile::kFlashInfer;
  bool pdl = false;
  std::optional<GpuNorm> norm;  ///< set: the fused call (the group must have been opened with norm_io)
};

/// A device wait that gave up, turned into words.
struct GpuTimeout {
  std::string message;
  int rank = -1;  ///< the rank that waited
  int peer = -1;  ///< the rank it waited for (-1: its own blocks)
  std::uint32_t call = 0;
};

class Rendezvous;

/// The end of GpuRanks::launch_shape for a call on TWOSHOT's direct path.
inline constexpr std::string_view kDirectPathLaunch = ", direct path";

/// The ranks one process runs: all W of a workspace (virtual ranks on one GPU, or spread over several GPUs of
/// this process), or its share of a job of several processes.
class GpuRanks {
 public:
  virtual ~GpuRanks() = default;
  virtual std::int64_t buffer_bytes() const = 0;  ///< BPB of the workspace
  virtual std::vector<int> local_ranks() const = 0;
  virtual int device_of(int rank) const = 0;  ///< the GPU of a local rank
  /// Why `call` cannot run on this group (nullopt when it can).
  virtual std::optional<std::string> cannot_run(const GpuCall& call) = 0;
  /// "2 ranks x 66 blocks x 256 threads, 512 tokens per round" (several GPUs: "2 GPUs x 1 rank x ..."), ending
  /// in kDirectPathLaunch when the call takes TWOSHOT's direct path.
  virtual std::string launch_shape(const GpuCall& call) = 0;
  /// Copies each local rank's shard of [W, N, D] into its input.
  virtual void upload(const HostTensor& input) = 0;
  /// Copies the residual ([N, D]) and gamma ([D]) of fused calls to every local rank.
  virtual void upload_norm(const HostTensor& residual, const HostTensor& gamma) = 0;
  /// Poisons the outputs, runs `call` on `ranks` (empty: every local rank) and waits. A timeout comes back
  /// as a value; a group holding every rank then resets its workspace.
  virtual std::optional<GpuTimeout> run(const GpuCall& call, std::span<const int> ranks = {}) = 0;
  virtual HostTensor output(int rank, const ProblemShape& shape) = 0;  ///< [N, D] of a local rank
  virtual HostTensor residual_out(int rank, const ProblemShape& shape) = 0;  ///< of the last fused call
  /// The quantised outputs of the last fused call of `quant` (codes; token scales or NVFP4's scale bytes).
  virtual QuantizedOutput quant_output(int rank, const ProblemShape& shape, QuantMode quant, ScaleLayout layout) = 0;
  virtual LamportFlags flags(int rank) = 0;                            ///< of a local rank
  /// Mean microseconds per call (see cuda::VirtualGroup::time_us); `before_timing` runs right before the
  /// timed region (a barrier in a multi-process job). Throws on a timeout.
  virtual double time_us(const GpuCall& call, int warmup, int iterations, int graph_launches,
                         const std::function<void()>& before_timing = {}) = 0;
};

/// The machine's limits measured in this run.
struct GpuLimits {
  double launch_eager_us = 0;
  double launch_graph_us = 0;
  double copy_gbps = 0;  ///< device-to-device copy, bytes read + written per second / 1e9
  std::int64_t copy_bytes = 0;
};

/// NCCL's all-reduce over some GPUs of this process, one rank each.
class NcclAllReduce {
 public:
  virtual ~NcclAllReduce() = default;
  virtual std::string version() const = 0;
  virtual int ranks() const = 0;
  /// Mean microseconds per call, timed as GpuRanks::time_us (events; graph replay when graph_launches > 0).
  virtual double time_us(std::int64_t bytes_per_rank, DType dtype, int warmup, int iterations, int graph_launches) = 0;
};

/// One GPU computing MUFU operations over runs of inputs, for `mnnvl-ar mufu --check` (reference/mufu_sweep.h).
class GpuMufuSweep {
 public:
  virtual ~GpuMufuSweep() = default;
  virtual std::uint64_t chunk() const = 0;  ///< the most inputs one call takes
  /// The hardware's result bits of `op` for the inputs (first + i) * stride, i < count <= chunk(); `divisor`
  /// is b's bits for MufuOp::kDiv. The view is valid until the next call.
  virtual std::span<const std::uint32_t> run(MufuOp op, std::uint64_t first, std::uint64_t count, std::uint64_t stride,
                                             std::uint32_t divisor) = 0;
};

class GpuBackend {
 public:
  virtual ~GpuBackend() = default;
  /// Why GPU commands cannot run here (no CUDA layer in this build, no driver, no device); nullopt if they can.
  virtual std::optional<std::string> unavailable() = 0;
  virtual int device_count() = 0;
  virtual GpuDevice device(int ordinal) = 0;
  struct GroupOptions {
    int device = 0;
    int world_size = 2;
    std::int64_t buffer_bytes_request = 0;
    std::int64_t io_bytes_per_rank = 0;
    std::uint64_t timeout_ns = 10'000'000'000ull;
    std::int64_t round_bytes = -1;  ///< -1: the kernels' default
    /// TWOSHOT's direct path: plain TWOSHOT calls of at least this many bytes a rank take it (0: none), and the
    /// largest rows of such a call the workspace's direct region holds.
    std::int64_t direct_from_bytes = 0;
    std::int64_t direct_scatter_bytes = 0;
    std::int64_t direct_broadcast_bytes = 0;
    /// The ranks of this process; empty: all W. With fewer, every process of the job opens its group at the
    /// same time and the other ranks' memory comes through `rendezvous` as `handles`.
    std::vector<int> local_ranks;
    HandleKind handles = HandleKind::kPosix;
    Rendezvous* rendezvous = nullptr;
    std::string job_name;  ///< distinguishes this group's fd-passing sockets from others on the host
    /// Several GPUs of this process (one process only): the W ranks in contiguous equal blocks over them, in
    /// this order; `device` is then ignored. Empty: every rank on `device`.
    std::vector<int> devices;
    bool norm_io = false;  ///< residuals and gammas too, for fused calls
  };
  virtual std::unique_ptr<GpuRanks> open(const GroupOptions& options) = 0;
  /// NVML's view of a GPU (never throws; what it cannot learn, it says).
  virtual GpuNvml nvml(int ordinal) = 0;
  virtual GpuImex imex() = 0;
  /// A trial fabric allocation on `ordinal`: nullopt when it works, else the driver's answer.
  virtual std::optional<std::string> try_fabric_allocation(int ordinal) = 0;
  /// P2P access matrix and, between pairs with access both ways, ping-pong latency and copy bandwidth.
  virtual GpuPeers measure_peers(const std::vector<int>& devices) = 0;
  virtual GpuLimits measure_limits(int device, std::int64_t copy_bytes) = 0;
  /// NCCL loaded from `library`, one communicator per GPU in `devices` (at least 2); throws
  /// std::runtime_error naming the problem.
  virtual std::unique_ptr<NcclAllReduce> open_nccl(const std::string& library, const std::vector<int>& devices) = 0;
  /// Buffers for `chunk` results on `device` (device memory and pinned host memory, 4 bytes each).
  virtual std::unique_ptr<GpuMufuSweep> open_mufu_sweep(int device, std::uint64_t chunk) = 0;
};

/// The backend this binary was built with.
std::unique_ptr<GpuBackend> make_gpu_backend();

}  // namespace ar
