// The quantised golden cases of data/: every expected output is what the model (reference_fused_quant, with
// the norm's scalar engine) computes from the case's files, the set covers what data/README.md says it does,
// the edge rows give the codes SPEC section 13 predicts, and the manifest's quantised part reads strictly.
#include <catch2/catch.hpp>

#include <algorithm>
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
#include "harness/io/quant_files.h"
#include "harness/io/sha256.h"
#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "reference/mufu.h"
#include "reference/quant_formats.h"
#include "tests/support/cli_runs.h"
#include "tests/support/committed_data.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using ar::test::usage_error_of;

namespace {

constexpr Strategy kStrategies[] = {Strategy::kOneShot, Strategy::kTwoShot};
constexpr Profile kProfiles[] = {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant};

const GoldenManifest& committed() { return test::committed_manifest(); }

const GoldenManifestCase& quant_case(const std::string& name) {
  return test::committed_case(committed().quant_cases, name);
}

const GoldenQuant& variant(const GoldenManifestCase& c, const std::string& name) {
  for (const GoldenQuant& q : c.quant)
    if (q.name == name) return q;
  FAIL(c.name << " has no quantisation " << name);
  throw std::logic_error("unreachable");
}

QuantizedOutput expected(const std::string& case_name, const std::string& variant_name, Strategy s, Profile p) {
  const GoldenManifestCase& c = quant_case(case_name);
  return committed().load_expected_quant(c, variant(c, variant_name), s, p);
}

void require_same(const QuantizedOutput& a, const QuantizedOutput& b) {
  REQUIRE(a.mode == b.mode);
  REQUIRE(a.layout == b.layout);
  REQUIRE(a.tokens == b.tokens);
  REQUIRE(a.hidden == b.hidden);
  REQUIRE(a.quant_out == b.quant_out);
  REQUIRE(a.scale_out == b.scale_out);
  REQUIRE(a.token_scales == b.token_scales);
}

std::uint8_t nibble(const QuantizedOutput& q, std::int64_t token, std::int64_t col) {
  const std::int64_t i = token * q.hidden + col;
  const std::uint8_t byte = q.quant_out.at(static_cast<std::size_t>(i / 2));
  return static_cast<std::uint8_t>(i % 2 == 0 ? byte & 0xF : byte >> 4);
}

std::uint8_t block_scale(const QuantizedOutput& q, std::int64_t token, std::int64_t block) {
  return q.scale_out.at(static_cast<std::size_t>(scale_offset(q.layout, token, block, q.hidden)));
}

std::uint8_t code(const QuantizedOutput& q, std::int64_t token, std::int64_t col) {
  return q.quant_out.at(static_cast<std::size_t>(token * q.hidden + col));
}

}  // namespace

TEST_CASE("every quantised golden output equals the model recomputed from the case's files", "[cpu]") {
  const GoldenManifest& m = committed();
  REQUIRE(m.quant_cases.size() >= 4);
  int compared = 0;
  for (const GoldenManifestCase& c : m.quant_cases) {
    REQUIRE(c.fused);
    CHECK(c.fused->outputs.empty());
    CHECK(c.outputs.empty());
    const HostTensor input = m.load_input(c), residual = m.load_residual(c), gamma = m.load_gamma(c);
    for (const GoldenQuant& q : c.quant) {
      CHECK(q.outputs.size() == 6);  // oneshot, twoshot x flashinfer, ieee, invariant
      for (const auto& [key, files] : q.outputs) {
        INFO(c.name << " " << q.name << " " << golden_output_key(key.strategy, key.profile));
        FusedOptions o = c.fused->options(key.strategy, key.profile);
        o.engine = Engine::kScalar;
        const FusedQuantResult r = reference_fused_quant(input, residual, gamma, o, q.options);
        CHECK(r.fused.launch.exited_threads() == 0);
        require_same(m.load_expected_quant(c, q, key.strategy, key.profile), r.quant);
        ++compared;
      }
    }
  }
  CHECK(compared > 100);
}

