// How `accuracy` reads: one row per strategy and profile against the exact sum rounded once, as text or as
// JSON. The command and the Python package print the same.
#pragma once

#include <iosfwd>
#include <string>

#include <nlohmann/json.hpp>

#include "reference/accuracy.h"

namespace ar {

/// Every (strategy, profile) pair the plain all-reduce has, in the table's order.
std::vector<std::pair<Strategy, Profile>> every_strategy_and_profile();

/// The table, headed by `source` (a file name, or what the caller calls the tensor) and its shape.
void print_accuracy_table(std::ostream& out, const std::string& source, const AccuracyReport& report);

/// The same as JSON: {"histogram_buckets": [...], "rows": [...]}.
nlohmann::json accuracy_json(const AccuracyReport& report);

}  // namespace ar
