// The golden manifest (data/manifest.json): for every golden case its seed, shape, input file and the
// expected output of every strategy and profile, each file with its sha256. `mnnvl-ar data` writes it;
// tests and the GPU `run --inputs golden` read it.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/io/golden_cases.h"

namespace ar {

/// Files of one generated golden set: name -> bytes, plus the manifest JSON naming them.
struct GoldenSet {
  std::vector<std::pair<std::string, std::string>> files;  ///< file name -> contents (.npy bytes)
  nlohmann::json manifest;
};

/// Builds every golden case's input and expected outputs in memory.
GoldenSet build_golden_set();

}  // namespace ar
