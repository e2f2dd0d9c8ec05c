// What `run` will do at one world size: the calls of the sequence (or of the golden cases) for every
// dtype, profile and PDL setting, each with its input and what its outputs must equal, and the plan text
// the processes of a job agree on before any kernel runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/job/gpu_backend.h"
#include "harness/job/handle_choice.h"
#include "reference/call_sequence.h"

namespace ar {

class Job;

enum class InputKind { kRandom, kAdversarial, kExact, kGolden };
InputKind input_kind_option(const std::string& name);

/// The command line of `run`, parsed and checked.
struct RunSettings {
  std::string calls_text, world_text, inputs_text, json_path, data_dir, dump_dir, devices_text;
  std::vector<int> worlds;
  std::vector<DType> dtypes;
  std::vector<Profile> profiles;
  std::vector<bool> pdls;
  InputKind kind = InputKind::kAdversarial;
  std::optional<Profile> expect;
  std::vector<CallSpec> specs;
  std::int64_t tokens = 1, hidden = 1024, round_bytes = -1;
  /// --direct-from: plain TWOSHOT calls of at least this many bytes a rank take the direct path (0: none).
  std::int64_t direct_from_bytes = 0;
  std::uint64_t seed = 1;
  /// Fused calls: epsilon (nullopt: the dtype's default) and weight bias as fp32 bits, and the SM count of
  /// the summation tree (0 until run_job sets the GPU's own when --sms is not given).
  std::optional<std::uint32_t> epsilon;
  std::uint32_t weight_bias = 0;
  std::uint32_t quant_scale = kFp32One;  ///< quantised calls' output_scale (fp32 bits)
  int sms = 0;
  int repeat = 2, omit_rank = -1, device = -1, die_after_call = 0, die_rank = -1;
  double timeout_ms = 10000;
  bool digests = false;
  HandleRequest handles = HandleRequest::kAuto;
};

/// What a fused call's outputs must equal.
struct FusedExpectation {
  HostTensor normalized, residual_out;
  std::optional<QuantizedOutput> quant;  ///< a quantised call's codes and scales
};

/// A fused call's own inputs, and (golden) its expected outputs.
struct PlannedNorm {
  HostTensor residual;  ///< [N, D]
  HostTensor gamma;     ///< [D]
  std::optional<FusedExpectation> expected;  ///< golden: the manifest's files; else computed by the reference
};

/// One call to run: its input and what its outputs must equal. AUTO is resolved once, here.
struct PlannedCall {
  std::string label;  ///< golden case name, or "seq"
  GpuCall call;       ///< call.strategy is the requested one (the kernels' launcher resolves AUTO too)
  Profile expect = Profile::kFlashInfer;  ///< the reference profile the outputs are compared with
  Strategy resolved = Strategy::kOneShot;
  HostTensor input;                    ///< [W, N, D]
  std::optional<HostTensor> expected;  ///< golden: the manifest's file; else computed by the reference
  std::uint64_t seed = 0;
  std::optional<PlannedNorm> norm;  ///< a fused call (call.norm set)
};

/// What a fused call's outputs must equal: the golden files, or reference_fused_rms_norm of its inputs (and
/// quantize_fused of that for a quantised call).
FusedExpectation expected_fused_outputs(const PlannedCall& c);

/// The calls of one world size: every (dtype, profile, PDL) combination of the sequence (or of the golden
/// cases), each with its input. Throws UsageError for a sequence that does not fit `world`, before any
/// input is made.
std::vector<PlannedCall> plan_calls(const RunSettings& s, int world);

/// Checks the sequence at every world size and dtype of `s` as plan_calls would (valid shapes, within the
/// kernels' 32-bit sizes), so that a call no GPU can run is refused before the job starts or anything is
/// allocated. Throws UsageError naming the call. Golden cases are checked when their manifest is read.
void check_call_sizes(const RunSettings& s);

/// Whether `c` takes TWOSHOT's direct path under `s.direct_from_bytes` (reference takes_direct_path of its
/// resolved strategy).
bool takes_direct_path(const RunSettings& s, const PlannedCall& c);

/// The plan every process states before its kernels run at one world size (a call that takes the direct
/// path says so).
std::string describe_plan(const Job& job, const RunSettings& s, int world, HandleKind handles,
                          const std::vector<PlannedCall>& planned);

}  // namespace ar
