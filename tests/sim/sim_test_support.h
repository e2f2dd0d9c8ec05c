// Helpers for the simulator tests: configurations from call-sequence text, one seeded run, seeded runs that must
// all pass, outputs checked against the reference, the bytes a trace shows written, and a chooser that follows a script
// (so a test can make a read see exactly the stores it wants).
#pragma once

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "reference/all_reduce.h"
#include "reference/call_sequence.h"
#include "sim/config.h"
#include "sim/cta_program.h"
#include "sim/scheduler.h"
#include "sim/search.h"
#include "sim/simulation.h"

namespace ar::sim::test {

/// A validated config: `calls` in the --calls grammar, defaults N = 2, D = `hidden`, `dtype`.
inline SimConfig config_of(int world, const std::string& calls, std::int64_t hidden = 16, DType dtype = DType::kBf16,
                           Mutation m = Mutation::kNone, Writer writer = Writer::kUnicast, int packs_per_cta = 1,
                           std::int64_t tokens = 2) {
  return make_sim_config(world, resolve_calls(parse_call_sequence(calls), world, {tokens, hidden, dtype}), std::nullopt,
                         packs_per_cta, writer, m);
}

/// One random (or adversarial) schedule of `config` with inputs and schedule from `seed`.
struct SeededRun {
  std::vector<CallContext> calls;
  RunResult result;
  std::vector<std::vector<HostTensor>> outputs;  ///< [call][rank], when asked for
};
inline SeededRun run_once(const SimConfig& config, std::uint64_t seed, bool adversarial = false,
                          TraceRecorder* trace = nullptr, bool record_outputs = false) {
  SeededRun run;
  run.calls = make_call_contexts(config, seed);
  const SchedulePolicy policy = adversarial
                                    ? adversarial_policy(seed, config.world_size, static_cast<int>(config.calls.size()))
                                    : random_policy();
  RandomChooser chooser(seed * 7919 + 11, policy);
  Simulation sim(config, run.calls, chooser, trace, record_outputs);
  run.result = sim.run(default_max_steps(config));
  run.outputs = sim.checker().outputs();
  return run;
}

/// A run's failure in words for a test's INFO, or "none".
inline std::string describe_failure(const RunResult& r) {
  return r.failure ? fmt::format("{}: {}", failure_kind_name(r.failure->kind), r.failure->message) : "none";
}

/// Seeds first_seed .. first_seed + seeds - 1 of `config`, each with a random and an adversarial schedule: every
/// run must finish without a failure. `what` names the configuration in a failure's report.
inline void require_seeded_passes(const SimConfig& config, std::uint64_t first_seed, int seeds,
                                  const std::string& what) {
  for (int s = 0; s < seeds; ++s) {
    for (bool adversarial : {false, true}) {
      const SeededRun run = run_once(config, first_seed + s, adversarial);
      INFO(what << ", seed " << first_seed + s << (adversarial ? " adversarial" : " random"));
      INFO(describe_failure(run.result));
      REQUIRE(run.result.finished);
      REQUIRE_FALSE(run.result.failure);
    }
  }
}

/// Every rank's output of every call of `run` (recorded) equals reference_all_reduce of the call's inputs,
/// computed here, independently of the expected tensors the checker compared against.
inline void check_outputs_equal_reference(const SimConfig& config, const SeededRun& run) {
  REQUIRE(run.outputs.size() == config.calls.size());
  for (std::size_t k = 0; k < config.calls.size(); ++k) {
    const HostTensor want = reference_all_reduce(run.calls[k].input, config.calls[k].requested, Profile::kFlashInfer);
    for (int r = 0; r < config.world_size; ++r) {
      INFO("call " << k << " rank " << r);
      CHECK(run.outputs[k][static_cast<std::size_t>(r)] == want);
    }
  }
}

/// Bytes of `rank`'s memory that `kind` stores of call `call` wrote: the stores issued, or (`deliveries`) the
/// units delivered, from a trace.
inline std::set<std::int64_t> bytes_written(const TraceRecorder& trace, int rank, int call, WriteKind kind,
                                            bool deliveries = false) {
  std::set<std::int64_t> bytes;
  for (const TraceEvent& e : trace.events()) {
    const bool is_store = e.kind == TraceEvent::Kind::kOp && e.words > 0;
    const bool is_delivery = e.kind == TraceEvent::Kind::kDelivery;
    if (!(deliveries ? is_delivery : is_store)) continue;
    if (e.dest != rank || e.ghost.kind != kind || e.ghost.call != call) continue;
    for (std::int64_t b = e.word * 4; b < (e.word + e.words) * 4; ++b) bytes.insert(b);
  }
  return bytes;
}

/// Operations of a traced run, per (rank, call) and name.
inline std::map<std::tuple<int, int, std::string>, int> op_counts(const TraceRecorder& trace) {
  std::map<std::tuple<int, int, std::string>, int> counts;
  for (const TraceEvent& e : trace.events())
    if (e.kind == TraceEvent::Kind::kOp) ++counts[{e.rank, e.call, e.name}];
  return counts;
}

/// The bytes [begin, begin + count).
inline std::set<std::int64_t> byte_range(std::int64_t begin, std::int64_t count) {
  std::set<std::int64_t> s;
  for (std::int64_t b = begin; b < begin + count; ++b) s.insert(b);
  return s;
}

/// A one-leg search.
inline SearchResult search_one(const SimConfig& config, ScheduleKind kind, std::uint64_t seed, std::uint64_t runs) {
  return run_search({SearchLeg{config, kind, seed, runs}}, SearchOptions{});
}

/// Answers yes/no choices from a script (then `fallback`), picks CTAs in order, never tears a poll.
class ScriptChooser final : public Chooser {
 public:
  std::deque<bool> script;
  bool fallback = true;
  std::size_t pick_cta(const Simulation&, std::span<const std::uint32_t>) override { return 0; }
  std::size_t pick_dispatch(std::span<const std::uint32_t>) override { return 0; }
  bool decide(ChoiceKind) override {
    if (script.empty()) return fallback;
    const bool b = script.front();
    script.pop_front();
    return b;
  }
  int words_now(int remaining) override { return remaining; }
};

}  // namespace ar::sim::test
