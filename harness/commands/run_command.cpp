// mnnvl-ar run: call sequences on the GPU, every rank's output of every call compared bit for bit with
// reference/, and every rank's flags with reference advance_flags(). The W ranks are virtual ranks of one
// process, or the processes of a job (launcher or --spawn) each run their share; every process checks its
// own ranks and the reports are merged (harness/call_report.h), so only rank 0 prints the table.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <future>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "harness/job/call_report.h"
#include "harness/commands/commands.h"
#include "harness/io/exit_codes.h"
#include "harness/io/golden_cases.h"
#include "harness/job/gpu_backend.h"
#include "harness/job/gpu_check.h"
#include "harness/io/npy.h"
#include "harness/commands/job_options.h"
#include "harness/job/job.h"
#include "harness/job/job_gpu.h"
#include "harness/commands/options.h"
#include "harness/io/sha256.h"
#include "harness/job/spawn.h"
#include "reference/all_reduce.h"
#include "reference/explain.h"
#include "reference/call_sequence.h"

namespace ar {
namespace {

enum class InputKind { kRandom, kAdversarial, kExact, kGolden };

InputKind input_kind_option(const std::string& name) {
  if (name == "random") return InputKind::kRandom;
  if (name == "adversarial") return InputKind::kAdversarial;
  if (name == "exact") return InputKind::kExact;
  if (name == "golden") return InputKind::kGolden;
  throw UsageError(fmt::format("unknown --inputs '{}' (choose random, adversarial, exact or golden)", name));
}

/// "2,8" / "all" -> world sizes.
std::vector<int> world_list_option(const std::string& text) {
  if (text == "all") return {kWorldSizes.begin(), kWorldSizes.end()};
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    int w = 0;
    try {
      w = std::stoi(item);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("--world: '{}' is not a number (give e.g. 2,8 or all)", item));
    }
    if (!is_supported_world_size(w))
      throw UsageError(fmt::format("--world: {} is not a supported world size ({})", w, world_sizes_text()));
    out.push_back(w);
  }
  if (out.empty()) throw UsageError("--world names no world size");
  return out;
}

std::vector<DType> dtype_list_option(const std::string& text) {
  if (text == "all") return {DType::kBf16, DType::kFp16, DType::kFp32};
  std::vector<DType> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(dtype_option(item));
  if (out.empty()) throw UsageError("--dtype names no dtype");
  return out;
}

std::vector<Profile> profile_list_option(const std::string& text) {
  if (text == "both") return {Profile::kFlashInfer, Profile::kIeee};
  const Profile p = profile_option(text);
  if (p == Profile::kTrtllm)
    throw UsageError("--profile trtllm is a reference-only model; the kernels run flashinfer and ieee (or both)");
  return {p};
}

std::vector<bool> pdl_list_option(const std::string& text) {
  if (text == "both") return {false, true};
  if (text == "on" || text == "1") return {true};
  if (text == "off" || text == "0") return {false};
  throw UsageError(fmt::format("--pdl '{}': choose on, off or both", text));
}

/// One call to run: its input and what its outputs must equal.
struct PlannedCall {
  std::string label;          ///< golden case name, or "seq"
  GpuCall call;
  Profile expect = Profile::kFlashInfer;  ///< the reference profile the outputs are compared with
  Strategy requested = Strategy::kAuto;
  HostTensor input;           ///< [W, N, D]
  std::optional<HostTensor> expected;  ///< golden: the manifest's file; else computed by the reference
  std::uint64_t seed = 0;
};

struct Row {
  int index = 0;
  std::string label;
  GpuCall call;
  Profile expect = Profile::kFlashInfer;
  Strategy requested = Strategy::kAuto;
  std::int64_t elements = 0;
  std::int64_t mismatches = 0;
  int ranks_disagreeing = 0;  ///< ranks whose output differs from rank 0's
  bool flags_ok = true;
  std::uint64_t seed = 0;
  double ms = 0;
  std::vector<std::string> digests;  ///< sha256 of every rank's output, when computed
};

