// W virtual ranks on one GPU: one workspace (each rank its own Lamport buffers and flags), each rank its own
// input and output, one stream; every call is one launch with one grid slice per rank. Runs, times and
// reads back calls for `mnnvl-ar run`, `mnnvl-ar bench` and the [gpu] tests.
#pragma once

#include <cstdint>
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
    int world_size = 2;
    std::int64_t buffer_bytes_request = 0;  ///< per Lamport buffer (request_buffer_bytes())
    std::int64_t io_bytes_per_rank = 0;     ///< capacity of every rank's input and of its output
    std::uint64_t timeout_ns = kDefaultTimeoutNs;
    std::int64_t round_bytes = kDefaultRoundBytes;
  };
  /// One all-reduce call.
  struct Call {
    ProblemShape shape;
    Strategy strategy = Strategy::kAuto;
    Profile profile = Profile::kFlashInfer;
    bool pdl = false;
  };

  explicit VirtualGroup(const Options& options);
  ~VirtualGroup();
  VirtualGroup(const VirtualGroup&) = delete;
  VirtualGroup& operator=(const VirtualGroup&) = delete;

  int world_size() const { return options_.world_size; }
  int device() const { return options_.device; }
  const Workspace& workspace() const { return *workspace_; }
  const Options& options() const { return options_; }
  void set_timeout_ns(std::uint64_t ns) { options_.timeout_ns = ns; }

  /// Copies `input` ([W, N, D]) into every rank's input buffer (blocking).
  void upload(const HostTensor& input);
  /// Fills every rank's output with 0xFF bytes, a value no call produces, so an unwritten element shows.
  void poison_outputs();

  /// Arguments of `call` for `ranks` (empty: every rank), for can_implement / plan_launch.
  Status can_run(const Call& call, std::span<const int> ranks = {});
  LaunchPlan plan(const Call& call, std::span<const int> ranks = {});

  /// Enqueues one call (launch only). `ranks` empty: every rank; otherwise only those ranks are launched
  /// (the others never run, as a missing peer).
  void enqueue(const Call& call, std::span<const int> ranks = {});
  /// Waits for the stream. If a wait gave up, returns its record and resets the workspace (Lamport
  /// initialisation and flags) so the group can be used again.
  std::optional<WaitError> finish();
  /// enqueue + finish.
  std::optional<WaitError> run(const Call& call, std::span<const int> ranks = {});

  /// A rank's [N, D] output (blocking).
  HostTensor download(int rank, const ProblemShape& shape);

  /// Lamport initialisation of the workspace.
  void reset();

  /// Mean microseconds per call: `warmup` eager calls, then `iterations` calls timed with events. With
  /// graph_launches > 0 the iterations are captured in one CUDA graph and replayed that many times.
  /// A wait that gives up during timing is thrown as std::runtime_error.
  double time_us(const Call& call, int warmup, int iterations, int graph_launches);

 private:
  AllReduceArguments arguments(const Call& call, std::span<const int> ranks);

  Options options_;
  std::unique_ptr<Workspace> workspace_;
  std::unique_ptr<WaitChannel> channel_;
  Stream stream_ = nullptr;
  std::uint8_t* inputs_ = nullptr;
  std::uint8_t* outputs_ = nullptr;
  std::int64_t io_stride_ = 0;
  std::vector<RankIo> io_;
  std::vector<RankIo> subset_;  // the ranks of a partial launch
};

}  // namespace ar::cuda
