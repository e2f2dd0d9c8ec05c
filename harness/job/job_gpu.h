// What every GPU command of a job (`run`, `bench`, `probe`) does before its kernels: check that every
// process can use a GPU, pick this process's GPU, say where the ranks run, agree on the shareable handles
// (harness/handle_choice.h), split the W ranks among the processes, and state the plan so that processes
// about to do different things refuse before any kernel runs (an out-of-step call sequence would hang the
// GPUs).
#pragma once

#include <iosfwd>
#include <optional>
#include <span>
#include <string>
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

/// Rank 0 prints where every process runs (host, GPU, PCI id), a notice when ranks share a GPU, and one
/// when the job has no token. A collective call: every process must make it.
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

}  // namespace ar
