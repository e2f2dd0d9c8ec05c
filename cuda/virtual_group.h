// The ranks one process runs: all W ranks of a workspace on one GPU (virtual ranks) or spread over several
// GPUs of this process, or this process's share of a job whose ranks are separate processes (the others'
// memory imported through a PeerExchange). Each rank has its own Lamport buffers, flags, input and output.
// Each GPU of the group is a lane with its own stream and wait channel; a call is one launch per lane, with
// one grid slice per rank of that lane. Runs, times and reads back calls for `mnnvl-ar run`,
// `mnnvl-ar bench`, `mnnvl-ar probe` and the [gpu] tests.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "cuda/all_reduce.h"
#include "reference/tensor.h"

namespace ar::cuda {

class VirtualGroup {
 public:
  struct Options {
    int device = 0;
    /// The GPUs of this process's ranks. Empty: every local rank on `device`. Otherwise the local ranks are
    /// split over them in contiguous blocks of equal size (rank order), so their count must divide it.
    std::vector<int> devices;
    int world_size = 2;
    std::int64_t buffer_bytes_request = 0;  ///< per Lamport buffer (request_buffer_bytes())
    std::int64_t io_bytes_per_rank = 0;     ///< capacity of every rank's input and of its output
    /// Also give every rank a residual, a residual_out and a gamma of that capacity, for fused calls, and the
    /// quantised outputs (codes of that capacity, scales for any D up to 2^17) with an output scale.
    bool norm_io = false;
    std::uint64_t timeout_ns = kDefaultTimeoutNs;
    std::int64_t round_bytes = kDefaultRoundBytes;
    /// Plain TWOSHOT calls of at least this many bytes a rank take the direct path (0: none do); the workspace
    /// gets a direct region for rows up to these sizes (Workspace::Options).
    std::int64_t direct_from_bytes = 0;
    std::int64_t direct_scatter_bytes = 0;
    std::int64_t direct_broadcast_bytes = 0;
    /// The ranks of this process (empty: all W). With fewer, `exchange` brings the other processes' memory,
    /// exported as `handle_type`; every process of the job must construct its group at the same time.
    std::vector<int> local_ranks;
    HandleType handle_type = HandleType::kPosixFd;
    PeerExchange* exchange = nullptr;
  };
  /// One all-reduce call.
  struct Call {
    ProblemShape shape;
    Strategy strategy = Strategy::kAuto;
    Profile profile = Profile::kFlashInfer;
    bool pdl = false;
    std::optional<NormArguments> norm;  ///< set: the fused residual-add + RMSNorm (needs Options::norm_io)
    /// With `norm`: the plain all-reduce, then the norm as a kernel of its own (cuda/rms_norm.h), the same
    /// bits by another route (the baseline `bench` times fused calls against).
    bool separate_norm = false;
    /// With `norm`: each rank's residual_out is its residual, updated in place (as an engine's in-place
    /// residual add passes it); download_residual then reads the result.
    bool residual_in_place = false;
  };

  explicit VirtualGroup(const Options& options);
  ~VirtualGroup();
  VirtualGroup(const VirtualGroup&) = delete;
  VirtualGroup& operator=(const VirtualGroup&) = delete;

  int world_size() const { return options_.world_size; }
  int device() const { return lanes_.front().device; }  ///< the first lane's GPU
  /// The GPU of a local rank.
  int device_of(int rank) const { return workspace_->device_of(rank); }
  /// The GPUs of the group, one lane each, in rank order.
  std::vector<int> devices() const;
  const Workspace& workspace() const { return *workspace_; }
  const Options& options() const { return options_; }
  void set_timeout_ns(std::uint64_t ns) { options_.timeout_ns = ns; }
  /// The ranks this process runs, ascending.
  const std::vector<int>& local_ranks() const { return workspace_->local_ranks(); }

  /// Copies each local rank's shard of `input` ([W, N, D]) into its input buffer (blocking).
  void upload(const HostTensor& input);
  /// Copies `residual` ([N, D]) and `gamma` ([D]) to every local rank, for fused calls (blocking).
  void upload_norm_inputs(const HostTensor& residual, const HostTensor& gamma);
  /// Sets every local rank's output_scale (fp32 bits) on the device, for quantised fused calls (blocking).
  void upload_quant_scale(std::uint32_t scale);
  /// Fills every local rank's output (and residual_out, quant_out and scale_out) with 0xFF bytes, a value no
  /// call produces where it writes (no e4m3 code of the kernels is 0xFF), so an unwritten element shows.
  void poison_outputs();

