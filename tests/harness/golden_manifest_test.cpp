// read_golden_manifest, the one reader of data/manifest.json: the committed manifest reads into the cases
// the generator makes, and every kind of malformed manifest or golden file is refused with a UsageError
// naming the file and the problem.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/io/exit_codes.h"
#include "harness/io/golden_cases.h"
#include "harness/io/golden_manifest.h"
#include "harness/io/npy.h"
#include "harness/io/sha256.h"
#include "reference/all_reduce.h"
#include "tests/support/cli_runs.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using ar::test::usage_error_of;

namespace {

constexpr Strategy kStrategies[] = {Strategy::kOneShot, Strategy::kTwoShot};
constexpr Profile kProfiles[] = {Profile::kFlashInfer, Profile::kIeee, Profile::kTrtllm};

/// A valid one-case manifest ("tiny": W = 2, N = 1, D = 8, bf16) with its files written into `dir`.
nlohmann::json write_tiny_golden_set(const test::ScratchDir& dir) {
  const HostTensor input = exact_input(DType::kBf16, 2, 1, 8, /*seed=*/5);
  const std::string input_bytes = encode_npy(input);
  write_file_atomically(dir.file("tiny.in.npy"), input_bytes);
  nlohmann::json outputs = nlohmann::json::object();
  for (Strategy s : kStrategies)
    for (Profile p : kProfiles) {
      const std::string file = fmt::format("tiny.{}.{}.npy", strategy_name(s), profile_name(p));
      const std::string bytes = encode_npy(reference_all_reduce(input, s, p));
      write_file_atomically(dir.file(file), bytes);
      outputs[golden_output_key(s, p)] = {{"file", file}, {"sha256", sha256_hex(bytes)}};
    }
  const nlohmann::json tiny{
      {"name", "tiny"},    {"kind", "exact"}, {"description", "small integers"},
      {"seed", 5},         {"dtype", "bf16"}, {"world_size", 2},
      {"tokens", 1},       {"hidden", 8},     {"input", {{"file", "tiny.in.npy"}, {"sha256", sha256_hex(input_bytes)}}},
      {"outputs", outputs}};
  return {{"format", 1}, {"cases", nlohmann::json::array({tiny})}};
}

void write_manifest(const test::ScratchDir& dir, const nlohmann::json& manifest) {
  write_file_atomically(dir.file("manifest.json"), manifest.dump(2));
}

}  // namespace

TEST_CASE("the committed data/manifest.json reads into the cases the generator makes", "[cpu]") {
  const std::string dir = std::string(AR_SOURCE_DIR) + "/data";
  const GoldenManifest manifest = read_golden_manifest(dir);
  CHECK(manifest.path == dir + "/manifest.json");
  const std::vector<GoldenCase> generated = golden_cases();
  REQUIRE(manifest.cases.size() == generated.size());
  for (std::size_t i = 0; i < generated.size(); ++i) {
    const GoldenManifestCase& c = manifest.cases[i];
    INFO(c.name);
    CHECK(c.name == generated[i].name);
    CHECK(c.kind == generated[i].kind);
    CHECK(c.description == generated[i].description);
    CHECK(c.seed == generated[i].seed);
    const ProblemShape shape = shape_of_input(generated[i].input);
    CHECK(c.shape.world_size == shape.world_size);
    CHECK(c.shape.tokens == shape.tokens);
    CHECK(c.shape.hidden == shape.hidden);
    CHECK(c.shape.dtype == shape.dtype);
    CHECK(c.input.sha256.size() == 64);
    CHECK(manifest.load_input(c) == generated[i].input);
    CHECK(c.outputs.size() == 8);  // oneshot, twoshot x flashinfer, ieee, trtllm, invariant
    for (Profile p : kProfiles) {
      const GoldenFile& by_auto = manifest.expected_file(c, Strategy::kAuto, p);
      CHECK(&by_auto == &manifest.expected_file(c, resolve_strategy(Strategy::kAuto, c.shape), p));
    }
  }
}

