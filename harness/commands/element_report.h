// How `explain` reads for one element of the plain all-reduce: its inputs, the fold step by step, and every
// strategy and profile's bits with the reason for each that differs. The command and the Python package print
// the same text.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "reference/explain.h"

namespace ar {

/// Prints `e`, the explanation of element [token, col] of `source` (a file name, or what the caller calls
/// the tensor) whose shape is `s`; `requested` is the strategy as asked (AUTO says how it resolved).
void print_element_explanation(std::ostream& out, const std::string& source, const ProblemShape& s,
                               std::int64_t token, std::int64_t col, Strategy requested,
                               const ElementExplanation& e);

}  // namespace ar
