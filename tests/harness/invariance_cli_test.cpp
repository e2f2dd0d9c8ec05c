// mnnvl-ar invariance on the command line: the ranges and boundaries of the model, as text and JSON, exit
// 1 when a token can change with N and 0 when none can, and every bad question refused with exit 2 before
// any file is written.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/cli_runs.h"
#include "tests/support/scratch_dir.h"

using ar::test::run_in_process;

namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

}  // namespace

TEST_CASE("invariance reports AUTO's boundary with a witness, as text and JSON", "[cpu]") {
  ar::test::ScratchDir dir;
  const std::string json = dir.file("inv.json");
  const auto r = run_in_process({"invariance", "-w", "16", "--hidden", "256", "-N", "200", "--json", json});
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("N = 128 -> 129: tokens can change"));
  const nlohmann::json j = read_json(json);
  REQUIRE(j.at("ranges").size() == 2);
  CHECK(j.at("ranges")[0].at("last") == 128);  // 128 x 256 x 16 x 2 bytes = 1 MiB, AUTO's rule (inclusive)
  CHECK(j.at("ranges")[0].at("path").at("strategy") == "oneshot");
  CHECK(j.at("ranges")[1].at("last") == 200);
  REQUIRE(j.at("boundaries").size() == 1);
  const auto& b = j.at("boundaries")[0];
  CHECK(b.at("witness_found") == true);
  CHECK(b.at("witness").at("before_bits") != b.at("witness").at("after_bits"));
  CHECK(b.at("witness").at("zero_sign_only") == false);
}

TEST_CASE("invariance at W = 8 finds only the sign of zero, and a fixed strategy has no boundary", "[cpu]") {
  const auto w8 = run_in_process({"invariance", "-w", "8", "--hidden", "256", "-N", "300"});
  CHECK(w8.code == 1);
  CHECK_THAT(w8.out, Catch::Contains("only the sign of a zero result can change"));
  CHECK_THAT(w8.out, Catch::Contains("a sum flushed to -0"));
  const auto fixed = run_in_process({"invariance", "-w", "8", "--hidden", "256", "-s", "twoshot"});
  CHECK(fixed.code == 0);
  CHECK_THAT(fixed.out, Catch::Contains("one path for every N"));
}

TEST_CASE("invariance follows the fused call's trees for the SM count given", "[cpu]") {
  const auto r = run_in_process({"invariance", "-w", "2", "--hidden", "2048", "-d", "fp32", "-s", "oneshot", "--fused",
                                 "--sms", "16", "-N", "40"});
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("16 SMs"));
  CHECK_THAT(r.out, Catch::Contains("the sum-of-squares tree changes"));
  CHECK_THAT(r.out, Catch::Contains("the row's sum of squares is"));
}

TEST_CASE("invariance refuses a bad question with exit 2 and writes no JSON", "[cpu]") {
  ar::test::ScratchDir dir;
  const std::string json = dir.file("inv.json");
  const auto refused = [&](std::vector<std::string> args, const std::string& message) {
    args.insert(args.begin(), "invariance");
    args.insert(args.end(), {"--json", json});
    const auto r = run_in_process(args);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK_FALSE(std::filesystem::exists(json));
  };
  refused({"-w", "3"}, "-w 3 is not a supported world size");
  refused({"--hidden", "7"}, "D = 7 is not a multiple of 8");
  refused({"-N", "0"}, "-N 0 is outside");
  refused({"--tries", "0"}, "--tries 0 is outside");
  refused({"--sms", "78"}, "belong to the fused call");
  refused({"--fused", "-p", "trtllm"}, "flashinfer, ieee and invariant profiles, not trtllm");
  refused({"--fused", "--sms", "0"}, "--sms 0 is outside [1, 1024]");
  refused({"-d", "int8"}, "int8");
}