/// The first difference found, kept to explain it.
struct FirstMismatch {
  Row row;
  int rank = -1;
  std::int64_t index = -1;
  std::uint32_t gpu = 0, expected = 0;
  HostTensor input;
  std::string dumped_input;  ///< where --dump wrote the input, if it did
};

std::string flags_text(const LamportFlags& f) { return fmt::format("[{}]", fmt::join(f.words, " ")); }

/// The explanation of the first differing element: its fold under the call's strategy and profile.
void print_explanation(std::ostream& out, const FirstMismatch& m) {
  const ProblemShape& s = m.row.call.shape;
  const std::int64_t token = m.index / s.hidden, col = m.index % s.hidden;
  std::vector<std::uint32_t> column(s.world_size);
  for (int r = 0; r < s.world_size; ++r) column[r] = m.input.bits((r * s.tokens + token) * s.hidden + col);
  const Strategy resolved = resolve_strategy(m.row.requested, s);
  const ElementExplanation e = explain_element(column, s.dtype, resolved, m.row.expect);
  fmt::print(out, "\nfirst difference: call {} ({}), rank {}, element [{}, {}]: GPU ({}) {} but {} ({}) expects {}\n",
             m.row.index, m.row.label, m.rank, token, col, profile_name(m.row.call.profile), format_value(m.gpu, s.dtype),
             m.row.label == "seq" ? "the reference" : "the golden file", profile_name(m.row.expect),
             format_value(m.expected, s.dtype));
  const ExplainedFold& fold = e.folds[0];
  fmt::print(out, "{}: {}\n", fold.label(), describe(fold.order));
  for (int r = 0; r < s.world_size; ++r)
    fmt::print(out, "  rank {:>2} input {}\n", r, format_value(fold.trace.raw[r], s.dtype));
  for (std::size_t i = 0; i < fold.trace.steps.size(); ++i)
    fmt::print(out, "  step {:>2}  {}\n", i, describe_step(fold.trace.steps[i], s.dtype));
  for (const FoldComparison& c : e.comparisons)
    if (!c.same_bits && c.other && c.other->trace.result == m.gpu)
      fmt::print(out, "the GPU's bits are what {} computes: {}\n", c.other->label(), c.difference);
  fmt::print(out, "reproduce on the CPU: mnnvl-ar explain --input {} -t {} -c {} -s {} -p {}{}\n",
             m.dumped_input.empty() ? "<the call's input; save it with --dump DIR>" : m.dumped_input, token, col,
             strategy_name(resolved), profile_name(m.row.expect), s.dtype == DType::kBf16 ? " -d bf16" : "");
}

/// Golden cases from `dir`/manifest.json, filtered by world size and dtype.
std::vector<PlannedCall> golden_calls(const std::string& dir, const std::vector<int>& worlds,
                                      const std::vector<DType>& dtypes, Profile profile, bool pdl,
                                      std::optional<Profile> expect) {
  const std::filesystem::path manifest_path = std::filesystem::path(dir) / "manifest.json";
  std::ifstream in(manifest_path);
  if (!in)
    throw UsageError(fmt::format("--inputs golden: cannot read {} (give --data DIR, or regenerate it with `mnnvl-ar "
                                 "data`)",
                                 manifest_path.string()));
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw UsageError(fmt::format("{} is not valid JSON: {}", manifest_path.string(), e.what()));
  }
  std::vector<PlannedCall> calls;
  for (const auto& c : manifest.at("cases")) {
    const int world = c.at("world_size").get<int>();
    const auto dtype = parse_dtype(c.at("dtype").get<std::string>());
    if (!dtype) throw UsageError(fmt::format("{}: case {} has an unknown dtype", manifest_path.string(), c.at("name").dump()));
    if (std::find(worlds.begin(), worlds.end(), world) == worlds.end()) continue;
    if (std::find(dtypes.begin(), dtypes.end(), *dtype) == dtypes.end()) continue;
    const std::string name = c.at("name").get<std::string>();
    const HostTensor input = read_npy((std::filesystem::path(dir) / c.at("input").at("file").get<std::string>()).string(), *dtype);
    const ProblemShape shape = shape_of_input(input);
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto}) {
      const Strategy resolved = resolve_strategy(s, shape);
      const std::string key = fmt::format("{}/{}", strategy_name(resolved), profile_name(expect.value_or(profile)));
      const HostTensor expected =
          read_npy((std::filesystem::path(dir) / c.at("outputs").at(key).at("file").get<std::string>()).string(), *dtype);
      calls.push_back({name, GpuCall{shape, s, profile, pdl}, expect.value_or(profile), s, input, expected,
                       c.at("seed").get<std::uint64_t>()});
    }
  }
  return calls;
}

