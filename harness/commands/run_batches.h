// `run --batches`: batch invariance shown on the GPU (SPEC section 14). The same token rows ("probes") are
// placed in batches of many sizes N (1..N_max, and both sides of every boundary `mnnvl-ar invariance`
// reports), the other rows of each batch random and different every time; every call is checked bit for bit
// like any `run` call, and then each probe's output rows are compared across the batches: two batches must
// give a probe the same bits exactly when the model's paths (reference/batch_invariance.h) say so, no more
// and no fewer. Under the invariant profile that is one set of bits for every N, strategy and SM count.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "harness/commands/run_plan.h"
#include "harness/commands/run_report.h"
#include "reference/batch_invariance.h"

namespace ar {

/// What a batch call is: the plain all-reduce, the fused call, or the fused call with a quantised output.
struct BatchKind {
  bool fused = false;
  QuantMode quant = QuantMode::kNone;
  bool operator==(const BatchKind&) const = default;
};
/// "plain", "fused", "fp8", "fp8-dynamic", "nvfp4".
std::string_view batch_kind_name(const BatchKind& k);

/// What --batches varies and bounds (from the command line).
struct BatchSettings {
  std::int64_t max_tokens = 0;  ///< 0: --batches is off
  std::vector<Strategy> strategies{Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto};
  std::vector<BatchKind> kinds{{false}, {true}};
  /// The most bytes of a call's input (W x N x D x E): larger W stop at a smaller N.
  std::int64_t max_input_bytes = std::int64_t{128} << 20;
  int witness_tries = 400;  // candidates tried per boundary (the command tries 1000)
};

/// One question (W, D, dtype, strategy, profile, plain or fused, SM count) and its probes.
struct BatchConfig {
  BatchQuestion question;
  std::vector<TokenRange> ranges;    ///< the model's, over 1..the largest N run
  std::vector<std::int64_t> sizes;   ///< the batch sizes run, ascending
  std::vector<TokenInputs> probes;   ///< [W, 1, D] rows (fused: with a residual row and the config's gamma)
  HostTensor gamma;                  ///< fused: every call's [D] gamma
};

/// One call of the plan: batch size N of a config, with the probes it holds and their rows.
struct BatchCall {
  std::size_t config = 0;
  std::int64_t tokens = 0;
  std::vector<std::pair<int, std::int64_t>> placed;  ///< (probe, row)
};

struct BatchPlan {
  std::vector<BatchConfig> configs;
  std::vector<BatchCall> calls;
  std::vector<PlannedCall> planned;  ///< one per call, without input (batch_input fills it when it runs)
};

/// The plan at one world size: every dtype, profile and PDL setting of `s` with every strategy and plain/fused
/// choice of `b`. Batch sizes: 1..8, powers of two and 1.5 times them, and the last N of every model range
/// and the next, up to b.max_tokens and the byte bound. Probes: a random row, an adversarial row, (bf16 and
/// fp32) a row whose sums flush to -0, and a witness of every boundary the model reports.
BatchPlan plan_batches(const RunSettings& s, const BatchSettings& b, int world);

/// Fills call i's input (and fused inputs): random rows, seeded by the call, with the probes in their rows.
void fill_batch_call(const BatchPlan& plan, std::size_t i, PlannedCall& call);

/// The probe rows the GPU gave, and the verdict per config.
class BatchObservations {
 public:
  explicit BatchObservations(const BatchPlan& plan) : plan_(plan) {}
  /// Call i's output (one rank's [N, D]): keeps its probes' rows.
  void record(std::size_t i, const HostTensor& output);
  /// A quantised call's outputs (one rank's): keeps its probes' codes and scales (quant_row_words).
  void record_quant(std::size_t i, const QuantizedOutput& output);

  struct Verdict {
    std::size_t config = 0;
    int probe = 0;
    int batches = 0;
    int gpu_distinct = 0, model_distinct = 0;  ///< distinct output rows over the batches
    int pairs_disagreeing = 0;                 ///< batch pairs where "same bits" differs between GPU and model
    std::string first_disagreement;
  };
  std::vector<Verdict> verdicts() const;

 private:
  const BatchPlan& plan_;
  std::map<std::pair<std::size_t, int>, std::vector<std::pair<std::int64_t, std::vector<std::uint32_t>>>> rows_;
};

/// One summary per config: batches, probes, distinct bits on the GPU and in the model, pairs that disagree;
/// ok when every pair agrees and (invariant profile) each probe has one set of bits.
std::vector<BatchSummary> summarize_batches(const BatchPlan& plan, const std::vector<BatchObservations::Verdict>& v);

/// The table of the summaries (and each config's first disagreement) and its verdict line. Returns whether
/// every summary is ok.
bool print_batch_report(std::ostream& out, const BatchPlan& plan, const std::vector<BatchObservations::Verdict>& v);

}  // namespace ar
