// `compare` and `accuracy` with --residual and --gamma: the fused call under both strategies and the
// flashinfer and ieee profiles, measured against the correctly rounded fused outputs
// (reference/fused_accuracy.h), as a table or JSON.
#pragma once

#include <iosfwd>
#include <string>

#include "harness/commands/fused_inputs.h"
#include "reference/fused_accuracy.h"

namespace ar {

/// What "correctly rounded" means for the fused outputs, for the commands' help.
extern const char* const kFusedCorrectlyRoundedHelp;

/// The model on ONESHOT and TWOSHOT under flashinfer and ieee with `fused`'s eps, weight bias and SM count,
/// against the correctly rounded outputs. A launch FlashInfer does not make is a UsageError naming
/// `input_path` and its shape, as for `reference`. Writes the undefined-shape warning to `err` when it
/// applies.
FusedAccuracyReport fused_report(const std::string& input_path, const RankInputs& in, const FusedInputs& fused,
                                 std::ostream& err);

/// How `compare` names its input on a command line, for the hint that shows where two rows part: "-i X"
/// (and "--dtype bf16"), or the built-in case's options.
struct CompareSource {
  std::string description;  ///< "x.npy", or "built-in adversarial case (seed 1)"
  std::string options;      ///< the options that give the same input to `compare`
  bool from_file = false;   ///< the input is a file (`explain` can read it as is)
  std::string path;         ///< the file, when from_file
};

/// `compare`'s fused table (or JSON): per row the differences from the first row, the correctly rounded
/// count and the ULP distances of the normalised output, the residual output's correctly rounded count, and
/// the launch; then where the strategies first part, with the `explain` command that shows why.
void print_fused_compare(std::ostream& out, const CompareSource& source, const RankInputs& in, const FusedArgs& args,
                         const FusedInputs& fused, const FusedAccuracyReport& report, bool json);

/// `accuracy`'s fused table (or JSON): both outputs' errors in ULPs, with histograms.
void print_fused_accuracy(std::ostream& out, const std::string& input_path, const RankInputs& in,
                          const FusedInputs& fused, const FusedAccuracyReport& report, bool json);

}  // namespace ar
