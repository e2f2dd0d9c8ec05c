// What `mnnvl-ar mufu --check` does: runs each sweep of reference/mufu_sweep.h through the GPU in chunks and
// compares every result with the CPU model (reference/mufu.h) on all host threads, bit for bit, NaNs
// included. The model is called as it is, input by input: the check proves the functions the rest of the
// project calls, not a second implementation of them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/job/gpu_backend.h"
#include "reference/mufu_sweep.h"

namespace ar {

/// One sweep: an operation over every input (x, or b for kDivHashed; a for kDiv, against `divisor`).
struct MufuSweepSpec {
  MufuOp op = MufuOp::kRsqrt;
  std::uint32_t divisor = 0;  ///< b's bits (kDiv only)
};

/// The sweeps of a full check: rsqrt, rcp, div by each of kMufuDivisors, div over every b.
std::vector<MufuSweepSpec> mufu_check_sweeps();

/// "rsqrt.approx.ftz.f32(x)", "div.approx.ftz.f32(a, 2880)", "div.approx.ftz.f32(hash(b), b)"
std::string mufu_sweep_name(const MufuSweepSpec& spec);

/// The model's bits for input `x` of a sweep.
std::uint32_t mufu_model(const MufuSweepSpec& spec, std::uint32_t x);

/// The operands of input `x` of a sweep: {a, b} for the divisions, {x, 0} otherwise.
struct MufuOperands {
  std::uint32_t a = 0, b = 0;
};
MufuOperands mufu_operands(const MufuSweepSpec& spec, std::uint32_t x);

struct MufuDifference {
  std::uint32_t input = 0;  ///< x (a for kDiv, b for kDivHashed)
  std::uint32_t hardware = 0;
  std::uint32_t model = 0;
};

struct MufuSweepResult {
  MufuSweepSpec spec;
  std::uint64_t inputs = 0;  ///< compared
  std::uint64_t differ = 0;
  std::vector<MufuDifference> first;  ///< the first differences in input order (at most kMufuKeptDifferences)
  double seconds = 0;
};

inline constexpr std::size_t kMufuKeptDifferences = 8;

struct MufuCheckOptions {
  std::uint64_t stride = 1;  ///< check the inputs 0, stride, 2 * stride, ... below 2^32
  unsigned threads = 1;      ///< host threads comparing
};

/// Runs one sweep on `gpu`: chunk by chunk, the GPU computes and the host threads compare.
MufuSweepResult run_mufu_sweep(GpuMufuSweep& gpu, const MufuSweepSpec& spec, const MufuCheckOptions& options);

/// The corrections of a GPU, measured as data/mufu/'s tables were: delta = bits(hardware(xc)) -
/// bits(predictor(xc)) for every canonical input, one int8 per entry, indexed as reference/mufu.h says.
struct MufuCapture {
  std::vector<std::int8_t> rsqrt;  ///< kRsqrtDeltaEntries
  std::vector<std::int8_t> rcp;    ///< kRcpDeltaEntries
};

/// Captures the tables on `gpu`. Throws std::runtime_error naming the first input whose delta does not fit
/// an int8 (a GPU that is not even close to the predictor).
MufuCapture capture_mufu_tables(GpuMufuSweep& gpu);

}  // namespace ar
