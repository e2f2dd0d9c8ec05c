// What one process found in one `run` call (its ranks' outputs against the reference, their digests, their
// flags, a wait that gave up), sent to every process of the job and merged into one row. Every process
// merges the same reports, so all of them reach the same verdict and stop at the same call.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "harness/job/gpu_backend.h"

namespace ar {

/// A differing element of one rank's output.
struct RankMismatch {
  int rank = -1;
  std::int64_t index = -1;
  std::uint32_t gpu = 0, expected = 0;
  bool residual_out = false;  ///< in a fused call's residual_out (else in its output)
};

struct CallReport {
  std::int64_t elements = 0;  ///< compared, over this process's ranks
  std::int64_t mismatches = 0;
  std::optional<RankMismatch> first;   ///< at this process's lowest differing rank
  int disagreeing = 0;                 ///< this process's ranks whose output differs from its first rank's
  std::map<int, std::string> digests;  ///< rank -> sha256 of its output, when computed
  std::vector<int> flags_bad;          ///< ranks whose flags differ from the reference's update
  std::optional<GpuTimeout> timeout;

  std::string to_json() const;
  /// Throws std::runtime_error naming the problem for malformed text.
  static CallReport from_json(const std::string& text);
};

struct MergedCall {
  std::int64_t elements = 0;
  std::int64_t mismatches = 0;
  std::optional<RankMismatch> first;  ///< at the lowest differing rank of the job
  int ranks_disagreeing = 0;          ///< ranks whose output differs from rank 0's
  std::vector<std::string> digests;   ///< by rank; empty when not every rank's is known
  std::vector<int> flags_bad;
  std::optional<GpuTimeout> timeout;  ///< of the lowest process that had one
};

/// Reports in process order. With every rank's digest known, ranks disagreeing with rank 0 are counted
/// from the digests (ranks in different processes cannot be compared otherwise); else each process's own
/// count is summed (one process holds every rank).
MergedCall merge_call_reports(std::span<const CallReport> reports, int world);

}  // namespace ar
