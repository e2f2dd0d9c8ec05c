#include "harness/commands/accuracy_table.h"

#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <fmt/ranges.h>

#include "reference/bit_diff.h"

namespace ar {

std::vector<std::pair<Strategy, Profile>> every_strategy_and_profile() {
  std::vector<std::pair<Strategy, Profile>> runs;
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
    for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kTrtllm, Profile::kInvariant}) runs.emplace_back(s, p);
  return runs;
}

void print_accuracy_table(std::ostream& out, const std::string& source, const AccuracyReport& report) {
  const ProblemShape& s = report.shape;
  fmt::print(out, "{}: {}, W = {}, N = {}, D = {}; error against the exact sum rounded once to {}\n\n", source,
             dtype_name(s.dtype), s.world_size, s.tokens, s.hidden, dtype_name(s.dtype));
  fmt::print(out, "{:<20} {:>12} {:>8} {:>9} {:>12}   ULP histogram ({})\n", "strategy/profile", "exact", "max ULP",
             "mean ULP", "max |err|", fmt::join(kUlpBucketNames, " | "));
  for (const AccuracyRow& r : report.rows)
    fmt::print(out, "{:<20} {:>12} {:>8} {:>9.4f} {:>12.4g}   {}\n",
               fmt::format("{}/{}", strategy_name(r.strategy), profile_name(r.profile)),
               fmt::format("{}/{}", r.correctly_rounded, r.elements), r.max_ulp, r.mean_ulp, r.max_abs_error,
               fmt::join(r.histogram, " | "));
}

nlohmann::json accuracy_json(const AccuracyReport& report) {
  nlohmann::json rows = nlohmann::json::array();
  for (const AccuracyRow& r : report.rows)
    rows.push_back({{"strategy", strategy_name(r.strategy)},
                    {"profile", profile_name(r.profile)},
                    {"elements", r.elements},
                    {"correctly_rounded", r.correctly_rounded},
                    {"max_ulp", r.max_ulp},
                    {"mean_ulp", r.mean_ulp},
                    {"max_abs_error", r.max_abs_error},
                    {"nan_outputs", r.nan_outputs},
                    {"ulp_histogram", r.histogram}});
  return nlohmann::json{{"histogram_buckets", kUlpBucketNames}, {"rows", rows}};
}

}  // namespace ar
