// mnnvl-ar bench: nccl-tests style timing of the kernels (W virtual ranks on one GPU, one process's ranks
// spread over several GPUs with --devices, or the processes of a job each timing its share, with a barrier
// before every timed region), every timed size verified bit for bit against reference/, with the machine's
// limits (launch overhead, copy bandwidth) and, where one process drives several GPUs, NCCL's all-reduce
// over the same GPUs measured in the same run, the same way. The job around it is harness/job/gpu_job.h,
// the timing harness/job/call_timing.h, the report bench_report.h.
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/commands/bench_report.h"
#include "harness/commands/commands.h"
#include "harness/commands/job_options.h"
#include "harness/commands/list_options.h"
#include "harness/io/exit_codes.h"
#include "harness/io/npy.h"
#include "harness/job/call_check.h"
#include "harness/job/call_timing.h"
#include "harness/job/gpu_job.h"
#include "harness/job/host_reference.h"
#include "harness/job/job.h"
#include "harness/job/spawn.h"
#include "reference/fused_launch.h"
#include "reference/fused_quant.h"
#include "reference/fused_rms_norm.h"
#include "reference/workspace.h"

namespace ar {
namespace {

constexpr int kMaxSweepSizes = 1000;

/// The [N, D] shard of `bytes` per rank: rows of D = min(hidden, count).
ProblemShape bench_shape(int world, std::int64_t bytes, DType dt, std::int64_t hidden) {
  const std::int64_t count = bytes / dtype_bytes(dt), d = std::min(hidden, count);
  return {world, count / d, d, dt};
}

/// NCCL over the GPUs the ranks run on, one rank per GPU (its rows are those with W = the GPU count), or
/// nullptr with `note` saying why not.
std::unique_ptr<NcclAllReduce> open_baseline(GpuJob& gpu, const BenchSettings& s, std::string& note) {
  if (gpu.job().multi_process()) {
    note =
        "not measured (a job of several processes; the NCCL baseline runs in one process over its GPUs: "
        "use --devices)";
    return nullptr;
  }
  if (gpu.devices().empty()) {
    note = gpu.device().device_count >= 2
               ? "not measured (the ranks run on one GPU; give --devices 0,1 or all to spread them over GPUs "
                 "and time NCCL on the same ones)"
               : "not measured (needs 2+ GPUs; this machine shows 1)";
    return nullptr;
  }
  std::string lib = s.nccl_lib;
  if (lib.empty()) {
    const char* env = std::getenv("AR_NCCL_LIB");
    lib = env ? env : "libnccl.so.2";
  }
  try {
    auto nccl = gpu.backend().open_nccl(lib, gpu.devices());
    note = fmt::format("NCCL {} over GPUs {} (one rank each, NVLS off), {}; timed like the kernels, at W = {}",
                       nccl->version(), fmt::join(gpu.devices(), ","), lib, nccl->ranks());
    return nccl;
  } catch (const std::exception& e) {
    note = fmt::format("not measured: {}", e.what());
    return nullptr;
  }
}

std::string quant_names(const std::vector<QuantMode>& modes) {
  std::string names;
  for (QuantMode m : modes) names += fmt::format("{}{}", names.empty() ? "" : ",", quant_mode_name(m));
  return names.empty() ? "none" : names;
}

/// The plan every process states before its kernels run at one world size.
std::string bench_plan(const Job& job, const BenchSettings& s, int world, HandleKind handles) {
  std::string dtype_names, strategy_names, profile_list;
  for (DType dt : s.dtypes) dtype_names += fmt::format("{} ", dtype_name(dt));
  for (Profile p : s.profiles) profile_list += fmt::format("{} ", profile_name(p));
  for (Strategy st : s.strategies) strategy_names += fmt::format("{} ", strategy_name(st));
  return fmt::format(
      "program mnnvl-ar {}\ncommand bench\nprocesses {}\nworld size {}\nhandles {}\nsizes {}\ndtypes {}\n"
      "strategies {}\niters {} warmup {} graph {}\nprofile {} pdl {}\nhidden {}\nseed {}\ncheck {}\ntimeout-ms {}\n"
      "fused {}\nquant {}\ndirect-from {}\n",
      MNNVL_AR_VERSION, job.processes(), world, handle_kind_name(handles), fmt::join(s.sizes, ","), dtype_names,
      strategy_names, s.iters, s.warmup, s.graph, profile_list, s.pdl, s.hidden, s.seed, s.check, s.timeout_ms, s.fused,
      quant_names(s.quant), s.direct_from_bytes);
}

/// The benchmark's state across world sizes.
struct BenchRun {
  std::vector<BenchRow> rows;
  std::unique_ptr<NcclAllReduce> nccl;
  BenchPlace place;
  std::size_t total = 0, done = 0;
  bool failed = false, stopped = false;
};

/// What --fused adds to a size: the norm's arithmetic and its residual and gamma.
struct BenchNorm {
  GpuNorm call;
  HostTensor residual, gamma;
};

/// The fused calls' arithmetic: the dtype's default epsilon, weight bias 0, this GPU's launch.
GpuNorm bench_norm_call(const ProblemShape& shape, int sms) {
  return GpuNorm{default_epsilon(shape.dtype), 0u, sms, false};
}

BenchNorm bench_norm(const BenchSettings& s, const ProblemShape& shape, int sms) {
  const DType dt = shape.dtype;
  return {bench_norm_call(shape, sms),
          seeded_random_input(dt, 1, shape.tokens, shape.hidden, s.seed + 0x7E51D, 12)
              .reshaped({shape.tokens, shape.hidden}),
          seeded_random_input(dt, 1, 1, shape.hidden, s.seed + 0x6A33A, 1).reshaped({shape.hidden})};
}

/// The references one size's calls are checked against, each computed once, when first asked for.
class SizeReferences {
 public:
  explicit SizeReferences(const HostTensor& input) : input_(input) {}
  /// The plain all-reduce of `resolved` under `profile`.
  ExpectedOutputs plain(Strategy resolved, Profile profile) {
    auto it = plain_.find({resolved, profile});
    if (it == plain_.end())
      it = plain_.emplace(std::pair{resolved, profile}, parallel_reference(input_, resolved, profile)).first;
    return {&it->second, nullptr};
  }
  /// The fused call of `resolved` under `profile` (its normalised output and residual_out).
  ExpectedOutputs fused(Strategy resolved, Profile profile, const BenchNorm& norm) {
    const FusedResult& r = fused_result(resolved, profile, norm);
    return {&r.normalized, &r.residual_out};
  }
  /// The same call with the quantised output `mode` too (norm.call's output_scale and layout).
  ExpectedOutputs quantised(Strategy resolved, Profile profile, const BenchNorm& norm, QuantMode mode) {
    const FusedResult& r = fused_result(resolved, profile, norm);
    const std::tuple key{resolved, profile, mode};
    auto it = quant_.find(key);
    if (it == quant_.end()) {
      const QuantOptions q{mode, norm.call.quant_scale, norm.call.layout};
      it = quant_.emplace(key, quantize_fused(r, norm.gamma, fused_options(norm.call, resolved, profile), q)).first;
    }
    return {&r.normalized, &r.residual_out, &it->second};
  }

