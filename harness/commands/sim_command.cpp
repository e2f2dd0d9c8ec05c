// mnnvl-ar sim: the Lamport protocol simulator on the command line. Parses options into a search plan (the
// default plan, or one leg from the options given), runs sim::run_search, and prints the verdict, the
// diagnosis and how to reproduce it; optionally a Chrome trace and a JSON result. The options are read into
// SimOptions, checked into SimChoices (what every leg runs with), then made into one leg or the default legs.
#include <fmt/format.h>
#include <fmt/ostream.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string_view>

#include "harness/commands/commands.h"
#include "harness/commands/options.h"
#include "harness/commands/sim_outputs.h"
#include "harness/io/exit_codes.h"
#include "reference/call_sequence.h"
#include "sim/mutation.h"
#include "sim/search.h"

namespace ar {
namespace {

constexpr const char* kDefaultCalls = "oneshot,twoshot,oneshot,twoshot,oneshot,auto";

std::string help_text() {
  std::string mutations;
  for (const sim::MutationInfo& m : sim::kMutationTable) {
    if (m.mutation == sim::Mutation::kNone) continue;
    mutations += fmt::format("  {:<26}{}{}\n", m.name,
                             !m.flashinfer ? "(ours only) "
                             : !m.ours     ? "(flashinfer only) "
                                           : "",
                             m.summary);
    if (m.flashinfer && m.ours && !m.in_ours.empty()) mutations += fmt::format("  {:<26}ours: {}\n", "", m.in_ours);
  }
  return fmt::format(
      "Simulates FlashInfer's Lamport all-reduce protocol (SPEC sections 4-5), or our kernels' variant of it\n"
      "(--protocol ours), on the CPU and searches for the timings that break it. W ranks share one workspace:\n"
      "each has three Lamport buffers of BPB bytes filled with the sentinel 0x80000000 and the flag words.\n"
      "Several CTAs per rank interleave one memory operation at a time (st_v4, ld_volatile_v4,\n"
      "red_release_gpu_add_u32, atom_relaxed_gpu_add_u32, ... as the kernels issue them).\n"
      "A 16-byte store lands as two 8-byte halves, each after any delay and in any order; a poll may read its\n"
      "four words at different moments. Each call stores, clears the previous launch's buffer, arrives,\n"
      "polls, folds with the reference arithmetic and rotates the flags, for a sequence of calls whose strategy,\n"
      "N, D and dtype may change. Checked on every run: every rank's output equals the reference bit for bit,\n"
      "no poll accepts a pack that is not this call's data, data lands only on cleared words, no clear erases\n"
      "unread data, all CTAs and ranks read the same flags, and no deadlock.\n\n"
      "schedules:\n"
      "  random       every runnable CTA equally likely; a read sees each store in flight with p = 1/2\n"
      "  adversarial  seeded scenarios: one rank slowed or run ahead over some calls, CTAs that start late,\n"
      "               stores kept in flight, polls torn\n"
      "  exhaustive   every schedule of a tiny configuration (depth-first, states hashed); reports the\n"
      "               interleavings covered\n"
      "Without --world-size, --tokens, --hidden, --dtype, --calls, --buffer-bytes, --packs-per-cta, --schedule,\n"
      "the residency options, --blocks-per-rank, --tokens-per-round or --direct-from, the default search runs:\n"
      "random and adversarial legs at W = 4, 32, 8 and 2 over mixed call sequences, fused calls among plain ones\n"
      "(ours: with block caps and rounds in some, a W = 16 leg, and legs of direct calls among Lamport ones), an\n"
      "adversarial leg of fused calls in cluster launches, then exhaustive legs at W = 2, one token (fused calls,\n"
      "one pack; four plain calls, two packs; ours: the fused one and two smaller plain ones, one and two blocks\n"
      "per rank, two direct calls of two blocks around a Lamport one, four direct calls of one block). It catches\n"
      "every mutation below that applies to the protocol; any of those options instead runs one leg with the\n"
      "values given.\n"
      "Run i of a leg uses seed S + i; a failure prints the seed and step, the shortest failing schedule found\n"
      "and the arguments that replay it exactly.\n\n"
      "mutations (deliberate protocol bugs the simulator must catch; --list-mutations prints the names):\n{}\n"
      "--calls grammar: call(,call)* with call = oneshot|twoshot|auto[:N=n][:D=d][:dtype=t][:fused]\n"
      "  (omitted parameters take --tokens, --hidden, --dtype; :fused makes it the fused residual-add + RMSNorm\n"
      "  call: FlashInfer's fused ONESHOT in the norm's cluster launch, its fused TWOSHOT as two kernels (the\n"
      "  all-reduce kernel without arrival or flag update, then rmsNormLamport under PDL, which polls BROADCAST,\n"
      "  arrives and advances the flags); ours one kernel, the TWOSHOT owner storing its sum to its own BROADCAST\n"
      "  too. Each rank's check is the all-reduce sum the norm starts from)\n\n"
      "protocol: --protocol flashinfer (default) runs FlashInfer's kernels as SPEC describes them; --protocol ours\n"
      "runs our kernels (cuda/): blocks stride over the call's packs in rounds, every block arrives with a relaxed\n"
      "atomic (atom_relaxed_gpu_add_u32) right after reading the flags, the last block to arrive advances the\n"
      "flags after its work (a rank of one block at once), each slot is polled until full, clears come after the\n"
      "polls, and flag word 12 counts the calls. With ours, --blocks-per-rank B caps the blocks per rank (default:\n"
      "one pack per thread; fewer blocks make threads stride over several packs), --packs-per-cta is the threads\n"
      "per block, and --tokens-per-round R splits a call into rounds (default one; TWOSHOT rounds up to a\n"
      "multiple of W). Ours is unicast only and arrives its own way (no --writer multicast, no --arrival).\n"
      "--direct-from BYTES sends plain TWOSHOT calls of at least BYTES a rank down our direct path for large\n"
      "calls (docs/large-messages.md): the same owners and fold, but the rows go as plain stores into a region\n"
      "beside the Lamport buffers and each block publishes them with a flag (st_release_sys_u32, holding the\n"
      "call's epoch) that the reader waits for (ld_acquire_sys_u32): no sentinel, no poll of data, no clear.\n"
      "Checked there too: no data lands on a row its reader has not taken (overwrite-unread).\n"
      "--arrival (FlashInfer's protocol only): flashinfer (default) models SPEC's order; after-flags arrives right\n"
      "after reading the flags with red.release, and CTA 0 fences after the counter spin (the arrival our kernels\n"
      "were first designed with).\n\n"
      "residency: by default every CTA of a launch is resident. --resident-ctas R lets only R run per rank at\n"
      "once (a CTA keeps its slot until it exits); --dispatch any lets the schedule pick which waiting CTA\n"
      "starts next (SPEC section 4.5: progress across ranks needs roughly in-order dispatch).\n\n"
      "examples:\n"
      "  mnnvl-ar sim                                    # the default search: must pass\n"
      "  mnnvl-ar sim --mutation two-buffers             # catches it, prints the race and how to replay it\n"
      "  mnnvl-ar sim --protocol ours                    # the default search on our kernels' protocol\n"
      "  mnnvl-ar sim --protocol ours --mutation last-arriver-off-by-one\n"
      "  mnnvl-ar sim --world-size 2 --tokens 1 --hidden 8 --calls oneshot,twoshot,oneshot,oneshot \\\n"
      "      --schedule exhaustive --mutation no-clear --trace no-clear.json   # open in ui.perfetto.dev\n\n"
      "exit codes: 0 every schedule passed, 1 a protocol failure was found, 2 bad usage",
      mutations);
}

/// Progress on a terminal: one line rewritten in place.
struct ProgressLine {
  bool enabled = false;
  std::ostream* err = nullptr;
  bool dirty = false;
  void operator()(const sim::SearchProgress& p) const {
    if (!enabled) return;
    std::string states = p.states ? fmt::format(", {} states", p.states) : std::string();
    fmt::print(*err, "\r  leg {}/{} {:<11} run {}/{}{}, {:.1f}M events, {:.1f} s   ", p.leg + 1, p.legs,
               sim::schedule_name(p.schedule), p.runs, p.runs_planned, states, static_cast<double>(p.events) / 1e6,
               p.seconds);
    err->flush();
  }
  void clear() const {
    if (enabled) fmt::print(*err, "\r{:80}\r", "");
  }
};

nlohmann::json failure_json(const sim::Failure& f) {
  nlohmann::json j{{"kind", sim::failure_kind_name(f.kind)},
                   {"rank", f.rank},
                   {"cta", f.cta},
                   {"call", f.call},
                   {"step", f.step},
                   {"message", f.message}};
  if (f.kind == sim::FailureKind::kWrongBits)
    j["element"] = {
        {"index", f.element}, {"token", f.token}, {"column", f.column}, {"got", f.got}, {"expected", f.expected}};
  else
    j["element"] = nullptr;
  return j;
}

nlohmann::json result_json(const sim::SearchResult& r, sim::Mutation m, sim::Protocol protocol, std::uint64_t seed) {
  nlohmann::json legs = nlohmann::json::array();
  for (const sim::LegStats& l : r.legs) {
    nlohmann::json j{{"schedule", sim::schedule_name(l.schedule)},
                     {"config", l.config},
                     {"runs", l.runs},
                     {"steps", l.steps},
                     {"events", l.events},
                     {"seconds", l.seconds},
                     {"failed", l.failed}};
    if (l.schedule == sim::ScheduleKind::kExhaustive) {
      j["states"] = l.states;
      j["transitions"] = l.transitions;
      j["interleavings"] = l.interleavings;
      j["exhausted"] = l.exhausted;
    }
    legs.push_back(j);
  }
  nlohmann::json j{{"passed", r.passed},
                   {"mutation", sim::mutation_name(m)},
                   {"protocol", sim::protocol_name(protocol)},
                   {"seed", seed},
                   {"runs", r.runs},
                   {"steps", r.steps},
                   {"events", r.events},
                   {"seconds", r.seconds},
                   {"events_per_second", r.events_per_second()},
                   {"legs", legs}};
  std::uint64_t states = 0;
  double interleavings = 0;
  for (const sim::LegStats& l : r.legs) {
    states += l.states;
    interleavings += l.interleavings;
  }
  j["interleavings_explored"] = interleavings;
  j["states_explored"] = states;
  if (r.failure) {
    const sim::FailureReport& f = *r.failure;
    nlohmann::json fj = failure_json(f.failure);
    fj["leg"] = f.leg;
    fj["schedule"] = sim::schedule_name(f.schedule);
    fj["seed"] = f.seed;
    fj["policy"] = f.policy;
    fj["run_steps"] = f.run_steps;
    fj["seconds_to_find"] = f.seconds_to_find;
    fj["config"] = sim::describe(f.config);
    fj["shortest"] = failure_json(f.shortest_failure);
    fj["shortest"]["seed"] = f.shortest_seed;
    fj["shortest"]["run_steps"] = f.shortest_steps;
    fj["reproduce"] = "mnnvl-ar sim " + f.reproduce;
    fj["schedule_tail"] = f.schedule_lines;
    j["failure"] = fj;
  } else {
    j["failure"] = nullptr;
  }
  return j;
}

void print_text(std::ostream& out, const sim::SearchResult& r, const std::vector<sim::SearchLeg>& plan, sim::Mutation m,
                sim::Protocol protocol) {
  const bool ours = protocol == sim::Protocol::kOurs;
  std::string subject = ours ? "our kernels' protocol" : "the protocol as specified";
  if (m != sim::Mutation::kNone)
    subject = fmt::format("{}mutation {}", ours ? "our kernels' protocol, " : "", sim::mutation_name(m));
  fmt::print(out, "mnnvl-ar sim: {} ({} leg{})\n", subject, plan.size(), plan.size() == 1 ? "" : "s");
  for (std::size_t i = 0; i < r.legs.size(); ++i) {
    const sim::LegStats& l = r.legs[i];
    std::string what;
    if (l.schedule == sim::ScheduleKind::kExhaustive)
      what = fmt::format("{} states, {} transitions, {:.4g} interleavings{}", l.states, l.transitions, l.interleavings,
                         l.exhausted ? ", all explored"
                         : l.failed  ? ""
                                     : ", bounded (not exhausted)");
    else
      what = fmt::format("{} schedule{}", l.runs, l.runs == 1 ? "" : "s");
    fmt::print(out, "  leg {}/{} {:<11} {}\n      {}: {}, {} events, {:.2f} s\n", i + 1, plan.size(),
               sim::schedule_name(l.schedule), l.config, l.failed ? "FAILED" : "passed", what, l.events, l.seconds);
  }
  if (!r.failure) {
    fmt::print(out, "PASSED: {} runs, {} steps, {} memory events in {:.2f} s ({:.2f}M events/s)\n", r.runs, r.steps,
               r.events, r.seconds, r.events_per_second() / 1e6);
    return;
  }
  const sim::FailureReport& f = *r.failure;
  fmt::print(out, "FAILED: {}\n", sim::failure_kind_name(f.shortest_failure.kind));
  fmt::print(out, "  first failure: {} at step {} of seed {} ({}; run {} of leg {}, after {:.2f} s)\n",
             sim::failure_kind_name(f.failure.kind), f.failure.step, f.seed, f.policy, f.runs_to_find, f.leg + 1,
             f.seconds_to_find);
  fmt::print(out, "  shortest failing schedule found: seed {}, failing at step {}:\n  {}\n", f.shortest_seed,
             f.shortest_failure.step, f.shortest_failure.message);
  fmt::print(out, "  its last {} steps:\n", f.schedule_lines.size());
  for (const std::string& line : f.schedule_lines) fmt::print(out, "    {}\n", line);
  fmt::print(out, "  reproduce: mnnvl-ar sim {}\n", f.reproduce);
  fmt::print(out, "{} runs, {} memory events in {:.2f} s ({:.2f}M events/s)\n", r.runs, r.events, r.seconds,
             r.events_per_second() / 1e6);
}

/// The options of `mnnvl-ar sim` as given, before they are checked; the defaults are those of --help.
struct SimOptions {
  int world_size = 4;
  std::int64_t tokens = 3, hidden = 16, buffer_bytes = 0, seed = 1, runs = 0;
  int packs_per_cta = 1, resident_ctas = 0, blocks_per_rank = 0;
  std::int64_t tokens_per_round = 0, direct_from = 0;
  std::string dispatch_text = "in-order", arrival_text = "flashinfer", protocol_text = "flashinfer";
  std::string dtype_text = "bf16", calls_text, schedule_text, mutation_text = "none", writer_text = "unicast";
  std::string trace_path, json_path;
};

void add_sim_options(po::options_description& options, SimOptions& o) {
  // clang-format off
  options.add_options()
      ("world-size,w", po::value(&o.world_size),
       fmt::format("ranks W: {} (single leg; default 4)", world_sizes_text(" or ")).c_str())
      ("tokens,n", po::value(&o.tokens), "N of calls that do not set it (default 3)")
      ("hidden,d", po::value(&o.hidden), "D of calls that do not set it; a multiple of 16/sizeof(T) (default 16)")
      ("dtype", po::value(&o.dtype_text), "bf16 | fp16 | fp32 for calls that do not set it (default bf16)")
      ("calls,c", po::value(&o.calls_text), "the call sequence, e.g. oneshot:N=4,twoshot:N=64,auto:N=11,oneshot:N=1")
      ("buffer-bytes", po::value(&o.buffer_bytes), "BPB, bytes per Lamport buffer (default: what the largest call "
                                                   "needs)")
      ("packs-per-cta", po::value(&o.packs_per_cta), "16-byte packs (threads) per CTA (default 1)")
      ("protocol", po::value(&o.protocol_text), "flashinfer (default: FlashInfer's kernels) | ours (cuda/'s kernels)")
      ("blocks-per-rank", po::value(&o.blocks_per_rank), "ours: at most B blocks per rank (default 0: one pack per "
                                                         "thread)")
      ("tokens-per-round", po::value(&o.tokens_per_round), "ours: tokens per round (default 0: one round)")
      ("direct-from", po::value(&o.direct_from), "ours: plain TWOSHOT calls of at least this many bytes a rank take "
                                                 "the direct path (default 0: none)")
      ("writer", po::value(&o.writer_text), "unicast (ours: W st_v4) | multicast (FlashInfer: multimem_st_v4)")
      ("arrival", po::value(&o.arrival_text), "flashinfer (SPEC) | after-flags (our kernels: arrive right after "
                                              "reading the flags, acquire fence after the spin)")
      ("resident-ctas", po::value(&o.resident_ctas), "CTAs resident per rank at once (default 0: all)")
      ("dispatch", po::value(&o.dispatch_text), "in-order | any: which waiting CTA gets a free slot")
      ("schedule,s", po::value(&o.schedule_text), "random | adversarial | exhaustive (single leg; default random)")
      ("seed", po::value(&o.seed), "first seed; run i of a leg uses seed + i (default 1)")
      ("runs", po::value(&o.runs), "schedules per leg (exhaustive: the budget of runs)")
      ("mutation,m", po::value(&o.mutation_text), "a deliberate bug to inject (see --list-mutations), or none")
      ("list-mutations", "print the names of the mutations that apply to --protocol, one a line, and exit")
      ("trace", po::value(&o.trace_path), "write the failing (or first) run as Chrome trace JSON (Perfetto)")
      ("json", "print the result as JSON instead of text")
      ("json-out", po::value(&o.json_path), "also write the JSON result to this file");
  // clang-format on
}

sim::Protocol protocol_option(const std::string& text) {
  const auto protocol = sim::parse_protocol(text);
  if (!protocol) throw UsageError(fmt::format("unknown protocol '{}' (choose flashinfer or ours)", text));
  return *protocol;
}

int list_mutations(sim::Protocol protocol, std::ostream& out) {
  for (const sim::MutationInfo& m : sim::kMutationTable)
    if (m.mutation != sim::Mutation::kNone && sim::mutation_applies(m.mutation, protocol))
      fmt::print(out, "{}\n", m.name);
  return kExitOk;
}

/// What the protocol is run with in every leg: the protocol, the injected bug, the writer and the arrival.
struct SimChoices {
  sim::Protocol protocol = sim::Protocol::kFlashInfer;
  sim::Mutation mutation = sim::Mutation::kNone;
  sim::Writer writer = sim::Writer::kUnicast;
  sim::Arrival arrival = sim::Arrival::kFlashInfer;
};

/// Checks the options every search uses, alone and against the protocol; throws UsageError.
SimChoices checked_choices(const SimOptions& o, const po::variables_map& vm, sim::Protocol protocol) {
  SimChoices c;
  c.protocol = protocol;
  const auto mutation = sim::parse_mutation(o.mutation_text);
  if (!mutation) {
    std::string names;
    for (const sim::MutationInfo& m : sim::kMutationTable)
      names += fmt::format("{}{}", names.empty() ? "" : ", ", m.name);
    throw UsageError(fmt::format("unknown mutation '{}' (choose one of: {})", o.mutation_text, names));
  }
  c.mutation = *mutation;
  if (o.writer_text == "multicast")
    c.writer = sim::Writer::kMulticast;
  else if (o.writer_text != "unicast")
    throw UsageError(fmt::format("unknown writer '{}' (choose unicast or multicast)", o.writer_text));
  if (o.arrival_text == "after-flags")
    c.arrival = sim::Arrival::kAfterFlags;
  else if (o.arrival_text != "flashinfer")
    throw UsageError(fmt::format("unknown arrival '{}' (choose flashinfer or after-flags)", o.arrival_text));
  if (o.seed < 0) throw UsageError(fmt::format("--seed must be >= 0, got {}", o.seed));
  if (vm.count("runs") && o.runs < 1) throw UsageError(fmt::format("--runs must be >= 1, got {}", o.runs));
  if (o.blocks_per_rank < 0) throw UsageError(fmt::format("--blocks-per-rank must be >= 0, got {}", o.blocks_per_rank));
  if (o.tokens_per_round < 0)
    throw UsageError(fmt::format("--tokens-per-round must be >= 0, got {}", o.tokens_per_round));
  if (o.direct_from < 0) throw UsageError(fmt::format("--direct-from must be >= 0, got {}", o.direct_from));
  if (protocol == sim::Protocol::kOurs && vm.count("arrival"))
    throw UsageError("--arrival applies to --protocol flashinfer only; our kernels arrive their own way");
  if (protocol == sim::Protocol::kFlashInfer &&
      (vm.count("blocks-per-rank") || vm.count("tokens-per-round") || vm.count("direct-from")))
    throw UsageError("--blocks-per-rank, --tokens-per-round and --direct-from apply to --protocol ours only");
  if (protocol == sim::Protocol::kOurs && c.writer != sim::Writer::kUnicast)
    throw UsageError(
        "--writer multicast is FlashInfer's writer; our kernels (--protocol ours) store with unicast st_v4");
  if (!sim::mutation_applies(c.mutation, protocol))
    throw UsageError(
        fmt::format("mutation {} does not apply to --protocol {} (--protocol {} --list-mutations lists "
                    "those that do)",
                    o.mutation_text, o.protocol_text, o.protocol_text));
  return c;
}

/// Any option that shapes a leg replaces the default search with one leg of the values given.
bool asks_for_one_leg(const po::variables_map& vm) {
  return vm.count("world-size") || vm.count("tokens") || vm.count("hidden") || vm.count("dtype") || vm.count("calls") ||
         vm.count("buffer-bytes") || vm.count("packs-per-cta") || vm.count("schedule") || vm.count("resident-ctas") ||
         vm.count("dispatch") || vm.count("blocks-per-rank") || vm.count("tokens-per-round") ||
         vm.count("direct-from");
}

/// The one leg the options describe; throws UsageError for values the simulator cannot run.
sim::SearchLeg single_leg(const SimOptions& o, const po::variables_map& vm, const SimChoices& c) {
  const DType dtype = dtype_option(o.dtype_text);
  sim::ScheduleKind schedule = sim::ScheduleKind::kRandom;
  if (vm.count("schedule")) {
    const auto s = sim::parse_schedule(o.schedule_text);
    if (!s)
      throw UsageError(
          fmt::format("unknown schedule '{}' (choose random, adversarial or exhaustive)", o.schedule_text));
    schedule = *s;
  }
  if (!is_supported_world_size(o.world_size))
    throw UsageError(fmt::format("world size {} is not supported (supported: {})", o.world_size, world_sizes_text()));
  std::vector<CallSpec> specs;
  std::vector<ResolvedCall> calls;
  try {
    specs = parse_call_sequence(vm.count("calls") ? o.calls_text : kDefaultCalls);
    calls = resolve_calls(specs, o.world_size, {o.tokens, o.hidden, dtype});
  } catch (const CallSequenceError& e) {
    throw UsageError(fmt::format("--calls: {}", e.what()));
  }
  sim::SimConfig config;
  try {
    config = sim::make_sim_config(o.world_size, std::move(calls),
                                  vm.count("buffer-bytes") ? std::optional<std::int64_t>(o.buffer_bytes) : std::nullopt,
                                  o.packs_per_cta, c.writer, c.mutation);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (o.resident_ctas < 0) throw UsageError(fmt::format("--resident-ctas must be >= 0, got {}", o.resident_ctas));
  if (o.dispatch_text != "in-order" && o.dispatch_text != "any")
    throw UsageError(fmt::format("unknown dispatch '{}' (choose in-order or any)", o.dispatch_text));
  config.resident_ctas = o.resident_ctas;
  config.arrival = c.arrival;
  config.dispatch_in_order = o.dispatch_text == "in-order";
  config.protocol = c.protocol;
  config.max_blocks_per_rank = o.blocks_per_rank;
  config.round_tokens = o.tokens_per_round;
  config.direct_from_bytes = o.direct_from;
  if (auto why = sim::protocol_conflict(config)) throw UsageError(*why);
  const std::uint64_t default_runs = schedule == sim::ScheduleKind::kExhaustive ? 300'000 : 100;
  return {std::move(config), schedule, static_cast<std::uint64_t>(o.seed),
          vm.count("runs") ? static_cast<std::uint64_t>(o.runs) : default_runs};
}

/// The default search (sim::default_plan), with --runs and --arrival applied to every leg.
std::vector<sim::SearchLeg> default_legs(const SimOptions& o, const po::variables_map& vm, const SimChoices& c) {
  std::vector<sim::SearchLeg> plan =
      sim::default_plan(c.mutation, c.writer, static_cast<std::uint64_t>(o.seed), c.protocol);
  for (sim::SearchLeg& leg : plan) {
    if (vm.count("runs")) leg.runs = static_cast<std::uint64_t>(o.runs);
    leg.config.arrival = c.arrival;
  }
  return plan;
}

/// Runs the search, with a progress line when standard error is a terminal.
sim::SearchResult run_plan(const std::vector<sim::SearchLeg>& plan, sim::TraceSink* trace, std::ostream& err) {
  sim::SearchOptions search;
  search.trace = trace;
  ProgressLine progress;
  progress.enabled = &err == &std::cerr && isatty(STDERR_FILENO) != 0;
  progress.err = &err;
  if (progress.enabled) search.progress = progress;
  sim::SearchResult result = sim::run_search(plan, search);
  progress.clear();
  return result;
}

}  // namespace

int sim_command(const CommandArgs& args, std::ostream& out, std::ostream& err) {
  SimOptions o;
  po::options_description options("options", 118);
  add_sim_options(options, o);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar sim [--world-size W] [--tokens N] [--hidden D] [--dtype T] [--calls SEQ] "
      "[--schedule random|adversarial|exhaustive] [--seed S] [--mutation NAME] [--trace out.json]",
      help_text()};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;

