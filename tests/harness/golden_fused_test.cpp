// The fused golden cases of data/: every expected output is what the fused model (its scalar engine, the
// definition) computes from the case's files, the set covers what data/README.md says it does, and the
// manifest's fused part reads strictly: a malformed entry is refused with a message naming the problem.
#include <catch2/catch.hpp>

#include <functional>
#include <set>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/io/exit_codes.h"
#include "harness/io/golden_cases.h"
#include "harness/io/golden_manifest.h"
#include "harness/io/npy.h"
#include "harness/io/output_file.h"
#include "harness/io/sha256.h"
#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "tests/support/cli_runs.h"
#include "tests/support/committed_data.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using ar::test::usage_error_of;

namespace {

constexpr Strategy kStrategies[] = {Strategy::kOneShot, Strategy::kTwoShot};
constexpr Profile kProfiles[] = {Profile::kFlashInfer, Profile::kIeee};

const GoldenManifest& committed() { return test::committed_manifest(); }

const GoldenManifestCase& fused_case(const std::string& name) {
  return test::committed_case(committed().fused_cases, name);
}

GoldenFusedExpected expected(const std::string& name, Strategy s, Profile p) {
  return committed().load_expected_fused(fused_case(name), s, p);
}

/// Element [token, col] of an [N, D] tensor.
std::uint32_t at(const HostTensor& t, std::int64_t token, std::int64_t col) { return t.bits(token * t.dim(1) + col); }

}  // namespace

TEST_CASE("every fused golden output equals the fused model recomputed from the case's files", "[cpu]") {
  const GoldenManifest& m = committed();
  REQUIRE(m.fused_cases.size() >= 14);
  for (const GoldenManifestCase& c : m.fused_cases) {
    REQUIRE(c.fused);
    CHECK(c.outputs.empty());
    const HostTensor input = m.load_input(c), residual = m.load_residual(c), gamma = m.load_gamma(c);
    CHECK(c.fused->outputs.size() == 6);  // oneshot, twoshot x flashinfer, ieee, invariant
    for (const auto& [key, files] : c.fused->outputs) {
      INFO(c.name << " " << golden_output_key(key.strategy, key.profile));
      FusedOptions o = c.fused->options(key.strategy, key.profile);
      o.engine = Engine::kScalar;
      const FusedResult r = reference_fused_rms_norm(input, residual, gamma, o);
      CHECK(r.launch.exited_threads() == 0);  // a shape whose normalised output the GPU defines
      const GoldenFusedExpected want = m.load_expected_fused(c, key.strategy, key.profile);
      REQUIRE(r.normalized == want.normalized);
      REQUIRE(r.residual_out == want.residual_out);
    }
  }
}

TEST_CASE("the committed fused cases read into the cases the generator makes", "[cpu]") {
  const std::vector<GoldenCase> generated = golden_fused_cases();
  REQUIRE(committed().fused_cases.size() == generated.size());
  for (std::size_t i = 0; i < generated.size(); ++i) {
    const GoldenManifestCase& c = committed().fused_cases[i];
    const GoldenFusedInputs& g = *generated[i].fused;
    INFO(c.name);
    CHECK(c.name == generated[i].name);
    CHECK(c.seed == generated[i].seed);
    CHECK(c.fused->epsilon == g.epsilon);
    CHECK(c.fused->weight_bias == g.weight_bias);
    CHECK(c.fused->sm_count == g.sm_count);
    CHECK(committed().load_input(c) == generated[i].input);
    CHECK(committed().load_residual(c) == g.residual);
    CHECK(committed().load_gamma(c) == g.gamma);
    // AUTO resolves by the shape, as for the all-reduce's outputs.
    const Strategy resolved = resolve_strategy(Strategy::kAuto, c.shape);
    CHECK(&committed().expected_fused_files(c, Strategy::kAuto, Profile::kIeee) ==
          &committed().expected_fused_files(c, resolved, Profile::kIeee));
  }
  // The plain cases stay as they were: no fused part, six outputs each.
  for (const GoldenManifestCase& c : committed().cases) CHECK_FALSE(c.fused);
}

