// `compare` and `accuracy` with --residual and --gamma: the fused call's rows carry the model's numbers
// (against the correctly rounded outputs), in text and JSON; the built-in case takes the fused options too;
// every bad combination exits 2 with a message naming the problem and writes nothing.
#include <catch2/catch.hpp>

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/io/golden_cases.h"
#include "harness/io/npy.h"
#include "reference/float_ops.h"
#include "reference/fused_accuracy.h"
#include "tests/support/cli_runs.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using test::run_in_process;

namespace {

// A fused call's files: the W = 16 adversarial input (the strategies' sums part), a random residual and a
// gamma near 1.
struct Files {
  test::ScratchDir dir;
  HostTensor input, residual, gamma;
  Files(DType t, int world, std::int64_t tokens, std::int64_t hidden)
      : input(adversarial_input(t, world, tokens, hidden, 3)), residual(t, {tokens, hidden}), gamma(t, {hidden}) {
    const HostTensor r = random_input(t, 1, tokens, hidden, 4, 3), g = random_input(t, 1, 1, hidden, 5, 0);
    for (std::int64_t i = 0; i < residual.size(); ++i) residual.set_bits(i, r.bits(i));
    for (std::int64_t i = 0; i < gamma.size(); ++i) gamma.set_bits(i, g.bits(i) & ~float_format(t).sign_mask());
    write_npy(x(), input);
    write_npy(dir.file("r.npy"), residual);
    write_npy(dir.file("g.npy"), gamma);
  }
  std::string x() const { return dir.file("x.npy"); }
  std::vector<std::string> args(const char* command, std::vector<std::string> extra = {}) const {
    std::vector<std::string> a{command, "-i", x(), "--residual", dir.file("r.npy"), "--gamma", dir.file("g.npy")};
    if (input.dtype() == DType::kBf16) a.insert(a.end(), {"--dtype", "bf16"});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
};

FusedAccuracyReport model(const Files& f, std::uint32_t eps, std::uint32_t wb = 0, int sms = kDefaultSmCount) {
  FusedOptions o;
  o.epsilon = eps;
  o.weight_bias = wb;
  o.sm_count = sms;
  return fused_accuracy_report(f.input, f.residual, f.gamma, o,
                               {{Strategy::kOneShot, Profile::kFlashInfer},
                                {Strategy::kOneShot, Profile::kIeee},
                                {Strategy::kOneShot, Profile::kInvariant},
                                {Strategy::kTwoShot, Profile::kFlashInfer},
                                {Strategy::kTwoShot, Profile::kIeee},
                                {Strategy::kTwoShot, Profile::kInvariant}});
}

}  // namespace

TEST_CASE("fused compare prints the model's rows against the correctly rounded outputs", "[cpu]") {
  const Files f(DType::kBf16, 16, 3, 256);
  const FusedAccuracyReport want = model(f, fp32_from_double(1e-6), 0x3F800000u, 16);
  const auto r = run_in_process(f.args("compare", {"--eps", "1e-6", "--weight-bias", "1", "--sms", "16"}));
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("fused: eps 0x358637BD") && Catch::Contains("weight bias 0x3F800000 (1), 16 SMs"));
  for (const FusedAccuracyRow& row : want.rows) {
    const std::string exact = fmt::format("{}/{}", row.normalized.correctly_rounded, row.normalized.elements);
    CHECK_THAT(r.out, Catch::Contains(fmt::format("{}/{}", strategy_name(row.strategy), profile_name(row.profile))) &&
                          Catch::Contains(exact));
  }
  // W = 16: ONESHOT's chunks of 8 and TWOSHOT's of 16 part, and the hint names the first element and the command.
  CHECK_THAT(r.out, Catch::Contains("oneshot/flashinfer and twoshot/flashinfer first differ in the normalised output"));
  CHECK_THAT(r.out, Catch::Contains("mnnvl-ar explain -i " + f.x() + " --dtype bf16 --residual"));
  CHECK_THAT(r.out, Catch::Contains("--eps 9.99999997475e-07") || Catch::Contains("--eps 9.999999974752427e-07"));

  const auto j = run_in_process(f.args("compare", {"--eps", "1e-6", "--weight-bias", "1", "--sms", "16", "--json"}));
  REQUIRE(j.code == 0);
  const nlohmann::json doc = nlohmann::json::parse(j.out);
  CHECK(doc["fused"]["sm_count"] == 16);
  CHECK(doc["fused"]["weight_bias_bits"] == 0x3F800000u);
  REQUIRE(doc["rows"].size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    const FusedAccuracyRow& row = want.rows[i];
    const nlohmann::json& got = doc["rows"][i];
    CHECK(got["strategy"] == std::string(strategy_name(row.strategy)));
    CHECK(got["normalized"]["correctly_rounded"] == row.normalized.correctly_rounded);
    CHECK(got["normalized"]["max_ulp"] == row.normalized.max_ulp);
    CHECK(got["residual_out"]["correctly_rounded"] == row.residual_out.correctly_rounded);
    CHECK(got["launch"]["cluster_size"] == row.result.launch.cluster_size());
  }
  CHECK(doc["rows"][3]["normalized_differ_from_first"].get<std::int64_t>() > 0);
  // The invariant profile's two strategies give the same bits.
  CHECK(doc["rows"][2]["normalized"] == doc["rows"][5]["normalized"]);
}