HostTensor make_input(InputKind kind, DType dtype, int world, std::int64_t tokens, std::int64_t hidden,
                      std::uint64_t seed) {
  switch (kind) {
    case InputKind::kRandom: return random_input(dtype, world, tokens, hidden, seed, 12);
    case InputKind::kExact: return exact_input(dtype, world, tokens, hidden, seed);
    case InputKind::kAdversarial:
    case InputKind::kGolden: break;
  }
  return adversarial_input(dtype, world, tokens, hidden, seed);
}

/// The command line, parsed and checked.
struct RunSettings {
  std::string calls_text, world_text, inputs_text, json_path, data_dir, dump_dir, devices_text;
  std::vector<int> worlds;
  std::vector<DType> dtypes;
  std::vector<Profile> profiles;
  std::vector<bool> pdls;
  InputKind kind = InputKind::kAdversarial;
  std::optional<Profile> expect;
  std::vector<CallSpec> specs;
  std::int64_t tokens = 1, hidden = 1024, round_bytes = -1;
  std::uint64_t seed = 1;
  int repeat = 2, omit_rank = -1, device = -1, die_after_call = 0, die_rank = -1;
  double timeout_ms = 10000;
  bool digests = false;
  HandleRequest handles = HandleRequest::kAuto;
};

/// sha256 of each tensor, computed on several threads (a digest runs at a few hundred MB/s).
std::vector<std::string> digests_of(const std::vector<HostTensor>& outputs) {
  std::vector<std::future<std::string>> jobs;
  for (const HostTensor& t : outputs)
    jobs.push_back(std::async(std::launch::async, [&t] {
      return sha256_hex(std::string_view(reinterpret_cast<const char*>(t.bytes().data()), t.bytes().size()));
    }));
  std::vector<std::string> out;
  for (auto& j : jobs) out.push_back(j.get());
  return out;
}

/// The plan every process states before its kernels run at one world size.
std::string describe_plan(const Job& job, const RunSettings& s, int world, HandleKind handles,
                          const std::vector<PlannedCall>& planned) {
  std::string plan = fmt::format("program mnnvl-ar {}\ncommand run\nprocesses {}\nworld size {}\nhandles {}\n",
                                 MNNVL_AR_VERSION, job.processes(), world, handle_kind_name(handles));
  plan += fmt::format("inputs {} seed {}\ntimeout-ms {}\nround-bytes {}\nomit-rank {}\ndigests {}\n", s.inputs_text,
                      s.seed, s.timeout_ms, s.round_bytes, s.omit_rank, s.digests || job.multi_process());
  for (std::size_t i = 0; i < planned.size(); ++i)
    plan += plan_line(static_cast<int>(i) + 1, planned[i].label, planned[i].call, planned[i].requested,
                      planned[i].expect, planned[i].seed) + "\n";
  return plan;
}