TEST_CASE("the fused cases cover the dtypes, world sizes, weight biases, SM counts and sizes data/README.md names",
          "[cpu]") {
  std::set<DType> dtypes;
  std::set<int> worlds, sms;
  std::set<std::uint32_t> biases;
  bool flashinfer_size = false;
  for (const GoldenManifestCase& c : committed().fused_cases) {
    dtypes.insert(c.shape.dtype);
    worlds.insert(c.shape.world_size);
    sms.insert(c.fused->sm_count);
    biases.insert(c.fused->weight_bias);
    for (std::int64_t d : {2880, 5120, 7168, 8192}) flashinfer_size = flashinfer_size || c.shape.hidden == d;
  }
  CHECK(dtypes.size() == 3);
  CHECK(worlds.count(2) + worlds.count(8) == 2);
  CHECK(*worlds.rbegin() >= 16);
  CHECK(sms == std::set<int>{16, 32, 132});
  CHECK(biases == std::set<std::uint32_t>{0u, 0x3F800000u});
  CHECK(flashinfer_size);
}

TEST_CASE("fused golden: fp16 squares of |pre| >= 256 zero ONESHOT's row and leave TWOSHOT's", "[cpu]") {
  const GoldenFusedExpected one = expected("fused_fp16_square_overflow_w2", Strategy::kOneShot, Profile::kFlashInfer);
  const GoldenFusedExpected two = expected("fused_fp16_square_overflow_w2", Strategy::kTwoShot, Profile::kFlashInfer);
  int twoshot_nonzero = 0;
  for (std::int64_t d = 0; d < one.normalized.dim(1); ++d) {
    CHECK(is_zero(at(one.normalized, 0, d), kFp16Format));
    // signed like pre * gamma (gamma is positive)
    CHECK(sign_bit(at(one.normalized, 0, d), kFp16Format) == sign_bit(at(one.residual_out, 0, d), kFp16Format));
    twoshot_nonzero += is_zero(at(two.normalized, 0, d), kFp16Format) ? 0 : 1;
  }
  CHECK(twoshot_nonzero > 2800);
  CHECK(at(one.residual_out, 0, 5) == 0x5CB0u);   // pre = 300
  CHECK(at(one.residual_out, 1, 17) == 0x5BF8u);  // pre = 255: squares to 65025, finite
  CHECK_FALSE(is_zero(at(one.normalized, 1, 17), kFp16Format));
}

TEST_CASE("fused golden: a -0 residual keeps ONESHOT's -0 sum and meets TWOSHOT's +0", "[cpu]") {
  for (const char* name : {"fused_edge_bf16_w2", "fused_edge_fp32_w2"}) {
    const GoldenManifestCase& c = fused_case(name);
    const FloatFormat f = float_format(c.shape.dtype);
    INFO(name);
    const GoldenFusedExpected one = expected(name, Strategy::kOneShot, Profile::kFlashInfer);
    const GoldenFusedExpected two = expected(name, Strategy::kTwoShot, Profile::kFlashInfer);
    CHECK(at(one.residual_out, 0, 0) == f.sign_mask());  // -0 + -0
    CHECK(at(two.residual_out, 0, 0) == 0u);             // +0 + -0
    CHECK(at(one.normalized, 0, 0) == f.sign_mask());
    CHECK(at(two.normalized, 0, 0) == 0u);
    CHECK(at(one.residual_out, 0, 1) == 0u);  // -0 + +0 = +0 for both
  }
}

TEST_CASE("fused golden: a subnormal gamma is flushed by wb + gamma under FTZ only, and absorbed by wb = 1", "[cpu]") {
  // Token 0, column 3 (gamma = the largest subnormal): with wb = 0 flashinfer multiplies by +0, ieee keeps it.
  const auto column3 = [](const char* name, Profile p) {
    return at(expected(name, Strategy::kOneShot, p).normalized, 0, 3);
  };
  CHECK(is_zero(column3("fused_edge_bf16_w2", Profile::kFlashInfer), kBf16Format));
  CHECK_FALSE(is_zero(column3("fused_edge_bf16_w2", Profile::kIeee), kBf16Format));
  CHECK(column3("fused_edge_bf16_w2_wb1", Profile::kFlashInfer) == column3("fused_edge_bf16_w2_wb1", Profile::kIeee));
  CHECK_FALSE(is_zero(column3("fused_edge_bf16_w2_wb1", Profile::kFlashInfer), kBf16Format));
}

