#include "harness/job/gpu_job.h"

#include <algorithm>
#include <limits>
#include <map>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "harness/io/exit_codes.h"
#include "harness/io/sha256.h"
#include "harness/job/wire_format.h"

namespace ar {

std::vector<int> local_ranks_of(int world, int processes, int process) {
  if (processes < 1 || world % processes != 0)
    throw UsageError(
        fmt::format("W = {} ranks cannot be split evenly over {} processes (choose a world size that is "
                    "a multiple of the process count)",
                    world, processes));
  const int per = world / processes;
  std::vector<int> ranks;
  for (int r = 0; r < per; ++r) ranks.push_back(process * per + r);
  return ranks;
}

std::optional<std::string> gather_gpu_problems(Job& job, GpuBackend& backend) {
  const std::optional<std::string> mine = backend.unavailable();
  const std::vector<std::string> all = job.gather(mine.value_or(""));
  std::map<std::string, std::vector<int>> by_reason;
  for (int r = 0; r < static_cast<int>(all.size()); ++r)
    if (!all[r].empty()) by_reason[all[r]].push_back(r);
  if (by_reason.empty()) return std::nullopt;
  if (!job.multi_process()) return all[0];
  std::vector<std::string> parts;
  for (const auto& [why, ranks] : by_reason) parts.push_back(fmt::format("{}: {}", ranks_text(ranks), why));
  return fmt::format("{}", fmt::join(parts, "; "));
}

JobDevice pick_device(const Job& job, GpuBackend& backend, int requested) {
  const int count = backend.device_count();
  if (requested >= 0) {
    if (requested >= count)
      throw UsageError(fmt::format("--device {}: this process sees {} GPU{}", requested, count, count == 1 ? "" : "s"));
    return {requested, false};
  }
  const DeviceChoice c = choose_device(job.launch(), count);
  return {c.device, c.shared};
}

std::vector<int> devices_option(const std::string& text, const Job& job, int visible) {
  if (text.empty()) return {};
  if (job.multi_process())
    throw UsageError(
        "--devices spreads one process's ranks over several GPUs; in a job of several processes each "
        "process runs on one GPU (--device, or LOCAL_RANK % visible GPUs)");
  std::vector<int> devices;
  if (text == "all") {
    for (int d = 0; d < visible; ++d) devices.push_back(d);
  } else {
    std::size_t at = 0;
    while (at <= text.size()) {
      const std::size_t comma = std::min(text.find(',', at), text.size());
      const std::string item = text.substr(at, comma - at);
      int d = -1;
      std::size_t used = 0;
      try {
        d = std::stoi(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != item.size() || d < 0)
        throw UsageError(fmt::format("--devices: '{}' is not a GPU number (give e.g. 0,1 or all)", item));
      if (d >= visible)
        throw UsageError(fmt::format("--devices: GPU {} is not visible (this process sees {} GPU{})", d, visible,
                                     visible == 1 ? "" : "s"));
      if (std::find(devices.begin(), devices.end(), d) != devices.end())
        throw UsageError(fmt::format("--devices: GPU {} is named twice", d));
      devices.push_back(d);
      at = comma + 1;
    }
  }
  if (devices.size() < 2)
    throw UsageError(
        fmt::format("--devices {}: spreading ranks needs at least 2 GPUs (this process sees {}); leave "
                    "--devices out to run every rank on one GPU",
                    text, visible));
  return devices;
}

std::vector<int> job_gpus(Job& job, int device, const std::vector<int>& devices) {
  if (!devices.empty()) return devices;
  std::vector<int> out;
  for (const std::string& text : job.gather(std::to_string(device))) out.push_back(std::stoi(text));
  return out;
}

void describe_devices(GpuBackend& backend, const std::vector<int>& devices, std::ostream& out) {
  fmt::print(out, "# one process drives {} GPUs, the ranks in equal contiguous blocks in this order:\n",
             devices.size());
  for (int d : devices) {
    const GpuDevice g = backend.device(d);
    fmt::print(out, "#   GPU {}: {} (PCI {})\n", d, g.name, g.pci_bus_id);
  }
}

std::vector<int> splittable_worlds(const std::vector<int>& worlds, int parts, bool all, const std::string& why,
                                   const Job& job, std::ostream& err) {
  std::vector<int> kept, skipped;
  for (int w : worlds) (w % parts == 0 ? kept : skipped).push_back(w);
  if (!skipped.empty() && !all)
    throw UsageError(fmt::format("W = {} cannot be split evenly over {}", fmt::join(skipped, ", "), why));
  if (kept.empty()) throw UsageError(fmt::format("no supported world size splits evenly over {}", why));
  if (!skipped.empty() && job.leader())
    fmt::print(err, "W = {} skipped: not a multiple of {}\n", fmt::join(skipped, ", "), why);
  return kept;
}

std::vector<int> runnable_worlds(const Job& job, const std::vector<int>& worlds, const std::vector<int>& devices,
                                 bool all, std::ostream& err) {
  const int processes = job.processes();
  if (devices.empty())
    return splittable_worlds(worlds, processes, all,
                             fmt::format("the {} processes (each process runs W / {} ranks)", processes, processes),
                             job, err);
  return splittable_worlds(worlds, processes * static_cast<int>(devices.size()), all,
                           fmt::format("the {} GPUs of --devices", devices.size()), job, err);
}

void describe_job(Job& job, const GpuDevice& device, const JobDevice& choice, std::ostream& out, std::ostream& err) {
  if (!job.multi_process()) return;
  const nlohmann::json mine{
      {"host", job.host()}, {"device", choice.device}, {"pci", device.pci_bus_id}, {"name", device.name}};
  const std::vector<std::string> all = job.gather(mine.dump());
  if (!job.leader()) return;
  // Group the ranks by (host, GPU), in rank order of their first member.
  std::vector<std::pair<std::string, std::vector<int>>> groups;
  std::map<std::string, std::size_t> index;
  std::map<std::string, int> hosts;
  for (int r = 0; r < static_cast<int>(all.size()); ++r) {
    const nlohmann::json j = nlohmann::json::parse(all[r]);
    const std::string host = j.at("host").get<std::string>();
    ++hosts[host];
    const std::string key = fmt::format("GPU {} ({}, PCI {}) on {}", j.at("device").get<int>(),
                                        j.at("name").get<std::string>(), j.at("pci").get<std::string>(), host);
    if (!index.count(key)) {
      index[key] = groups.size();
      groups.push_back({key, {}});
    }
    groups[index[key]].second.push_back(r);
  }
  fmt::print(out, "# job: {} processes ({}) on {} host{}\n", job.processes(), job.launcher(), hosts.size(),
             hosts.size() == 1 ? "" : "s");
  for (const auto& [where, ranks] : groups) fmt::print(out, "#   {}: {}\n", ranks_text(ranks), where);
  for (const auto& [where, ranks] : groups)
    if (ranks.size() > 1)
      fmt::print(err,
                 "notice: {} share {}: processes on one GPU take turns on it (time slices), so this checks bits, "
                 "not speed, unless the GPU runs under MPS, which runs their kernels at once\n",
                 ranks_text(ranks), where);
}

SharingFacts local_sharing_facts(const Job& job, GpuBackend& backend, int device) {
  SharingFacts f;
  f.rank = job.rank();
  f.host = job.host();
  f.host_id = job.host_id();
  f.device = device;
  const GpuDevice d = backend.device(device);
  f.posix_supported = d.posix_handles;
  f.fabric_attribute = d.fabric_handles;
  const GpuNvml n = backend.nvml(device);
  if (!n.fabric.queried) {
    f.nvml_error = n.fabric.error.empty() ? n.error : n.fabric.error;
    if (f.nvml_error.empty()) f.nvml_error = "no answer";
  } else {
    f.fabric_state = n.fabric.state;
    f.fabric_status = n.fabric.status;
    f.fabric_status_text = n.fabric.status_text;
    for (std::uint8_t b : n.fabric.cluster_uuid) f.cluster_uuid_nonzero = f.cluster_uuid_nonzero || b != 0;
  }
  const GpuImex imex = backend.imex();
  f.imex_directory = imex.directory;
  f.imex_channels = static_cast<int>(imex.channels.size());
  return f;
}

namespace {

std::vector<SharingFacts> gather_facts(Job& job, const SharingFacts& mine) {
  std::vector<SharingFacts> all;
  for (const std::string& text : job.gather(mine.to_json())) all.push_back(SharingFacts::from_json(text));
  return all;
}

}  // namespace

HandleDecision agree_on_handles(Job& job, GpuBackend& backend, int device, HandleRequest request) {
  if (!job.multi_process()) {
    HandleDecision d;
    d.kind = HandleKind::kPosix;
    d.summary = "none exported: one process holds every rank";
    return d;
  }
  SharingFacts mine = local_sharing_facts(job, backend, device);
  std::vector<SharingFacts> all = gather_facts(job, mine);
  if (should_try_fabric(request, all)) {
    const std::optional<std::string> refused = backend.try_fabric_allocation(device);
    mine.fabric_trial_made = true;
    mine.fabric_trial_error = refused.value_or("");
    all = gather_facts(job, mine);
  }
  HandleDecision d = choose_handles(request, all);
  if (!d.kind) throw UsageError(d.summary);
  return d;
}

std::string bounded_plan(const std::string& plan, std::size_t limit) {
  if (plan.size() <= limit) return plan;
  // Keep whole lines up to the limit (so an early difference is still named item by item) and stand for the
  // rest with its digest (so a late one is still found).
  std::size_t cut = plan.rfind('\n', limit);
  cut = cut == std::string::npos ? 0 : cut + 1;
  const std::string rest = plan.substr(cut);
  const auto lines = std::count(rest.begin(), rest.end(), '\n');
  return plan.substr(0, cut) + fmt::format("the remaining {} items: sha256 {}\n", lines, sha256_hex(rest));
}

void agree_on_plan(Job& job, const std::string& what, const std::string& plan) {
  if (!job.multi_process()) return;
  // Rank 0 sends every contribution back in one frame: together they must fit it.
  const std::size_t limit = (wire::kMaxPayloadBytes - 64 * 1024) / static_cast<std::size_t>(job.processes());
  job.rendezvous().agree(what, bounded_plan(plan, limit));
}

std::string plan_line(int index, const std::string& label, const GpuCall& call, Strategy requested, Profile expect,
                      std::uint64_t seed) {
  std::string line = fmt::format("call {}: {} {} N={} D={} {} W={} {} expect={} pdl={} seed={}", index, label,
                                 strategy_name(requested), call.shape.tokens, call.shape.hidden,
                                 dtype_name(call.shape.dtype), call.shape.world_size, profile_name(call.profile),
                                 profile_name(expect), call.pdl ? "on" : "off", seed);
  if (call.norm)
    line += fmt::format(" fused eps={:#010x} weight-bias={:#010x} sms={}{}", call.norm->epsilon, call.norm->weight_bias,
                        call.norm->sm_count, call.norm->separate_kernel ? " separate-kernel" : "");
  if (call.norm && call.norm->quant != QuantMode::kNone)
    line += fmt::format(" quant={} layout={} scale={:#010x}", quant_mode_name(call.norm->quant),
                        scale_layout_name(call.norm->layout), call.norm->quant_scale);
  return line;
}

}  // namespace ar

namespace ar {

void GroupSizing::add(Strategy requested, const ProblemShape& shape, bool fused) {
  if (takes_direct_path(resolve_strategy(requested, shape), fused, shape, direct_from_bytes)) {
    direct_scatter_bytes = std::max(direct_scatter_bytes, ::ar::direct_scatter_bytes(shape));
    direct_broadcast_bytes = std::max(direct_broadcast_bytes, ::ar::direct_broadcast_bytes(shape));
    buffer_bytes = std::max(buffer_bytes, kBufferAlignment);
  } else {
    buffer_bytes = std::max({buffer_bytes, kBufferAlignment, required_buffer_bytes(requested, shape)});
  }
  io_bytes = std::max(io_bytes, shape.bytes_per_rank());
  norm_io = norm_io || fused;
}

std::unique_ptr<GpuJob> GpuJob::start(Job& job, std::string_view command, const GpuJobRequest& request,
                                      std::ostream& err) {
  // The request's own mistakes first: they are the user's to mend whether or not a GPU is here.
  if (request.device < -1)
    throw UsageError(fmt::format("--device {} is not a GPU number (0, 1, ...; -1 or left out: the job's choice)",
                                 request.device));
  if (request.devices_text != "all") (void)devices_option(request.devices_text, job, std::numeric_limits<int>::max());
  auto backend = make_gpu_backend();
  if (auto why = gather_gpu_problems(job, *backend)) {
    if (job.leader()) fmt::print(err, "mnnvl-ar {}: no GPU: {}\n", command, *why);
    return nullptr;
  }
  return std::unique_ptr<GpuJob>(new GpuJob(job, std::move(backend), request));
}

GpuJob::GpuJob(Job& job, std::unique_ptr<GpuBackend> backend, const GpuJobRequest& request)
    : job_(job), backend_(std::move(backend)), request_(request) {
  choice_ = pick_device(job_, *backend_, request_.device);
  device_ = backend_->device(choice_.device);
  devices_ = devices_option(request_.devices_text, job_, device_.device_count);
}

std::vector<int> GpuJob::worlds(const std::vector<int>& requested, bool all, std::ostream& err) const {
  return runnable_worlds(job_, requested, devices_, all, err);
}

std::vector<int> GpuJob::gpus() { return job_gpus(job_, lead_device(), devices_); }

void GpuJob::describe(std::ostream& out, std::ostream& err) {
  describe_job(job_, device_, choice_, out, err);
  if (!devices_.empty()) describe_devices(*backend_, devices_, out);
}

const HandleDecision& GpuJob::handles() {
  if (!handles_) handles_ = agree_on_handles(job_, *backend_, lead_device(), request_.handles);
  return *handles_;
}

std::unique_ptr<GpuRanks> GpuJob::open_group(int world, const GroupSizing& sizing, const std::string& name,
                                             const std::string& plan_title, const std::string& plan) {
  agree_on_plan(job_, plan_title, plan);
  return open_group_on(
      world, sizing, name, choice_.device, devices_,
      job_.multi_process() ? local_ranks_of(world, job_.processes(), job_.rank()) : std::vector<int>{});
}

std::unique_ptr<GpuRanks> GpuJob::open_group_on(int world, const GroupSizing& sizing, const std::string& name,
                                                int device, const std::vector<int>& devices,
                                                const std::vector<int>& local) {
  const BufferRequest request = request_buffer_bytes({world, 1, 8, DType::kBf16}, sizing.buffer_bytes);
  if (request.error) throw UsageError(fmt::format("W = {}: {}", world, *request.error));
  GpuBackend::GroupOptions options{
      device, world, request.bytes, sizing.io_bytes, sizing.timeout_ns, sizing.round_bytes};
  options.devices = devices;
  options.norm_io = sizing.norm_io;
  options.direct_from_bytes = sizing.direct_from_bytes;
  options.direct_scatter_bytes = sizing.direct_scatter_bytes;
  options.direct_broadcast_bytes = sizing.direct_broadcast_bytes;
  if (!local.empty()) {
    options.local_ranks = local;
    options.handles = *handles().kind;
    options.rendezvous = &job_.rendezvous();
    options.job_name = name;
  }
  return backend_->open(options);
}

void GpuJob::refuse_unrunnable(GpuRanks& group, const std::vector<GpuCall>& calls,
                               const std::function<std::string(std::size_t)>& describe) {
  std::string cannot;
  for (std::size_t i = 0; i < calls.size() && cannot.empty(); ++i)
    if (auto why = group.cannot_run(calls[i])) cannot = fmt::format("{}: {}", describe(i), *why);
  const std::vector<std::string> refusals = job_.gather(cannot);
  for (int p = 0; p < job_.processes(); ++p)
    if (!refusals[p].empty())
      throw UsageError(job_.multi_process() ? fmt::format("rank {}: {}", p, refusals[p]) : refusals[p]);
  // The direct path pairs block b of every rank with block b of each other rank, so every process must launch a
  // direct call with the same grid; the grid follows the GPU's occupancy, so processes on GPUs of different
  // models could differ. They compare their grids and refuse, naming the difference, before any kernel runs.
  if (!job_.multi_process()) return;
  std::string grids;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const std::string shape = group.launch_shape(calls[i]);
    if (shape.ends_with(kDirectPathLaunch)) grids += fmt::format("{}: {}\n", describe(i), shape);
  }
  agree_on_plan(job_, "the direct path's launch grids", grids);
}

}  // namespace ar
