// mnnvl-ar bench: nccl-tests style timing of the kernels (W virtual ranks on one GPU, one process's ranks
// spread over several GPUs with --devices, or the processes of a job each timing its share, with a barrier
// before every timed region), every timed size verified bit for bit against reference/, with the machine's
// limits (launch overhead, copy bandwidth) and, where one process drives several GPUs, NCCL's all-reduce
// over the same GPUs measured in the same run, the same way.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdlib>
#include <map>
#include <ostream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "harness/commands/commands.h"
#include "harness/io/exit_codes.h"
#include "harness/job/gpu_backend.h"
#include "harness/job/gpu_check.h"
#include "harness/commands/job_options.h"
#include "harness/job/job.h"
#include "harness/job/job_gpu.h"
#include "harness/io/npy.h"
#include "harness/commands/options.h"
#include "harness/job/spawn.h"

namespace ar {
namespace {

/// "4K" -> 4096, "256M", "1G", "128" (bytes).
std::int64_t size_option(const std::string& name, const std::string& text) {
  if (text.empty()) throw UsageError(fmt::format("{}: empty size", name));
  std::int64_t scale = 1;
  std::string digits = text;
  switch (text.back()) {
    case 'K': case 'k': scale = std::int64_t(1) << 10; digits.pop_back(); break;
    case 'M': case 'm': scale = std::int64_t(1) << 20; digits.pop_back(); break;
    case 'G': case 'g': scale = std::int64_t(1) << 30; digits.pop_back(); break;
    default: break;
  }
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(digits, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != digits.size() || v <= 0)
    throw UsageError(fmt::format("{} '{}' is not a size (a positive number with an optional K, M or G)", name, text));
  return v * scale;
}

std::string size_text(std::int64_t bytes) {
  if (bytes % (std::int64_t(1) << 30) == 0) return fmt::format("{}G", bytes >> 30);
  if (bytes % (std::int64_t(1) << 20) == 0) return fmt::format("{}M", bytes >> 20);
  if (bytes % (std::int64_t(1) << 10) == 0) return fmt::format("{}K", bytes >> 10);
  return fmt::format("{}", bytes);
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}

struct BenchRow {
  int world = 0;
  std::int64_t bytes = 0;
  ProblemShape shape;
  Strategy requested = Strategy::kAuto;
  Strategy resolved = Strategy::kOneShot;
  double us = 0;
  double algbw = 0, busbw = 0;
  CallTraffic traffic;
  double traffic_gbps = 0, pct_copy = 0;
  std::int64_t wrong = -1;  ///< -1: not checked
  std::optional<double> nccl_us;
  std::string launch;
};

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// The command line, parsed and checked.
struct BenchSettings {
  std::string json_path, nccl_lib, world_text, devices_text;
  std::vector<DType> dtypes;
  std::vector<Strategy> strategies;
  std::vector<int> worlds;
  std::vector<std::int64_t> sizes;
  std::map<std::string, std::string> labels;
  Profile profile = Profile::kFlashInfer;
  int iters = 20, warmup = 5, graph = 0, check = 1, pdl = 1, device = -1;
  std::int64_t hidden = 4096, round_bytes = -1;
  std::uint64_t seed = 1;
  double timeout_ms = 10000;
  HandleRequest handles = HandleRequest::kAuto;
};

/// What one process measured for one row, sent to every process.
struct RowReport {
  double us = 0;         ///< NaN: a wait timed out
  std::int64_t wrong = 0;
  std::string to_text() const { return fmt::format("{} {}", std::isnan(us) ? -1.0 : us, wrong); }
  static RowReport from_text(const std::string& t) {
    RowReport r;
    std::istringstream in(t);
    if (!(in >> r.us >> r.wrong)) throw std::runtime_error("malformed bench row report from a peer");
    if (r.us < 0) r.us = NAN;
    return r;
  }
};

int bench_job(Job& job, const BenchSettings& s, std::ostream& out, std::ostream& err) {
  auto backend = make_gpu_backend();
  if (auto why = gather_gpu_problems(job, *backend)) {
    if (job.leader()) fmt::print(err, "mnnvl-ar bench: no GPU: {}\n", *why);
    return kExitUsage;
  }
  const int processes = job.processes();
  const JobDevice choice = pick_device(job, *backend, s.device);
  const GpuDevice dev = backend->device(choice.device);
  const std::vector<int> devices = devices_option(s.devices_text, job, dev.device_count);
  const std::vector<int> worlds = runnable_worlds(job, s.worlds, devices, /*all=*/false, err);
  const int device = devices.empty() ? choice.device : devices.front();
  const std::vector<int> gpus = job_gpus(job, device, devices);
  GpuLimits limits;
  if (job.leader()) {  // one process measures the machine; the others' copies would only disturb it
    fmt::print(err, "measuring launch overhead and copy bandwidth...\n");
    limits = backend->measure_limits(device, std::int64_t(1) << 30);
  }

  // NCCL runs over the GPUs the ranks run on, one rank per GPU: its rows are those with W = the GPU count.
  std::unique_ptr<NcclAllReduce> nccl;
  std::string nccl_note;
  if (job.multi_process()) {
    nccl_note = "not measured (a job of several processes; the NCCL baseline runs in one process over its GPUs: "
                "use --devices)";
  } else if (!devices.empty()) {
    std::string lib = s.nccl_lib;
    if (lib.empty()) {
      const char* env = std::getenv("AR_NCCL_LIB");
      lib = env ? env : "libnccl.so.2";
    }
    try {
      nccl = backend->open_nccl(lib, devices);
      nccl_note = fmt::format("NCCL {} over GPUs {} (one rank each, NVLS off), {}; timed like the kernels, at W = {}",
                              nccl->version(), fmt::join(devices, ","), lib, nccl->ranks());
    } catch (const std::exception& e) {
      nccl_note = fmt::format("not measured: {}", e.what());
    }
  } else {
    nccl_note = dev.device_count >= 2
                    ? "not measured (the ranks run on one GPU; give --devices 0,1 or all to spread them over GPUs "
                      "and time NCCL on the same ones)"
                    : "not measured (needs 2+ GPUs; this machine shows 1)";
  }

  fmt::print(out, "# mnnvl-ar bench on {} (sm_{}, {} SMs, {:.0f} GiB), driver {} (CUDA {}), runtime {}\n", dev.name,
             dev.compute_capability, dev.sm_count, static_cast<double>(dev.memory_bytes) / (1 << 30),
             dev.driver.empty() ? "?" : dev.driver, dev.cuda_driver, dev.cuda_runtime);
  describe_job(job, dev, choice, out, err);
  if (!devices.empty()) describe_devices(*backend, devices, out);
  fmt::print(out, "# launch overhead (empty kernel): eager {:.2f} us, CUDA graph {:.2f} us per launch\n",
             limits.launch_eager_us, limits.launch_graph_us);
  fmt::print(out, "# device-to-device copy: {:.0f} GB/s (bytes read + written, {} copy)\n", limits.copy_gbps,
             size_text(limits.copy_bytes));
  fmt::print(out, "# NCCL: {}\n", nccl_note);
  fmt::print(out, "# {} mode, {} iterations{}, {} warm-up, profile {}, PDL {}, D = {}\n",
             s.graph > 0 ? "CUDA-graph" : "eager", s.iters, s.graph > 0 ? fmt::format(" x {} graph launches", s.graph) : "",
             s.warmup, profile_name(s.profile), s.pdl ? "on" : "off", s.hidden);
  const HandleDecision handles = agree_on_handles(job, *backend, device, s.handles);
  if (job.multi_process())
    fmt::print(out, "# {} processes, a barrier before every timed region; time = the slowest process's\n# handles: {}\n",
               processes, handles.summary);

  std::string dtype_names, strategy_names;
  for (DType dt : s.dtypes) dtype_names += fmt::format("{} ", dtype_name(dt));
  for (Strategy st : s.strategies) strategy_names += fmt::format("{} ", strategy_name(st));
  std::vector<BenchRow> rows;
  bool failed = false, stopped = false;
  const std::size_t total = worlds.size() * s.dtypes.size() * s.sizes.size() * s.strategies.size();
  std::size_t done = 0;
  const std::string header = fmt::format(
      "{:>3} {:>10} {:>12} {:>5} {:>8} {:>10} {:>11} {:>11} {:>13} {:>6} {:>7}{}", "W", "size", "count", "type",
      "strategy", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "traffic(GB/s)", "%copy", "#wrong",
      nccl ? fmt::format(" {:>9} {:>7}", "nccl(us)", "speedup") : "");
  for (int world : worlds) {
    if (stopped) break;
    std::int64_t buffer = kBufferAlignment, io = 16;
    for (DType dt : s.dtypes)
      for (std::int64_t bytes : s.sizes) {
        const std::int64_t count = bytes / dtype_bytes(dt), d = std::min(s.hidden, count);
        const ProblemShape shape{world, count / d, d, dt};
        for (Strategy st : s.strategies) buffer = std::max(buffer, required_buffer_bytes(st, shape));
        io = std::max(io, bytes);
      }
    const BufferRequest request = request_buffer_bytes({world, 1, 8, DType::kBf16}, buffer);
    if (request.error) throw UsageError(fmt::format("W = {}: {}", world, *request.error));
    std::string plan = fmt::format(
        "program mnnvl-ar {}\ncommand bench\nprocesses {}\nworld size {}\nhandles {}\nsizes {}\ndtypes {}\n"
        "strategies {}\niters {} warmup {} graph {}\nprofile {} pdl {}\nhidden {}\nseed {}\ncheck {}\ntimeout-ms {}\n",
        MNNVL_AR_VERSION, processes, world, handle_kind_name(*handles.kind), fmt::join(s.sizes, ","), dtype_names,
        strategy_names, s.iters, s.warmup, s.graph,
        profile_name(s.profile), s.pdl, s.hidden, s.seed, s.check, s.timeout_ms);
    agree_on_plan(job, fmt::format("plan at W = {}", world), plan);
    GpuBackend::GroupOptions group_options{device, world, request.bytes, io,
                                           static_cast<std::uint64_t>(s.timeout_ms * 1e6), s.round_bytes};
    group_options.devices = devices;
    if (job.multi_process()) {
      group_options.local_ranks = local_ranks_of(world, processes, job.rank());
      group_options.handles = *handles.kind;
      group_options.rendezvous = &job.rendezvous();
      group_options.job_name = fmt::format("bench-w{}", world);
    }
    auto group = backend->open(group_options);
    const std::vector<int> local = group->local_ranks();
    fmt::print(out, "\n{}\n", header);
    for (DType dt : s.dtypes) {
      if (stopped) break;
      for (std::int64_t bytes : s.sizes) {
        if (stopped) break;
        const std::int64_t count = bytes / dtype_bytes(dt), d = std::min(s.hidden, count);
        const ProblemShape shape{world, count / d, d, dt};
        const HostTensor input = seeded_random_input(dt, world, shape.tokens, shape.hidden, s.seed + bytes, 12);
        group->upload(input);
        std::map<Strategy, HostTensor> references;  // by resolved strategy
        std::optional<double> nccl_us;
        if (nccl && nccl->ranks() == world) {  // NCCL has one rank per GPU
          try {
            nccl_us = nccl->time_us(bytes, dt, s.warmup, s.iters, s.graph);
          } catch (const std::exception& e) {  // the baseline failing is no reason to stop timing the kernels
            nccl_note = fmt::format("stopped at {} {}: {}", size_text(bytes), dtype_name(dt), e.what());
            fmt::print(err, "NCCL baseline {}\n", nccl_note);
            nccl.reset();
          }
        }
        for (Strategy st : s.strategies) {
          BenchRow row;
          row.world = world;
          row.bytes = bytes;
          row.shape = shape;
          row.requested = st;
          row.resolved = resolve_strategy(st, shape);
          const GpuCall call{shape, st, s.profile, s.pdl != 0};
          const std::optional<std::string> cannot = group->cannot_run(call);
          const std::vector<std::string> refusals = job.gather(cannot.value_or(""));
          for (int p = 0; p < processes; ++p)
            if (!refusals[p].empty())
              throw UsageError(fmt::format("{}{} at {}: {}", job.multi_process() ? fmt::format("rank {}: ", p) : "",
                                           strategy_name(st), bytes, refusals[p]));
          row.launch = group->launch_shape(call);
          ++done;
          if (job.leader())
            fmt::print(err, "[{}/{}] W={} {} {} {}: {}\n", done, total, world, dtype_name(dt), size_text(bytes),
                       strategy_name(st), row.launch);
          RowReport mine;
          bool synchronised = false;
          const auto barrier = [&] {
            job.rendezvous().barrier();
            synchronised = true;
          };
          try {
            mine.us = group->time_us(call, s.warmup, s.iters, s.graph,
                                     job.multi_process() ? std::function<void()>(barrier) : std::function<void()>());
          } catch (const std::runtime_error& e) {
            if (dynamic_cast<const RendezvousError*>(&e)) throw;
            fmt::print(err, "{}timeout: {}\n", job.multi_process() ? fmt::format("rank {}: ", job.rank()) : "", e.what());
            mine.us = NAN;
            if (job.multi_process() && !synchronised) job.rendezvous().barrier();  // stay in step with the others
          }
          if (s.check && !std::isnan(mine.us)) {
            auto it = references.find(row.resolved);
            if (it == references.end())
              it = references.emplace(row.resolved, parallel_reference(input, row.resolved, s.profile)).first;
            for (int r : local) mine.wrong += compare_fast(group->output(r, shape), it->second).differing;
          }
          // The row is the slowest process's time and every process's wrong elements.
          row.us = 0;
          row.wrong = s.check ? 0 : -1;
          for (const std::string& text : job.gather(mine.to_text())) {
            const RowReport r = RowReport::from_text(text);
            row.us = std::isnan(r.us) || std::isnan(row.us) ? NAN : std::max(row.us, r.us);
            if (s.check) row.wrong += r.wrong;
          }
          if (std::isnan(row.us)) {
            failed = true;
            row.wrong = s.check ? row.wrong : -1;
            // A group of several processes is not reset after a timeout: stop the benchmark here.
            if (job.multi_process()) stopped = true;
          }
          if (row.wrong > 0) failed = true;
          row.algbw = static_cast<double>(bytes) / (row.us * 1e3);
          row.busbw = row.algbw * 2.0 * (world - 1) / world;
          row.traffic = call_traffic(row.resolved, shape);
          row.traffic_gbps = static_cast<double>(row.traffic.total()) / (row.us * 1e3);
          row.pct_copy = limits.copy_gbps > 0 ? 100.0 * row.traffic_gbps / limits.copy_gbps : NAN;
          row.nccl_us = nccl_us;
          fmt::print(out, "{:>3} {:>10} {:>12} {:>5} {:>8} {:>10.2f} {:>11.2f} {:>11.2f} {:>13.1f} {:>6.1f} {:>7}{}\n",
                     world, bytes, count, dtype_name(dt), strategy_name(st), row.us, row.algbw, row.busbw,
                     row.traffic_gbps, row.pct_copy, row.wrong,
                     nccl_us ? fmt::format(" {:>9.2f} {:>7.2f}", *nccl_us, *nccl_us / row.us) : "");
          out.flush();
          rows.push_back(std::move(row));
          if (stopped) break;
        }
      }
    }
  }

  if (!s.json_path.empty() && job.leader()) {
    nlohmann::json j;
    j["command"] = "bench";
    j["date"] = utc_now();
    j["labels"] = s.labels;
    j["device"] = {{"name", dev.name},         {"compute_capability", dev.compute_capability},
                   {"sms", dev.sm_count},       {"memory_bytes", dev.memory_bytes},
                   {"l2_bytes", dev.l2_bytes},  {"clock_mhz", dev.clock_mhz},
                   {"driver", dev.driver},      {"cuda_driver", dev.cuda_driver},
                   {"cuda_runtime", dev.cuda_runtime}, {"gpus_visible", dev.device_count}};
    j["job"] = {{"processes", processes}, {"launcher", job.launcher()}, {"handles", handle_kind_name(*handles.kind)},
                {"gpu_shared", choice.shared},
                {"gpus", gpus}};
    j["settings"] = {{"mode", s.graph > 0 ? "graph" : "eager"}, {"graph_launches", s.graph}, {"iters", s.iters},
                     {"warmup", s.warmup}, {"profile", profile_name(s.profile)}, {"pdl", s.pdl != 0},
                     {"hidden", s.hidden}, {"seed", s.seed}, {"check", s.check != 0}};
    j["limits"] = {{"launch_eager_us", limits.launch_eager_us}, {"launch_graph_us", limits.launch_graph_us},
                   {"copy_gbps", limits.copy_gbps}, {"copy_bytes", limits.copy_bytes}};
    j["nccl"] = nccl_note;
    j["rows"] = nlohmann::json::array();
    for (const BenchRow& r : rows) {
      nlohmann::json row{{"world_size", r.world},
                         {"size", r.bytes},
                         {"count", r.bytes / dtype_bytes(r.shape.dtype)},
                         {"type", dtype_name(r.shape.dtype)},
                         {"strategy", strategy_name(r.requested)},
                         {"resolved", strategy_name(r.resolved)},
                         {"tokens", r.shape.tokens},
                         {"hidden", r.shape.hidden},
                         {"time_us", r.us},
                         {"algbw_gbps", r.algbw},
                         {"busbw_gbps", r.busbw},
                         {"traffic_bytes", r.traffic.total()},
                         {"traffic_gbps", r.traffic_gbps},
                         {"pct_copy", r.pct_copy},
                         {"wrong", r.wrong},
                         {"launch", r.launch}};
      if (r.nccl_us) {
        row["nccl_us"] = *r.nccl_us;
        row["speedup_vs_nccl"] = *r.nccl_us / r.us;
      }
      j["rows"].push_back(row);
    }
    write_file_atomically(s.json_path, j.dump(1) + "\n");
  }
  return failed ? kExitDifference : kExitOk;
}

}  // namespace

int bench_command(const CommandArgs& all_args, std::ostream& out, std::ostream& err) {
  CommandArgs args = all_args;
  const int spawn = take_spawn_option(args);
  BenchSettings s;
  std::string min_text, max_text, dtype_text, strategy_text, profile_text, handles_text;
  std::vector<std::string> labels;
  double factor = 2;
  JobOptions job_options;
  po::options_description options("options (nccl-tests names where they exist)");
  options.add_options()
      ("minbytes,b", po::value(&min_text)->default_value("4K"), "smallest size per rank (K, M, G suffixes)")
      ("maxbytes,e", po::value(&max_text)->default_value("256M"), "largest size per rank")
      ("stepfactor,f", po::value(&factor)->default_value(2), "multiply the size by this between rows")
      ("iters,n", po::value(&s.iters)->default_value(20), "timed calls per size")
      ("warmup_iters,w", po::value(&s.warmup)->default_value(5), "untimed calls before timing")
      ("cudagraph,G", po::value(&s.graph)->default_value(0),
       "0: eager launches; G > 0: capture the -n calls in one CUDA graph and replay it G times")
      ("datatype,d", po::value(&dtype_text)->default_value("bf16"), "bf16, fp16, fp32, a list, or all")
      ("strategy,s", po::value(&strategy_text)->default_value("all"), "oneshot, twoshot, auto, a list, or all")
      ("world,W", po::value(&s.world_text)->default_value("2"),
       "world sizes, e.g. 2,8 (virtual ranks on the GPU; with P processes, multiples of P)")
      ("profile,p", po::value(&profile_text)->default_value("flashinfer"), "flashinfer or ieee arithmetic")
      ("pdl", po::value(&s.pdl)->default_value(1), "launch_with_pdl (1 or 0)")
      ("hidden,D", po::value(&s.hidden)->default_value(4096), "D of the [N, D] shard; N = count / D (D = count if smaller)")
      ("check,c", po::value(&s.check)->default_value(1), "1: verify every timed size bit for bit (#wrong)")
      ("seed", po::value(&s.seed)->default_value(1), "seed of the full-mantissa random inputs")
      ("timeout-ms", po::value(&s.timeout_ms)->default_value(10000), "per device wait; 0 = forever")
      ("round-bytes", po::value(&s.round_bytes)->default_value(-1), "L2 budget of a round (tuning; -1 = default)")
      ("device", po::value(&s.device)->default_value(-1),
       "CUDA device (default: 0 for one process; LOCAL_RANK % visible GPUs in a job)")
      ("devices", po::value(&s.devices_text)->default_value(""),
       "one process drives several GPUs: 0,1 or all; the W ranks in equal contiguous blocks over them, and NCCL "
       "runs over the same GPUs")
      ("nccl-lib", po::value(&s.nccl_lib)->default_value(""),
       "NCCL library for the baseline (default: $AR_NCCL_LIB, else libnccl.so.2); used with --devices")
      ("label", po::value(&labels)->composing(), "KEY=VALUE recorded in the JSON (e.g. commit=abc123); repeatable")
      ("json,J", po::value(&s.json_path)->default_value(""), "write the results as JSON to this file")
      ("spawn", po::value<int>(), "start K processes on this host (this one is rank 0)")
      ("handles", po::value(&handles_text)->default_value("auto"), "how processes share memory: auto, posix or fabric");
  add_job_options(options, job_options);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar bench [-b 4K] [-e 256M] [-f 2] [-n 20] [-w 5] [-G 0] [-d bf16] [-s all] [-W 2] [-J out.json] [--spawn K]",
      "Times the all-reduce kernels, nccl-tests style: one row per size and strategy with size (bytes per rank),\n"
      "count (elements per rank), type, strategy, time(us) (mean per call), algbw = size / time,\n"
      "busbw = algbw * 2(W-1)/W, and #wrong: after timing, every rank's output of the last call is compared bit\n"
      "for bit with reference/ (0 expected; -1 when --check 0). Two more columns read the time against this\n"
      "machine: traffic (GB/s), the bytes the call must move (SPEC section 5: input reads, Lamport stores and\n"
      "loads, clears, output writes, all ranks) over the time, and %copy, that over the device-to-device copy\n"
      "bandwidth measured at the start of the same run. The header also gives the launch overhead of an empty\n"
      "kernel, eager and in a CUDA graph.\n\n"
      "One process runs W virtual ranks on its GPU; with --devices it spreads them over several GPUs (each GPU\n"
      "timed on its own stream; the row shows the slowest). Then NCCL's all-reduce over the same GPUs (one rank\n"
      "per GPU, loaded at run time, NVLS forced off) is timed at each size too, the same way (events, graph\n"
      "replay with -G), and the nccl(us) and speedup columns appear in the rows where W equals the GPU count.\n"
      "In a job of P processes each times its W / P ranks after a barrier, and the row shows the slowest\n"
      "process; #wrong sums every process's check.\n\n" +
          std::string(kJobHelp) +
          "\n\n"
          "examples:\n"
          "  mnnvl-ar bench -b 4K -e 64K -G 10 -d bf16 -s all -W 2          # small messages, graph replay\n"
          "  mnnvl-ar bench -b 4K -e 256M -f 4 -G 5 -d all -W 2,8 -J bench.json --label commit=$(git rev-parse HEAD)\n"
          "  mnnvl-ar bench --devices 0,1 -W 2 -b 4K -e 256M -f 4 -G 10   # two GPUs, NCCL on the same two\n"
          "  torchrun --nproc-per-node 8 $(which mnnvl-ar) bench -W 8 -b 4K -e 64M -f 4 -G 10\n\n"
          "exit codes: 0 ok, 1 a timed size gave wrong bits, a wait timed out or a peer died, 2 bad usage or no GPU"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;
  if (vm.count("spawn")) throw UsageError("--spawn is given more than once");

  const std::int64_t min_bytes = size_option("-b", min_text), max_bytes = size_option("-e", max_text);
  if (min_bytes > max_bytes) throw UsageError(fmt::format("-b {} is larger than -e {}", min_text, max_text));
  if (!(factor > 1)) throw UsageError("-f must be greater than 1");
  if (s.iters < 1 || s.warmup < 0 || s.graph < 0) throw UsageError("-n must be >= 1, -w and -G >= 0");
  if (s.hidden <= 0) throw UsageError("-D must be positive");
  for (const auto& d : dtype_text == "all" ? std::vector<std::string>{"bf16", "fp16", "fp32"} : split(dtype_text))
    s.dtypes.push_back(dtype_option(d));
  for (const auto& st : strategy_text == "all" ? std::vector<std::string>{"oneshot", "twoshot", "auto"} : split(strategy_text))
    s.strategies.push_back(strategy_option(st));
  for (const auto& w : split(s.world_text)) {
    int v = 0;
    try {
      v = std::stoi(w);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("-W: '{}' is not a number", w));
    }
    if (!is_supported_world_size(v)) throw UsageError(fmt::format("-W: {} is not a supported world size", v));
    s.worlds.push_back(v);
  }
  s.profile = profile_option(profile_text);
  if (s.profile == Profile::kTrtllm) throw UsageError("-p trtllm is a reference-only model; the kernels run flashinfer and ieee");
  s.handles = handle_request_option(handles_text);
  for (const auto& l : labels) {
    const auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError(fmt::format("--label '{}' is not KEY=VALUE", l));
    s.labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  // The sizes, each a whole number of rows.
  for (double v = static_cast<double>(min_bytes); v <= static_cast<double>(max_bytes) * (1 + 1e-9); v *= factor) {
    const auto bytes = static_cast<std::int64_t>(std::llround(v));
    if (s.sizes.empty() || bytes != s.sizes.back()) s.sizes.push_back(bytes);
  }
  for (DType dt : s.dtypes)
    for (std::int64_t bytes : s.sizes) {
      const std::int64_t e = dtype_bytes(dt), count = bytes / e;
      const std::int64_t d = std::min(s.hidden, count);
      if (bytes % 16 != 0 || count % d != 0 || d % elements_per_pack(dt) != 0)
        throw UsageError(fmt::format("size {} of {} is not a whole number of rows of D = {} (and of 16-byte packs); "
                                     "choose sizes and -D that divide",
                                     bytes, dtype_name(dt), d));
    }

  return run_as_job(spawn, "bench", args, job_options, out, err,
                    [&](Job& job, std::ostream& job_out) { return bench_job(job, s, job_out, err); });
}

}  // namespace ar
