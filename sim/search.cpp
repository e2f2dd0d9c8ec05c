#include "sim/search.h"

#include <fmt/format.h>

#include <chrono>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "sim/inputs.h"
#include "sim/simulation.h"

namespace ar::sim {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

SchedulePolicy policy_for(ScheduleKind kind, std::uint64_t seed, const SimConfig& config) {
  return kind == ScheduleKind::kAdversarial
             ? adversarial_policy(seed, config.world_size, static_cast<int>(config.calls.size()))
             : random_policy();
}

/// The run of a random or adversarial leg with this seed.
RunResult run_seeded(const SimConfig& config, ScheduleKind kind, std::uint64_t seed, std::uint64_t max_steps,
                     TraceRecorder* trace) {
  const std::vector<CallContext> calls = make_call_contexts(config, seed);
  RandomChooser chooser(mix64(seed ^ 0x5C4ED01Eull), policy_for(kind, seed, config));
  Simulation sim(config, calls, chooser, trace);
  return sim.run(max_steps);
}

std::string reproduce_args(const SimConfig& config, ScheduleKind kind, std::uint64_t seed) {
  return fmt::format("{} --schedule {} --seed {}{}", command_arguments(config), schedule_name(kind), seed,
                     kind == ScheduleKind::kExhaustive ? "" : " --runs 1");
}

/// The recorder of a run the search shows: streaming into the trace sink when there is one (starting it over),
/// else keeping only the last steps the report prints.
TraceRecorder recorder_for_shown_run(const SearchOptions& options, const std::string& reproduce, int world_size) {
  if (!options.trace) return TraceRecorder(/*max_events=*/0, options.schedule_lines);
  return TraceRecorder(*options.trace, fmt::format("mnnvl-ar sim {}", reproduce), world_size, kTraceEventCap,
                       options.schedule_lines);
}

/// Ends the trace of the shown run, once that run has ended, and counts it into the result.
void finish_trace(TraceRecorder& trace, SearchResult& result) {
  trace.finish();
  if (!trace.streaming()) return;
  result.trace_events = trace.traced();
  result.trace_dropped_events = trace.dropped();
}

/// Progress reporting shared by the leg drivers.
struct Progress {
  const SearchOptions& options;
  Clock::time_point start;
  Clock::time_point last;
  void maybe(const SearchProgress& p) {
    if (!options.progress) return;
    const auto now = Clock::now();
    if (std::chrono::duration<double>(now - last).count() < options.progress_seconds) return;
    last = now;
    SearchProgress q = p;
    q.seconds = since(start);
    options.progress(q);
  }
};

void run_seeded_leg(const SearchLeg& leg, std::size_t leg_index, std::size_t leg_count, const SearchOptions& options,
                    Progress& progress, SearchResult& result, LegStats& stats) {
  const std::uint64_t max_steps = options.max_steps ? options.max_steps : default_max_steps(leg.config);
  const auto leg_start = Clock::now();
  std::optional<FailureReport> report;
  std::uint64_t extra_left = 0;
  for (std::uint64_t i = 0; i < leg.runs || (report && extra_left > 0); ++i) {
    if (report && extra_left-- == 0) break;
    const std::uint64_t seed = leg.seed + i;
    const RunResult r = run_seeded(leg.config, leg.schedule, seed, max_steps, nullptr);
    ++stats.runs;
    stats.steps += r.steps;
    stats.events += r.events;
    if (r.failure) {
      if (!report) {
        report.emplace();
        report->leg = leg_index;
        report->config = leg.config;
        report->schedule = leg.schedule;
        report->seed = seed;
        report->policy = policy_for(leg.schedule, seed, leg.config).describe();
        report->failure = *r.failure;
        report->run_steps = r.steps;
        report->runs_to_find = stats.runs;
        report->seconds_to_find = since(progress.start);
        report->shortest_seed = seed;
        report->shortest_steps = r.steps;
        report->shortest_failure = *r.failure;
        extra_left = options.shortest_extra_runs;
      } else if (r.steps < report->shortest_steps) {
        report->shortest_seed = seed;
        report->shortest_steps = r.steps;
        report->shortest_failure = *r.failure;
      }
    }
    progress.maybe({leg_index, leg_count, leg.schedule, stats.runs, leg.runs, result.events + stats.events, 0, 0});
  }
  stats.seconds = since(leg_start);
  if (!report) return;
  // Replay the shortest failing run with a recorder: its last steps are the schedule shown, and its trace is the
  // one written. The replay must fail the same way at the same step: that is the reproducibility promise.
  report->reproduce = reproduce_args(leg.config, leg.schedule, report->shortest_seed);
  TraceRecorder trace = recorder_for_shown_run(options, report->reproduce, leg.config.world_size);
  const RunResult replay = run_seeded(leg.config, leg.schedule, report->shortest_seed, max_steps, &trace);
  if (!replay.failure || replay.failure->message != report->shortest_failure.message ||
      replay.steps != report->shortest_steps)
    throw std::logic_error(fmt::format("sim: replaying seed {} did not reproduce its failure", report->shortest_seed));
  finish_trace(trace, result);
  report->schedule_lines = trace.text_lines(options.schedule_lines);
  stats.failed = true;
  result.failure = std::move(report);
}

/// The exhaustive search's chooser: a replay chooser that also prunes at states explored before.
class ExhaustiveChooser final : public ReplayChooser {
 public:
  struct Frame {
    std::uint64_t hash = 0;
    double count = 0;              ///< complete schedules found below this state so far
    std::size_t choice_begin = 0;  ///< first choice point of the step leaving this state
  };

