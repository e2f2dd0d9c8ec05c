// The committed golden set (data/) is what the generator and the reference produce today, byte for byte,
// and the generator covers every SPEC section 10 scenario.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "harness/io/golden_cases.h"
#include "harness/io/npy.h"
#include "harness/io/sha256.h"
#include "reference/all_reduce.h"
#include "test_support.h"

using namespace ar;

TEST_CASE("data/ reproduces: mnnvl-ar data --check", "[cpu]") {
  const auto r = test::run({"data", "--check", "--out", std::string(AR_SOURCE_DIR) + "/data"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
}

TEST_CASE("every golden output equals the reference recomputed from its input", "[cpu]") {
  const std::string dir = std::string(AR_SOURCE_DIR) + "/data/";
  std::ifstream in(dir + "manifest.json");
  REQUIRE(in);
  const nlohmann::json manifest = nlohmann::json::parse(in);
  REQUIRE(manifest["cases"].size() > 40);
  for (const auto& c : manifest["cases"]) {
    const DType t = parse_dtype(c["dtype"].get<std::string>()).value();
    const HostTensor input = read_npy(dir + c["input"]["file"].get<std::string>(), t);
    for (const auto& [key, entry] : c["outputs"].items()) {
      const auto slash = key.find('/');
      const Strategy s = parse_strategy(key.substr(0, slash)).value();
      const Profile p = parse_profile(key.substr(slash + 1)).value();
      const HostTensor expected = read_npy(dir + entry["file"].get<std::string>(), t);
      INFO(c["name"].get<std::string>() << " " << key);
      REQUIRE(reference_all_reduce(input, s, p, Engine::kScalar) == expected);
    }
  }
}

TEST_CASE("the adversarial cases at W = 16, 32, 64 make ONESHOT and TWOSHOT differ", "[cpu]") {
  std::ifstream in(std::string(AR_SOURCE_DIR) + "/data/manifest.json");
  REQUIRE(in);
  const nlohmann::json manifest = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& c : manifest["cases"]) {
    if (c["name"].get<std::string>().rfind("adversarial_", 0) != 0) continue;
    INFO(c["name"].get<std::string>());
    CHECK(c["world_size"].get<int>() >= 16);
    CHECK(c["outputs"]["oneshot/flashinfer"]["sha256"] != c["outputs"]["twoshot/flashinfer"]["sha256"]);
    ++checked;
  }
  CHECK(checked == 9);  // 3 dtypes x W = 16, 32, 64
}

TEST_CASE("the same seed gives the same input; slices regenerate", "[cpu]") {
  CHECK(random_input(DType::kBf16, 4, 2, 8, 7, 12) == random_input(DType::kBf16, 4, 2, 8, 7, 12));
  CHECK_FALSE(random_input(DType::kBf16, 4, 2, 8, 7, 12) == random_input(DType::kBf16, 4, 2, 8, 8, 12));
  CHECK(seeded_bits(1, 5) != seeded_bits(1, 6));
}
