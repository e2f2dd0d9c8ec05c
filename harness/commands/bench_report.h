// How `bench` reports, nccl-tests style: the header (machine, limits, NCCL, settings), one line per size and
// strategy, and the same as JSON with the GPU, driver and settings (rank 0 only).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "reference/fused_quant.h"

#include "harness/job/gpu_backend.h"
#include "harness/job/handle_choice.h"
#include "harness/job/host_reference.h"

namespace ar {

/// The command line of `bench`, parsed and checked.
struct BenchSettings {
  std::string json_path, nccl_lib, world_text, devices_text;
  std::vector<DType> dtypes;
  std::vector<Strategy> strategies;
  std::vector<int> worlds;
  std::vector<std::int64_t> sizes;
  std::map<std::string, std::string> labels;
  /// Each size and strategy is timed under each, in turn (the invariant profile's cost in the same run).
  std::vector<Profile> profiles{Profile::kFlashInfer};
  int iters = 20, warmup = 5, graph = 0, check = 1, pdl = 1, device = -1;
  std::int64_t hidden = 4096, round_bytes = -1;
  /// --direct-from: plain TWOSHOT calls of at least this many bytes a rank take the direct path (0: none).
  std::int64_t direct_from_bytes = 0;
  std::uint64_t seed = 1;
  double timeout_ms = 10000;
  HandleRequest handles = HandleRequest::kAuto;
  bool fused = false;  ///< also time the fused call and the all-reduce + separate norm kernel
  /// --quant: also time the fused call with each of these quantised outputs (implies `fused`)
  std::vector<QuantMode> quant;
};

/// One quantised mode of a size, as timed (--quant).
struct QuantTiming {
  QuantMode mode = QuantMode::kNone;
  double us = 0;            ///< NaN: timed out
  std::int64_t wrong = -1;  ///< differing codes and scales, and normalised outputs; -1: not checked
};

/// One size and strategy as timed.
struct BenchRow {
  int world = 0;
  std::int64_t bytes = 0;
  ProblemShape shape;
  Strategy requested = Strategy::kAuto;
  Strategy resolved = Strategy::kOneShot;
  bool direct = false;  ///< the plain call took TWOSHOT's direct path (--direct-from); fused calls never do
  Profile profile = Profile::kFlashInfer;
  double us = 0;
  double algbw = 0, busbw = 0;
  CallTraffic traffic;
  double traffic_gbps = 0, pct_copy = 0;
  std::int64_t wrong = -1;  ///< -1: not checked
  std::optional<double> nccl_us;
  /// --fused: the fused call, and the all-reduce followed by the separate norm kernel (NaN: timed out).
  std::optional<double> fused_us, separate_us;
  std::int64_t fused_wrong = -1, separate_wrong = -1;
  std::vector<QuantTiming> quant;  ///< --quant: in the order asked
  std::string launch;
  /// Fills the bandwidth columns from `us`: algbw, busbw, traffic and its share of `copy_gbps`.
  void derive(double copy_gbps);
};

/// Where and how the benchmark ran, for the header and the JSON.
struct BenchPlace {
  GpuDevice device;
  GpuLimits limits;
  std::string nccl;  ///< what the NCCL baseline is, or why it was not measured
  int processes = 1;
  std::string launcher;
  std::string handles;
  bool gpu_shared = false;
  std::vector<int> gpus;
};

/// "# mnnvl-ar bench on ..." line: the GPU.
void print_bench_device(std::ostream& out, const GpuDevice& dev);
/// The header lines after the job's description: limits, NCCL, settings.
void print_bench_settings(std::ostream& out, const BenchSettings& s, const BenchPlace& place);
/// The column titles (with NCCL's when it is measured, and the fused calls' with --fused).
/// `profiles`: with the profile column (a run of several profiles). `direct`: a strategy column wide enough
/// for "twoshot (direct)" (a run with --direct-from).
std::string bench_table_header(bool nccl, bool fused, bool profiles, const std::vector<QuantMode>& quant = {},
                               bool direct = false);
/// `profiles`: with the profile column (a run of several profiles). `direct`: as bench_table_header's; a row
/// that took the direct path says "(direct)" after its strategy.
void print_bench_row(std::ostream& out, const BenchRow& row, bool profiles, bool direct = false);

/// The results as JSON text; `date` in UTC ISO 8601.
std::string bench_json(const BenchSettings& s, const BenchPlace& place, const std::vector<BenchRow>& rows,
                       const std::string& date);

/// Now, as "2026-11-26T10:00:00Z".
std::string utc_now();

}  // namespace ar
