// The order in which one output element's W contributions are folded, derived from (strategy, profile, W).
// This is the heart of the project's claim: the same order gives the same bits on every rank; different
// orders (ONESHOT vs TWOSHOT at W >= 16, FlashInfer vs TensorRT-LLM) can give different bits.
#pragma once

#include <string>

#include "reference/strategy.h"

namespace ar {

struct ReductionOrder {
  int world_size = 0;
  /// Ranks per chunk. 0 = one flat fold `acc = A(acc, v_r)` with no outer accumulator (ONESHOT W <= 8,
  /// TensorRT-LLM). K > 0 = chunked: each chunk of K ranks folds from +0, then `acc = A(acc, chunk)`
  /// (FlashInfer ONESHOT W >= 16 with K = 8, every FlashInfer TWOSHOT with K = min(W, 16)).
  int chunk = 0;
  bool seed_with_first = false;  ///< acc starts as rank 0's value instead of +0 (TensorRT-LLM)
  bool ftz = true;               ///< fp32 adds flush subnormal operands and results (add.ftz.f32)
  bool sanitize_result = false;  ///< a -0 result becomes +0 (FlashInfer TWOSHOT, before its broadcast)
  /// No order at all (the invariant profile from kOneShotChunksFromWorld on): the exact real sum of the W
  /// values, rounded once to T (RN-even).
  /// chunk, seed_with_first and ftz do not apply. Every fold of any order rounds to T at least once, so on
  /// every input this is at least as close to the exact sum as any of them: the most accurate result T holds.
  bool exact = false;

  int chunk_count() const { return chunk == 0 ? 1 : world_size / chunk; }
  bool operator==(const ReductionOrder&) const = default;
};

/// FlashInfer's ONESHOT folds in chunks of 8 ranks from this W on. Below it both FlashInfer strategies fold all
/// W ranks in one chunk from +0 (TWOSHOT's one chunk of W is added to +0, which changes no non-zero sum), so
/// ONESHOT and TWOSHOT share one order there and differ only in the sign of a zero result.
inline constexpr int kOneShotChunksFromWorld = 16;

/// The order a strategy (ONESHOT or TWOSHOT; resolve AUTO first) computes under a profile at world size W.
///
/// The invariant profile's order is the same for both strategies, so a token's bits never depend on the one
/// AUTO picks. Below kOneShotChunksFromWorld it is the order FlashInfer's two strategies share, with IEEE adds
/// (no FTZ, so never a -0 result): as accurate as FlashInfer on every input where FlashInfer flushes nothing,
/// and at W = 2 the exact sum rounded once (exact_pair_fold). From kOneShotChunksFromWorld on, where the two
/// orders part and neither is the more accurate on every input, it is the exact sum rounded once
/// (ReductionOrder::exact), which no fold beats.
ReductionOrder reduction_order(Strategy resolved, Profile profile, int world_size);

/// The exact sum of the W values rounded once to T (ReductionOrder::exact; an exact zero is +0): the invariant
/// profile's order from kOneShotChunksFromWorld on, and what exact_pair_fold is proved against.
ReductionOrder exact_sum_order(int world_size);

/// A fold whose bits are the exact sum's (ReductionOrder::exact) at W = 2: the IEEE flat fold from +0, which
/// rounds once, a + b to fp32 (+0 + a is a). For fp32 that is the exact sum rounded once. For bf16 and fp16
/// the narrowing then rounds a second time, and the two round like one: fp32 keeps 24 bits, at least 2p + 2
/// for T's p = 8 and 11 significant bits, where double rounding of a sum is innocuous (Figueroa, "When is
/// double rounding innocuous?", 1995); tests/reference/exact_pair_fold_test.cpp checks every pair of bf16 and
/// of fp16 values. An exact zero is +0 (round to nearest from +0), and a non-zero sum of two values of T is a
/// multiple of T's smallest step, which fp32 holds, so it never rounds to a zero. It is the invariant
/// profile's order at W = 2 (reduction_order), which is therefore correctly rounded there.
ReductionOrder exact_pair_fold();

/// One line for people, e.g. "chunks of 8 ranks from +0, FTZ adds, -0 kept".
std::string describe(const ReductionOrder& order);

}  // namespace ar
