// dtype, strategy and profile names as users write them (on the command line or in the Python package), with
// messages that list what is allowed.
#pragma once

#include <optional>
#include <string>

#include "reference/strategy.h"

namespace ar {

/// Each throws UsageError naming the unknown name and the choices.
DType dtype_option(const std::string& name);
Strategy strategy_option(const std::string& name);
Profile profile_option(const std::string& name);
/// An optional --dtype: empty string means "from the file".
std::optional<DType> optional_dtype_option(const std::string& name);

}  // namespace ar