TEST_CASE("fused golden: the same input on 132, 32 and 16 SMs gives three different normalised outputs", "[cpu]") {
  for (Strategy s : kStrategies) {
    std::set<std::string> normalized, residual_out;
    for (int sms : {132, 32, 16}) {
      const GoldenManifestCase& c = fused_case(fmt::format("fused_fp32_w2_n5_d2048_sm{}", sms));
      normalized.insert(committed().expected_fused_files(c, s, Profile::kFlashInfer).normalized.sha256);
      residual_out.insert(committed().expected_fused_files(c, s, Profile::kFlashInfer).residual_out.sha256);
    }
    CHECK(normalized.size() == 3);
    CHECK(residual_out.size() == 1);  // residual_out depends on no launch
  }
}

TEST_CASE("fused golden: at W >= 16 the strategies' sums, and so pre, differ", "[cpu]") {
  for (const char* name : {"fused_adversarial_bf16_w16", "fused_adversarial_bf16_w64", "fused_random_fp32_w32"}) {
    INFO(name);
    const GoldenManifestCase& c = fused_case(name);
    CHECK(committed().expected_fused_files(c, Strategy::kOneShot, Profile::kFlashInfer).residual_out.sha256 !=
          committed().expected_fused_files(c, Strategy::kTwoShot, Profile::kFlashInfer).residual_out.sha256);
  }
}

TEST_CASE("fused golden: with eps = 0, flushed squares give an infinite scale and ieee a finite one", "[cpu]") {
  // fp32 token 3: squares near 2^-132.
  const GoldenFusedExpected ftz = expected("fused_edge_fp32_w2", Strategy::kTwoShot, Profile::kFlashInfer);
  const GoldenFusedExpected ieee = expected("fused_edge_fp32_w2", Strategy::kTwoShot, Profile::kIeee);
  int infinite = 0, finite = 0;
  for (std::int64_t d = 0; d < ftz.normalized.dim(1); ++d) {
    infinite += is_inf(at(ftz.normalized, 3, d), kFp32Format) ? 1 : 0;
    const std::uint32_t v = at(ieee.normalized, 3, d);
    finite += !is_inf(v, kFp32Format) && !is_nan(v, kFp32Format) && !is_zero(v, kFp32Format) ? 1 : 0;
  }
  CHECK(infinite > 50);
  CHECK(finite > 50);
}

