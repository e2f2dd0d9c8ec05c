// How our kernels (cuda/) divide a call's work, which the simulator (sim/our_kernels.cpp) replays operation by
// operation: rounds of tokens, the slots a poll has in flight together, the packs a thread handles per loop
// step. The kernels and the simulator must agree on these, so they live here once and both read them.
#pragma once

#include <algorithm>
#include <cstdint>

#include "reference/strategy.h"
#include "reference/workspace.h"

namespace ar {

/// Slots whose loads a poll has in flight together: each fold chunk is polled group by group (the same values
/// as whole-chunk passes), which bounds the registers a pack needs.
inline constexpr int kPollGroup = 4;

/// Packs a thread handles per step of a grid-stride loop (i, i + threads, ...): their loads are all in flight
/// before the first use. TWOSHOT's gather polls this many BROADCAST packs at once.
inline constexpr int kPacksPerLoopStep = 2;

/// Tokens per round: `requested` (0: the whole call in one round), at most N; TWOSHOT rounds up to a multiple
/// of W, so every round starts at a token rank 0 owns. A function of the shape and the request only, so the
/// same on every rank.
constexpr std::int64_t round_tokens(Strategy resolved, const ProblemShape& s, std::int64_t requested) {
  std::int64_t rt = requested > 0 ? std::min(requested, s.tokens) : s.tokens;
  if (resolved == Strategy::kTwoShot) rt = round_up(rt, s.world_size);
  return rt;
}

/// Rounds a call of `tokens` tokens takes at `tokens_per_round` per round.
constexpr std::int64_t round_count(std::int64_t tokens, std::int64_t tokens_per_round) {
  return ceil_div(tokens, tokens_per_round);
}

}  // namespace ar
