// Batch invariance (SPEC section 14): which batch sizes N can change a token's bits. A token's output is a
// function of its own inputs and of the path the call takes: the strategy (AUTO picks it by N), the
// reduction order that strategy and the profile give, and for the fused call the launch FlashInfer makes for
// N and the SM count (the sum-of-squares tree) and the strategy's multiplication order. Inside a range of N
// with one path a token's bits cannot change; at a boundary they can, and a witness shows that they do.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reference/fused_launch.h"
#include "reference/fused_quant.h"
#include "reference/reduction_order.h"
#include "reference/tensor.h"

namespace ar {

/// The calls asked about: every N of one (W, D, dtype, strategy, profile, plain or fused, SM count).
struct BatchQuestion {
  int world_size = 2;
  std::int64_t hidden = 4096;
  DType dtype = DType::kBf16;
  Strategy strategy = Strategy::kAuto;  ///< AUTO resolves by N
  Profile profile = Profile::kFlashInfer;
  bool fused = false;
  int sm_count = kDefaultSmCount;  ///< fused only: the launch, and so the tree, follows it
  std::uint32_t epsilon = 0;       ///< fused only: fp32 bits
  std::uint32_t weight_bias = 0;   ///< fused only: fp32 bits
  /// fused only: the quantised output too (its path is the fused call's: quantisation adds no order)
  QuantOptions quant;
};

/// Everything about a call of N tokens that decides a token's bits besides its own inputs.
struct TokenPath {
  Strategy strategy = Strategy::kOneShot;  ///< resolved
  ReductionOrder order;
  std::optional<NormLaunch> launch;  ///< fused only
  /// Same bits for every token: the same order and, fused, the same tree and norm arithmetic. The strategy
  /// is not compared: two strategies that compute alike (the invariant profile's) are one path.
  bool operator==(const TokenPath& o) const;
  std::string describe() const;  ///< "twoshot: 1 chunk of 8 ranks ...; tree 8 blocks x 128 threads, 1 load"
  /// The same with `strategies` in place of the strategy's name (a range where AUTO switches inside).
  std::string describe(std::string_view strategies) const;
};

/// The path of a call of `tokens` tokens. Throws std::invalid_argument (the model's reason) for a shape no
/// call takes.
TokenPath token_path(const BatchQuestion& q, std::int64_t tokens);

/// A range of N with one path: no token's bits can differ between two calls whose N lie in it.
struct TokenRange {
  std::int64_t first = 1, last = 1;
  TokenPath path;  ///< the path of N = first
  /// Where AUTO switches strategy inside the range (the path's computation staying the same): the first N
  /// of each later strategy. Empty for most profiles, whose strategies compute differently.
  std::vector<std::pair<std::int64_t, Strategy>> strategy_switches;
  /// The path in words, with the strategies of the whole range ("oneshot up to N = 64, twoshot from 65: ...").
  std::string describe() const;
};

/// N = 1..max_tokens split into ranges of one path, in order. N whose shape the model refuses (a fused
/// launch FlashInfer does not make) end the list.
std::vector<TokenRange> token_ranges(const BatchQuestion& q, std::int64_t max_tokens);

/// Whether two plain paths can differ only in the sign of a zero result: both fold all W ranks in rank
/// order from +0 with the same adds (one flat fold, or one chunk followed by `+0 + S`), and differ at most in
/// mapping -0 to +0. True for ONESHOT against TWOSHOT at W <= 8 under flashinfer and ieee.
bool differ_only_in_zero_sign(const TokenPath& a, const TokenPath& b);

/// One token's inputs: [W, 1, D] (and for the fused call its [1, D] residual row and [D] gamma).
struct TokenInputs {
  HostTensor input, residual, gamma;
  std::string source;  ///< how it was made, e.g. "adversarial seed 3"
};

/// Candidate inputs for a witness, the i-th of a fixed sequence (the harness supplies its generators).
using TokenInputSource = std::function<TokenInputs(int i)>;

/// A token whose bits differ between two paths.
struct Witness {
  bool found = false;
  int tried = 0;  ///< candidates computed
  TokenInputs inputs;
  std::int64_t index = -1;              ///< first differing element of the row
  std::uint32_t before = 0, after = 0;  ///< its bits under the first path and the second
  bool zero_sign_only = false;          ///< every differing element is +0 against -0
  std::string parts;                    ///< where the two computations part, in words
};

/// Tries candidates 0, 1, ... (at most `tries`) until one gives different bits under `a` and `b`.
Witness find_witness(const BatchQuestion& q, const TokenPath& a, const TokenPath& b, const TokenInputSource& source,
                     int tries);

/// A token's output row under `path`: the all-reduce, or the fused call's normalised row (its residual row
/// is the all-reduce plus the residual, which depends on the strategy only).
HostTensor token_output(const BatchQuestion& q, const TokenPath& path, const TokenInputs& inputs);

/// A quantised call's row of this token under `path` (q.quant set): quant_row_words of its one-row output.
std::vector<std::uint32_t> token_quant_words(const BatchQuestion& q, const TokenPath& path, const TokenInputs& inputs);

}  // namespace ar