TEST_CASE("a valid manifest reads, and its files load as the tensors they hold", "[cpu]") {
  test::ScratchDir dir;
  write_manifest(dir, write_tiny_golden_set(dir));
  const GoldenManifest m = read_golden_manifest(dir.path().string());
  REQUIRE(m.cases.size() == 1);
  const GoldenManifestCase& c = m.cases[0];
  CHECK(c.name == "tiny");
  CHECK(c.seed == 5);
  CHECK(c.shape.world_size == 2);
  CHECK(c.shape.dtype == DType::kBf16);
  CHECK(m.file_path(c.input) == dir.file("tiny.in.npy"));
  const HostTensor input = m.load_input(c);
  CHECK(input == exact_input(DType::kBf16, 2, 1, 8, 5));
  CHECK(m.load_expected(c, Strategy::kTwoShot, Profile::kIeee) ==
        reference_all_reduce(input, Strategy::kTwoShot, Profile::kIeee));
  // AUTO is resolved by the case's shape: 32 bytes is ONESHOT.
  CHECK(m.expected_file(c, Strategy::kAuto, Profile::kTrtllm).file == "tiny.oneshot.trtllm.npy");
}

TEST_CASE("a malformed manifest is refused with a message naming the file and the problem", "[cpu]") {
  struct Malformed {
    const char* what;
    std::function<void(nlohmann::json&)> mutate;
    const char* message;
  };
  const auto c0 = [](nlohmann::json& m) -> nlohmann::json& { return m["cases"][0]; };
  const std::vector<Malformed> rows{
      {"not an object", [](auto& m) { m = nlohmann::json::array(); }, "must hold a JSON object, not array"},
      {"no format", [](auto& m) { m.erase("format"); }, "field 'format' is missing"},
      {"another format", [](auto& m) { m["format"] = 2; }, "format 2 is not the format 1 this build reads"},
      {"no cases", [](auto& m) { m.erase("cases"); }, "field 'cases' is missing"},
      {"cases not a list", [](auto& m) { m["cases"] = nlohmann::json::object(); },
       "field 'cases' must be an array, not object"},
      {"a case not an object", [&](auto& m) { c0(m) = 3; }, "cases[0]: must be an object, not number"},
      {"no name", [&](auto& m) { c0(m).erase("name"); }, "cases[0]: field 'name' is missing"},
      {"unknown kind", [&](auto& m) { c0(m)["kind"] = "fuzzy"; },
       "cases[0] (tiny): kind 'fuzzy' is not exact, random or edge"},
      {"seed a string", [&](auto& m) { c0(m)["seed"] = "5"; },
       "cases[0] (tiny): field 'seed' must be a non-negative integer, not \"5\""},
      {"seed negative", [&](auto& m) { c0(m)["seed"] = -1; }, "field 'seed' must be a non-negative integer, not -1"},
      {"no description", [&](auto& m) { c0(m).erase("description"); }, "field 'description' is missing"},
      {"world size a fraction", [&](auto& m) { c0(m)["world_size"] = 2.5; },
       "field 'world_size' must be a non-negative integer, not 2.5"},
      {"world size unsupported", [&](auto& m) { c0(m)["world_size"] = 3; },
       "world_size 3 is not supported (2, 4, 8, 16, 32, 64)"},
      {"unknown dtype", [&](auto& m) { c0(m)["dtype"] = "fp8"; }, "unknown dtype 'fp8' (bf16, fp16 or fp32)"},
      {"no tokens", [&](auto& m) { c0(m).erase("tokens"); }, "cases[0] (tiny): field 'tokens' is missing"},
      {"hidden not a whole pack", [&](auto& m) { c0(m)["hidden"] = 12; }, "hidden size D = 12 is not a multiple of 8"},
      {"no input", [&](auto& m) { c0(m).erase("input"); }, "field 'input' is missing"},
      {"input a string", [&](auto& m) { c0(m)["input"] = "tiny.in.npy"; },
       "field 'input' must be an object, not string"},
      {"input file a number", [&](auto& m) { c0(m)["input"]["file"] = 7; },
       "cases[0] (tiny): input: field 'file' must be a string, not 7"},
      {"input file outside the folder", [&](auto& m) { c0(m)["input"]["file"] = "../tiny.in.npy"; },
       "file '../tiny.in.npy' must be a plain file name inside the folder"},
      {"input digest a number", [&](auto& m) { c0(m)["input"]["sha256"] = 1; },
       "field 'sha256' must be a string, not 1"},
      {"outputs a list", [&](auto& m) { c0(m)["outputs"] = nlohmann::json::array(); },
       "field 'outputs' must be an object, not array"},
      {"output key auto", [&](auto& m) { c0(m)["outputs"]["auto/ieee"] = c0(m)["outputs"]["oneshot/ieee"]; },
       "output key 'auto/ieee' is not <strategy>/<profile>"},
      {"output key without profile", [&](auto& m) { c0(m)["outputs"]["oneshot"] = c0(m)["outputs"]["oneshot/ieee"]; },
       "output key 'oneshot' is not <strategy>/<profile>"},
      {"output key with unknown profile",
       [&](auto& m) { c0(m)["outputs"]["oneshot/fast"] = c0(m)["outputs"]["oneshot/ieee"]; },
       "output key 'oneshot/fast' is not <strategy>/<profile>"},
      {"output without file", [&](auto& m) { c0(m)["outputs"]["twoshot/ieee"].erase("file"); },
       "cases[0] (tiny): outputs: twoshot/ieee: field 'file' is missing"},
      {"two cases of one name", [&](auto& m) { m["cases"].push_back(c0(m)); }, "cases[1]: a second case named tiny"},
  };
  test::ScratchDir dir;
  const nlohmann::json valid = write_tiny_golden_set(dir);
  const std::string path = dir.file("manifest.json");
  for (const Malformed& row : rows) {
    nlohmann::json manifest = valid;
    row.mutate(manifest);
    write_manifest(dir, manifest);
    const std::string error = usage_error_of([&] { read_golden_manifest(dir.path().string()); });
    INFO(row.what << ": " << (error.empty() ? "read without complaint" : error));
    CHECK_THAT(error, Catch::StartsWith(path + ": ") && Catch::Contains(row.message));
  }

  write_file_atomically(path, "{\"format\": 1, \"cases\": [");
  CHECK_THAT(usage_error_of([&] { read_golden_manifest(dir.path().string()); }),
             Catch::StartsWith(path + ": not valid JSON: "));

  std::filesystem::remove(path);
  CHECK_THAT(usage_error_of([&] { read_golden_manifest(dir.path().string()); }),
             Catch::Contains("cannot open the golden manifest '" + path + "' for reading: No such file or directory"));

  // A manifest that is a FIFO no one writes is refused at once, not waited on.
  REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
  CHECK_THAT(usage_error_of([&] { read_golden_manifest(dir.path().string()); }),
             Catch::Contains("the golden manifest '" + path + "' is not a regular file"));
}