TEST_CASE("the committed quantised cases read into the cases the generator makes", "[cpu]") {
  const std::vector<GoldenCase> generated = golden_quant_cases();
  REQUIRE(committed().quant_cases.size() == generated.size());
  for (std::size_t i = 0; i < generated.size(); ++i) {
    const GoldenManifestCase& c = committed().quant_cases[i];
    const GoldenCase& g = generated[i];
    INFO(c.name);
    CHECK(c.name == g.name);
    CHECK(c.seed == g.seed);
    CHECK(c.description == g.description);
    CHECK(c.fused->epsilon == g.fused->epsilon);
    CHECK(c.fused->weight_bias == g.fused->weight_bias);
    CHECK(c.fused->sm_count == g.fused->sm_count);
    CHECK(committed().load_input(c) == g.input);
    CHECK(committed().load_residual(c) == g.fused->residual);
    CHECK(committed().load_gamma(c) == g.fused->gamma);
    REQUIRE(c.quant.size() == g.quant.size());
    for (std::size_t v = 0; v < g.quant.size(); ++v) {
      CHECK(c.quant[v].name == g.quant[v].name);
      CHECK(c.quant[v].options.mode == g.quant[v].options.mode);
      CHECK(c.quant[v].options.scale == g.quant[v].options.scale);
      CHECK(c.quant[v].options.layout == g.quant[v].options.layout);
    }
    // AUTO resolves by the shape.
    const Strategy resolved = resolve_strategy(Strategy::kAuto, c.shape);
    CHECK(&committed().expected_quant_files(c, c.quant.front(), Strategy::kAuto, Profile::kIeee) ==
          &committed().expected_quant_files(c, c.quant.front(), resolved, Profile::kIeee));
  }
}

TEST_CASE("the quantised cases cover the modes, layouts, scales and dtypes data/README.md names", "[cpu]") {
  std::set<std::pair<QuantMode, DType>> modes;
  std::set<std::pair<QuantMode, std::uint32_t>> scales;
  std::set<ScaleLayout> layouts;
  for (const GoldenManifestCase& c : committed().quant_cases)
    for (const GoldenQuant& q : c.quant) {
      modes.insert({q.options.mode, c.shape.dtype});
      scales.insert({q.options.mode, q.options.scale});
      if (q.options.mode == QuantMode::kNvfp4) layouts.insert(q.options.layout);
    }
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    CHECK(modes.count({QuantMode::kFp8, t}) == 1);
    CHECK(modes.count({QuantMode::kFp8Dynamic, t}) == 1);
  }
  CHECK(modes.count({QuantMode::kNvfp4, DType::kBf16}) == 1);
  CHECK(modes.count({QuantMode::kNvfp4, DType::kFp16}) == 1);
  CHECK(layouts.size() == 2);
  for (QuantMode m : {QuantMode::kFp8, QuantMode::kNvfp4}) {
    CHECK(scales.count({m, 0x3F800000u}) == 1);
    CHECK(std::count_if(scales.begin(), scales.end(), [&](const auto& s) { return s.first == m; }) >= 2);
  }
  // The random case spans two tile rows and two tile columns of the swizzled layout.
  const GoldenManifestCase& random = quant_case("quant_random_fp16_w2_n130_d128");
  CHECK(random.shape.tokens > 128);
  CHECK(random.shape.hidden >= 128);
}

