// mnnvl-ar run: call sequences on the GPU, every rank's output of every call compared bit for bit with
// reference/, and every rank's flags with reference advance_flags(). The W ranks are virtual ranks of one
// process, or the processes of a job (launcher or --spawn) each run their share; every process checks its
// own ranks and the reports are merged (harness/job/call_check.h), so only rank 0 prints the table.
// What runs is planned in run_plan.h, the job around it is harness/job/gpu_job.h, the report run_report.h.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/commands/commands.h"
#include "harness/commands/fused_options.h"
#include "harness/commands/job_options.h"
#include "harness/commands/list_options.h"
#include "harness/commands/options.h"
#include "harness/commands/run_batches.h"
#include "harness/commands/run_plan.h"
#include "harness/commands/run_report.h"
#include "harness/io/exit_codes.h"
#include "harness/io/npy.h"
#include "harness/io/output_file.h"
#include "harness/job/call_check.h"
#include "harness/job/gpu_job.h"
#include "harness/job/host_reference.h"
#include "harness/job/job.h"
#include "harness/job/spawn.h"

namespace ar {
namespace {

/// A file in --dump's folder, which run_command made before the job.
std::filesystem::path dump_path(const RunSettings& s, const std::string& name) {
  return std::filesystem::path(s.dump_dir) / name;
}

/// What --batches adds to a world's calls: each call's input made just before it runs (the plan holds
/// none: its inputs together would not fit in memory), and its probe rows kept after the check.
struct BatchHooks {
  const BatchPlan& plan;
  BatchObservations& seen;
};

/// Runs the planned calls of one world size on `group` and adds their rows to `result`. Returns false when
/// the run must stop (a wait timed out).
bool run_world(GpuJob& gpu, GpuRanks& group, const RunSettings& s, int world, std::vector<PlannedCall>& planned,
               RunResult& result, std::ostream& err, const BatchHooks* batches = nullptr) {
  Job& job = gpu.job();
  const std::vector<int> local = group.local_ranks();
  FlagsModel flags(local, group.buffer_bytes());
  std::vector<int> launched;
  for (int r : local)
    if (r != s.omit_rank) launched.push_back(r);
  const bool want_digests = s.digests || job.multi_process();

  for (std::size_t i = 0; i < planned.size(); ++i) {
    PlannedCall& c = planned[i];
    if (batches) fill_batch_call(batches->plan, i, c);
    RunRow row{static_cast<int>(result.rows.size()) + 1, c.label, c.call, c.expect, c.resolved, c.seed};
    row.direct = takes_direct_path(s, c);
    group.upload(c.input);
    if (c.norm) group.upload_norm(c.norm->residual, c.norm->gamma);
    const auto t0 = std::chrono::steady_clock::now();
    CallReport mine;
    if (!launched.empty()) mine.timeout = group.run(c.call, launched);
    row.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (mine.timeout && job.multi_process())
      fmt::print(err, "mnnvl-ar run (rank {}): call {}: {}\n", job.rank(), row.index, mine.timeout->message);
    if (!mine.timeout && !launched.empty()) {  // a process whose ranks were all omitted has nothing to check
      OutputCheck check{want_digests, {}};
      if (!s.dump_dir.empty() && !result.first)
        check.on_first_mismatch = [&](int rank, const HostTensor& output) {
          write_npy(dump_path(s, fmt::format("call{}.rank{}.gpu.npy", row.index, rank)).string(), output);
        };
      if (c.norm) {
        const FusedExpectation expected = expected_fused_outputs(c);
        check_outputs(group, local, c.call.shape, expected.normalized, check, mine);
        check_residual_outs(group, local, c.call.shape, expected.residual_out, mine);
        if (expected.quant) check_quant_outputs(group, local, c.call.shape, *expected.quant, mine, err, row.index);
      } else {
        const HostTensor expected = c.expected ? *c.expected : parallel_reference(c.input, c.resolved, c.expect);
        check_outputs(group, local, c.call.shape, expected, check, mine);
      }
      flags.check(group, clear_record(c.call.strategy, c.call.shape, row.direct), row.index, mine, err);
      if (batches && c.call.norm && c.call.norm->quant != QuantMode::kNone)
        batches->seen.record_quant(
            i, group.quant_output(launched.front(), c.call.shape, c.call.norm->quant, c.call.norm->layout));
      else if (batches)
        batches->seen.record(i, group.output(launched.front(), c.call.shape));
    }
    // Every process learns what every other found, so all stop at the same call with the same verdict.
    const MergedCall merged = agree_on_call(job, mine, world);
    row.elements = merged.elements;
    row.mismatches = merged.mismatches;
    row.ranks_disagreeing = merged.ranks_disagreeing;
    row.flags_ok = merged.flags_bad.empty();
    row.digests = merged.digests;
    if (!row.flags_ok) ++result.flag_failures;
    if (merged.first && !result.first) {
      result.first = FirstMismatch{
          row,     merged.first->rank, merged.first->index, merged.first->gpu, merged.first->expected, c.input, "",
          merged.first->residual_out};
      if (!s.dump_dir.empty() && job.leader()) {
        result.first->dumped_input = dump_path(s, fmt::format("call{}.in.npy", row.index)).string();
        write_npy(result.first->dumped_input, c.input);
        if (c.norm) {  // beside it, as fused_companion_path() names them
          write_npy(fused_companion_path(result.first->dumped_input, "residual"), c.norm->residual);
          write_npy(fused_companion_path(result.first->dumped_input, "gamma"), c.norm->gamma);
        }
      }
    }
    result.rows.push_back(row);
    if (batches) c = PlannedCall{};  // its input is no longer needed
    if (merged.timeout) {
      result.timeout = merged.timeout;
      return false;
    }
    if (s.die_after_call == row.index && s.die_rank == job.rank()) {
      // --die-after-call: a crash, as abrupt as it gets (no destructor, no goodbye to the peers).
      fmt::print(err, "mnnvl-ar run (rank {}): --die-after-call {}: killing this process\n", job.rank(), row.index);
      err.flush();
      std::raise(SIGKILL);
    }
  }
  return true;
}

int run_job(Job& job, RunSettings s, const BatchSettings& b, std::ostream& out, std::ostream& err) {
  const auto gpu = GpuJob::start(job, "run", {s.device, s.devices_text, s.handles}, err);
  if (!gpu) return kExitUsage;
  const GpuDevice& dev = gpu->device();
  if (s.sms == 0) s.sms = dev.sm_count;  // fused calls follow this GPU's own launch unless --sms says otherwise
  fmt::print(out, "# mnnvl-ar run on {} (sm_{}, {} SMs), driver {} (CUDA {}), inputs {}, seed {}\n", dev.name,
             dev.compute_capability, dev.sm_count, dev.driver.empty() ? "?" : dev.driver, dev.cuda_driver,
             s.inputs_text, s.seed);
  // World sizes: each process runs W / P ranks, spread over its --devices.
  const std::vector<int> worlds = gpu->worlds(s.worlds, s.world_text == "all", err);
  gpu->describe(out, err);
  const std::vector<int> gpus = gpu->gpus();
  const HandleDecision& handles = gpu->handles();
  if (job.multi_process()) fmt::print(out, "# handles: {}\n", handles.summary);

  RunResult result;
  bool batches_ok = true;
  const auto wall_start = std::chrono::steady_clock::now();
  for (int world : worlds) {
    std::optional<BatchPlan> batch_plan;
    if (b.max_tokens > 0) batch_plan = plan_batches(s, b, world);
    std::vector<PlannedCall> planned = batch_plan ? batch_plan->planned : plan_calls(s, world);
    if (planned.empty()) continue;
    if (s.omit_rank >= world)
      throw UsageError(fmt::format("--omit-rank {} is not a rank of W = {}", s.omit_rank, world));
    GroupSizing sizing{0, 16, static_cast<std::uint64_t>(s.timeout_ms * 1e6), s.round_bytes};
    sizing.direct_from_bytes = s.direct_from_bytes;  // before add(): a direct call's rows go to the direct region
    std::vector<GpuCall> calls;
    for (const PlannedCall& c : planned) {
      sizing.add(c.call.strategy, c.call.shape, c.call.norm.has_value());
      calls.push_back(c.call);
    }
    // Before any kernel (the workspace's Lamport fill included): every process must plan the same calls.
    auto group = gpu->open_group(world, sizing, fmt::format("run-w{}", world), fmt::format("plan at W = {}", world),
                                 describe_plan(job, s, world, *handles.kind, planned));
    // Every process checks every call on its ranks; one that cannot run stops the whole job, before any call.
    gpu->refuse_unrunnable(*group, calls, [&](std::size_t i) {
      const ProblemShape& shape = calls[i].shape;
      return fmt::format("call {} ({}{} N={} D={} {} W={})", result.rows.size() + i + 1,
                         strategy_name(calls[i].strategy), takes_direct_path(s, planned[i]) ? " (direct)" : "",
                         shape.tokens, shape.hidden, dtype_name(shape.dtype), world);
    });
    if (job.leader()) {
      const int per = gpu->devices().empty() ? 0 : world / static_cast<int>(gpu->devices().size());
      const std::size_t local = group->local_ranks().size();
      fmt::print(err, "W = {:>2}: {} calls on one workspace (BPB {} bytes){}\n", world, planned.size(),
                 group->buffer_bytes(),
                 job.multi_process() ? fmt::format(", {} rank{} per process", local, local > 1 ? "s" : "")
                 : per == 0          ? std::string()
                                     : fmt::format(", {} rank{} per GPU", per, per > 1 ? "s" : ""));
    }
    if (batch_plan) {
      BatchObservations seen(*batch_plan);
      const BatchHooks hooks{*batch_plan, seen};
      const bool went_on = run_world(*gpu, *group, s, world, planned, result, err, &hooks);
      const auto verdicts = seen.verdicts();
      for (const BatchSummary& summary : summarize_batches(*batch_plan, verdicts)) {
        result.batches.push_back(summary);
        batches_ok = batches_ok && summary.ok;
      }
      if (job.leader()) (void)print_batch_report(out, *batch_plan, verdicts);
      if (!went_on) break;
      continue;
    }
    if (!run_world(*gpu, *group, s, world, planned, result, err)) break;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();

  print_run_report(out, result);
  if (!s.json_path.empty() && job.leader()) {
    const RunPlace place{
        dev, job.processes(), job.launcher(), std::string(handle_kind_name(*handles.kind)), handles.summary, gpus};
    write_file_atomically(s.json_path, run_json(s, place, result));
  }
  return result.verdict() == "ok" && batches_ok ? kExitOk : kExitDifference;
}

}  // namespace

int run_command(const CommandArgs& all_args, std::ostream& out, std::ostream& err) {
  CommandArgs args = all_args;
  const int spawn = take_spawn_option(args);
  RunSettings s;
  BatchSettings batches;
  std::string dtype_text, profile_text, pdl_text, expect_text, handles_text, batch_strategies_text, batch_kinds_text;
  std::string direct_from_text;
  double eps = 0, weight_bias = 0, quant_scale = 1.0;
  JobOptions job_options;
  po::options_description options("options");
  // clang-format off
  options.add_options()
      ("calls", po::value(&s.calls_text)->default_value("oneshot:N=4,twoshot:N=64,auto:N=11,oneshot:N=1"),
       "the call sequence, as `sim --calls`: strategy[:N=..][:D=..][:dtype=..][:fused], comma-separated; a fused "
       "call is the all-reduce + residual add + RMSNorm, both outputs checked")
      ("world,W", po::value(&s.world_text)->default_value("all"),
       fmt::format("world sizes to run, e.g. 2,8 (or all: {}..{}; with P processes, those that are multiples of P)",
                   kWorldSizes.front(), kMaxWorldSize).c_str())
      ("dtype,d", po::value(&dtype_text)->default_value("all"), "default dtype(s) of calls without dtype=: bf16,fp16,fp32 or all")
      ("tokens,N", po::value(&s.tokens)->default_value(1), "default N of calls without N=")
      ("hidden,D", po::value(&s.hidden)->default_value(1024), "default D of calls without D=")
      ("inputs", po::value(&s.inputs_text)->default_value("adversarial"),
       "random (full mantissa), adversarial (random + the SPEC edge cases), exact (small integers), or golden (data/)")
      ("seed", po::value(&s.seed)->default_value(1), "seed of the inputs; call k of a sequence uses seed + k")
      ("profile,p", po::value(&profile_text)->default_value("both"),
       "flashinfer, ieee, invariant, a list of them, both (flashinfer,ieee) or all")
      ("batches", po::value(&batches.max_tokens)->default_value(0),
       "batch invariance: instead of --calls, place the same probe rows in batches of N = 1..this (and both "
       "sides of every boundary `invariance` reports) and compare each probe's bits across them with the model")
      ("batch-strategies", po::value(&batch_strategies_text)->default_value("oneshot,twoshot,auto"),
       "--batches: the strategies")
      ("batch-kinds", po::value(&batch_kinds_text)->default_value("plain,fused"),
       "--batches: plain, fused, both, and the quantised fused calls fp8, fp8-dynamic, nvfp4 (--quant-scale)")
      ("batch-bytes", po::value(&batches.max_input_bytes)->default_value(batches.max_input_bytes),
       "--batches: the largest input of a call, W x N x D x E bytes (larger W stop at a smaller N)")
      ("pdl", po::value(&pdl_text)->default_value("both"), "launch_with_pdl: on, off or both")
      ("expect", po::value(&expect_text)->default_value(""),
       "compare with the reference of this profile instead of the one the kernels ran (e.g. trtllm: where would "
       "TensorRT-LLM's order give other bits on this input?)")
      ("sms", po::value(&s.sms)->default_value(0),
       "fused calls: reproduce FlashInfer's summation tree on a GPU of this many SMs (default: this GPU's)")
      ("eps", po::value(&eps), "fused calls: epsilon (default torch.finfo(dtype).eps, as FlashInfer's Python)")
      ("weight-bias", po::value(&weight_bias)->default_value(0), "fused calls: added to gamma (1: Gemma-style)")
      ("quant-scale", po::value(&quant_scale)->default_value(1.0),
       "quantised calls (quant= in --calls): output_scale, static FP8's scale or NVFP4's global scale")
      ("repeat", po::value(&s.repeat)->default_value(2), "run the sequence this many times on the same workspace")
      ("timeout-ms", po::value(&s.timeout_ms)->default_value(10000), "per device wait; 0 = wait forever (FlashInfer; "
       "then a dead peer hangs the GPU)")
      ("omit-rank", po::value(&s.omit_rank)->default_value(-1),
       "never launch this rank (a missing peer): the others must time out and name it")
      ("data", po::value(&s.data_dir)->default_value("data"), "golden directory (with manifest.json)")
      ("device", po::value(&s.device)->default_value(-1),
       "CUDA device (default: 0 for one process; LOCAL_RANK % visible GPUs in a job)")
      ("devices", po::value(&s.devices_text)->default_value(""),
       "one process drives several GPUs: 0,1 or all; the W ranks in equal contiguous blocks over them "
       "(W = 2 on 2 GPUs: one rank each; W = 16: 8 virtual ranks per GPU)")
      ("round-bytes", po::value(&s.round_bytes)->default_value(-1), "L2 budget of a round (tuning; -1 = default)")
      ("direct-from", po::value(&direct_from_text)->default_value("0"),
       "plain TWOSHOT calls of at least this many bytes a rank take the direct path (docs/large-messages.md); 0: none")
      ("dump", po::value(&s.dump_dir)->default_value(""),
       "on a mismatch, write the first differing call's input and that rank's GPU output as .npy here")
      ("digests", po::bool_switch(&s.digests),
       "record the sha256 of every rank's output of every call in the JSON (output_sha256), to compare runs bit "
       "for bit (always computed in a multi-process job)")
      ("json", po::value(&s.json_path)->default_value(""), "also write the results as JSON to this file")
      ("spawn", po::value<int>(), "start K processes on this host, one rank group each (this one is rank 0)")
      ("handles", po::value(&handles_text)->default_value("auto"),
       "how processes share memory: auto (fabric when SPEC section 8's rule and a trial allow, else POSIX on one "
       "host), posix, or fabric (falls back to POSIX on one host, saying why)")
      ("die-after-call", po::value(&s.die_after_call)->default_value(0),
       "testing: the process of job rank --die-rank kills itself (SIGKILL) after this call (1-based)")
      ("die-rank", po::value(&s.die_rank)->default_value(-1), "testing: see --die-after-call");
  // clang-format on
  add_job_options(options, job_options);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar run [--calls SEQ] [--world 2,8|all] [--dtype bf16|...|all] [--inputs KIND] [--json FILE] [--spawn K]",
      "Runs all-reduce call sequences on the GPU and compares, bit for bit, every rank's output of every call\n"
      "with the CPU reference (reference/), the ranks with each other, and every rank's nine flags words with\n"
      "the reference's flag update. One process runs W virtual ranks on one GPU (each rank its own Lamport\n"
      "buffers, flags and grid slice, polling the others as separate GPUs would); in a job of P processes each\n"
      "runs W / P of them and sees the others' buffers through exported memory handles; with --devices one\n"
      "process spreads the W ranks over several GPUs (peer stores over NVLink). The outputs are\n"
      "poisoned before each call, so an unwritten element shows. With --inputs golden the cases of\n"
      "data/manifest.json run under oneshot, twoshot and auto and must equal the committed expected files;\n"
      "its fused cases run fused, each for the SM count it was made for, both outputs compared.\n\n"
      "A fused call (':fused' in --calls) is the all-reduce + residual add + RMSNorm: its normalised output and\n"
      "residual_out are both compared with the reference, whose summation tree follows FlashInfer's launch on a\n"
      "GPU of --sms SMs (default: this one's).\n\n"
      "The table has one row per call: call, label, strategy (auto -> resolved; '(direct)' for a call that\n"
      "took TWOSHOT's direct path, see --direct-from), N, D, dtype, W, profile, PDL,\n"
      "elements compared (all ranks), mismatches, ranks that disagree with rank 0, flags. On a mismatch the\n"
      "first differing element is explained (its fold, step by step). A device wait that exceeds --timeout-ms\n"
      "ends the launch with an error naming the rank, the call, the buffer, stage, token, pack, the four words\n"
      "it saw and the peer it waited for; the run stops there.\n\n"
      "With --batches N_MAX the calls are batches of N = 1..N_MAX (and both sides of every boundary the\n"
      "`invariance` command reports) holding the same probe rows among random others, for every dtype,\n"
      "profile, --batch-strategies and --batch-kinds; besides the usual checks, a table says for each\n"
      "probe how many different bits the GPU and the model gave over the batches, and in how many pairs of\n"
      "batches they disagree on whether the bits are the same (0 everywhere, and one set of bits under the\n"
      "invariant profile, or the run fails).\n\n" +
          std::string(kJobHelp) +
          "\n\n"
          "examples:\n"
          "  mnnvl-ar run                                        # default sequence, every W, dtype, PDL, two profiles\n"
          "  mnnvl-ar run --calls oneshot:N=4,twoshot:N=64:D=256,auto:N=11:dtype=fp32 --world 8\n"
          "  mnnvl-ar run --calls oneshot:N=8:D=8192:fused,twoshot:N=300:D=5120:fused --world 2,8 --sms 78\n"
          "  mnnvl-ar run --inputs golden --json run.json\n"
          "  mnnvl-ar run --batches 4096 -D 4096 --dtype bf16 --world 2,8 -p flashinfer,invariant   # batch invariance\n"
          "  mnnvl-ar run --world 4 --omit-rank 2 --timeout-ms 500   # must time out, naming rank 2\n"
          "  mnnvl-ar run --spawn 4 --world 4,8 --json mp.json       # 4 processes on this host\n"
          "  mnnvl-ar run --devices 0,1 --world 2,16 --inputs golden # one process, two GPUs\n"
          "  torchrun --nproc-per-node 8 $(which mnnvl-ar) run --world 8   # one process per GPU\n"
          "  srun -N 2 --ntasks-per-node 4 mnnvl-ar run --world 8 --handles fabric\n\n"
          "exit codes: 0 every output bit-exact, 1 a mismatch, flags difference or timeout, or a peer that died\n"
          "or never came, 2 bad usage or input, or no GPU (or a build without the CUDA layer)"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;
  if (!s.json_path.empty()) check_output_path(s.json_path);  // before the work, so a typo costs nothing
  if (!s.dump_dir.empty()) prepare_output_folder(s.dump_dir);
  if (vm.count("spawn")) throw UsageError("--spawn is given more than once");

  s.worlds = world_list_option("--world", s.world_text);
  s.dtypes = dtype_list_option("--dtype", dtype_text);
  s.profiles = kernel_profile_list_option("--profile", profile_text);
  s.pdls = pdl_list_option("--pdl", pdl_text);
  s.kind = input_kind_option(s.inputs_text);
  s.handles = handle_request_option(handles_text);
  s.expect = expect_text.empty() ? std::nullopt : std::optional<Profile>(profile_option(expect_text));
  if (s.repeat < 1) throw UsageError("--repeat must be at least 1");
  // Before the job, so a GPU is not needed to hear of these: a rank to omit that no world size has, and a golden
  // folder that is not there.
  if (s.omit_rank < -1 || s.omit_rank >= *std::max_element(s.worlds.begin(), s.worlds.end()))
    throw UsageError(fmt::format("--omit-rank {} is not a rank of any --world ({})", s.omit_rank, s.world_text));
  if (s.kind == InputKind::kGolden && !std::filesystem::is_directory(s.data_dir))
    throw UsageError(fmt::format("--data '{}' is not a folder (the golden set, with its manifest.json)", s.data_dir));
  if (!vm["sms"].defaulted()) check_sm_count("--sms", s.sms);
  if (vm.count("eps")) s.epsilon = fp32_parameter("eps", eps);
  s.weight_bias = fp32_parameter("weight-bias", weight_bias);
  s.quant_scale = fp32_parameter("quant-scale", quant_scale);
  if (s.round_bytes < -1)
    throw UsageError(
        fmt::format("--round-bytes must be -1 (the default), 0 (one round) or a byte budget, got {}", s.round_bytes));
  s.direct_from_bytes = direct_from_option("--direct-from", direct_from_text);
  check_timeout_ms("--timeout-ms", s.timeout_ms, /*zero_waits_forever=*/true);
  if (s.die_after_call < 0 || (s.die_after_call > 0) != (s.die_rank >= 0))
    throw UsageError("--die-after-call K (K >= 1) and --die-rank R go together");
  if (s.tokens < 1) throw UsageError(fmt::format("-N {} must be at least 1 (the N of calls without N=)", s.tokens));
  if (batches.max_tokens < 0 || batches.max_tokens > (1 << 20))
    throw UsageError(fmt::format("--batches {} is outside [0, {}]", batches.max_tokens, 1 << 20));
  if (batches.max_tokens == 0)  // the options of --batches do nothing without it: refused rather than ignored
    for (const char* name : {"batch-strategies", "batch-kinds", "batch-bytes"})
      if (option_given(vm, name)) throw UsageError(fmt::format("--{} belongs to --batches: give --batches N too", name));
  if (batches.max_tokens > 0) {
    if (s.kind == InputKind::kGolden) throw UsageError("--batches makes its own inputs: it does not take --inputs golden");
    if (!vm["calls"].defaulted()) throw UsageError("--batches replaces --calls: give one or the other");
    if (batches.max_input_bytes < 16) throw UsageError("--batch-bytes must be at least one row");
    batches.strategies = strategy_list_option("--batch-strategies", batch_strategies_text);
    batches.kinds.clear();
    const auto add = [&](BatchKind k) {  // each kind once, however often named
      if (std::find(batches.kinds.begin(), batches.kinds.end(), k) == batches.kinds.end()) batches.kinds.push_back(k);
    };
    for (const std::string& kind : split_list(batch_kinds_text)) {
      const auto quant = parse_quant_mode(kind);
      if (kind == "plain" || kind == "both") add({false});
      if (kind == "fused" || kind == "both") add({true});
      if (quant && *quant != QuantMode::kNone) add({true, *quant});
      if (kind != "plain" && kind != "fused" && kind != "both" && !(quant && *quant != QuantMode::kNone))
        throw UsageError(fmt::format(
            "--batch-kinds '{}': choose plain, fused, both, or a quantised output fp8, fp8-dynamic, nvfp4", kind));
    }
    if (batches.kinds.empty()) throw UsageError("--batch-kinds names no kind");
    if (s.expect) throw UsageError("--batches compares each profile with its own model: it does not take --expect");
  }
  if (s.kind != InputKind::kGolden) {
    try {
      s.specs = parse_call_sequence(s.calls_text);
    } catch (const CallSequenceError& e) {
      throw UsageError(fmt::format("--calls: {}", e.what()));
    }
    check_call_sizes(s);  // before the job: no process starts, and nothing is allocated, for a call that cannot run
  }

  return run_as_job(spawn, "run", args, job_options, out, err,
                    [&](Job& job, std::ostream& job_out) { return run_job(job, s, batches, job_out, err); });
}

}  // namespace ar
