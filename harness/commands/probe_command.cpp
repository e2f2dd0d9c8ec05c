// mnnvl-ar probe: the bring-up report of a new machine or NVLink domain. It gathers, for every GPU of the
// job, what the device, NVML and the IMEX channels say; measures P2P access, latency and bandwidth between
// the GPUs rank 0's process sees; runs a short bit-exact all-reduce over all ranks with both strategies
// (the rank groups and handle exchange of `run`); and judges it all (harness/probe_report.h).
#include <algorithm>
#include <map>
#include <ostream>
#include <set>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/commands/commands.h"
#include "harness/commands/job_options.h"
#include "harness/commands/list_options.h"
#include "harness/commands/options.h"
#include "harness/commands/probe_report.h"
#include "harness/io/exit_codes.h"
#include "harness/io/golden_cases.h"
#include "harness/io/npy.h"
#include "harness/job/call_check.h"
#include "harness/job/gpu_backend.h"
#include "harness/job/gpu_job.h"
#include "harness/job/host_reference.h"
#include "harness/job/job.h"
#include "harness/job/spawn.h"
#include "reference/workspace.h"

namespace ar {
namespace {

struct ProbeSettings {
  std::string json_path;
  HandleRequest handles = HandleRequest::kAuto;
  double timeout_ms = 10000;
  int device = -1;
  bool peers = true;
};

/// Both strategies once each on `world` ranks (this process runs `local`; empty: all of them), bf16
/// adversarial inputs, compared bit for bit with reference/ by every process for its ranks.
std::vector<ProbeAllReduce> probe_allreduce(GpuJob& gpu, int device, int world, const std::vector<int>& local,
                                            HandleKind handles, double timeout_ms, const std::string& where,
                                            const std::vector<int>& devices = {}) {
  Job& job = gpu.job();
  constexpr std::int64_t kHidden = 1024;
  const std::vector<GpuCall> calls{
      {{world, 4, kHidden, DType::kBf16}, Strategy::kOneShot, Profile::kFlashInfer, false},
      {{world, 64, kHidden, DType::kBf16}, Strategy::kTwoShot, Profile::kFlashInfer, false}};
  std::string plan = fmt::format("program mnnvl-ar {}\ncommand probe\nprocesses {}\nworld size {}\nhandles {}\n",
                                 MNNVL_AR_VERSION, job.processes(), world, handle_kind_name(handles));
  GroupSizing sizing{0, 16, static_cast<std::uint64_t>(timeout_ms * 1e6), -1};
  for (std::size_t i = 0; i < calls.size(); ++i) {
    plan +=
        plan_line(static_cast<int>(i) + 1, "probe", calls[i], calls[i].strategy, Profile::kFlashInfer, i + 1) + "\n";
    sizing.add(calls[i].strategy, calls[i].shape);
  }
  agree_on_plan(job, "probe all-reduce", plan);
  auto group = gpu.open_group_on(world, sizing, fmt::format("probe-w{}", world), device, devices, local);
  gpu.refuse_unrunnable(*group, calls, [&](std::size_t i) {
    return fmt::format("the probe's {} call", strategy_name(calls[i].strategy));
  });
  std::vector<ProbeAllReduce> rows;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const GpuCall& call = calls[i];
    ProbeAllReduce row{where, std::string(strategy_name(call.strategy)), world, call.shape.tokens, kHidden, "bf16"};
    const HostTensor input = adversarial_input(DType::kBf16, world, call.shape.tokens, kHidden, i + 1);
    group->upload(input);
    CallReport mine;
    mine.timeout = group->run(call);
    if (!mine.timeout)
      check_outputs(*group, group->local_ranks(), call.shape,
                    parallel_reference(input, call.strategy, Profile::kFlashInfer), {}, mine);
    const MergedCall merged = agree_on_call(job, mine, world);
    row.elements = merged.elements;
    row.mismatches = merged.mismatches;
    if (merged.timeout) row.timeout = merged.timeout->message;
    rows.push_back(row);
    if (merged.timeout) break;  // a workspace shared by processes is not reset after a timeout
  }
  return rows;
}

/// 5. What this setup cannot show, for the report's "not checked" list.
void list_not_checked(ProbeReport& report, int visible, bool peers, bool multi_process) {
  if (visible < 2)
    report.not_checked.push_back(
        fmt::format("P2P access, peer latency and bandwidth: need 2 or more GPUs in one "
                    "process ({} visible)",
                    visible));
  else if (!peers)
    report.not_checked.push_back("P2P access, peer latency and bandwidth: skipped (--no-peers)");
  if (!multi_process)
    report.not_checked.push_back(
        "ranks as separate processes (handle export, exchange and import): run `mnnvl-ar "
        "probe --spawn 2` or under a launcher");
  if (report.hosts.size() < 2)
    report.not_checked.push_back("memory shared across hosts (fabric handles between hosts): the job is on one host");
  if (report.gpus.size() == 1)
    report.not_checked.push_back("an all-reduce across GPUs: one GPU (its ranks poll each other on the same device)");
  report.not_checked.push_back("NVLink multicast: the attribute only; this project never creates a multicast object");
}

int probe_job(Job& job, const ProbeSettings& s, std::ostream& out, std::ostream& err) {
  const auto gpu = GpuJob::start(job, "probe", {s.device, "", s.handles}, err);
  if (!gpu) return kExitUsage;
  GpuBackend& backend = gpu->backend();
  const JobDevice& choice = gpu->choice();
  ProbeReport report;
  report.launcher = job.launcher();
  report.processes = job.processes();
  const int visible = backend.device_count();

  // 1. The GPUs: every one this process sees, or each rank's own (gathered, one entry per physical GPU).
  if (!job.multi_process()) {
    report.hosts = {job.host()};
    for (int d = 0; d < visible; ++d) report.gpus.push_back({{}, job.host(), backend.device(d), backend.nvml(d)});
  } else {
    const ProbeGpu mine{{job.rank()}, job.host(), backend.device(choice.device), backend.nvml(choice.device)};
    std::set<std::string> hosts;
    std::map<std::string, std::size_t> index;
    for (const std::string& text : job.gather(probe_gpu_to_json(mine))) {
      ProbeGpu g = probe_gpu_from_json(text);
      hosts.insert(g.host);
      const std::string key = g.host + "/" + g.device.pci_bus_id;
      if (auto it = index.find(key); it != index.end()) {
        report.gpus[it->second].ranks.insert(report.gpus[it->second].ranks.end(), g.ranks.begin(), g.ranks.end());
      } else {
        index[key] = report.gpus.size();
        report.gpus.push_back(std::move(g));
      }
    }
    report.hosts.assign(hosts.begin(), hosts.end());
  }
  report.imex_host = job.host();
  report.imex = backend.imex();

  // 2. Handles: the processes of a job agree on them as `run` does (a refusal is a failed check here).
  HandleKind handles = HandleKind::kPosix;
  if (job.multi_process()) {
    try {
      const HandleDecision& d = gpu->handles();
      handles = *d.kind;
      report.handles = d.summary;
    } catch (const UsageError& e) {
      report.handles = e.what();
      report.handles_failed = true;
    }
  } else {
    report.handles =
        "none exported: one process holds every rank (`mnnvl-ar probe --spawn 2` exchanges POSIX "
        "handles between processes)";
  }

  // 3. Peers: rank 0 measures between the GPUs it sees (the others wait at the next gather).
  report.peers_host = job.host();
  if (job.leader() && s.peers && visible >= 2) {
    std::vector<int> devices(static_cast<std::size_t>(visible));
    for (int d = 0; d < visible; ++d) devices[d] = d;
    fmt::print(err, "measuring P2P access, latency and bandwidth between {} GPUs...\n", visible);
    report.peers = backend.measure_peers(devices);
  }

  // 4. The all-reduce over all ranks: one per process in a job, two virtual ranks on each GPU otherwise.
  if (job.multi_process()) {
    if (report.handles_failed)
      report.allreduce_note = "the processes cannot share memory (see handles)";
    else if (!is_supported_world_size(job.processes()))
      report.allreduce_note =
          fmt::format("{} processes is not a supported world size ({})", job.processes(), world_sizes_text());
    else
      report.allreduce = probe_allreduce(*gpu, choice.device, job.processes(), {job.rank()}, handles, s.timeout_ms,
                                         fmt::format("{} processes, one rank each", job.processes()));
  } else {
    for (int d = 0; d < visible; ++d) {
      const auto rows =
          probe_allreduce(*gpu, d, 2, {}, handles, s.timeout_ms, fmt::format("GPU {}, 2 virtual ranks", d));
      report.allreduce.insert(report.allreduce.end(), rows.begin(), rows.end());
    }
    // Across GPUs: one rank on each of the first k GPUs (k the largest supported world size that fits), so
    // every Lamport store to a peer crosses the link between two GPUs. Memory that cannot be mapped across
    // them is a failed check, with the driver's words.
    int across = 0;
    for (int w : kWorldSizes)
      if (w <= visible) across = w;
    if (across >= 2) {
      std::vector<int> devices(static_cast<std::size_t>(across));
      for (int d = 0; d < across; ++d) devices[d] = d;
      const std::string where = fmt::format("GPUs 0-{}, one rank each", across - 1);
      try {
        const auto rows = probe_allreduce(*gpu, 0, across, {}, handles, s.timeout_ms, where, devices);
        report.allreduce.insert(report.allreduce.end(), rows.begin(), rows.end());
      } catch (const std::exception& e) {
        report.allreduce.push_back(
            ProbeAllReduce{where, "-", across, 0, 0, "bf16", 0, 0, fmt::format("could not run: {}", e.what())});
      }
    }
  }

  list_not_checked(report, visible, s.peers, job.multi_process());

  const bool ok = evaluate_probe(report);
  if (job.leader()) {
    fmt::print(out, "{}", render_probe(report));
    if (!s.json_path.empty()) write_file_atomically(s.json_path, probe_json(report));
  }
  return ok ? kExitOk : kExitDifference;
}

}  // namespace