TEST_CASE("quantised golden: gamma at e2m1 ties, zero and saturating blocks, e4m3 ties (outputs = gamma exactly)",
          "[cpu]") {
  for (const char* name : {"quant_edge_bf16_w2", "quant_edge_fp16_w2"})
    for (Strategy s : kStrategies)
      for (Profile p : kProfiles) {
        INFO(name << " " << golden_output_key(s, p));
        const QuantizedOutput q = expected(name, "nvfp4-swizzled-g1", s, p);
        // Block 1 of row 0: 6, then the ties 0.25 .. 5 (RN-even by code), then exact codes, 0.125 and 5.5.
        const std::vector<std::uint8_t> want{7, 0, 2, 2, 4, 4, 6, 6, 1, 2, 3, 4, 5, 6, 0, 7};
        for (std::int64_t i = 0; i < 16; ++i) CHECK(nibble(q, 0, 16 + i) == want[static_cast<std::size_t>(i)]);
        CHECK(block_scale(q, 0, 1) == 0x38);  // amax 6: SF = 1
        // Row 1 alternates signs: -0.25 gives -0, -0.75 gives -1.
        CHECK(nibble(q, 1, 17) == 0x8);
        CHECK(nibble(q, 1, 19) == 0xA);
        // Block 0 (gamma 0) is all zero with SF 0 in every finite row; block 3 saturates SF at 448.
        for (std::int64_t row : {0, 1, 2, 5, 6, 7}) CHECK(block_scale(q, row, 0) == 0x00);
        CHECK(block_scale(q, 0, 3) == kE4m3Largest);
        // Row 3 is a NaN row: SF is e4m3's NaN and every element +6.
        for (std::int64_t k = 0; k < 4; ++k) CHECK(block_scale(q, 3, k) == kE4m3Nan);
        for (std::int64_t col = 0; col < 64; ++col) CHECK(nibble(q, 3, col) == kE2m1Largest);
        // Row 2 is all zero: pre = +0, so each output is +0 times gamma's sign, -0 where gamma is negative
        // (columns 54 and 59, -4096 and -1); SF 0 makes every element scale 0, and e2m1 keeps the sign.
        for (std::int64_t col = 0; col < 64; ++col) CHECK(nibble(q, 2, col) == (col == 54 || col == 59 ? 0x8 : 0x0));
        // Static FP8 at scale 1 (rcp(1) = 1): e4m3 ties and saturation on row 0's block 2.
        const QuantizedOutput f = expected(name, "fp8-scale1", s, p);
        CHECK(code(f, 0, 32) == 0x38);  // 1.0625 -> 1
        CHECK(code(f, 0, 33) == 0x3A);  // 1.1875 -> 1.25
        CHECK(code(f, 0, 34) == 0x58);  // 17 -> 16
        CHECK(code(f, 0, 35) == 0x00);  // 2^-10 -> 0
        CHECK(code(f, 0, 36) == 0x02);  // 3 x 2^-10 -> 2^-8
        CHECK(code(f, 0, 37) == 0x7E);  // 464 -> 448
        CHECK(code(f, 0, 38) == 0x7E);  // 480 saturates
        CHECK(code(f, 0, 41) == 0x01);  // 1.25 x 2^-9 -> 2^-9
        CHECK(code(f, 0, 43) == 0x78);  // 248 -> 256
        CHECK(code(f, 3, 0) == kE4m3Nan);
        CHECK(code(f, 4, 40) == kE4m3Nan);  // the Inf input: Inf x 0
        CHECK(code(f, 4, 39) == 0x00);
      }
}

TEST_CASE("quantised golden: dynamic FP8's floor, a NaN row's -448, and an output overflowing only in T", "[cpu]") {
  for (const char* name : {"quant_edge_bf16_w2", "quant_edge_fp16_w2", "quant_edge_fp32_w2"})
    for (Strategy s : kStrategies)
      for (Profile p : kProfiles) {
        INFO(name << " " << golden_output_key(s, p));
        const QuantizedOutput q = expected(name, "fp8-dynamic", s, p);
        CHECK(q.token_scales[2] == kDynamicFp8MinScale);  // all zero
        CHECK(q.token_scales[3] == kDynamicFp8MinScale);  // all NaN: the max drops them
        CHECK(q.token_scales[6] == kDynamicFp8MinScale);  // absmax below 2^-9, codes not zero
        for (std::int64_t col = 44; col < 47; ++col) CHECK(code(q, 6, col) != 0);
        for (std::int64_t col = 0; col < 64; ++col) CHECK(code(q, 3, col) == 0xFE);
        // Row 7's absmax is 2^-9: its scale lies at the floor's boundary, and is the floor itself under every
        // profile (below).
        CHECK(q.token_scales[7] == kDynamicFp8MinScale);
      }
  // Why row 7 meets the floor exactly: the floor is RN(2^-9 / 448) = 2^-18 x 8/7 rounded (8/7 = 1.001001...b,
  // the 24th fraction bit 1 and more after it: up), 0x36924925, which is what the ieee and invariant
  // profiles' div.rn gives; flashinfer's div.approx.ftz (2^-9 times rcp.approx.ftz(448), the hardware's table)
  // gives no more, so the max with the floor is the floor.
  CHECK(kDynamicFp8MinScale == 0x36924925u);
  CHECK(div_approx_ftz_bits(0x3B000000u /* 2^-9 */, 0x43E00000u /* 448 */) <= kDynamicFp8MinScale);
  // Row 5's last output overflows T (-Inf), but not TWOSHOT's fp32 value: the scales part.
  const QuantizedOutput one = expected("quant_edge_fp16_w2", "fp8-dynamic", Strategy::kOneShot, Profile::kFlashInfer);
  const QuantizedOutput two = expected("quant_edge_fp16_w2", "fp8-dynamic", Strategy::kTwoShot, Profile::kFlashInfer);
  CHECK(one.token_scales[5] == 0x7F800000u);
  CHECK_FALSE(is_inf(two.token_scales[5], kFp32Format));
  CHECK(code(one, 5, 63) == 0xFE);  // -Inf / Inf: NaN, clamped to -448
  CHECK(code(two, 5, 63) == 0xFE);  // the absmax element itself: -448
}