/// The calls of one world size: every (dtype, profile, PDL) combination of the sequence (or of the golden
/// cases), each with its input.
std::vector<PlannedCall> plan_calls(const RunSettings& s, int world) {
  std::vector<PlannedCall> planned;
  std::uint64_t call_seed = s.seed;
  for (DType dt : s.dtypes)
    for (Profile p : s.profiles)
      for (bool pdl : s.pdls) {
        if (s.kind == InputKind::kGolden) {
          auto g = golden_calls(s.data_dir, {world}, {dt}, p, pdl, s.expect);
          for (auto& c : g) planned.push_back(std::move(c));
          continue;
        }
        std::vector<ResolvedCall> resolved;
        try {
          resolved = resolve_calls(s.specs, world, CallDefaults{s.tokens, s.hidden, dt});
        } catch (const CallSequenceError& e) {
          throw UsageError(fmt::format("--calls at W = {}: {}", world, e.what()));
        }
        for (int rep = 0; rep < s.repeat; ++rep)
          for (const ResolvedCall& rc : resolved) {
            ++call_seed;
            planned.push_back({"seq", GpuCall{rc.shape, rc.requested, p, pdl}, s.expect.value_or(p), rc.requested,
                               make_input(s.kind, rc.shape.dtype, world, rc.shape.tokens, rc.shape.hidden, call_seed),
                               std::nullopt, call_seed});
          }
      }
  return planned;
}