int probe_command(const CommandArgs& all_args, std::ostream& out, std::ostream& err) {
  CommandArgs args = all_args;
  const int spawn = take_spawn_option(args);
  ProbeSettings s;
  std::string handles_text;
  bool no_peers = false;
  JobOptions job_options;
  po::options_description options("options");
  // clang-format off
  options.add_options()
      ("json", po::value(&s.json_path)->default_value(""), "also write the report as JSON to this file")
      ("handles", po::value(&handles_text)->default_value("auto"),
       "in a job: auto, posix or fabric (as `run`; with fabric a refused trial allocation is shown as the driver "
       "words it)")
      ("timeout-ms", po::value(&s.timeout_ms)->default_value(10000), "per device wait of the all-reduce")
      ("device", po::value(&s.device)->default_value(-1), "in a job: this process's GPU (default LOCAL_RANK % GPUs)")
      ("no-peers", po::bool_switch(&no_peers), "skip the P2P latency and bandwidth measurements")
      ("spawn", po::value<int>(), "start K processes on this host (this one is rank 0)");
  // clang-format on
  add_job_options(options, job_options);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar probe [--json FILE] [--spawn K] [--handles auto|posix|fabric]",
      "The bring-up report of a machine or NVLink domain. For every GPU the ranks see: name, SMs, memory,\n"
      "driver and CUDA versions, PCI id; NVLink per link (state, version, speed, replay/recovery/CRC error\n"
      "counters) and the fabric state, clique, cluster UUID and health from NVML (libnvidia-ml.so.1, loaded at\n"
      "run time); support for VMM, POSIX and fabric handles and multicast (device attributes only: nothing is\n"
      "created to learn them, and no multicast object ever is); the IMEX channels present. Between the GPUs\n"
      "rank 0's process sees: the P2P access matrix, the round trip of a flag ping-pong, and copy-engine peer\n"
      "bandwidth one way and both ways at once. Then a short all-reduce over all ranks with both strategies,\n"
      "bit for bit against reference/ (one process: 2 virtual ranks on each GPU, then one rank on each of the\n"
      "first 2, 4 or 8 GPUs; a job: one rank per process, sharing memory as `run` does). It ends with what\n"
      "this setup could not check and a verdict per check:\n"
      "ok, warning (reported, not fatal: inactive links, error counters, fabric health), FAILED, not checked.\n\n" +
          std::string(kJobHelp) +
          "\n\n"
          "examples:\n"
          "  mnnvl-ar probe                          # every GPU this process sees\n"
          "  mnnvl-ar probe --spawn 2 --json p.json  # two processes: handle exchange and a 2-rank all-reduce\n"
          "  srun -N 2 --ntasks-per-node 4 mnnvl-ar probe --handles fabric\n\n"
          "exit codes: 0 every check that could run passed, 1 a check failed (the report says which and why), 2 bad\n"
          "usage, no GPU, or a build without the CUDA layer"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;
  if (!s.json_path.empty()) check_output_path(s.json_path);  // before the work, so a typo costs nothing
  if (vm.count("spawn")) throw UsageError("--spawn is given more than once");
  s.handles = handle_request_option(handles_text);
  s.peers = !no_peers;
  check_timeout_ms("--timeout-ms", s.timeout_ms, /*zero_waits_forever=*/false);

  return run_as_job(spawn, "probe", args, job_options, out, err,
                    [&](Job& job, std::ostream& job_out) { return probe_job(job, s, job_out, err); });
}

}  // namespace ar