  std::vector<Frame> frames;
  std::unordered_map<std::uint64_t, double> finished;  ///< explored states: schedules below each
  std::unordered_set<std::uint64_t> on_path;
  std::size_t replay_steps = 0;  ///< steps of the current run that replay known frames
  std::size_t step = 0;
  std::uint64_t transitions = 0;

  bool after_step(const Simulation& sim) override {
    if (++step <= replay_steps) return true;
    ++transitions;
    const std::uint64_t h = sim.state_hash();
    if (on_path.count(h)) return false;  // back to a state on this path: a retry that changed nothing
    if (const auto it = finished.find(h); it != finished.end()) {
      frames.back().count += it->second;
      return false;
    }
    frames.push_back({h, 0, position()});
    on_path.insert(h);
    return true;
  }

  /// Closes frames whose subtrees are complete once choice point `q` changes (all of them when q < 0).
  void close_frames(std::ptrdiff_t q) {
    while (frames.size() > 1 && (q < 0 || static_cast<std::ptrdiff_t>(frames.back().choice_begin) > q)) {
      const Frame f = frames.back();
      frames.pop_back();
      finished[f.hash] = f.count;
      on_path.erase(f.hash);
      frames.back().count += f.count;
    }
  }
};

void run_exhaustive_leg(const SearchLeg& leg, std::size_t leg_index, std::size_t leg_count,
                        const SearchOptions& options, Progress& progress, SearchResult& result, LegStats& stats) {
  const std::uint64_t max_steps = options.max_steps ? options.max_steps : default_max_steps(leg.config);
  const auto leg_start = Clock::now();
  const std::vector<CallContext> calls = make_call_contexts(leg.config, leg.seed);
  ExhaustiveChooser chooser;
  {
    Simulation initial(leg.config, calls, chooser);
    chooser.frames.push_back({initial.state_hash(), 0, 0});
    chooser.on_path.insert(chooser.frames.back().hash);
  }
  std::optional<FailureReport> report;
  std::vector<ReplayChooser::Point> shortest_path;
  std::uint64_t extra_left = 0;
  bool exhausted = false;
  for (;;) {
    if (stats.runs >= leg.runs && !report) break;
    if (report && extra_left-- == 0) break;
    if (chooser.finished.size() + chooser.on_path.size() >= options.max_states) break;
    chooser.rewind();
    chooser.replay_steps = chooser.frames.size() - 1;
    chooser.step = 0;
    Simulation sim(leg.config, calls, chooser);
    const RunResult r = sim.run(max_steps);
    ++stats.runs;
    stats.steps += r.steps;
    stats.events += r.events;
    if (r.finished) chooser.frames.back().count += 1;
    if (r.failure) {
      chooser.frames.back().count += 1;  // a failing schedule is an interleaving too
      std::vector<ReplayChooser::Point> path(chooser.path().begin(), chooser.path().begin() + chooser.position());
      if (!report) {
        report.emplace();
        report->leg = leg_index;
        report->config = leg.config;
        report->schedule = ScheduleKind::kExhaustive;
        report->seed = leg.seed;
        report->policy = "exhaustive (depth-first over every choice point)";
        report->failure = *r.failure;
        report->run_steps = r.steps;
        report->runs_to_find = stats.runs;
        report->seconds_to_find = since(progress.start);
        report->shortest_seed = leg.seed;
        report->shortest_steps = r.steps;
        report->shortest_failure = *r.failure;
        shortest_path = path;
        extra_left = options.shortest_extra_runs * 64;
      } else if (r.steps < report->shortest_steps) {
        report->shortest_steps = r.steps;
        report->shortest_failure = *r.failure;
        shortest_path = path;
      }
    }
    const std::ptrdiff_t q = chooser.advance();
    chooser.close_frames(q);
    if (q < 0) {
      exhausted = true;
      break;
    }
    progress.maybe({leg_index, leg_count, leg.schedule, stats.runs, leg.runs, result.events + stats.events,
                    chooser.finished.size() + chooser.on_path.size(), 0});
  }
  if (!exhausted) chooser.close_frames(-1);
  stats.states = chooser.finished.size() + chooser.on_path.size();
  stats.transitions = chooser.transitions;
  stats.interleavings = chooser.frames.front().count;
  stats.exhausted = exhausted && !report;
  stats.seconds = since(leg_start);
  if (!report) return;
  report->reproduce = reproduce_args(leg.config, ScheduleKind::kExhaustive, leg.seed);
  TraceRecorder trace = recorder_for_shown_run(options, report->reproduce, leg.config.world_size);
  ReplayChooser replay(shortest_path);
  Simulation sim(leg.config, calls, replay, &trace);
  const RunResult again = sim.run(max_steps);
  if (!again.failure || again.failure->message != report->shortest_failure.message)
    throw std::logic_error("sim: replaying the exhaustive search's failing schedule did not reproduce it");
  finish_trace(trace, result);
  report->schedule_lines = trace.text_lines(options.schedule_lines);
  stats.failed = true;
  result.failure = std::move(report);
}

SimConfig plan_config(int world, const char* calls, std::int64_t hidden, DType dtype, Mutation m, Writer w) {
  CallDefaults defaults;
  defaults.tokens = 1;
  defaults.hidden = hidden;
  defaults.dtype = dtype;
  return make_sim_config(world, resolve_calls(parse_call_sequence(calls), world, defaults), std::nullopt, 1, w, m);
}

}  // namespace

