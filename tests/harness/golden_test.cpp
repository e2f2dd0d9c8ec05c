// The committed golden set (data/) is what the generator and the reference produce today, byte for byte,
// and the generator covers every SPEC section 10 scenario.
#include <catch2/catch.hpp>

#include <string>

#include "harness/io/golden_cases.h"
#include "harness/io/golden_manifest.h"
#include "reference/all_reduce.h"
#include "tests/support/cli_runs.h"

using namespace ar;

TEST_CASE("data/ reproduces: mnnvl-ar data --check", "[cpu]") {
  const auto r = test::run_in_process({"data", "--check", "--out", std::string(AR_SOURCE_DIR) + "/data"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
}

TEST_CASE("every golden output equals the reference recomputed from its input", "[cpu]") {
  const GoldenManifest manifest = read_golden_manifest(std::string(AR_SOURCE_DIR) + "/data");
  REQUIRE(manifest.cases.size() > 40);
  for (const GoldenManifestCase& c : manifest.cases) {
    const HostTensor input = manifest.load_input(c);
    for (const auto& [key, file] : c.outputs) {
      INFO(c.name << " " << golden_output_key(key.strategy, key.profile));
      REQUIRE(reference_all_reduce(input, key.strategy, key.profile, Engine::kScalar) ==
              manifest.load_expected(c, key.strategy, key.profile));
    }
  }
}

TEST_CASE("the adversarial cases at W = 16, 32, 64 make ONESHOT and TWOSHOT differ", "[cpu]") {
  const GoldenManifest manifest = read_golden_manifest(std::string(AR_SOURCE_DIR) + "/data");
  int checked = 0;
  for (const GoldenManifestCase& c : manifest.cases) {
    if (!c.name.starts_with("adversarial_")) continue;
    INFO(c.name);
    CHECK(c.shape.world_size >= 16);
    const GoldenFile& oneshot = manifest.expected_file(c, Strategy::kOneShot, Profile::kFlashInfer);
    const GoldenFile& twoshot = manifest.expected_file(c, Strategy::kTwoShot, Profile::kFlashInfer);
    REQUIRE_FALSE(oneshot.sha256.empty());
    CHECK(oneshot.sha256 != twoshot.sha256);
    ++checked;
  }
  CHECK(checked == 9);  // 3 dtypes x W = 16, 32, 64
}

TEST_CASE("the same seed gives the same input: slices regenerate", "[cpu]") {
  CHECK(random_input(DType::kBf16, 4, 2, 8, 7, 12) == random_input(DType::kBf16, 4, 2, 8, 7, 12));
  CHECK_FALSE(random_input(DType::kBf16, 4, 2, 8, 7, 12) == random_input(DType::kBf16, 4, 2, 8, 8, 12));
  CHECK(seeded_bits(1, 5) != seeded_bits(1, 6));
}