 private:
  const FusedResult& fused_result(Strategy resolved, Profile profile, const BenchNorm& norm) {
    auto it = fused_.find({resolved, profile});
    if (it == fused_.end()) {
      const FusedOptions o = fused_options(norm.call, resolved, profile);
      it = fused_.emplace(std::pair{resolved, profile}, parallel_fused_reference(input_, norm.residual, norm.gamma, o))
               .first;
    }
    return it->second;
  }

  const HostTensor& input_;
  std::map<std::pair<Strategy, Profile>, HostTensor> plain_;
  std::map<std::pair<Strategy, Profile>, FusedResult> fused_;
  std::map<std::tuple<Strategy, Profile, QuantMode>, QuantizedOutput> quant_;
};

/// Times one call and folds the outcome into `run` (a timeout stops a multi-process benchmark).
TimedCall time_one(GpuJob& gpu, GpuRanks& group, const GpuCall& call, const CallTiming& timing,
                   const std::function<ExpectedOutputs()>& expected, BenchRun& run, std::ostream& err) {
  const TimedCall timed = time_call(gpu.job(), group, call, timing, expected, err);
  if (std::isnan(timed.us)) {
    run.failed = true;
    // A group of several processes is not reset after a timeout: stop the benchmark here.
    if (gpu.job().multi_process()) run.stopped = true;
  }
  if (timed.wrong > 0) run.failed = true;
  return timed;
}

/// With --fused: the same size as the fused call, and as the all-reduce followed by the separate norm kernel,
/// both checked against the fused model; then with each --quant mode, checked against the quantised model.
void time_fused(GpuJob& gpu, GpuRanks& group, GpuCall call, const BenchNorm& norm, const std::vector<QuantMode>& quant,
                const CallTiming& timing, SizeReferences& references, BenchRow& row, BenchRun& run,
                std::ostream& err) {
  const auto expected = [&] { return references.fused(row.resolved, row.profile, norm); };
  call.norm = norm.call;
  const TimedCall fused = time_one(gpu, group, call, timing, expected, run, err);
  row.fused_us = fused.us;
  row.fused_wrong = fused.wrong;
  if (run.stopped) return;
  call.norm->separate_kernel = true;
  const TimedCall separate = time_one(gpu, group, call, timing, expected, run, err);
  row.separate_us = separate.us;
  row.separate_wrong = separate.wrong;
  for (QuantMode mode : quant) {
    if (run.stopped) return;
    call.norm = norm.call;
    call.norm->quant = mode;
    const TimedCall q = time_one(
        gpu, group, call, timing, [&] { return references.quantised(row.resolved, row.profile, norm, mode); }, run, err);
    row.quant.push_back({mode, q.us, q.wrong});
  }
}

/// Times every dtype, size and strategy at one world size on `group`; the rows go to `run`.
void bench_world(GpuJob& gpu, GpuRanks& group, const BenchSettings& s, int world, BenchRun& run, std::ostream& out,
                 std::ostream& err) {
  Job& job = gpu.job();
  const CallTiming timing{s.warmup, s.iters, s.graph, s.check != 0};
  for (DType dt : s.dtypes) {
    for (std::int64_t bytes : s.sizes) {
      if (run.stopped) return;
      const ProblemShape shape = bench_shape(world, bytes, dt, s.hidden);
      const HostTensor input = seeded_random_input(dt, world, shape.tokens, shape.hidden, s.seed + bytes, 12);
      group.upload(input);
      std::optional<BenchNorm> norm;
      if (s.fused) {
        norm = bench_norm(s, shape, run.place.device.sm_count);
        group.upload_norm(norm->residual, norm->gamma);
      }
      SizeReferences references(input);
      std::optional<double> nccl_us;
      if (run.nccl && run.nccl->ranks() == world) {  // NCCL has one rank per GPU
        try {
          nccl_us = run.nccl->time_us(bytes, dt, s.warmup, s.iters, s.graph);
        } catch (const std::exception& e) {  // the baseline failing is no reason to stop timing the kernels
          run.place.nccl = fmt::format("stopped at {} {}: {}", size_text(bytes), dtype_name(dt), e.what());
          fmt::print(err, "NCCL baseline {}\n", run.place.nccl);
          run.nccl.reset();
        }
      }
      for (Strategy st : s.strategies)
        for (Profile profile : s.profiles) {
          BenchRow row;
          row.world = world;
          row.bytes = bytes;
          row.shape = shape;
          row.requested = st;
          row.resolved = resolve_strategy(st, shape);
          row.direct = takes_direct_path(row.resolved, /*fused=*/false, shape, s.direct_from_bytes);
          row.profile = profile;
          const GpuCall call{shape, st, profile, s.pdl != 0};
          row.launch = group.launch_shape(call);
          ++run.done;
          if (job.leader())
            fmt::print(err, "[{}/{}] W={} {} {} {}{} {}: {}\n", run.done, run.total, world, dtype_name(dt),
                       size_text(bytes), strategy_name(st), row.direct ? " (direct)" : "", profile_name(profile),
                       row.launch);
          const TimedCall timed = time_one(
              gpu, group, call, timing, [&] { return references.plain(row.resolved, profile); }, run, err);
          row.us = timed.us;
          row.wrong = timed.wrong;
          if (norm && !run.stopped) time_fused(gpu, group, call, *norm, s.quant, timing, references, row, run, err);
          row.derive(run.place.limits.copy_gbps);
          row.nccl_us = nccl_us;
          print_bench_row(out, row, s.profiles.size() > 1, s.direct_from_bytes > 0);
          out.flush();
          run.rows.push_back(std::move(row));
          if (run.stopped) return;
        }
    }
  }
}

int bench_job(Job& job, const BenchSettings& s, std::ostream& out, std::ostream& err) {
  const auto gpu = GpuJob::start(job, "bench", {s.device, s.devices_text, s.handles}, err);
  if (!gpu) return kExitUsage;
  const std::vector<int> worlds = gpu->worlds(s.worlds, /*all=*/false, err);
  BenchRun run;
  BenchPlace& place = run.place;
  place.device = gpu->device();
  place.gpus = gpu->gpus();
  if (job.leader()) {  // one process measures the machine; the others' copies would only disturb it
    fmt::print(err, "measuring launch overhead and copy bandwidth...\n");
    place.limits = gpu->backend().measure_limits(gpu->lead_device(), std::int64_t(1) << 30);
  }
  run.nccl = open_baseline(*gpu, s, place.nccl);

  print_bench_device(out, place.device);
  gpu->describe(out, err);
  print_bench_settings(out, s, place);
  const HandleDecision& handles = gpu->handles();
  if (job.multi_process())
    fmt::print(out,
               "# {} processes, a barrier before every timed region; time = the slowest process's\n# handles: {}\n",
               job.processes(), handles.summary);

  run.total = worlds.size() * s.dtypes.size() * s.sizes.size() * s.strategies.size() * s.profiles.size();
  for (int world : worlds) {
    if (run.stopped) break;
    GroupSizing sizing{0, 16, static_cast<std::uint64_t>(s.timeout_ms * 1e6), s.round_bytes};
    sizing.direct_from_bytes = s.direct_from_bytes;  // before add(): a direct call's rows go to the direct region
    std::vector<GpuCall> calls;
    for (DType dt : s.dtypes)
      for (std::int64_t bytes : s.sizes)
        for (Strategy st : s.strategies)
          for (Profile profile : s.profiles) {
            const ProblemShape shape = bench_shape(world, bytes, dt, s.hidden);
            // The plain call (which may take the direct path), and with --fused the fused ones (which never do).
            sizing.add(st, shape);
            calls.push_back({shape, st, profile, s.pdl != 0});
            if (s.fused) {
              sizing.add(st, shape, /*fused=*/true);
              calls.push_back(calls.back());
              calls.back().norm = bench_norm_call(shape, place.device.sm_count);
            }
          }
    auto group = gpu->open_group(world, sizing, fmt::format("bench-w{}", world), fmt::format("plan at W = {}", world),
                                 bench_plan(job, s, world, *handles.kind));
    gpu->refuse_unrunnable(*group, calls, [&](std::size_t i) {
      const GpuCall& c = calls[i];
      const bool direct =
          takes_direct_path(resolve_strategy(c.strategy, c.shape), c.norm.has_value(), c.shape, s.direct_from_bytes);
      return fmt::format("{}{} at {}", strategy_name(c.strategy),
                         c.norm   ? " fused"
                         : direct ? " (direct)"
                                  : "",
                         c.shape.bytes_per_rank());
    });
    fmt::print(
        out, "\n{}\n",
        bench_table_header(run.nccl != nullptr, s.fused, s.profiles.size() > 1, s.quant, s.direct_from_bytes > 0));
    bench_world(*gpu, *group, s, world, run, out, err);
  }

  if (!s.json_path.empty() && job.leader()) {
    place.processes = job.processes();
    place.launcher = job.launcher();
    place.handles = handle_kind_name(*handles.kind);
    place.gpu_shared = gpu->choice().shared;
    write_file_atomically(s.json_path, bench_json(s, place, run.rows, utc_now()));
  }
  return run.failed ? kExitDifference : kExitOk;
}

/// -b .. -e by -f: the sizes, each a whole number of rows of every dtype, and every (world, strategy, size)
/// one the kernels can run, all checked before the job starts. Throws UsageError naming the first that is not.
std::vector<std::int64_t> sweep_sizes(const BenchSettings& s, std::int64_t min_bytes, std::int64_t max_bytes,
                                      double factor, const std::string& min_text, const std::string& max_text) {
  std::vector<std::int64_t> sizes;
  // The sizes, each a whole number of rows. Their count is bounded before any is made: a factor just above
  // 1 would otherwise ask for billions of rows (or, below double precision, never reach -e).
  const double steps =
      std::floor(std::log(static_cast<double>(max_bytes) / static_cast<double>(min_bytes)) / std::log(factor)) + 1;
  if (!(steps <= kMaxSweepSizes))
    throw UsageError(fmt::format("-b {} -e {} -f {} makes {:.0f} sizes; at most {} are allowed (raise -f)", min_text,
                                 max_text, factor, steps, kMaxSweepSizes));
  for (double v = static_cast<double>(min_bytes); v <= static_cast<double>(max_bytes) * (1 + 1e-9); v *= factor) {
    const auto bytes = static_cast<std::int64_t>(std::llround(v));
    if (sizes.empty() || bytes != sizes.back()) sizes.push_back(bytes);
  }
  for (DType dt : s.dtypes)
    for (std::int64_t bytes : sizes) {
      const std::int64_t e = dtype_bytes(dt), count = bytes / e;
      const std::int64_t d = std::min(s.hidden, count);
      if (bytes % 16 != 0 || count % d != 0 || d % elements_per_pack(dt) != 0)
        throw UsageError(
            fmt::format("size {} of {} is not a whole number of rows of D = {} (and of 16-byte packs); "
                        "choose sizes and -D that divide",
                        bytes, dtype_name(dt), d));
      // Every world and strategy too, before the job: W x size must fit, and the kernels' 32-bit sizes must
      // hold it, or the workspace sized for it would be allocated (wrapped) before the call is refused.
      for (int world : s.worlds)
        for (Strategy st : s.strategies) {
          const ProblemShape shape = bench_shape(world, bytes, dt, s.hidden);
          std::optional<std::string> why = validate_shape(shape);
          if (!why) why = check_fits_workspace(st, shape, kMaxBufferBytes);
          for (Profile p : s.profiles)
            if (!why && s.fused) try {
                (void)norm_launch_for(p, resolve_strategy(st, shape), shape.tokens, shape.hidden, dt);
              } catch (const std::invalid_argument& refused) {
                why = fmt::format("the {} fused launch refuses it: {}", profile_name(p), refused.what());
              }
          for (QuantMode m : s.quant)
            if (!why) try {
                validate_quant(QuantOptions{m}, dt, shape.hidden);
              } catch (const std::invalid_argument& refused) {
                why = fmt::format("--quant {}: {}", quant_mode_name(m), refused.what());
              }
          if (why)
            throw UsageError(fmt::format("size {} of {} at W = {} ({}): {}", size_text(bytes), dtype_name(dt), world,
                                         strategy_name(st), *why));
        }
    }
  return sizes;
}

}  // namespace

int bench_command(const CommandArgs& all_args, std::ostream& out, std::ostream& err) {
  CommandArgs args = all_args;
  const int spawn = take_spawn_option(args);
  BenchSettings s;
  std::string min_text, max_text, dtype_text, strategy_text, profile_text, handles_text, quant_text, direct_from_text;
  std::vector<std::string> labels;
  double factor = 2;
  JobOptions job_options;
  po::options_description options("options (nccl-tests names where they exist)");
  // clang-format off
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
      ("profile,p", po::value(&profile_text)->default_value("flashinfer"),
       "flashinfer, ieee or invariant arithmetic, or a list (each size timed under each, in turn)")
      ("pdl", po::value(&s.pdl)->default_value(1), "launch_with_pdl (1 or 0)")
      ("hidden,D", po::value(&s.hidden)->default_value(4096), "D of the [N, D] shard; N = count / D (D = count if smaller)")
      ("check,c", po::value(&s.check)->default_value(1), "1: verify every timed size bit for bit (#wrong)")
      ("seed", po::value(&s.seed)->default_value(1), "seed of the full-mantissa random inputs")
      ("timeout-ms", po::value(&s.timeout_ms)->default_value(10000), "per device wait; 0 = forever")
      ("round-bytes", po::value(&s.round_bytes)->default_value(-1), "L2 budget of a round (tuning; -1 = default)")
      ("direct-from", po::value(&direct_from_text)->default_value("0"),
       "plain TWOSHOT calls of at least this many bytes a rank take the direct path (docs/large-messages.md); 0: none")
      ("device", po::value(&s.device)->default_value(-1),
       "CUDA device (default: 0 for one process; LOCAL_RANK % visible GPUs in a job)")
      ("devices", po::value(&s.devices_text)->default_value(""),
       "one process drives several GPUs: 0,1 or all; the W ranks in equal contiguous blocks over them, and NCCL "
       "runs over the same GPUs")
      ("nccl-lib", po::value(&s.nccl_lib)->default_value(""),
       "NCCL library for the baseline (default: $AR_NCCL_LIB, else libnccl.so.2); used with --devices")
      ("fused", po::bool_switch(&s.fused),
       "also time each size as the fused all-reduce + residual add + RMSNorm (fused(us)) and as the all-reduce "
       "followed by a separate norm kernel (ar+norm(us)), both checked against the fused model (eps: the dtype's "
       "default, weight bias 0, FlashInfer's launch for this GPU's SM count)")
      ("quant", po::value(&quant_text)->default_value(""),
       "also time the fused call with each quantised output of this list (fp8, fp8-dynamic, nvfp4, or all; "
       "output_scale 1, NVFP4's swizzled layout), checked against the quantised model; implies --fused")
      ("label", po::value(&labels)->composing(), "KEY=VALUE recorded in the JSON (e.g. commit=abc123); repeatable")
      ("json,J", po::value(&s.json_path)->default_value(""), "write the results as JSON to this file")
      ("spawn", po::value<int>(), "start K processes on this host (this one is rank 0)")
      ("handles", po::value(&handles_text)->default_value("auto"), "how processes share memory: auto, posix or fabric");
  // clang-format on
  add_job_options(options, job_options);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar bench [-b 4K] [-e 256M] [-f 2] [-n 20] [-w 5] [-G 0] [-d bf16] [-s all] [-W 2] [-J out.json] [--spawn "
      "K]",
      "Times the all-reduce kernels, nccl-tests style: one row per size and strategy with size (bytes per rank),\n"
      "count (elements per rank), type, strategy ('(direct)' for a call that took TWOSHOT's direct path, see\n"
      "--direct-from), time(us) (mean per call), algbw = size / time,\n"
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
  if (!s.json_path.empty()) check_output_path(s.json_path);  // before the work, so a typo costs nothing
  if (vm.count("spawn")) throw UsageError("--spawn is given more than once");

  const std::int64_t min_bytes = size_option("-b", min_text), max_bytes = size_option("-e", max_text);
  if (min_bytes > max_bytes) throw UsageError(fmt::format("-b {} is larger than -e {}", min_text, max_text));
  if (!(factor > 1)) throw UsageError("-f must be greater than 1");
  if (s.iters < 1 || s.warmup < 0 || s.graph < 0) throw UsageError("-n must be >= 1, -w and -G >= 0");
  if (s.pdl != 0 && s.pdl != 1) throw UsageError(fmt::format("--pdl {}: give 1 (launch with PDL) or 0", s.pdl));
  if (s.check != 0 && s.check != 1)
    throw UsageError(fmt::format("--check {}: give 1 (verify every timed size) or 0", s.check));
  if (s.hidden <= 0) throw UsageError("-D must be positive");
  if (s.round_bytes < -1)
    throw UsageError(
        fmt::format("--round-bytes must be -1 (the default), 0 (one round) or a byte budget, got {}", s.round_bytes));
  s.direct_from_bytes = direct_from_option("--direct-from", direct_from_text);
  check_timeout_ms("--timeout-ms", s.timeout_ms, /*zero_waits_forever=*/true);
  s.dtypes = dtype_list_option("-d", dtype_text);
  s.strategies = strategy_list_option("-s", strategy_text);
  s.worlds = world_list_option("-W", s.world_text);
  s.profiles = kernel_profile_list_option("-p", profile_text);
  s.handles = handle_request_option(handles_text);
  s.quant = quant_list_option("--quant", quant_text);
  if (!s.quant.empty()) s.fused = true;
  for (const auto& l : labels) {
    const auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError(fmt::format("--label '{}' is not KEY=VALUE", l));
    if (!s.labels.emplace(l.substr(0, eq), l.substr(eq + 1)).second)
      throw UsageError(fmt::format("--label {} is given twice", l.substr(0, eq)));
  }
  s.sizes = sweep_sizes(s, min_bytes, max_bytes, factor, min_text, max_text);

  return run_as_job(spawn, "bench", args, job_options, out, err,
                    [&](Job& job, std::ostream& job_out) { return bench_job(job, s, job_out, err); });
}

}  // namespace ar
