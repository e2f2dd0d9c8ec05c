// The skeleton every GPU command of a job (`run`, `bench`, `probe`) shares, the way nccl-tests shares one
// harness among its tests: GpuJob checks that every process can use a GPU, picks this process's GPU, says
// where the ranks run, agrees on the shareable handles (harness/job/handle_choice.h), splits the W ranks
// among the processes and opens the rank group of each world size once the processes agree on the plan, so
// that processes about to do different things refuse before any kernel runs (an out-of-step call sequence
// would hang the GPUs). What a command does with a group (check calls, time them) and how it reports are
// its own. The free functions below are GpuJob's steps, public for their tests.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "harness/job/gpu_backend.h"
#include "harness/job/handle_choice.h"
#include "harness/job/job.h"

namespace ar {

/// The ranks process `process` of `processes` runs at world size `world`: a contiguous block of
/// world / processes. Throws UsageError when `world` is not a multiple of `processes`.
std::vector<int> local_ranks_of(int world, int processes, int process);

/// Every process reports whether it can run GPU work (backend.unavailable()). When one cannot, returns the
/// message every process stops with (exit 2), naming the ranks; nullopt when all can.
std::optional<std::string> gather_gpu_problems(Job& job, GpuBackend& backend);

/// This process's GPU: `requested` when >= 0, else LOCAL_RANK % visible GPUs (choose_device).
struct JobDevice {
  int device = 0;
  bool shared = false;  ///< more local ranks than visible GPUs: ranks share GPUs
};
JobDevice pick_device(const Job& job, GpuBackend& backend, int requested);

/// --devices: the GPUs one process spreads its ranks over. "" -> {} (one GPU: --device or the job's choice),
/// "all" -> every visible GPU, "0,1" -> those, in that order. Throws UsageError for a GPU that is not
/// visible, one named twice, fewer than 2 GPUs, or a job of several processes (each process takes one GPU).
std::vector<int> devices_option(const std::string& text, const Job& job, int visible);

/// The GPUs the job's ranks run on, for reports: this process's --devices, or with several processes the GPU
/// of each process in job-rank order (a collective call: every process must make it).
std::vector<int> job_gpus(Job& job, int device, const std::vector<int>& devices);

/// One line per GPU of --devices: "#   GPU 1: NVIDIA H100 80GB HBM3 (PCI 0000:1b:00.0)".
void describe_devices(GpuBackend& backend, const std::vector<int>& devices, std::ostream& out);

/// The world sizes of `worlds` whose ranks split evenly into `parts` (processes x GPUs per process). The
/// others are refused with a UsageError naming them when `all` is false (the user named them), else
/// dropped with a notice on `err` (rank 0). Throws when none is left.
std::vector<int> splittable_worlds(const std::vector<int>& worlds, int parts, bool all, const std::string& why,
                                   const Job& job, std::ostream& err);

/// The world sizes of `worlds` this process can run: each must split evenly over the job's processes and,
/// with --devices, over this process's GPUs (splittable_worlds, with the reason worded for the case).
std::vector<int> runnable_worlds(const Job& job, const std::vector<int>& worlds, const std::vector<int>& devices,
                                 bool all, std::ostream& err);

/// Rank 0 prints where every process runs (host, GPU, PCI id) and a notice when ranks share a GPU. A
/// collective call: every process must make it.
void describe_job(Job& job, const GpuDevice& device, const JobDevice& choice, std::ostream& out, std::ostream& err);

/// What this process knows about sharing memory from `device` (attributes, NVML, IMEX); no trial yet.
SharingFacts local_sharing_facts(const Job& job, GpuBackend& backend, int device);

/// The processes decide the handles together: gather their facts, make a trial fabric allocation where
/// should_try_fabric says so, gather again, and choose_handles. Every process gets the same decision. Throws
/// UsageError with the decision's summary when the job cannot share memory. A job of one process needs no
/// handles (returns POSIX without asking anything).
HandleDecision agree_on_handles(Job& job, GpuBackend& backend, int device, HandleRequest request);

/// Every process states the plan (one item per line); the processes must agree, or every one of them throws
/// a RendezvousError naming the first rank and item that differ. Nothing is checked in a job of one process.
/// A plan too long for one rendezvous message is compared in full all the same: its first items as they
/// are, the rest as a digest (bounded_plan).
void agree_on_plan(Job& job, const std::string& what, const std::string& plan);

/// `plan` if it has at most `limit` bytes; else its whole lines up to the limit and one more line with the
/// count and sha256 of the rest.
std::string bounded_plan(const std::string& plan, std::size_t limit);

/// One line of a plan for one call: "call 3: twoshot N=64 D=1024 bf16 W=8 flashinfer pdl=on seed=4".
std::string plan_line(int index, const std::string& label, const GpuCall& call, Strategy requested, Profile expect,
                      std::uint64_t seed);

/// What a GPU command asks of its job's GPUs (its --device, --devices and --handles options).
struct GpuJobRequest {
  int device = -1;           ///< --device: -1 = 0 for one process, LOCAL_RANK % visible GPUs in a job
  std::string devices_text;  ///< --devices: "" (one GPU), "0,1" or "all"
  HandleRequest handles = HandleRequest::kAuto;
};

/// What one rank group must hold: the largest Lamport buffer and the largest shard of the calls it will
/// run, the per-wait timeout and the L2 budget of a round.
struct GroupSizing {
  std::int64_t buffer_bytes = 0;  ///< grows with add()
  std::int64_t io_bytes = 16;     ///< grows with add()
  std::uint64_t timeout_ns = 10'000'000'000ull;
  std::int64_t round_bytes = -1;  ///< -1: the kernels' default
  bool norm_io = false;           ///< set by add() for a fused call
  /// Plain TWOSHOT calls of at least this many bytes a rank take the direct path (0: none do; set before add()).
  std::int64_t direct_from_bytes = 0;
  std::int64_t direct_scatter_bytes = 0;    ///< grows with add(): the direct region's rows
  std::int64_t direct_broadcast_bytes = 0;  ///< grows with add()
  /// Makes room for a call of `requested` strategy on `shape` (fused: residuals and gammas too; a call that
  /// takes the direct path: its rows in the direct region, not in the Lamport buffers).
  void add(Strategy requested, const ProblemShape& shape, bool fused = false);
};

class GpuJob {
 public:
  /// Every process checks that it can run GPU work. When one cannot, rank 0 prints "mnnvl-ar COMMAND: no
  /// GPU: ..." naming the ranks and why, and this returns nullptr on every process (the command exits 2).
  /// Otherwise picks this process's GPU and reads --devices (throws UsageError for a bad one).
  static std::unique_ptr<GpuJob> start(Job& job, std::string_view command, const GpuJobRequest& request,
                                       std::ostream& err);

