// Printing helpers shared by the commands: a flat index as [i, j, k], and a BitDiff as a short report.
#pragma once

#include <iosfwd>
#include <string>

#include "reference/bit_diff.h"

namespace ar {

/// "[2, 17]" for flat index 81 of shape [4, 32].
std::string format_index(const std::vector<std::int64_t>& shape, std::int64_t flat);

/// Prints counts, the first differing element (bits and values) and the ULP histogram of differing elements.
void print_bit_diff(std::ostream& out, const BitDiff& d, const HostTensor& shape_of, const std::string& name_a,
                    const std::string& name_b);

}  // namespace ar
