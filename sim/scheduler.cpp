#include "sim/scheduler.h"

#include <fmt/format.h>

#include "sim/inputs.h"
#include "sim/simulation.h"

namespace ar::sim {

Rng::Rng(std::uint64_t seed) {
  std::uint64_t x = seed;
  for (auto& s : s_) {
    x += 0x9E3779B97F4A7C15ull;
    s = mix64(x);
  }
}

std::uint64_t Rng::next() {
  const auto rotl = [](std::uint64_t v, int k) { return (v << k) | (v >> (64 - k)); };
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

std::string SchedulePolicy::describe() const {
  if (victim_mode == Victim::kNone && !late_ctas && see_pending == 0.5 && tear == 0.05) return "random";
  std::string text = "adversarial:";
  if (victim_mode != Victim::kNone)
    text += fmt::format(" rank {} {} in calls {}-{},", victim, victim_mode == Victim::kSlow ? "slowed" : "run ahead",
                        window_begin, window_end - 1);
  if (late_ctas) text += " late CTAs,";
  text += fmt::format(" reads see a store in flight with p={}, polls tear with p={}", see_pending, tear);
  return text;
}

SchedulePolicy random_policy() { return SchedulePolicy{}; }

SchedulePolicy adversarial_policy(std::uint64_t seed, int world_size, int calls) {
  Rng rng(seed ^ 0xAD5E45A1ull);
  SchedulePolicy p;
  // Stores stay in flight long (a read rarely sees them) or land fast; polls tear often.
  static constexpr double kSee[] = {0.05, 0.2, 0.5, 0.9};
  p.see_pending = kSee[rng.below(4)];
  p.race_first = rng.chance(0.5) ? 0.5 : 0.9;
  p.tear = rng.chance(0.5) ? 0.5 : 0.1;
  switch (rng.below(3)) {
    case 0: p.victim_mode = SchedulePolicy::Victim::kSlow; break;
    case 1: p.victim_mode = SchedulePolicy::Victim::kAhead; break;
    default: p.victim_mode = SchedulePolicy::Victim::kNone; break;
  }
  p.victim = static_cast<int>(rng.below(static_cast<std::uint64_t>(world_size)));
  // The victim rule holds over a window of calls, so a rank can fall behind (or run ahead) by a call and then
  // catch up, as the one-launch-late clear must tolerate.
  p.window_begin = static_cast<int>(rng.below(static_cast<std::uint64_t>(calls)));
  p.window_end = p.window_begin + 1 + static_cast<int>(rng.below(static_cast<std::uint64_t>(calls)));
  p.slow_accept = rng.chance(0.5) ? 0.02 : 0.2;
  p.late_ctas = rng.chance(0.6);
  return p;
}

std::size_t RandomChooser::pick_cta(const Simulation& sim, std::span<const std::uint32_t> runnable) {
  const std::size_t n = runnable.size();
  if (n == 1) return 0;
  const bool victim_active = policy_.victim_mode != SchedulePolicy::Victim::kNone && policy_.victim >= 0 &&
                             sim.launch_of(policy_.victim) >= policy_.window_begin &&
                             sim.launch_of(policy_.victim) < policy_.window_end;
  std::size_t pick = static_cast<std::size_t>(rng_.below(n));
  // Rejection sampling keeps a pick O(1): a few redraws bias the choice without scanning the runnable set.
  for (int tries = 0; tries < 12; ++tries) {
    const std::uint32_t id = runnable[pick];
    const int rank = sim.rank_of(id);
    bool redraw = false;
    if (victim_active) {
      if (policy_.victim_mode == SchedulePolicy::Victim::kSlow && rank == policy_.victim)
        redraw = !rng_.chance(policy_.slow_accept);
      if (policy_.victim_mode == SchedulePolicy::Victim::kAhead && rank != policy_.victim) redraw = true;
    }
    if (!redraw && policy_.late_ctas) {
      const CtaState& c = sim.cta(id);
      redraw = c.index != 0 && c.pc == 0 && rng_.chance(0.97);  // a CTA that has not started stays unstarted
    }
    if (!redraw) return pick;
    pick = static_cast<std::size_t>(rng_.below(n));
  }
  return pick;
}

std::size_t RandomChooser::pick_dispatch(std::span<const std::uint32_t> waiting) {
  return static_cast<std::size_t>(rng_.below(waiting.size()));
}

bool RandomChooser::decide(ChoiceKind kind) {
  return rng_.chance(kind == ChoiceKind::kRaceFirst ? policy_.race_first : policy_.see_pending);
}

int RandomChooser::words_now(int remaining) {
  if (!rng_.chance(policy_.tear)) return remaining;
  return 1 + static_cast<int>(rng_.below(static_cast<std::uint64_t>(remaining - 1)));
}

std::uint32_t ReplayChooser::choose(std::uint32_t options) {
  if (pos_ < path_.size()) {
    Point& p = path_[pos_++];
    if (p.options != options)
      throw std::logic_error(
          fmt::format("replay diverged at choice {}: {} options, recorded {}", pos_ - 1, options, p.options));
    return p.chosen;
  }
  path_.push_back({0, options});
  ++pos_;
  return 0;
}

std::size_t ReplayChooser::pick_cta(const Simulation&, std::span<const std::uint32_t> runnable) {
  if (runnable.size() == 1) return 0;
  return choose(static_cast<std::uint32_t>(runnable.size()));
}

std::size_t ReplayChooser::pick_dispatch(std::span<const std::uint32_t> waiting) {
  return choose(static_cast<std::uint32_t>(waiting.size()));
}

bool ReplayChooser::decide(ChoiceKind kind) {
  // Option 0 first: a read sees the store (so the first schedule completes quickly); racing units keep their
  // natural order.
  const bool first = choose(2) == 0;
  return kind == ChoiceKind::kSeeAtRead ? first : !first;
}

int ReplayChooser::words_now(int remaining) { return remaining; }

std::ptrdiff_t ReplayChooser::advance() {
  while (!path_.empty() && path_.back().chosen + 1 >= path_.back().options) path_.pop_back();
  if (path_.empty()) return -1;
  ++path_.back().chosen;
  pos_ = 0;
  return static_cast<std::ptrdiff_t>(path_.size()) - 1;
}

}  // namespace ar::sim