  const sim::Protocol protocol = protocol_option(o.protocol_text);
  if (vm.count("list-mutations")) return list_mutations(protocol, out);
  const SimChoices choices = checked_choices(o, vm, protocol);
  std::vector<sim::SearchLeg> plan;
  if (asks_for_one_leg(vm))
    plan.push_back(single_leg(o, vm, choices));
  else
    plan = default_legs(o, vm, choices);

  SimOutputs outputs(o.trace_path, o.json_path);  // a bad output path exits 2 here, before any simulation
  const sim::SearchResult result = run_plan(plan, outputs.trace_sink(), err);
  const nlohmann::json j = result_json(result, choices.mutation, protocol, static_cast<std::uint64_t>(o.seed));
  outputs.write_json(j.dump(2) + "\n");
  // The verdict first: a failure the search found reaches the user even when its files cannot be written.
  if (vm.count("json"))
    fmt::print(out, "{}\n", j.dump(2));
  else
    print_text(out, result, plan, choices.mutation, protocol);
  if (const auto why = outputs.commit()) {
    fmt::print(err, "mnnvl-ar sim: error: {}; {}\n", *why,
               outputs.several() ? "neither --trace nor --json-out was written" : "the output was not written");
    // A protocol failure outranks a lost file: scripts act on exit 1.
    return result.passed ? kExitUsage : kExitDifference;
  }
  if (!o.trace_path.empty() && !vm.count("json")) {
    std::string left_out;
    if (result.trace_dropped_events > 0)
      left_out =
          fmt::format("; {} events past the first {} were left out", result.trace_dropped_events, sim::kTraceEventCap);
    fmt::print(out, "trace: {} (open in ui.perfetto.dev{})\n", o.trace_path, left_out);
  }
  return result.passed ? kExitOk : kExitDifference;
}

}  // namespace ar
