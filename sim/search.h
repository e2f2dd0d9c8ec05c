// Searching for a failing schedule: many seeded runs (random or adversarial), or every schedule of a tiny
// configuration (exhaustive), over one or several configurations ("legs"). `mnnvl-ar sim` and the tests call
// run_search; default_plan is what `mnnvl-ar sim` runs when no configuration option is given.
//
// Reproducibility: run i of a random or adversarial leg uses seed `leg.seed + i` for both its inputs and its
// schedule, so `--schedule <kind> --seed <that seed> --runs 1` with the leg's configuration replays it exactly,
// step for step. The exhaustive search is deterministic: rerunning it finds the same first failure.
//
// Exhaustive search: a depth-first enumeration of every choice point (CTA order, which stores in flight a read
// sees, which racing store lands first), replaying a prefix for each new branch, and pruning at states already
// explored (a 64-bit hash of memory, ghosts, stores in flight, CTA registers and launches). Counting the
// complete schedules below each explored state gives the number of interleavings the search covered. Polls
// are not torn in this mode (stores still tear: each 8-byte half is delivered on its own).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim/checker.h"
#include "sim/config.h"
#include "sim/scheduler.h"
#include "sim/trace.h"

namespace ar::sim {

enum class ScheduleKind : std::uint8_t { kRandom, kAdversarial, kExhaustive };
inline constexpr std::array<std::string_view, 3> kScheduleNames{"random", "adversarial", "exhaustive"};
constexpr std::string_view schedule_name(ScheduleKind k) { return kScheduleNames[static_cast<std::size_t>(k)]; }
std::optional<ScheduleKind> parse_schedule(std::string_view name);

/// One configuration searched with one kind of schedule.
struct SearchLeg {
  SimConfig config;
  ScheduleKind schedule = ScheduleKind::kRandom;
  std::uint64_t seed = 1;  ///< first seed (exhaustive: the inputs' seed)
  std::uint64_t runs = 1;  ///< schedules to try; exhaustive: the budget of runs (prefix replays)
};

struct SearchProgress {
  std::size_t leg = 0;
  std::size_t legs = 0;
  ScheduleKind schedule = ScheduleKind::kRandom;
  std::uint64_t runs = 0;
  std::uint64_t runs_planned = 0;
  std::uint64_t events = 0;
  std::uint64_t states = 0;
  double seconds = 0;
};

struct SearchOptions {
  /// After the first failure of a leg, this many more runs look for a shorter failing schedule (exhaustive:
  /// this many times 64 prefix replays).
  std::uint64_t shortest_extra_runs = 16;
  /// Where to stream a Chrome trace of the run that shows the failure (or of the first run when all pass);
  /// none when null. The search starts the sink over for each run it records, so that when run_search returns
  /// the sink holds one whole document, of the run the result shows. The search holds in memory only the last
  /// `schedule_lines` events of that run, however long it is.
  TraceSink* trace = nullptr;
  /// Lines of the failing schedule to print (the last steps before the failure).
  std::size_t schedule_lines = 40;
  /// Steps per run before it counts as a livelock; 0 = derived from the configuration.
  std::uint64_t max_steps = 0;
  /// Exhaustive search: stop after this many distinct states (memory bound).
  std::uint64_t max_states = 4'000'000;
  /// Called about every `progress_seconds` while searching.
  std::function<void(const SearchProgress&)> progress;
  double progress_seconds = 0.5;
};

struct FailureReport {
  std::size_t leg = 0;
  SimConfig config;
  ScheduleKind schedule = ScheduleKind::kRandom;
  std::uint64_t seed = 0;  ///< the failing run's seed (exhaustive: the leg's inputs seed)
  std::string policy;      ///< how the schedule was drawn
  Failure failure;         ///< the first failure found
  std::uint64_t run_steps = 0;
  std::uint64_t runs_to_find = 0;  ///< runs of this leg up to and including the failing one
  double seconds_to_find = 0;      ///< since the search started
  // The shortest failing schedule found (may be the first).
  std::uint64_t shortest_seed = 0;
  std::uint64_t shortest_steps = 0;
  Failure shortest_failure;
  std::vector<std::string> schedule_lines;  ///< its last steps, as text
  std::string reproduce;                    ///< `mnnvl-ar sim` arguments that replay it
};

struct LegStats {
  ScheduleKind schedule = ScheduleKind::kRandom;
  std::string config;
  std::uint64_t runs = 0;
  std::uint64_t steps = 0;
  std::uint64_t events = 0;
  double seconds = 0;
  bool failed = false;
  // Exhaustive only.
  std::uint64_t states = 0;       ///< distinct states explored
  std::uint64_t transitions = 0;  ///< steps taken outside prefix replays
  double interleavings = 0;       ///< complete schedules covered (a lower bound unless exhausted)
  bool exhausted = false;         ///< every schedule was covered
};

struct SearchResult {
  bool passed = true;
  std::optional<FailureReport> failure;
  std::vector<LegStats> legs;
  std::uint64_t runs = 0;
  std::uint64_t steps = 0;
  std::uint64_t events = 0;
  double seconds = 0;
  double events_per_second() const { return seconds > 0 ? static_cast<double>(events) / seconds : 0; }
  /// With SearchOptions::trace: the events in the trace, and those past kTraceEventCap left out of it.
  std::uint64_t trace_events = 0;
  std::uint64_t trace_dropped_events = 0;
};

/// Runs the legs in order and stops at the first leg that fails.
SearchResult run_search(const std::vector<SearchLeg>& legs, const SearchOptions& options);

/// The default search of `mnnvl-ar sim`: seeded random and adversarial legs at W = 4, 32, 8 and 2 with mixed
/// strategies, sizes and dtypes, fused calls among plain ones (W = 4, 8, 2), an adversarial leg of fused calls
/// in cluster launches (W = 2, D = 1024), then two exhaustive legs (W = 2, one token: one pack over TWOSHOT, fused
/// TWOSHOT, fused ONESHOT, fused TWOSHOT; two packs over four plain calls). Every leg uses `mutation` and
/// `writer`; run i of a leg uses seed `seed + i`. For Protocol::kOurs (unicast only) the same seeded legs run
/// our kernels, with a block cap and rounds in some of them so threads stride over several packs and clears
/// split over rounds, plus an adversarial leg at W = 16; its exhaustive legs are W = 2, one token: one block
/// per rank: the fused leg, four mixed calls, then two blocks per rank in TWOSHOT followed by ONESHOT.
std::vector<SearchLeg> default_plan(Mutation mutation, Writer writer, std::uint64_t seed,
                                    Protocol protocol = Protocol::kFlashInfer);

/// Steps a run may take before it counts as a livelock.
std::uint64_t default_max_steps(const SimConfig& config);

}  // namespace ar::sim
