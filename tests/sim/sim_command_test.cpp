// `mnnvl-ar sim` end to end, in-process: exit codes, the mutation list, the failure report, --json, --trace,
// and bad usage (exit 2, a message naming the problem, no half-written output).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sim/mutation.h"
#include "tests/harness/test_support.h"

namespace ar {
namespace {

using test::run;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST_CASE("sim --help teaches the model, schedules, mutations, an example and exit codes", "[cpu]") {
  const auto r = run({"sim", "--help"});
  CHECK(r.code == 0);
  for (const char* text : {"0x80000000", "8-byte halves", "adversarial", "exhaustive", "two-buffers", "rank-order",
                           "--mutation two-buffers", "exit codes: 0", "1 a protocol failure", "2 bad usage"})
    CHECK_THAT(r.out, Catch::Contains(text));
}

TEST_CASE("sim --list-mutations prints the names, one a line", "[cpu]") {
  const auto r = run({"sim", "--list-mutations"});
  CHECK(r.code == 0);
  std::string want;  // those of the default protocol, FlashInfer's
  for (const sim::MutationInfo& m : sim::kMutationTable)
    if (m.mutation != sim::Mutation::kNone && m.flashinfer) want += std::string(m.name) + "\n";
  CHECK(r.out == want);
  CHECK(r.out ==
        "two-buffers\nno-input-sanitize\nno-result-sanitize\npoll-first-word\nfloat-sentinel-compare\n"
        "no-clear\nclear-current-layout\nno-arrival-wait\nrank-order\nfused-ar-updates-flags\nnorm-reads-unpolled\n"
        "norm-no-grid-sync\n");
}

TEST_CASE("sim --protocol ours lists the mutations that apply to it, its own among them", "[cpu]") {
  const auto r = run({"sim", "--protocol", "ours", "--list-mutations"});
  CHECK(r.code == 0);
  CHECK(r.out ==
        "two-buffers\nno-input-sanitize\nno-result-sanitize\npoll-first-word\nfloat-sentinel-compare\n"
        "no-clear\nclear-current-layout\nno-arrival-wait\nrank-order\nlast-arriver-off-by-one\n"
        "fused-owner-skips-own-row\ndirect-plain-flag\ndirect-no-scatter-wait\ndirect-no-broadcast-wait\n"
        "direct-any-epoch\ndirect-per-call-layout\n");
}

TEST_CASE("sim --direct-from runs large TWOSHOT calls on the direct path and replays its failures", "[cpu]") {
  const std::vector<std::string> leg{"sim",        "--protocol", "ours", "--world-size", "2",        "--calls",
                                     "twoshot:N=4,oneshot:N=1,twoshot:N=4,twoshot:N=1", "--direct-from", "128",
                                     "--blocks-per-rank", "2", "--schedule", "adversarial", "--runs", "20"};
  const auto clean = run(leg);
  CHECK(clean.code == 0);
  CHECK_THAT(clean.out, Catch::Contains("direct-from=128") && Catch::Contains("PASSED"));
  auto broken = leg;
  broken.insert(broken.end(), {"--mutation", "direct-plain-flag", "--json"});
  const auto bug = run(broken);
  CHECK(bug.code == 1);
  const nlohmann::json j = nlohmann::json::parse(bug.out);
  CHECK(j.at("failure").at("kind") == "stale-read");
  CHECK_THAT(j.at("failure").at("reproduce").get<std::string>(),
             Catch::Contains("--direct-from 128") && Catch::Contains("--mutation direct-plain-flag"));
  // The direct path is our kernels' alone, and its threshold is a byte count.
  const auto flashinfer = run({"sim", "--direct-from", "128"});
  CHECK(flashinfer.code == 2);
  CHECK_THAT(flashinfer.err, Catch::Contains("--direct-from apply to --protocol ours only"));
  const auto negative = run({"sim", "--protocol", "ours", "--direct-from", "-1"});
  CHECK(negative.code == 2);
  CHECK_THAT(negative.err, Catch::Contains("--direct-from must be >= 0, got -1"));
}

TEST_CASE("sim --protocol ours passes a clean single leg, and finds its own mutation", "[cpu]") {
  const auto r =
      run({"sim", "--protocol", "ours", "--world-size", "4", "--calls", "oneshot:N=2,twoshot:N=5,oneshot:N=1,auto:N=3",
           "--blocks-per-rank", "2", "--tokens-per-round", "2", "--schedule", "adversarial", "--runs", "10"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("our kernels' protocol") &&
                        Catch::Contains("protocol=ours blocks<=2 "
                                        "tokens/round=2") &&
                        Catch::Contains("PASSED"));
  const auto bug = run({"sim", "--protocol", "ours", "--mutation", "last-arriver-off-by-one", "--json"});
  CHECK(bug.code == 1);
  const nlohmann::json j = nlohmann::json::parse(bug.out);
  CHECK(j.at("protocol") == "ours");
  CHECK(j.at("failure").at("kind") == "flags-mismatch");
  CHECK_THAT(j.at("failure").at("reproduce").get<std::string>(), Catch::Contains("--protocol ours"));
}

TEST_CASE("sim passes a clean single-leg search and exits 0", "[cpu]") {
  const auto r = run({"sim", "--world-size", "4", "--calls", "oneshot:N=2,twoshot:N=5,oneshot:N=1,auto:N=3",
                      "--schedule", "adversarial", "--runs", "10"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("PASSED") && Catch::Contains("events/s"));
}

TEST_CASE("sim finds a mutation, exits 1 and prints how to reproduce it", "[cpu]") {
  test::ScratchDir dir;
  const auto r =
      run({"sim", "--mutation", "no-clear", "--trace", dir.file("t.json"), "--json-out", dir.file("r.json")});
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("FAILED") && Catch::Contains("reproduce: mnnvl-ar sim") &&
                        Catch::Contains("--mutation no-clear") && Catch::Contains("seed"));
  const nlohmann::json trace = nlohmann::json::parse(slurp(dir.file("t.json")));
  CHECK(trace.at("traceEvents").size() > 10);
  const nlohmann::json result = nlohmann::json::parse(slurp(dir.file("r.json")));
  CHECK(result.at("passed") == false);
  const auto& f = result.at("failure");
  for (const char* key : {"kind", "rank", "call", "element", "seed", "step", "message", "reproduce", "shortest"})
    CHECK(f.contains(key));
  for (const char* key : {"events", "events_per_second", "interleavings_explored", "seed", "runs"})
    CHECK(result.contains(key));

  // The printed reproduce arguments replay the same failure.
  const std::string line = r.out.substr(r.out.find("reproduce: mnnvl-ar sim ") + 24);
  std::vector<std::string> args{"sim"};
  std::string word;
  for (char ch : line.substr(0, line.find('\n'))) {
    if (ch == ' ') {
      if (!word.empty()) args.push_back(word);
      word.clear();
    } else {
      word += ch;
    }
  }
  if (!word.empty()) args.push_back(word);
  args.push_back("--json");
  const auto again = run(args);
  CHECK(again.code == 1);
  const nlohmann::json j = nlohmann::json::parse(again.out);
  CHECK(j.at("failure").at("message") == f.at("shortest").at("message"));
}

TEST_CASE("sim runs fused calls from --calls, and a fused mutation's reproduce arguments keep them fused", "[cpu]") {
  const auto clean = run({"sim", "--world-size", "4", "--calls", "twoshot:N=5,twoshot:N=3:fused,oneshot:N=2:fused",
                          "--schedule", "adversarial", "--runs", "10"});
  CHECK(clean.code == 0);
  CHECK_THAT(clean.out, Catch::Contains("twoshot:N=3:D=16:dtype=bf16:fused,oneshot:N=2:D=16:dtype=bf16:fused") &&
                            Catch::Contains("PASSED"));
  const auto bug = run({"sim", "--world-size", "4", "--calls", "twoshot:N=5,twoshot:N=3:fused", "--mutation",
                        "norm-reads-unpolled", "--json"});
  CHECK(bug.code == 1);
  const nlohmann::json j = nlohmann::json::parse(bug.out);
  CHECK(j.at("failure").at("kind") == "stale-read");
  CHECK_THAT(j.at("failure").at("reproduce").get<std::string>(),
             Catch::Contains("twoshot:N=3:D=16:dtype=bf16:fused") && Catch::Contains("--mutation norm-reads-unpolled"));
  // A fused mutation needs the protocol it belongs to.
  const auto wrong = run({"sim", "--protocol", "ours", "--mutation", "norm-no-grid-sync"});
  CHECK(wrong.code == 2);
  const auto bad = run({"sim", "--calls", "oneshot:fused:fused"});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Contains("fused is given twice"));
}

TEST_CASE("sim --json reports a wrong-bits element and the exhaustive counts", "[cpu]") {
  const auto wrong = run({"sim", "--mutation", "rank-order", "--json"});
  CHECK(wrong.code == 1);
  const nlohmann::json j = nlohmann::json::parse(wrong.out);
  CHECK(j.at("failure").at("kind") == "wrong-bits");
  CHECK(j.at("failure").at("element").at("token").is_number());
  CHECK(j.at("failure").at("element").at("got") != j.at("failure").at("element").at("expected"));

  const auto ex = run({"sim", "--world-size", "2", "--tokens", "1", "--hidden", "8", "--calls",
                       "oneshot,twoshot,oneshot", "--schedule", "exhaustive", "--json"});
  CHECK(ex.code == 0);
  const nlohmann::json e = nlohmann::json::parse(ex.out);
  CHECK(e.at("legs").at(0).at("exhausted") == true);
  CHECK(e.at("interleavings_explored").get<double>() > 1.0);
}

TEST_CASE("sim rejects bad usage with exit 2, names the problem, and writes no trace", "[cpu]") {
  test::ScratchDir dir;
  const std::string trace = dir.file("never.json");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--world-size", "3"}, "world size 3 is not supported"},
      {{"--hidden", "12"}, "not a multiple of 8"},
      {{"--hidden", "6", "--dtype", "fp32"}, "not a multiple of 4"},
      {{"--tokens", "0"}, "N must be at least 1"},
      {{"--calls", "oneshot:N=0"}, "N must be an integer >= 1"},
      {{"--calls", "oneshot,,twoshot"}, "call 2"},
      {{"--calls", "fastshot"}, "unknown strategy 'fastshot'"},
      {{"--mutation", "three-buffers"}, "unknown mutation 'three-buffers'"},
      {{"--schedule", "fair"}, "unknown schedule 'fair'"},
      {{"--dtype", "int8"}, "unknown dtype 'int8'"},
      {{"--writer", "broadcast"}, "unknown writer"},
      {{"--buffer-bytes", "48"}, "not a positive multiple of 32"},
      {{"--buffer-bytes", "32", "--calls", "oneshot:N=4"}, "insufficient"},
      {{"--runs", "0"}, "--runs must be >= 1"},
      {{"--arrival", "late"}, "unknown arrival 'late'"},
      {{"--dispatch", "random"}, "unknown dispatch 'random'"},
      {{"--resident-ctas", "-1"}, "--resident-ctas must be >= 0"},
      {{"--seed", "-5"}, "--seed must be >= 0"},
      {{"--packs-per-cta", "0"}, "packs per CTA must be in"},
      {{"--protocol", "nccl"}, "unknown protocol 'nccl'"},
      {{"--protocol", "ours", "--writer", "multicast"}, "unicast st_v4"},
      {{"--protocol", "ours", "--arrival", "after-flags"}, "--arrival applies to --protocol flashinfer only"},
      {{"--blocks-per-rank", "2"}, "apply to --protocol ours only"},
      {{"--protocol", "ours", "--blocks-per-rank", "-1"}, "--blocks-per-rank must be >= 0"},
      {{"--protocol", "ours", "--tokens-per-round", "-3"}, "--tokens-per-round must be >= 0"},
      {{"--mutation", "last-arriver-off-by-one"}, "does not apply to --protocol flashinfer"},
      {{"--frobnicate"}, "frobnicate"},
  };
  for (const auto& [extra, message] : cases) {
    std::vector<std::string> args{"sim", "--trace", trace};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run(args);
    INFO(extra.front() << ": " << r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::StartsWith("mnnvl-ar sim: error:") && Catch::Contains(message));
    CHECK_FALSE(std::filesystem::exists(trace));
  }
}

}  // namespace
}  // namespace ar