  Job& job() { return job_; }
  GpuBackend& backend() { return *backend_; }
  const JobDevice& choice() const { return choice_; }
  const GpuDevice& device() const { return device_; }           ///< this process's GPU (--device or the job's choice)
  const std::vector<int>& devices() const { return devices_; }  ///< --devices; empty: one GPU
  /// The GPU a measurement of this process runs on: the first of --devices, else device().
  int lead_device() const { return devices_.empty() ? choice_.device : devices_.front(); }

  /// The world sizes of `requested` this job can split evenly (runnable_worlds).
  std::vector<int> worlds(const std::vector<int>& requested, bool all, std::ostream& err) const;
  /// The GPUs the ranks run on, for reports (job_gpus). Collective.
  std::vector<int> gpus();
  /// Says where the job's processes run (describe_job) and, with --devices, the GPUs (describe_devices).
  /// Collective.
  void describe(std::ostream& out, std::ostream& err);
  /// The processes agree on the handles (agree_on_handles); later calls return the same decision. Collective.
  const HandleDecision& handles();

  /// Agrees on `plan` (agree_on_plan, as "plan at W = world"), then opens the group of `world` ranks sized
  /// by `sizing`: this process's share in a job, every rank otherwise, spread over --devices when given.
  /// `name` tells this group's fd-passing sockets apart ("run-w8"). Throws UsageError when the buffer
  /// exceeds the kernels' limit. Collective.
  std::unique_ptr<GpuRanks> open_group(int world, const GroupSizing& sizing, const std::string& name,
                                       const std::string& plan_title, const std::string& plan);
  /// The same on explicit GPUs: `device`, or several with `devices`; `local` the ranks of this process
  /// (empty: all of them). For probe, which places ranks itself.
  std::unique_ptr<GpuRanks> open_group_on(int world, const GroupSizing& sizing, const std::string& name, int device,
                                          const std::vector<int>& devices, const std::vector<int>& local);

  /// Every process asks its group whether each call can run; `describe(i)` names call i in a refusal.
  /// Throws UsageError with the first refusal (prefixed "rank P: " in a job) on every process. In a job the
  /// processes then compare the launch grids of the calls on TWOSHOT's direct path, which must be the same on
  /// every rank. Collective.
  void refuse_unrunnable(GpuRanks& group, const std::vector<GpuCall>& calls,
                         const std::function<std::string(std::size_t)>& describe);

 private:
  GpuJob(Job& job, std::unique_ptr<GpuBackend> backend, const GpuJobRequest& request);

  Job& job_;
  std::unique_ptr<GpuBackend> backend_;
  GpuJobRequest request_;
  JobDevice choice_;
  GpuDevice device_;
  std::vector<int> devices_;
  std::optional<HandleDecision> handles_;
};

}  // namespace ar