  /// Arguments of `call` for `ranks` (empty: every local rank), for can_implement / plan_launch.
  Status can_run(const Call& call, std::span<const int> ranks = {});
  LaunchPlan plan(const Call& call, std::span<const int> ranks = {});

  /// Enqueues one call (launch only). `ranks` empty: every local rank; otherwise only those ranks are
  /// launched (the others never run, as a missing peer).
  void enqueue(const Call& call, std::span<const int> ranks = {});
  /// Waits for every lane. If a wait gave up, returns its record; a group holding every rank then resets
  /// the workspace (Lamport initialisation and flags) so it can be used again. A group of a multi-process
  /// job is not reset (that would need every process): the job is expected to stop.
  std::optional<WaitError> finish();
  /// enqueue + finish.
  std::optional<WaitError> run(const Call& call, std::span<const int> ranks = {});

  /// A local rank's [N, D] output (blocking): the all-reduce, or a fused call's normalised output.
  HostTensor download(int rank, const ProblemShape& shape);
  /// A local rank's [N, D] residual_out of the last fused call (blocking).
  HostTensor download_residual_out(int rank, const ProblemShape& shape);
  /// A local rank's [N, D] residual (blocking): what a call with Call::residual_in_place left there.
  HostTensor download_residual(int rank, const ProblemShape& shape);
  /// A local rank's quantised outputs of the last fused call of `quant` (blocking): the codes, and the token
  /// scales or the NVFP4 scale bytes (the whole layout, the bytes of no block as the call left them).
  QuantizedOutput download_quant(int rank, const ProblemShape& shape, QuantMode quant, ScaleLayout layout);

  /// Lamport initialisation of the workspace.
  void reset();

  /// Mean microseconds per call: `warmup` eager calls, then `iterations` calls timed with events. With
  /// graph_launches > 0 the iterations are captured in one CUDA graph per lane and replayed that many times.
  /// With several lanes each is timed on its own stream and the slowest lane's time is returned.
  /// `before_timing`, when given, runs once all warm-up work has completed and right before the start event
  /// is recorded (a multi-process job passes a barrier, so every process starts timing together).
  /// A wait that gives up during timing is thrown as std::runtime_error.
  double time_us(const Call& call, int warmup, int iterations, int graph_launches,
                 const std::function<void()>& before_timing = {});

 private:
  /// One GPU of the group: its stream, wait channel, and its ranks' inputs and outputs.
  struct Lane {
    int device = 0;
    std::unique_ptr<WaitChannel> channel;
    Stream stream = nullptr;
    std::uint8_t* inputs = nullptr;
    std::uint8_t* outputs = nullptr;
    std::uint8_t* norm_io = nullptr;  // residual, residual_out and gamma of each rank (Options::norm_io)
    std::uint8_t* quant_io = nullptr;  // quant_out, scale_out and output_scale of each rank (Options::norm_io)
    std::vector<RankIo> io;
    std::vector<RankIo> subset;  // the ranks of a partial launch
    std::vector<RankIo> in_place;  // a call's ranks with residual_out = residual (Call::residual_in_place)
    std::vector<RankIo> separate;      // a separate-norm call's all-reduce: outputs into the scratch buffers
    std::vector<void*> normalized;     // and where its norm kernel writes
  };
  /// Throws std::invalid_argument for a call larger than the group's inputs and outputs, or naming a rank
  /// this group does not run. Every public entry checks once, before its per-lane work.
  void check_call(const Call& call, std::span<const int> ranks);
  /// The arguments of `call` (checked) for the lane's ranks among `ranks` (empty: all of them); nullopt when
  /// none is.
  std::optional<AllReduceArguments> arguments(Lane& lane, const Call& call, std::span<const int> ranks);
  void enqueue_on(Lane& lane, const Call& call, std::span<const int> ranks);
  std::pair<Lane*, const RankIo*> find(int rank);  // throws for a rank this group does not run
  enum class Buffer { kOutput, kResidual, kResidualOut };
  HostTensor download_from(int rank, const ProblemShape& shape, Buffer buffer);
  void release() noexcept;

  Options options_;
  std::unique_ptr<Workspace> workspace_;
  std::vector<Lane> lanes_;
  std::int64_t io_stride_ = 0;
  std::int64_t scale_stride_ = 0;  // bytes of each rank's scale_out
};

}  // namespace ar::cuda
