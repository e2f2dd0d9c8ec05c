// Who decides the timing: every nondeterministic choice of a simulated run (which CTA runs next, whether a
// read sees a store still in flight, which of two racing stores lands first, how a 16-byte poll tears) goes
// through a Chooser. Simulation asks; the choosers here answer:
// - RandomChooser answers from a seeded generator under a SchedulePolicy: the plain random schedule, or an
//   adversarial one (one rank slowed or run ahead over a window of calls, CTAs that start late, stores that
//   stay in flight long, polls that tear);
// - ReplayChooser answers from a recorded list of choices and extends it with first choices: the exhaustive
//   search (sim/search.cpp) enumerates schedules with it, and replays a failing one for its trace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ar::sim {

class Simulation;

enum class ChoiceKind : std::uint8_t {
  kCta,        ///< which runnable CTA takes the next step
  kSeeAtRead,  ///< does this read see that pending unit (is it delivered now)
  kRaceFirst,  ///< does that racing unit land before the one being delivered
  kTornRead,   ///< how many words of a 16-byte poll are read at this moment
  kDispatch,   ///< which waiting CTA gets a free slot (limited residency, any-order dispatch)
};

class Chooser {
 public:
  virtual ~Chooser() = default;
  /// An index into `runnable` (global CTA ids, never empty).
  virtual std::size_t pick_cta(const Simulation& sim, std::span<const std::uint32_t> runnable) = 0;
  /// An index into `waiting` (CTAs of one rank waiting for a slot; more than one).
  virtual std::size_t pick_dispatch(std::span<const std::uint32_t> waiting) = 0;
  /// A yes/no choice of kind kSeeAtRead or kRaceFirst.
  virtual bool decide(ChoiceKind kind) = 0;
  /// How many of the `remaining` (1..4) words of a poll are read now: 1..remaining.
  virtual int words_now(int remaining) = 0;
  /// Called after every completed step; returning false stops the run (the exhaustive search prunes).
  virtual bool after_step(const Simulation&) { return true; }
  /// True when Simulation must keep its set of runnable CTAs exact before every choice (exhaustive search:
  /// a CTA whose next poll cannot succeed is never offered as a choice).
  virtual bool exact_runnable() const { return false; }
};

/// xoshiro256**, seeded through splitmix64: fast, and the same sequence on every platform.
class Rng {
 public:
  explicit Rng(std::uint64_t seed);
  std::uint64_t next();
  /// In [0, n) (modulo bias below 2^-40 for the n the simulator uses).
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  /// True with probability p.
  bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }

 private:
  std::uint64_t s_[4];
};

/// The knobs of a random schedule.
struct SchedulePolicy {
  enum class Victim : std::uint8_t { kNone, kSlow, kAhead };
  double see_pending = 0.5;  ///< a read sees each pending unit of its pack with this probability
  double race_first = 0.5;   ///< a racing unit lands first with this probability
  double tear = 0.05;        ///< a poll is split over several moments with this probability
  Victim victim_mode = Victim::kNone;
  int victim = -1;       ///< the slowed or run-ahead rank
  int window_begin = 0;  ///< calls [begin, end) in which the victim rule applies (by the victim's call)
  int window_end = 1 << 30;
  double slow_accept = 0.05;  ///< kSlow: a pick of the victim stands with this probability
  bool late_ctas = false;     ///< CTAs other than 0 tend to start only when their rank has nothing else to run

  /// One line for reports: "random" or "adversarial: rank 2 ahead in calls 1-3, late CTAs, see 0.1, tear 0.3".
  std::string describe() const;
};

/// The plain random schedule.
SchedulePolicy random_policy();
/// An adversarial schedule drawn from `seed` for a world of `world_size` ranks running `calls` calls.
SchedulePolicy adversarial_policy(std::uint64_t seed, int world_size, int calls);

class RandomChooser final : public Chooser {
 public:
  RandomChooser(std::uint64_t seed, const SchedulePolicy& policy) : rng_(seed), policy_(policy) {}
  std::size_t pick_cta(const Simulation& sim, std::span<const std::uint32_t> runnable) override;
  std::size_t pick_dispatch(std::span<const std::uint32_t> waiting) override;
  bool decide(ChoiceKind kind) override;
  int words_now(int remaining) override;

 private:
  Rng rng_;
  SchedulePolicy policy_;
};

/// Replays `choices` (each an index below the option count of its choice point), then takes option 0 at every
/// further choice point, recording each point's option count so a search can enumerate the alternatives.
class ReplayChooser : public Chooser {
 public:
  struct Point {
    std::uint32_t chosen = 0;
    std::uint32_t options = 0;
  };
  explicit ReplayChooser(std::vector<Point> prefix = {}) : path_(std::move(prefix)) {}

  std::size_t pick_cta(const Simulation& sim, std::span<const std::uint32_t> runnable) override;
  std::size_t pick_dispatch(std::span<const std::uint32_t> waiting) override;
  bool decide(ChoiceKind kind) override;
  int words_now(int remaining) override;
  bool exact_runnable() const override { return true; }

  /// Choice points taken so far in this run.
  std::size_t position() const { return pos_; }
  const std::vector<Point>& path() const { return path_; }
  /// Restarts at the beginning of the path (for a new run).
  void rewind() { pos_ = 0; }
  /// Moves to the next unexplored alternative: drops the path after the deepest point with an option left and
  /// advances that point. Returns the index of the advanced point, or -1 when the tree is exhausted.
  std::ptrdiff_t advance();

 private:
  std::uint32_t choose(std::uint32_t options);
  std::vector<Point> path_;
  std::size_t pos_ = 0;
};

}  // namespace ar::sim
