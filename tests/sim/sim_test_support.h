// Helpers for the simulator tests: configurations from call-sequence text, one seeded run, and a chooser that
// follows a script (so a test can make a read see exactly the stores it wants).
#pragma once

#include <deque>
#include <string>
#include <vector>

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
