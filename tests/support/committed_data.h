// The golden cases committed under data/, for the tests that read them: the manifest read once per test
// binary, and a case looked up by name. Header-only (needs AR_SOURCE_DIR, which every test target defines).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "harness/io/golden_manifest.h"

namespace ar::test {

inline const GoldenManifest& committed_manifest() {
  static const GoldenManifest m = read_golden_manifest(std::string(AR_SOURCE_DIR) + "/data");
  return m;
}

/// The case named `name` among `cases` (the manifest's fused_cases or quant_cases); throws
/// std::invalid_argument naming it when data/manifest.json has none.
inline const GoldenManifestCase& committed_case(const std::vector<GoldenManifestCase>& cases, const std::string& name) {
  for (const GoldenManifestCase& c : cases)
    if (c.name == name) return c;
  throw std::invalid_argument("data/manifest.json has no case " + name);
}

}  // namespace ar::test