int run_job(Job& job, const RunSettings& s, std::ostream& out, std::ostream& err) {
  auto backend = make_gpu_backend();
  if (auto why = gather_gpu_problems(job, *backend)) {
    if (job.leader()) fmt::print(err, "mnnvl-ar run: no GPU: {}\n", *why);
    return kExitUsage;
  }
  const JobDevice choice = pick_device(job, *backend, s.device);
  const GpuDevice dev = backend->device(choice.device);
  const int processes = job.processes();
  fmt::print(out, "# mnnvl-ar run on {} (sm_{}, {} SMs), driver {} (CUDA {}), inputs {}, seed {}\n", dev.name,
             dev.compute_capability, dev.sm_count, dev.driver.empty() ? "?" : dev.driver, dev.cuda_driver,
             s.inputs_text, s.seed);
  describe_job(job, dev, choice, out, err);

  // World sizes: each process runs W / P ranks, spread over its --devices.
  const std::vector<int> devices = devices_option(s.devices_text, job, dev.device_count);
  const std::vector<int> worlds = runnable_worlds(job, s.worlds, devices, s.world_text == "all", err);
  if (!devices.empty()) describe_devices(*backend, devices, out);
  const std::vector<int> gpus = job_gpus(job, choice.device, devices);
  const HandleDecision handles = agree_on_handles(job, *backend, choice.device, s.handles);
  if (job.multi_process()) fmt::print(out, "# handles: {}\n", handles.summary);
  const bool want_digests = s.digests || job.multi_process();

  std::vector<Row> rows;
  std::optional<FirstMismatch> first;
  std::optional<GpuTimeout> timeout;
  int flag_failures = 0;
  const auto wall_start = std::chrono::steady_clock::now();

  for (int world : worlds) {
    const std::vector<int> local = local_ranks_of(world, processes, job.rank());
    const std::vector<PlannedCall> planned = plan_calls(s, world);
    if (planned.empty()) continue;
    std::int64_t buffer = kBufferAlignment, io = 16;
    for (const PlannedCall& c : planned) {
      buffer = std::max(buffer, required_buffer_bytes(c.requested, c.call.shape));
      io = std::max(io, c.call.shape.bytes_per_rank());
    }
    const BufferRequest request = request_buffer_bytes(planned.front().call.shape, buffer);
    if (request.error) throw UsageError(*request.error);
    if (s.omit_rank >= world) throw UsageError(fmt::format("--omit-rank {} is not a rank of W = {}", s.omit_rank, world));
    // Before any kernel (the workspace's Lamport fill included): every process must plan the same calls.
    agree_on_plan(job, fmt::format("plan at W = {}", world), describe_plan(job, s, world, *handles.kind, planned));

    GpuBackend::GroupOptions group_options{choice.device, world, request.bytes, io,
                                           static_cast<std::uint64_t>(s.timeout_ms * 1e6), s.round_bytes};
    group_options.devices = devices;
    if (job.multi_process()) {
      group_options.local_ranks = local;
      group_options.handles = *handles.kind;
      group_options.rendezvous = &job.rendezvous();
      group_options.job_name = fmt::format("run-w{}", world);
    }
    auto group = backend->open(group_options);
    // Every process checks every call on its ranks; one that cannot run stops the whole job, before any call.
    std::string cannot;
    for (std::size_t i = 0; i < planned.size() && cannot.empty(); ++i) {
      const GpuCall& call = planned[i].call;
      if (auto why = group->cannot_run(call))
        cannot = fmt::format("call {} ({} N={} D={} {} W={}): {}", rows.size() + i + 1,
                             strategy_name(planned[i].requested), call.shape.tokens, call.shape.hidden,
                             dtype_name(call.shape.dtype), world, *why);
    }
    const std::vector<std::string> refusals = job.gather(cannot);
    for (int p = 0; p < processes; ++p)
      if (!refusals[p].empty())
        throw UsageError(job.multi_process() ? fmt::format("rank {}: {}", p, refusals[p]) : refusals[p]);

    std::map<int, LamportFlags> model;
    for (int r : local) model[r] = initial_flags(static_cast<std::uint32_t>(group->buffer_bytes()));
    std::vector<int> launched;
    for (int r : local)
      if (r != s.omit_rank) launched.push_back(r);
    if (job.leader())
      fmt::print(err, "W = {:>2}: {} calls on one workspace (BPB {} bytes){}\n", world, planned.size(),
                 group->buffer_bytes(),
                 job.multi_process() ? fmt::format(", {} rank{} per process", local.size(), local.size() > 1 ? "s" : "")
                 : devices.empty()   ? std::string()
                                     : fmt::format(", {} rank{} per GPU", world / static_cast<int>(devices.size()),
                                                   world / static_cast<int>(devices.size()) > 1 ? "s" : ""));

    for (const PlannedCall& c : planned) {
      Row row;
      row.index = static_cast<int>(rows.size()) + 1;
      row.label = c.label;
      row.call = c.call;
      row.expect = c.expect;
      row.requested = c.requested;
      row.seed = c.seed;
      group->upload(c.input);
      const auto t0 = std::chrono::steady_clock::now();
      CallReport mine;
      if (!launched.empty()) mine.timeout = group->run(c.call, launched);
      row.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (mine.timeout && job.multi_process())
        fmt::print(err, "mnnvl-ar run (rank {}): call {}: {}\n", job.rank(), row.index, mine.timeout->message);
      if (!mine.timeout && !launched.empty()) {  // a process whose ranks were all omitted has nothing to check
        const HostTensor expected = c.expected ? *c.expected : parallel_reference(c.input, c.requested, c.expect);
        std::vector<HostTensor> outputs;
        for (int r : local) outputs.push_back(group->output(r, c.call.shape));
        for (std::size_t i = 0; i < local.size(); ++i) {
          const int r = local[i];
          const BitDiff d = compare_fast(outputs[i], expected);
          mine.elements += d.elements;
          mine.mismatches += d.differing;
          if (d.differing && !mine.first) {
            mine.first = RankMismatch{r, d.first_index, d.first_a, d.first_b};
            if (!s.dump_dir.empty() && !first) {
              std::filesystem::create_directories(s.dump_dir);
              write_npy((std::filesystem::path(s.dump_dir) / fmt::format("call{}.rank{}.gpu.npy", row.index, r)).string(),
                        outputs[i]);
            }
          }
          if (i > 0 && compare_fast(outputs[i], outputs[0]).differing) ++mine.disagreeing;
        }
        if (want_digests) {
          const std::vector<std::string> d = digests_of(outputs);
          for (std::size_t i = 0; i < local.size(); ++i) mine.digests[local[i]] = d[i];
        }
        const ClearRecord record = clear_record(c.requested, c.call.shape);
        for (int r : local) {
          model[r] = advance_flags(model[r], record);
          const LamportFlags seen = group->flags(r);
          if (!(seen == model[r])) {
            if (mine.flags_bad.empty())
              fmt::print(err, "call {}: rank {} flags {} but the reference's update gives {}\n", row.index, r,
                         flags_text(seen), flags_text(model[r]));
            mine.flags_bad.push_back(r);
          }
        }
      }
      // Every process learns what every other found, so all stop at the same call with the same verdict.
      std::vector<CallReport> reports;
      for (const std::string& text : job.gather(mine.to_json())) reports.push_back(CallReport::from_json(text));
      const MergedCall merged = merge_call_reports(reports, world);
      row.elements = merged.elements;
      row.mismatches = merged.mismatches;
      row.ranks_disagreeing = merged.ranks_disagreeing;
      row.flags_ok = merged.flags_bad.empty();
      row.digests = merged.digests;
      if (!row.flags_ok) ++flag_failures;
      if (merged.first && !first) {
        first = FirstMismatch{row, merged.first->rank, merged.first->index, merged.first->gpu, merged.first->expected,
                              c.input, ""};
        if (!s.dump_dir.empty() && job.leader()) {
          std::filesystem::create_directories(s.dump_dir);
          first->dumped_input = (std::filesystem::path(s.dump_dir) / fmt::format("call{}.in.npy", row.index)).string();
          write_npy(first->dumped_input, c.input);
        }
      }
      rows.push_back(row);
      if (merged.timeout) {
        timeout = merged.timeout;
        break;
      }
      if (s.die_after_call == row.index && s.die_rank == job.rank()) {
        // --die-after-call: a crash, as abrupt as it gets (no destructor, no goodbye to the peers).
        fmt::print(err, "mnnvl-ar run (rank {}): --die-after-call {}: killing this process\n", job.rank(), row.index);
        err.flush();
        std::raise(SIGKILL);
      }
    }
    if (timeout) break;
  }

  // The table.
  fmt::print(out, "{:>5}  {:<28} {:<17} {:>6} {:>6} {:<5} {:>3} {:<10} {:<3} {:>10} {:>10} {:>8} {:>5}\n", "call", "case",
             "strategy", "N", "D", "dtype", "W", "profile", "pdl", "elements", "mismatches", "disagree", "flags");
  for (const Row& r : rows) {
    const Strategy resolved = resolve_strategy(r.requested, r.call.shape);
    const std::string strategy = r.requested == Strategy::kAuto
                                     ? fmt::format("auto->{}", strategy_name(resolved))
                                     : std::string(strategy_name(resolved));
    fmt::print(out, "{:>5}  {:<28} {:<17} {:>6} {:>6} {:<5} {:>3} {:<10} {:<3} {:>10} {:>10} {:>8} {:>5}\n", r.index,
               r.label, strategy, r.call.shape.tokens, r.call.shape.hidden, dtype_name(r.call.shape.dtype),
               r.call.shape.world_size, profile_name(r.call.profile), r.call.pdl ? "on" : "off", r.elements,
               r.mismatches, r.ranks_disagreeing, r.flags_ok ? "ok" : "BAD");
  }
  std::int64_t elements = 0, mismatches = 0;
  for (const Row& r : rows) {
    elements += r.elements;
    mismatches += r.mismatches;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const std::string result = timeout ? "timeout" : (mismatches || flag_failures) ? "mismatch" : "ok";
  fmt::print(out, "\n{} calls, {} elements compared, {} mismatches, {} flag differences{} ({:.1f} s): {}\n",
             rows.size() - (timeout ? 1 : 0), elements, mismatches, flag_failures,
             timeout ? ", stopped by a timeout" : "", seconds, result == "ok" ? "every output bit-exact" : result);
  if (timeout) fmt::print(out, "\ntimeout: {}\n", timeout->message);
  if (first) print_explanation(out, *first);

  if (!s.json_path.empty() && job.leader()) {
    nlohmann::json j;
    j["command"] = "run";
    j["device"] = {{"name", dev.name}, {"compute_capability", dev.compute_capability}, {"sms", dev.sm_count},
                   {"driver", dev.driver}, {"cuda_driver", dev.cuda_driver}, {"cuda_runtime", dev.cuda_runtime}};
    j["job"] = {{"processes", processes}, {"launcher", job.launcher()}, {"handles", handle_kind_name(*handles.kind)},
                {"handles_summary", handles.summary},
                {"gpus", gpus}};
    j["inputs"] = s.inputs_text;
    j["seed"] = s.seed;
    j["calls_text"] = s.kind == InputKind::kGolden ? "golden" : s.calls_text;
    j["timeout_ms"] = s.timeout_ms;
    j["rows"] = nlohmann::json::array();
    for (const Row& r : rows) {
      nlohmann::json row{{"call", r.index},
                         {"case", r.label},
                         {"requested", strategy_name(r.requested)},
                         {"strategy", strategy_name(resolve_strategy(r.requested, r.call.shape))},
                         {"tokens", r.call.shape.tokens},
                         {"hidden", r.call.shape.hidden},
                         {"dtype", dtype_name(r.call.shape.dtype)},
                         {"world_size", r.call.shape.world_size},
                         {"profile", profile_name(r.call.profile)},
                         {"expect", profile_name(r.expect)},
                         {"pdl", r.call.pdl},
                         {"seed", r.seed},
                         {"elements", r.elements},
                         {"mismatches", r.mismatches},
                         {"ranks_disagreeing", r.ranks_disagreeing},
                         {"flags_ok", r.flags_ok},
                         {"ms", r.ms}};
      if (!r.digests.empty()) row["output_sha256"] = r.digests;
      j["rows"].push_back(row);
    }
    j["summary"] = {{"calls", rows.size()}, {"elements", elements}, {"mismatches", mismatches},
                    {"flag_differences", flag_failures}, {"result", result}, {"seconds", seconds}};
    if (timeout)
      j["timeout"] = {{"message", timeout->message}, {"rank", timeout->rank}, {"peer", timeout->peer},
                      {"call", timeout->call}};
    write_file_atomically(s.json_path, j.dump(2) + "\n");
  }
  return result == "ok" ? kExitOk : kExitDifference;
}

}  // namespace