TEST_CASE("a malformed fused entry is refused with a message naming the file and the problem", "[cpu]") {
  // A one-case manifest written from the generator's first fused case, then broken one field at a time.
  test::ScratchDir dir;
  const GoldenCase g = golden_fused_cases().front();
  const GoldenFusedInputs& f = *g.fused;
  const auto file = [&](const std::string& name, const HostTensor& t) {
    const std::string bytes = encode_npy(t);
    write_file_atomically(dir.file(name), bytes);
    return nlohmann::json{{"file", name}, {"sha256", sha256_hex(bytes)}};
  };
  nlohmann::json outputs = nlohmann::json::object();
  for (Strategy s : kStrategies)
    for (Profile p : kProfiles) {
      FusedOptions o;
      o.strategy = s;
      o.profile = p;
      o.epsilon = f.epsilon;
      o.weight_bias = f.weight_bias;
      const FusedResult r = reference_fused_rms_norm(g.input, f.residual, f.gamma, o);
      const std::string stem = fmt::format("{}.{}", strategy_name(s), profile_name(p));
      outputs[golden_output_key(s, p)] = {{"normalized", file(stem + ".n.npy", r.normalized)},
                                          {"residual_out", file(stem + ".r.npy", r.residual_out)}};
    }
  const nlohmann::json fused{{"residual", file("residual.npy", f.residual)},
                             {"gamma", file("gamma.npy", f.gamma)},
                             {"eps", to_double(f.epsilon, DType::kFp32)},
                             {"eps_bits", f.epsilon},
                             {"weight_bias", 0.0},
                             {"weight_bias_bits", 0},
                             {"sm_count", 132},
                             {"outputs", outputs}};
  const nlohmann::json valid{{"format", 1},
                             {"cases", nlohmann::json::array()},
                             {"fused_cases", nlohmann::json::array({{{"name", "tiny"},
                                                                     {"kind", "edge"},
                                                                     {"description", "d"},
                                                                     {"seed", 1},
                                                                     {"dtype", "bf16"},
                                                                     {"world_size", 2},
                                                                     {"tokens", 5},
                                                                     {"hidden", 64},
                                                                     {"input", file("in.npy", g.input)},
                                                                     {"fused", fused}}})}};
  const std::string path = dir.file("manifest.json");
  const auto read_with = [&](const std::function<void(nlohmann::json&)>& mutate) {
    nlohmann::json m = valid;
    mutate(m);
    write_file_atomically(path, m.dump(2));
    return usage_error_of([&] {
      const GoldenManifest read = read_golden_manifest(dir.path().string());
      for (const GoldenManifestCase& c : read.fused_cases)
        for (Strategy s : kStrategies)
          for (Profile p : kProfiles) (void)read.load_expected_fused(c, s, p);
    });
  };
  REQUIRE(read_with([](nlohmann::json&) {}).empty());
  const auto f0 = [](nlohmann::json& m) -> nlohmann::json& { return m["fused_cases"][0]["fused"]; };
  struct Row {
    const char* what;
    std::function<void(nlohmann::json&)> mutate;
    const char* message;
  };
  const std::vector<Row> rows{
      {"fused_cases not a list", [](auto& m) { m["fused_cases"] = 3; }, "field 'fused_cases' must be an array"},
      {"no fused part", [](auto& m) { m["fused_cases"][0].erase("fused"); },
       "fused_cases[0] (tiny): field 'fused' is missing"},
      {"no gamma", [&](auto& m) { f0(m).erase("gamma"); }, "fused_cases[0] (tiny): fused: field 'gamma' is missing"},
      {"eps bits missing", [&](auto& m) { f0(m).erase("eps_bits"); }, "field 'eps_bits' is missing"},
      {"eps disagreeing with its bits", [&](auto& m) { f0(m)["eps"] = 0.01; }, "is not the fp32 0x3c000000 of"},
      {"eps bits an infinity", [&](auto& m) { f0(m)["eps_bits"] = 0x7F800000; }, "is not a finite fp32"},
      {"eps bits beyond 32 bits", [&](auto& m) { f0(m)["eps_bits"] = 1ull << 32; }, "is not 32 bits"},
      {"weight bias a string", [&](auto& m) { f0(m)["weight_bias"] = "1"; }, "field 'weight_bias' \"1\" is not"},
      {"no SM count", [&](auto& m) { f0(m).erase("sm_count"); }, "field 'sm_count' is missing"},
      {"SM count 0", [&](auto& m) { f0(m)["sm_count"] = 0; }, "sm_count 0 is outside [1, 1024]"},
      {"a trtllm output", [&](auto& m) { f0(m)["outputs"]["oneshot/trtllm"] = f0(m)["outputs"]["oneshot/ieee"]; },
       "output key 'oneshot/trtllm': the fused norm has flashinfer, ieee and invariant outputs only"},
      {"an output without normalized", [&](auto& m) { f0(m)["outputs"]["twoshot/ieee"].erase("normalized"); },
       "fused: outputs: twoshot/ieee: field 'normalized' is missing"},
      {"two fused cases of one name", [](auto& m) { m["fused_cases"].push_back(m["fused_cases"][0]); },
       "fused_cases[1]: a second case named tiny"},
      {"an output file whose bytes are not the recorded ones",
       [&](auto& m) { f0(m)["outputs"]["oneshot/ieee"]["normalized"]["sha256"] = std::string(64, '0'); }, "has sha256"},
  };
  for (const Row& row : rows) {
    const std::string error = read_with(row.mutate);
    INFO(row.what << ": " << (error.empty() ? "read without complaint" : error));
    CHECK_THAT(error, Catch::StartsWith(path + ": ") || Catch::Contains(path));
    CHECK_THAT(error, Catch::Contains(row.message));
  }
  // A shape FlashInfer launches no fused norm for (a row of more than 65536 bf16 values).
  const std::string wide = read_with([](auto& m) { m["fused_cases"][0]["hidden"] = 65544; });
  CHECK_THAT(wide, Catch::Contains("FlashInfer launches no fused norm for this shape on 132 SMs"));
}