TEST_CASE("fused accuracy prints both outputs' errors, in text and JSON", "[cpu]") {
  const Files f(DType::kFp16, 16, 2, 128);
  const FusedAccuracyReport want = model(f, default_epsilon(DType::kFp16));
  const auto r = run_in_process(f.args("accuracy"));
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("error against the correctly rounded fused outputs"));
  for (const FusedAccuracyRow& row : want.rows)
    CHECK_THAT(r.out,
               Catch::Contains(fmt::format("{}/{}", row.residual_out.correctly_rounded, row.residual_out.elements)));
  const auto j = run_in_process(f.args("accuracy", {"--json"}));
  REQUIRE(j.code == 0);
  const nlohmann::json doc = nlohmann::json::parse(j.out);
  REQUIRE(doc["rows"].size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(doc["rows"][i]["normalized"]["correctly_rounded"] == want.rows[i].normalized.correctly_rounded);
    CHECK(doc["rows"][i]["normalized"]["ulp_histogram"] == want.rows[i].normalized.histogram);
    CHECK(doc["rows"][i]["residual_out"]["max_ulp"] == want.rows[i].residual_out.max_ulp);
  }
  // Without the fused options accuracy is the all-reduce's, as before.
  const auto plain = run_in_process({"accuracy", "-i", f.x()});
  CHECK(plain.code == 0);
  CHECK_THAT(plain.out, Catch::Contains("error against the exact sum rounded once"));
}

TEST_CASE("fused compare on the built-in case names the commands that rebuild it", "[cpu]") {
  test::ScratchDir dir;
  // A zero residual and gamma = 0 with weight bias 1 on the built-in W = 16 input ([16, 4, 64] bf16).
  write_npy(dir.file("r.npy"), HostTensor(DType::kBf16, {4, 64}));
  write_npy(dir.file("g.npy"), HostTensor(DType::kBf16, {64}));
  const auto r = run_in_process({"compare", "--residual", dir.file("r.npy"), "--gamma", dir.file("g.npy"),
                                 "--weight-bias", "1", "--save-input", dir.file("x.npy")});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("input: built-in adversarial case (seed 1): bf16, W = 16, N = 4, D = 64"));
  CHECK_THAT(r.out, Catch::Contains("mnnvl-ar compare -d bf16 -w 16 -n 4 --hidden 64 --seed 1 --residual "));
  CHECK(std::filesystem::exists(dir.file("x.npy")));
}

TEST_CASE("fused compare and accuracy refuse bad operands with exit 2 and write nothing", "[cpu]") {
  Files f(DType::kBf16, 2, 2, 64);
  const std::string saved = f.dir.file("saved.npy"), res = f.dir.file("r.npy"), g = f.dir.file("g.npy");
  const auto expect_refusal = [&](std::vector<std::string> args, const std::string& message) {
    args.insert(args.end(), {"--save-input", saved});
    for (const char* command : {"compare", "accuracy"}) {
      std::vector<std::string> a = args;
      a[0] = command;
      if (std::string(command) == "accuracy") a.resize(a.size() - 2);  // accuracy writes nothing anyway
      const auto r = run_in_process(a);
      INFO(command << ": " << r.err);
      CHECK(r.code == 2);
      CHECK_THAT(r.err, Catch::Contains(message));
      CHECK_FALSE(std::filesystem::exists(saved));
    }
  };
  write_npy(res, HostTensor(DType::kBf16, {2, 72}));
  expect_refusal(f.args("compare"), "--residual '" + res + "' is [2, 72]; it must be [N, D] = [2, 64]");
  write_npy(res, HostTensor(DType::kFp16, {2, 64}));
  expect_refusal(f.args("compare"), "--residual: ");
  expect_refusal(f.args("compare"), "holds fp16");
  write_npy(res, f.residual);
  write_npy(g, HostTensor(DType::kBf16, {2, 64}));
  expect_refusal(f.args("compare"), "--gamma '" + g + "' is [2, 64]; it must be [D] = [64]");
  write_npy(g, f.gamma);
  expect_refusal({"compare", "-i", f.x(), "--dtype", "bf16", "--residual", res}, "--residual needs --gamma");
  expect_refusal({"compare", "-i", f.x(), "--dtype", "bf16", "--eps", "1e-5"}, "--eps belongs to the fused call");
  expect_refusal(f.args("compare", {"--sms", "0"}), "--sms 0 is outside [1, 1024]");
  expect_refusal(f.args("compare", {"--eps", "1e300"}), "not a finite number as the fp32");
  // A row no launch takes (bf16 D = 65544).
  Files wide(DType::kBf16, 2, 1, 65544);
  const auto r = run_in_process(wide.args("compare", {"--save-input", saved}));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("([2, 1, 65544] bf16, 132 SMs): the fused call cannot run"));
  CHECK_FALSE(std::filesystem::exists(saved));
  // --residual-out is reference's alone.
  const auto out_option = run_in_process(f.args("compare", {"--residual-out", saved}));
  CHECK(out_option.code == 2);
  CHECK_FALSE(std::filesystem::exists(saved));
}

TEST_CASE("fused compare warns where the GPU's normalised output is undefined", "[cpu]") {
  const Files f(DType::kBf16, 2, 1, 8200);  // ONESHOT: one thread beyond the row
  const auto r = run_in_process(f.args("compare"));
  CHECK(r.code == 0);
  CHECK_THAT(r.err, Catch::Contains("warning: the GPU's normalised output is undefined for this shape"));
}
