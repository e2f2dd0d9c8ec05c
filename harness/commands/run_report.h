// How `run` reports: one table row per call, the summary line, the first difference explained step by
// step, and the same as JSON (rank 0 only).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "harness/commands/run_plan.h"
#include "harness/job/gpu_backend.h"

namespace ar {

/// One call as it ran.
struct RunRow {
  int index = 0;  ///< 1-based over the whole run
  std::string label;
  GpuCall call;
  Profile expect = Profile::kFlashInfer;
  Strategy resolved = Strategy::kOneShot;
  std::uint64_t seed = 0;
  bool direct = false;  ///< took TWOSHOT's direct path (--direct-from)
  std::int64_t elements = 0;
  std::int64_t mismatches = 0;
  int ranks_disagreeing = 0;  ///< ranks whose output differs from rank 0's
  bool flags_ok = true;
  double ms = 0;
  std::vector<std::string> digests;  ///< sha256 of every rank's output, when computed
};

/// The first difference found, kept to explain it.
struct FirstMismatch {
  RunRow row;
  int rank = -1;
  std::int64_t index = -1;
  std::uint32_t gpu = 0, expected = 0;
  HostTensor input;
  std::string dumped_input;  ///< where --dump wrote the input, if it did
  bool residual_out = false;  ///< a fused call's residual_out differs (else its output)
};

/// Where --dump writes a fused call's residual or gamma beside its input: callK.in.npy -> callK.residual.npy.
std::string fused_companion_path(const std::string& dumped_input, const std::string& what);

/// One question of `run --batches` (run_batches.h), as its table line says it.
struct BatchSummary {
  int world = 0;
  DType dtype = DType::kBf16;
  Profile profile = Profile::kFlashInfer;
  Strategy strategy = Strategy::kAuto;
  bool fused = false;
  QuantMode quant = QuantMode::kNone;  ///< a quantised fused call's mode
  int sm_count = 0;
  std::int64_t hidden = 0, max_tokens = 0;
  int batch_sizes = 0, boundaries = 0, probes = 0;
  int gpu_distinct = 0, model_distinct = 0;  ///< the most different rows of one probe over its batches
  int pairs_disagreeing = 0;
  bool ok = false;
};

/// Everything a run found.
struct RunResult {
  std::vector<RunRow> rows;
  std::vector<BatchSummary> batches;  ///< --batches
  std::optional<FirstMismatch> first;
  std::optional<GpuTimeout> timeout;
  int flag_failures = 0;
  double seconds = 0;
  std::int64_t elements() const;
  std::int64_t mismatches() const;
  /// "ok", "mismatch" or "timeout".
  std::string verdict() const;
};

/// Where the run ran, for the JSON.
struct RunPlace {
  GpuDevice device;
  int processes = 1;
  std::string launcher;
  std::string handles, handles_summary;
  std::vector<int> gpus;
};

/// The table, the summary line, the timeout and the explanation of the first difference.
void print_run_report(std::ostream& out, const RunResult& result);

/// The explanation of the first differing element: its fold under the call's strategy and profile.
void print_explanation(std::ostream& out, const FirstMismatch& m);

/// The results as JSON text.
std::string run_json(const RunSettings& s, const RunPlace& place, const RunResult& result);

}  // namespace ar