int run_command(const CommandArgs& all_args, std::ostream& out, std::ostream& err) {
  CommandArgs args = all_args;
  const int spawn = take_spawn_option(args);
  RunSettings s;
  std::string dtype_text, profile_text, pdl_text, expect_text, handles_text;
  JobOptions job_options;
  po::options_description options("options");
  options.add_options()
      ("calls", po::value(&s.calls_text)->default_value("oneshot:N=4,twoshot:N=64,auto:N=11,oneshot:N=1"),
       "the call sequence, as `sim --calls`: strategy[:N=..][:D=..][:dtype=..], comma-separated")
      ("world,W", po::value(&s.world_text)->default_value("all"),
       fmt::format("world sizes to run, e.g. 2,8 (or all: {}..{}; with P processes, those that are multiples of P)",
                   kWorldSizes.front(), kMaxWorldSize).c_str())
      ("dtype,d", po::value(&dtype_text)->default_value("all"), "default dtype(s) of calls without dtype=: bf16,fp16,fp32 or all")
      ("tokens,N", po::value(&s.tokens)->default_value(1), "default N of calls without N=")
      ("hidden,D", po::value(&s.hidden)->default_value(1024), "default D of calls without D=")
      ("inputs", po::value(&s.inputs_text)->default_value("adversarial"),
       "random (full mantissa), adversarial (random + the SPEC edge cases), exact (small integers), or golden (data/)")
      ("seed", po::value(&s.seed)->default_value(1), "seed of the inputs; call k of a sequence uses seed + k")
      ("profile,p", po::value(&profile_text)->default_value("both"), "flashinfer, ieee or both")
      ("pdl", po::value(&pdl_text)->default_value("both"), "launch_with_pdl: on, off or both")
      ("expect", po::value(&expect_text)->default_value(""),
       "compare with the reference of this profile instead of the one the kernels ran (e.g. trtllm: where would "
       "TensorRT-LLM's order give other bits on this input?)")
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
      "data/manifest.json run under oneshot, twoshot and auto and must equal the committed expected files.\n\n"
      "The table has one row per call: call, label, strategy (auto -> resolved), N, D, dtype, W, profile, PDL,\n"
      "elements compared (all ranks), mismatches, ranks that disagree with rank 0, flags. On a mismatch the\n"
      "first differing element is explained (its fold, step by step). A device wait that exceeds --timeout-ms\n"
      "ends the launch with an error naming the rank, the call, the buffer, stage, token, pack, the four words\n"
      "it saw and the peer it waited for; the run stops there.\n\n" +
          std::string(kJobHelp) +
          "\n\n"
          "examples:\n"
          "  mnnvl-ar run                                        # default sequence, every W, dtype, profile, PDL\n"
          "  mnnvl-ar run --calls oneshot:N=4,twoshot:N=64:D=256,auto:N=11:dtype=fp32 --world 8\n"
          "  mnnvl-ar run --inputs golden --json run.json\n"
          "  mnnvl-ar run --world 4 --omit-rank 2 --timeout-ms 500   # must time out, naming rank 2\n"
          "  mnnvl-ar run --spawn 4 --world 4,8 --json mp.json       # 4 processes on this host\n"
          "  mnnvl-ar run --devices 0,1 --world 2,16 --inputs golden # one process, two GPUs\n"
          "  torchrun --nproc-per-node 8 $(which mnnvl-ar) run --world 8   # one process per GPU\n"
          "  srun -N 2 --ntasks-per-node 4 mnnvl-ar run --world 8 --handles fabric\n\n"
          "exit codes: 0 every output bit-exact, 1 a mismatch, flags difference or timeout, or a peer that died\n"
          "or never came, 2 bad usage or input, or no GPU (or a build without the CUDA layer)"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;
  if (vm.count("spawn")) throw UsageError("--spawn is given more than once");

  s.worlds = world_list_option(s.world_text);
  s.dtypes = dtype_list_option(dtype_text);
  s.profiles = profile_list_option(profile_text);
  s.pdls = pdl_list_option(pdl_text);
  s.kind = input_kind_option(s.inputs_text);
  s.handles = handle_request_option(handles_text);
  s.expect = expect_text.empty() ? std::nullopt : std::optional<Profile>(profile_option(expect_text));
  if (s.repeat < 1) throw UsageError("--repeat must be at least 1");
  if (s.timeout_ms < 0) throw UsageError("--timeout-ms must be >= 0 (0 = wait forever)");
  if (s.die_after_call < 0 || (s.die_after_call > 0) != (s.die_rank >= 0))
    throw UsageError("--die-after-call K (K >= 1) and --die-rank R go together");
  if (s.kind != InputKind::kGolden) {
    try {
      s.specs = parse_call_sequence(s.calls_text);
    } catch (const CallSequenceError& e) {
      throw UsageError(fmt::format("--calls: {}", e.what()));
    }
  }

  return run_as_job(spawn, "run", args, job_options, out, err,
                    [&](Job& job, std::ostream& job_out) { return run_job(job, s, job_out, err); });
}

}  // namespace ar
