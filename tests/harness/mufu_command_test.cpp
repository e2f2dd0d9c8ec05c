// `mnnvl-ar mufu`: its usage errors, its refusal without a GPU (exit 2 and a message that says why), and the
// sha256 of the tables it proves, which must be data/mufu's files as tables.json records them.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "harness/io/sha256.h"
#include "harness/job/gpu_backend.h"
#include "reference/mufu.h"
#include "tests/support/cli_runs.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using test::run_in_process;

namespace {

std::string as_text(std::span<const std::uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace

TEST_CASE("mufu teaches itself and refuses bad usage", "[cpu]") {
  const auto help = run_in_process({"mufu", "--help"});
  CHECK(help.code == 0);
  CHECK_THAT(help.out, Catch::Contains("--check") && Catch::Contains("exit codes"));
  const auto nothing = run_in_process({"mufu"});
  CHECK(nothing.code == 2);
  CHECK_THAT(nothing.err, Catch::Contains("nothing to do: pass --check"));
  CHECK(run_in_process({"mufu", "--check", "--stride", "0"}).code == 2);
  CHECK(run_in_process({"mufu", "--check", "--device", "-1"}).code == 2);
  const auto bad_json = run_in_process({"mufu", "--check", "--json", "/no/such/folder/m.json"});
  CHECK(bad_json.code == 2);
  CHECK_THAT(bad_json.err, Catch::Contains("/no/such/folder"));
  const auto both = run_in_process({"mufu", "--check", "--capture", "."});
  CHECK(both.code == 2);
  CHECK_THAT(both.err, Catch::Contains("choose one"));
  CHECK(run_in_process({"mufu", "--capture", "/no/such/folder"}).code == 2);
}

TEST_CASE("mufu --check exits 2 with the reason when there is no GPU, and checks one when there is", "[cpu]") {
  test::ScratchDir dir;
  const std::string json = (dir.path() / "mufu.json").string();
  // Stride 2^32 - 1: two inputs per sweep (0 and 2^32 - 1), so a machine with a GPU finishes at once.
  const auto r = run_in_process({"mufu", "--check", "--stride", "4294967295", "--json", json});
  if (const auto why = make_gpu_backend()->unavailable()) {
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("mnnvl-ar mufu: no GPU: " + *why));
    CHECK_FALSE(std::filesystem::exists(json));
  } else {
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("the model equals this GPU on all 36 inputs"));
    CHECK(nlohmann::json::parse(std::ifstream(json))["equal"] == true);
  }
}

TEST_CASE("mufu --capture exits 2 with the reason when there is no GPU, writing nothing", "[cpu]") {
  const auto why = make_gpu_backend()->unavailable();
  if (!why) {
    WARN("a GPU is present: cuda_mufu_test runs the capture");
    return;
  }
  test::ScratchDir dir;
  const auto r = run_in_process({"mufu", "--capture", dir.path().string()});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("mnnvl-ar mufu: no GPU: " + *why));
  CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("the built-in MUFU tables carry the sha256 data/mufu/tables.json records", "[cpu]") {
  const auto manifest = nlohmann::json::parse(std::ifstream(std::string(AR_SOURCE_DIR) + "/data/mufu/tables.json"));
  const std::string rsqrt = manifest["tables"]["rsqrt_delta.bin"]["sha256"];
  const std::string rcp = manifest["tables"]["rcp_delta.bin"]["sha256"];
  CHECK(sha256_hex(as_text(rsqrt_delta_table())) == rsqrt);
  CHECK(sha256_hex(as_text(rcp_delta_table())) == rcp);
  CHECK(rsqrt_delta_table_sha256() == rsqrt);
  CHECK(rcp_delta_table_sha256() == rcp);
}