TEST_CASE("a golden file that is missing, changed or of another shape is refused when it is loaded", "[cpu]") {
  test::ScratchDir dir;
  nlohmann::json valid = write_tiny_golden_set(dir);
  const auto load_input = [&](const nlohmann::json& manifest) {
    write_manifest(dir, manifest);
    return usage_error_of([&] {
      const GoldenManifest m = read_golden_manifest(dir.path().string());
      m.load_input(m.cases.at(0));
    });
  };
  CHECK(load_input(valid).empty());

  SECTION("a file named but missing") {
    std::filesystem::remove(dir.file("tiny.in.npy"));
    CHECK_THAT(load_input(valid),
               Catch::Contains("cannot open golden file '" + dir.file("tiny.in.npy") + "' for reading"));
  }
  SECTION("a file whose bytes are not the ones the manifest records") {
    write_npy(dir.file("tiny.in.npy"), exact_input(DType::kBf16, 2, 1, 8, /*seed=*/6));
    CHECK_THAT(load_input(valid), Catch::StartsWith(dir.file("tiny.in.npy") + " has sha256 ") &&
                                      Catch::Contains("but " + dir.file("manifest.json") + " records " +
                                                      valid["cases"][0]["input"]["sha256"].get<std::string>()));
  }
  SECTION("a file of another shape than the case's (no digest to catch it first)") {
    valid["cases"][0]["tokens"] = 2;
    valid["cases"][0]["input"].erase("sha256");
    CHECK_THAT(load_input(valid), Catch::Contains(dir.file("tiny.in.npy") + " has shape [2, 1, 8], but " +
                                                  dir.file("manifest.json") + " gives its case the shape [2, 2, 8]"));
  }
  SECTION("a file of another dtype than the case's") {
    valid["cases"][0]["dtype"] = "fp16";
    valid["cases"][0]["input"].erase("sha256");
    CHECK_THAT(load_input(valid), Catch::Contains(dir.file("tiny.in.npy")));
  }
  SECTION("an output the manifest does not list") {
    valid["cases"][0]["outputs"].erase("twoshot/trtllm");
    write_manifest(dir, valid);
    const GoldenManifest m = read_golden_manifest(dir.path().string());
    CHECK(m.load_expected(m.cases[0], Strategy::kTwoShot, Profile::kIeee).dim(0) == 1);
    CHECK_THAT(usage_error_of([&] { m.load_expected(m.cases[0], Strategy::kTwoShot, Profile::kTrtllm); }),
               Catch::Equals(dir.file("manifest.json") + ": case tiny lists no output for twoshot/trtllm"));
  }
}
