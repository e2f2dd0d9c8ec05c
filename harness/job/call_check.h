// What a GPU command checks after a call, the same way in `run` and `probe` (and in the tests that drive
// rank groups): every local rank's output against the expected tensor bit for bit, the ranks against each
// other, optionally each output's sha256, and each rank's flags against the reference's flag update. Each
// process checks its own ranks; agree_on_call merges every process's report, so all reach one verdict.
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <vector>

#include "harness/job/call_report.h"
#include "harness/job/gpu_backend.h"
#include "harness/job/job.h"
#include "reference/workspace.h"

namespace ar {

struct OutputCheck {
  bool digests = false;  ///< record the sha256 of every rank's output
  /// Called once, with the first local rank whose output differs and that output (e.g. to save it).
  std::function<void(int rank, const HostTensor& output)> on_first_mismatch;
};

/// Compares the outputs of `ranks` (local ranks of `group`, after a call on `shape`) with `expected` and
/// adds what it finds to `report`: elements, mismatches, the first difference, ranks disagreeing with the
/// first of `ranks`, and digests.
void check_outputs(GpuRanks& group, const std::vector<int>& ranks, const ProblemShape& shape,
                   const HostTensor& expected, const OutputCheck& check, CallReport& report);

/// The same for a fused call's residual_out (no digests: those are of the normalised output). A first
/// difference here counts only when the normalised outputs had none.
void check_residual_outs(GpuRanks& group, const std::vector<int>& ranks, const ProblemShape& shape,
                         const HostTensor& expected, CallReport& report);

/// The same for a quantised call's codes and scales (compare_quant: every code byte, token scale and block
/// scale is an element). The first difference is described on `err` as call `call_index`'s; the report keeps
/// the counts.
void check_quant_outputs(GpuRanks& group, const std::vector<int>& ranks, const ProblemShape& shape,
                         const QuantizedOutput& expected, CallReport& report, std::ostream& err, int call_index);

/// Every local rank's flags as the reference says they stand, advanced call by call: the flags check.
class FlagsModel {
 public:
  FlagsModel(const std::vector<int>& ranks, std::int64_t buffer_bytes);
  /// Advances every rank's model by `record` and compares it with what `group` holds; a rank that differs
  /// is added to report.flags_bad, and the first one is described on `err` as call `call_index`'s.
  void check(GpuRanks& group, const ClearRecord& record, int call_index, CallReport& report, std::ostream& err);

 private:
  std::map<int, LamportFlags> model_;
};

/// sha256 of each tensor, computed on several threads (a digest runs at a few hundred MB/s).
std::vector<std::string> digests_of(const std::vector<HostTensor>& outputs);

/// Every process's report of one call, merged (merge_call_reports). Collective.
MergedCall agree_on_call(Job& job, const CallReport& mine, int world);

}  // namespace ar