std::optional<ScheduleKind> parse_schedule(std::string_view name) {
  for (std::size_t i = 0; i < kScheduleNames.size(); ++i)
    if (kScheduleNames[i] == name) return static_cast<ScheduleKind>(i);
  return std::nullopt;
}

std::uint64_t default_max_steps(const SimConfig& config) {
  // Generous: every poll pass may fail many times while stores stay in flight, but a run that takes this long
  // is stuck in a loop that makes no progress.
  std::uint64_t steps = 200'000;
  const std::uint64_t w = static_cast<std::uint64_t>(config.world_size);
  for (const ResolvedCall& c : config.calls) {
    const std::uint64_t packs =
        static_cast<std::uint64_t>(c.shape.tokens * c.shape.hidden / elements_per_pack(c.shape.dtype));
    steps += packs * w * (w * 256 + 512) +
             static_cast<std::uint64_t>(kLamportBufferCount * config.buffer_bytes / kPackBytes) * w;
  }
  return steps;
}

std::vector<SearchLeg> default_plan(Mutation m, Writer w, std::uint64_t seed, Protocol protocol) {
  // Mixed sequences cover ONESHOT -> TWOSHOT and TWOSHOT -> ONESHOT switches, buffer reuse (calls k and k+3),
  // several CTAs per rank (D = 2 packs), N < W and N > W for TWOSHOT, and D and dtype changing between calls.
  // Fused calls (the residual-add + RMSNorm call) sit among the plain ones in the W = 4, 8 and 2 legs: fused
  // TWOSHOT after TWOSHOT (its all-reduce kernel clears the old BROADCAST stage), fused ONESHOT after fused
  // TWOSHOT, and plain calls clearing what a fused call recorded.
  std::vector<SearchLeg> plan;
  const char* mixed =
      "oneshot:N=3,twoshot:N=5,twoshot:N=3:fused,oneshot:N=2,oneshot:N=2:fused,twoshot:N=3,oneshot:N=4,"
      "twoshot:N=2:fused,auto:N=2:fused";
  plan.push_back({plan_config(4, mixed, 16, DType::kBf16, m, w), ScheduleKind::kRandom, seed, 40});
  plan.push_back({plan_config(4, mixed, 16, DType::kBf16, m, w), ScheduleKind::kAdversarial, seed + 1000, 60});
  // W = 32: ONESHOT folds in chunks of 8, TWOSHOT in two chunks of 16 (the only place a TWOSHOT sum can be -0).
  plan.push_back({plan_config(32, "twoshot:N=2,oneshot:N=1,twoshot:N=3,twoshot:N=2,oneshot:N=2,twoshot:N=1", 8,
                              DType::kBf16, m, w),
                  ScheduleKind::kAdversarial, seed + 2000, 10});
  plan.push_back({plan_config(8,
                              "oneshot:N=2:D=16,twoshot:N=9:D=8:dtype=fp32,oneshot:N=3:dtype=fp16,twoshot:N=4,"
                              "oneshot:N=1:D=24,auto:N=5,twoshot:N=6:D=8:dtype=fp32:fused,oneshot:N=2:dtype=fp16:fused",
                              16, DType::kBf16, m, w),
                  ScheduleKind::kRandom, seed + 3000, 20});
  plan.push_back({plan_config(2,
                              "oneshot:N=2,twoshot:N=3,oneshot:N=1,twoshot:N=2,oneshot:N=3,twoshot:N=3:fused,"
                              "twoshot:N=2:fused,oneshot:N=1:fused",
                              8, DType::kFp32, m, w),
                  ScheduleKind::kAdversarial, seed + 4000, 60});
  // The fused launches at a width that makes them clusters (bf16 D = 1024: two blocks of 64 threads per token,
  // one arrival per cluster).
  plan.push_back({plan_config(2, "oneshot:N=2:fused,twoshot:N=3:fused,twoshot:N=1,oneshot:N=1:fused,twoshot:N=2:fused",
                              1024, DType::kBf16, m, w),
                  ScheduleKind::kAdversarial, seed + 6000, 8});
  // Every schedule of fused TWOSHOT after TWOSHOT, then fused ONESHOT and fused TWOSHOT (one pack: one CTA per
  // grid, so FlashInfer's two kernels of a call and the calls after them interleave every way).
  plan.push_back({plan_config(2, "twoshot,twoshot:fused,oneshot:fused,twoshot:fused", 8, DType::kBf16, m, w),
                  ScheduleKind::kExhaustive, seed, 300'000});
  plan.push_back({plan_config(2, "oneshot,twoshot,oneshot,oneshot", 16, DType::kBf16, m, w), ScheduleKind::kExhaustive,
                  seed, 300'000});
  if (protocol == Protocol::kFlashInfer) return plan;
  for (SearchLeg& leg : plan) leg.config.protocol = protocol;
  // Our kernels' grid: the W = 8 leg with at most two blocks per rank of two threads (each thread strides over
  // several packs), the W = 2 leg with two-token rounds (clears split over rounds, TWOSHOT rounds of W tokens),
  // and a W = 16 leg with both.
  plan[3].config.max_blocks_per_rank = 2;
  plan[3].config.packs_per_cta = 2;
  plan[4].config.round_tokens = 2;
  SearchLeg w16{plan_config(16, "oneshot:N=3,twoshot:N=20,oneshot:N=1,twoshot:N=5,oneshot:N=2", 8, DType::kBf16, m, w),
                ScheduleKind::kAdversarial, seed + 5000, 12};
  w16.config.protocol = protocol;
  w16.config.max_blocks_per_rank = 3;
  w16.config.round_tokens = 2;
  plan.insert(plan.end() - 2, std::move(w16));
  // The direct path of large TWOSHOT calls (here those of 200 bytes a rank or more: N = 9 and 7 of bf16 D = 16,
  // N = 12 of fp32 D = 8, N = 5 of bf16 D = 24, whose rows straddle the others') among Lamport calls, fused ones
  // and an AUTO ONESHOT, two blocks of two threads a rank in rounds of four tokens: random, then adversarial.
  const char* direct_mix =
      "twoshot:N=9,oneshot:N=3,twoshot:N=3,twoshot:N=12:dtype=fp32:D=8,twoshot:N=5:D=24,twoshot:N=9:fused,auto:N=2,"
      "twoshot:N=7,twoshot:N=9";
  for (const auto& [schedule, offset, runs] : {std::tuple{ScheduleKind::kRandom, 7000, 40},
                                               std::tuple{ScheduleKind::kAdversarial, 8000, 60}}) {
    SearchLeg direct{plan_config(4, direct_mix, 16, DType::kBf16, m, w), schedule, seed + offset,
                     static_cast<std::uint64_t>(runs)};
    direct.config.protocol = protocol;
    direct.config.max_blocks_per_rank = 2;
    direct.config.packs_per_cta = 2;
    direct.config.round_tokens = 4;
    direct.config.direct_from_bytes = 200;
    plan.insert(plan.end() - 2, std::move(direct));
  }
  // Exhaustive: two blocks per rank in ONESHOT, whose relaxed arrival leaves the blocks' own stores in flight (a
  // release would publish them), take about 1.5M states for one call alone. Instead: the fused leg above, one
  // block per rank (the shortcut) over four mixed calls, and two blocks per rank (the relaxed arrival, the last
  // block advancing the flags) in a TWOSHOT call followed by two one-block ONESHOT calls.
  plan.back() = {plan_config(2, "oneshot,twoshot,oneshot,oneshot", 8, DType::kBf16, m, w), ScheduleKind::kExhaustive,
                 seed, 1'000'000};
  plan.back().config.protocol = protocol;
  plan.push_back({plan_config(2, "twoshot:D=16,oneshot,oneshot", 8, DType::kBf16, m, w), ScheduleKind::kExhaustive,
                  seed, 1'000'000});
  plan.back().config.protocol = protocol;
  // Every schedule of two direct calls (two packs: two blocks a rank, each publishing its own flags) around a
  // Lamport TWOSHOT call, so the second direct call reuses the region the first one left, then a ONESHOT call.
  plan.push_back({plan_config(2, "twoshot:D=16,twoshot,twoshot:D=16,oneshot", 8, DType::kBf16, m, w),
                  ScheduleKind::kExhaustive, seed, 1'000'000});
  plan.back().config.protocol = protocol;
  plan.back().config.direct_from_bytes = 32;
  // And of four direct calls, one block a rank: rows of two sizes, both ranks owning tokens (so rows go both
  // ways), and a call of two rounds (both values of a flag's round bit).
  plan.push_back({plan_config(2, "twoshot:N=2,twoshot:N=1:D=16,twoshot:N=3,twoshot:N=2", 8, DType::kBf16, m, w),
                  ScheduleKind::kExhaustive, seed, 1'000'000});
  plan.back().config.protocol = protocol;
  plan.back().config.direct_from_bytes = 16;
  plan.back().config.max_blocks_per_rank = 1;
  plan.back().config.round_tokens = 2;
  return plan;
}

SearchResult run_search(const std::vector<SearchLeg>& legs, const SearchOptions& options) {
  SearchResult result;
  Progress progress{options, Clock::now(), Clock::now()};
  for (std::size_t i = 0; i < legs.size(); ++i) {
    LegStats stats;
    stats.schedule = legs[i].schedule;
    stats.config = describe(legs[i].config);
    if (legs[i].schedule == ScheduleKind::kExhaustive)
      run_exhaustive_leg(legs[i], i, legs.size(), options, progress, result, stats);
    else
      run_seeded_leg(legs[i], i, legs.size(), options, progress, result, stats);
    result.runs += stats.runs;
    result.steps += stats.steps;
    result.events += stats.events;
    result.legs.push_back(stats);
    if (result.failure) {
      result.passed = false;
      break;
    }
  }
  result.seconds = since(progress.start);
  if (options.trace && result.passed && !legs.empty()) {
    // Nothing failed: the trace shows the first leg's first schedule, so a person can still watch the protocol.
    const SearchLeg& leg = legs.front();
    TraceRecorder trace =
        recorder_for_shown_run(options, reproduce_args(leg.config, leg.schedule, leg.seed), leg.config.world_size);
    const std::uint64_t max_steps = options.max_steps ? options.max_steps : default_max_steps(leg.config);
    if (leg.schedule == ScheduleKind::kExhaustive) {
      const std::vector<CallContext> calls = make_call_contexts(leg.config, leg.seed);
      ReplayChooser first;
      Simulation sim(leg.config, calls, first, &trace);
      sim.run(max_steps);
    } else {
      run_seeded(leg.config, leg.schedule, leg.seed, max_steps, &trace);
    }
    finish_trace(trace, result);
  }
  return result;
}

}  // namespace ar::sim