TEST_CASE("a malformed quantised entry is refused with a message naming the file and the problem", "[cpu]") {
  // A one-case manifest written from the generator's first quantised case, then broken one field at a time.
  test::ScratchDir dir;
  const GoldenCase g = golden_quant_cases().front();
  REQUIRE(g.input.dtype() == DType::kBf16);
  const GoldenFusedInputs& f = *g.fused;
  const auto file = [&](const std::string& name, const std::string& bytes) {
    write_file_atomically(dir.file(name), bytes);
    return nlohmann::json{{"file", name}, {"sha256", sha256_hex(bytes)}};
  };
  const auto variant_entry = [&](const QuantOptions& q, const std::string& name) {
    nlohmann::json outputs = nlohmann::json::object();
    for (Strategy s : kStrategies)
      for (Profile p : kProfiles) {
        FusedOptions o;
        o.strategy = s;
        o.profile = p;
        o.epsilon = f.epsilon;
        const QuantizedOutput r = reference_fused_quant(g.input, f.residual, f.gamma, o, q).quant;
        const std::string stem = fmt::format("{}.{}.{}", name, strategy_name(s), profile_name(p));
        nlohmann::json files{{"quant_out", file(stem + ".q.npy", encode_quant_out(r))}};
        if (has_scale_out(q.mode)) files["scale_out"] = file(stem + ".s.npy", encode_scale_out(r));
        outputs[golden_output_key(s, p)] = files;
      }
    nlohmann::json v{{"name", name}, {"mode", quant_mode_name(q.mode)}, {"outputs", outputs}};
    if (q.mode != QuantMode::kFp8Dynamic)
      v.update({{"scale", to_double(q.scale, DType::kFp32)}, {"scale_bits", q.scale}});
    if (q.mode == QuantMode::kNvfp4) v["layout"] = scale_layout_name(q.layout);
    return v;
  };
  const nlohmann::json fused{{"residual", file("residual.npy", encode_npy(f.residual))},
                             {"gamma", file("gamma.npy", encode_npy(f.gamma))},
                             {"eps", to_double(f.epsilon, DType::kFp32)},
                             {"eps_bits", f.epsilon},
                             {"weight_bias", 0.0},
                             {"weight_bias_bits", 0},
                             {"sm_count", 132}};
  const nlohmann::json valid{
      {"format", 1},
      {"cases", nlohmann::json::array()},
      {"quant_cases",
       nlohmann::json::array(
           {{{"name", "tiny"},
             {"kind", "edge"},
             {"description", "d"},
             {"seed", 1},
             {"dtype", "bf16"},
             {"world_size", 2},
             {"tokens", 9},
             {"hidden", 64},
             {"input", file("in.npy", encode_npy(g.input))},
             {"fused", fused},
             {"quant", nlohmann::json::array(
                           {variant_entry({QuantMode::kNvfp4, fp32_from_double(3.0), ScaleLayout::kLinear}, "nv"),
                            variant_entry({QuantMode::kFp8Dynamic}, "dyn"),
                            variant_entry({QuantMode::kFp8, 0x3F800000u}, "st")})}}})}};
  const std::string path = dir.file("manifest.json");
  const auto read_with = [&](const std::function<void(nlohmann::json&)>& mutate) {
    nlohmann::json m = valid;
    mutate(m);
    write_file_atomically(path, m.dump(2));
    return usage_error_of([&] {
      const GoldenManifest read = read_golden_manifest(dir.path().string());
      for (const GoldenManifestCase& c : read.quant_cases)
        for (const GoldenQuant& q : c.quant)
          for (Strategy s : kStrategies)
            for (Profile p : kProfiles) (void)read.load_expected_quant(c, q, s, p);
    });
  };
  // The valid manifest reads, and loads what the model gives.
  REQUIRE(read_with([](nlohmann::json&) {}).empty());
  {
    const GoldenManifest read = read_golden_manifest(dir.path().string());
    REQUIRE(read.quant_cases.size() == 1);
    const GoldenManifestCase& c = read.quant_cases[0];
    REQUIRE(c.quant.size() == 3);
    CHECK(c.quant[0].options.layout == ScaleLayout::kLinear);
    CHECK(c.quant[0].options.scale == fp32_from_double(3.0));
    FusedOptions o = c.fused->options(Strategy::kTwoShot, Profile::kIeee);
    require_same(read.load_expected_quant(c, c.quant[0], Strategy::kTwoShot, Profile::kIeee),
                 reference_fused_quant(g.input, f.residual, f.gamma, o, c.quant[0].options).quant);
  }
  const auto q0 = [](nlohmann::json& m) -> nlohmann::json& { return m["quant_cases"][0]; };
  const auto v = [&](nlohmann::json& m, int i) -> nlohmann::json& { return q0(m)["quant"][i]; };
  struct Row {
    const char* what;
    std::function<void(nlohmann::json&)> mutate;
    const char* message;
  };
  const std::vector<Row> rows{
      {"quant_cases not a list", [](auto& m) { m["quant_cases"] = 3; }, "field 'quant_cases' must be an array"},
      {"no quant list", [&](auto& m) { q0(m).erase("quant"); }, "quant_cases[0] (tiny): field 'quant' is missing"},
      {"quant not a list", [&](auto& m) { q0(m)["quant"] = "nv"; }, "field 'quant' must be an array"},
      {"no fused part", [&](auto& m) { q0(m).erase("fused"); }, "quant_cases[0] (tiny): field 'fused' is missing"},
      {"an unknown mode", [&](auto& m) { v(m, 0)["mode"] = "fp4"; }, "quant[0] (nv): mode 'fp4' is not fp8"},
      {"mode none", [&](auto& m) { v(m, 0)["mode"] = "none"; }, "mode 'none' is not fp8, fp8-dynamic or nvfp4"},
      {"an unknown layout", [&](auto& m) { v(m, 0)["layout"] = "8x4"; }, "layout '8x4' is not swizzled or linear"},
      {"nvfp4 without a layout", [&](auto& m) { v(m, 0).erase("layout"); }, "field 'layout' is missing"},
      {"a layout for fp8", [&](auto& m) { v(m, 2)["layout"] = "linear"; }, "a layout belongs to nvfp4's block scales"},
      {"a scale for fp8-dynamic", [&](auto& m) { v(m, 1)["scale_bits"] = 0x3F800000; },
       "quant[1] (dyn): fp8-dynamic takes no scale"},
      {"no scale for fp8", [&](auto& m) { v(m, 2).erase("scale_bits"); }, "field 'scale_bits' is missing"},
      {"a scale disagreeing with its bits", [&](auto& m) { v(m, 0)["scale"] = 2.0; }, "is not the fp32 0x40400000 of"},
      {"an infinite scale", [&](auto& m) { v(m, 0)["scale_bits"] = 0x7F800000; }, "is not a finite fp32"},
      {"nvfp4 on fp32", [&](auto& m) { q0(m)["dtype"] = "fp32"; }, "NVFP4 quantisation takes bf16 or fp16"},
      {"two quantisations of one name", [&](auto& m) { v(m, 1)["name"] = "nv"; }, "a second quantisation named nv"},
      {"no scale_out for nvfp4", [&](auto& m) { v(m, 0)["outputs"]["oneshot/ieee"].erase("scale_out"); },
       "quant[0] (nv): outputs: oneshot/ieee: field 'scale_out' is missing"},
      {"a scale_out for fp8",
       [&](auto& m) {
         v(m, 2)["outputs"]["oneshot/ieee"]["scale_out"] = v(m, 1)["outputs"]["oneshot/ieee"]["scale_out"];
       },
       "fp8 has no scale_out"},
      {"a trtllm output", [&](auto& m) { v(m, 2)["outputs"]["oneshot/trtllm"] = v(m, 2)["outputs"]["oneshot/ieee"]; },
       "output key 'oneshot/trtllm': the fused norm has flashinfer, ieee and invariant outputs only"},
      {"a case named like another", [&](auto& m) { m["quant_cases"].push_back(q0(m)); },
       "quant_cases[1]: a second case named tiny"},
      {"a code file whose bytes are not the recorded ones",
       [&](auto& m) { v(m, 0)["outputs"]["oneshot/ieee"]["quant_out"]["sha256"] = std::string(64, '0'); },
       "has sha256"},
      {"a scale file of another case's shape", [&](auto& m) { q0(m)["tokens"] = 8; }, "holds N = 9, D = 64, but"},
  };
  for (const Row& row : rows) {
    const std::string error = read_with(row.mutate);
    INFO(row.what << ": " << (error.empty() ? "read without complaint" : error));
    CHECK_THAT(error, Catch::Contains(path));
    CHECK_THAT(error, Catch::Contains(row.message));
  }
}
