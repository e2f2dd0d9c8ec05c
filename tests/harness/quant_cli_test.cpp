// The quantised fused outputs on the command line: `reference --quant` writes the bytes the model computes
// (every file or none), `dequant` reads them back into what `dequantize` gives, every bad combination is
// refused with a message that names it, and `explain --quant` follows one element through the quantisation.
#include <catch2/catch.hpp>

#include <bit>
#include <filesystem>
#include <functional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/io/npy.h"
#include "harness/io/quant_files.h"
#include "reference/float_ops.h"
#include "reference/fused_quant.h"
#include "reference/quant_formats.h"
#include "tests/support/cli_runs.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using test::read_text;
using test::run_in_process;

namespace {

std::uint32_t fp32(float v) { return std::bit_cast<std::uint32_t>(v); }

// Values of T from a deterministic function of the element index: the high half of the fp32 for bf16.
HostTensor tensor_of(DType t, std::vector<std::int64_t> shape, const std::function<float(std::int64_t)>& value) {
  HostTensor x(t, std::move(shape));
  for (std::int64_t i = 0; i < x.size(); ++i) x.set_bits(i, narrow_from_fp32(fp32(value(i)), t));
  return x;
}

float wave(std::int64_t i) { return static_cast<float>((i * 37 % 101) - 50) / 32.0f; }

// Input, residual and gamma files of one fused case, and the arguments that name them and the four outputs.
struct QuantCase {
  test::ScratchDir dir;
  HostTensor input, residual, gamma;

  QuantCase(DType t, int world, std::int64_t tokens, std::int64_t hidden)
      : input(tensor_of(t, {world, tokens, hidden}, wave)),
        residual(tensor_of(t, {tokens, hidden}, [](std::int64_t i) { return wave(i + 7) / 4; })),
        gamma(tensor_of(t, {hidden}, [](std::int64_t i) { return 1.0f + static_cast<float>(i % 9) / 16; })) {
    write_npy(dir.file("x.npy"), input);
    write_npy(dir.file("r.npy"), residual);
    write_npy(dir.file("g.npy"), gamma);
  }
  std::vector<std::string> inputs(const char* command) const {
    std::vector<std::string> a{command,           "-i",      dir.file("x.npy"), "--residual",
                               dir.file("r.npy"), "--gamma", dir.file("g.npy")};
    if (input.dtype() == DType::kBf16) a.insert(a.end(), {"--dtype", "bf16"});
    return a;
  }
  std::vector<std::string> reference_args(std::vector<std::string> extra) const {
    std::vector<std::string> a = inputs("reference");
    a.insert(a.end(), {"-o", dir.file("y.npy"), "--residual-out", dir.file("ro.npy")});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::vector<std::string> explain_args(std::int64_t token, std::int64_t col, std::vector<std::string> extra) const {
    std::vector<std::string> a = inputs("explain");
    a.insert(a.end(), {"-t", std::to_string(token), "-c", std::to_string(col)});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  bool wrote_any() const {
    for (const char* name : {"y.npy", "ro.npy", "q.npy", "s.npy"})
      if (std::filesystem::exists(dir.file(name))) return true;
    return false;
  }
};

FusedOptions options_for(Strategy s, Profile p, DType t) {
  FusedOptions o;
  o.strategy = s;
  o.profile = p;
  o.epsilon = default_epsilon(t);
  return o;
}

}  // namespace

TEST_CASE("reference --quant writes the model's codes and scales, and dequant decodes them as dequantize does",
          "[cpu]") {
  struct Run {
    DType dtype;
    std::vector<std::string> extra;
    Strategy strategy;
    Profile profile;
    QuantOptions quant;
  };
  const std::uint32_t g2688 = fp32_from_double(2688.0), s037 = fp32_from_double(0.37);
  const std::vector<Run> runs{
      {DType::kBf16, {"--quant", "nvfp4"}, Strategy::kAuto, Profile::kFlashInfer, {QuantMode::kNvfp4}},
      {DType::kFp16,
       {"--quant", "nvfp4", "--scale-layout", "linear", "--quant-scale", "2688", "-s", "twoshot"},
       Strategy::kTwoShot,
       Profile::kFlashInfer,
       {QuantMode::kNvfp4, g2688, ScaleLayout::kLinear}},
      {DType::kBf16,
       {"--quant", "nvfp4", "--scale-layout", "swizzled", "-p", "invariant"},
       Strategy::kAuto,
       Profile::kInvariant,
       {QuantMode::kNvfp4}},
      {DType::kFp32,
       {"--quant", "fp8", "--quant-scale", "0.37", "-p", "ieee"},
       Strategy::kAuto,
       Profile::kIeee,
       {QuantMode::kFp8, s037}},
      {DType::kFp16, {"--quant", "fp8"}, Strategy::kOneShot, Profile::kFlashInfer, {QuantMode::kFp8}},
      {DType::kBf16,
       {"--quant", "fp8-dynamic", "-s", "twoshot"},
       Strategy::kTwoShot,
       Profile::kFlashInfer,
       {QuantMode::kFp8Dynamic}},
      {DType::kFp32,
       {"--quant", "fp8-dynamic", "-p", "invariant"},
       Strategy::kAuto,
       Profile::kInvariant,
       {QuantMode::kFp8Dynamic}},
  };
  for (const Run& run : runs) {
    QuantCase c(run.dtype, 2, 5, 64);
    std::vector<std::string> extra = run.extra;
    extra.insert(extra.end(), {"--quant-out", c.dir.file("q.npy")});
    const bool scales = has_scale_out(run.quant.mode);
    if (scales) extra.insert(extra.end(), {"--scale-out", c.dir.file("s.npy")});
    const auto cli = run_in_process(c.reference_args(extra));
    INFO(fmt::format("{}", fmt::join(run.extra, " ")) << ": " << cli.err);
    REQUIRE(cli.code == 0);
    CHECK_THAT(cli.out, Catch::Contains("quantised (") && Catch::Contains("(codes, uint8"));
    FusedOptions options = options_for(run.strategy, run.profile, run.dtype);
    const FusedQuantResult want = reference_fused_quant(c.input, c.residual, c.gamma, options, run.quant);
    CHECK(read_npy(c.dir.file("y.npy"), run.dtype) == want.fused.normalized);
    CHECK(read_npy(c.dir.file("ro.npy"), run.dtype) == want.fused.residual_out);
    CHECK(read_text(c.dir.file("q.npy")) == encode_quant_out(want.quant));
    CHECK(std::filesystem::exists(c.dir.file("s.npy")) == scales);
    if (scales) CHECK(read_text(c.dir.file("s.npy")) == encode_scale_out(want.quant));

    // dequant: the same decoding, to a file and printed.
    std::vector<std::string> dq{"dequant", "--quant", std::string(quant_mode_name(run.quant.mode)), "--quant-out",
                                c.dir.file("q.npy")};
    if (scales) dq.insert(dq.end(), {"--scale-out", c.dir.file("s.npy")});
    if (run.quant.mode != QuantMode::kFp8Dynamic && run.quant.scale != 0x3F800000u)
      dq.insert(dq.end(), {"--quant-scale", run.quant.mode == QuantMode::kFp8 ? "0.37" : "2688"});
    if (run.quant.layout == ScaleLayout::kLinear) dq.insert(dq.end(), {"--scale-layout", "linear"});
    std::vector<std::string> to_file = dq;
    to_file.insert(to_file.end(), {"-o", c.dir.file("dq.npy")});
    const auto decoded = run_in_process(to_file);
    INFO(decoded.err);
    REQUIRE(decoded.code == 0);
    CHECK(read_npy(c.dir.file("dq.npy")) == dequantize(want.quant, run.quant.scale));
    dq.insert(dq.end(), {"--token", "3", "--col", "60"});
    const auto printed = run_in_process(dq);
    REQUIRE(printed.code == 0);
    CHECK_THAT(printed.out, Catch::Contains("N = 5, D = 64") && Catch::Contains("[3, 60] code 0x") &&
                                Catch::Contains("[3, 63]") && !Catch::Contains("[3, 64]"));
    CHECK_THAT(printed.out, Catch::Contains(run.quant.mode == QuantMode::kNvfp4 ? "x block 3 scale 0x"
                                            : run.quant.mode == QuantMode::kFp8 ? "x output_scale 0x"
                                                                                : "x token scale 0x"));
  }
}

TEST_CASE("every quantisation refusal exits 2 with its message and writes no file", "[cpu]") {
  QuantCase bf16(DType::kBf16, 2, 2, 64), fp32_case(DType::kFp32, 2, 2, 64), odd(DType::kBf16, 2, 2, 72);
  const auto expect_refusal = [](const QuantCase& c, const std::vector<std::string>& extra,
                                 const std::string& message) {
    const auto r = run_in_process(c.reference_args(extra));
    INFO(fmt::format("{}", fmt::join(extra, " ")) << ": " << r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK_FALSE(c.wrote_any());
  };
  const std::string q = bf16.dir.file("q.npy"), s = bf16.dir.file("s.npy");
  const std::vector<std::string> files{"--quant-out", q, "--scale-out", s};
  const auto with_files = [&](std::vector<std::string> a) {
    a.insert(a.end(), files.begin(), files.end());
    return a;
  };
  expect_refusal(bf16, with_files({"--quant", "fp4"}), "unknown --quant 'fp4' (choose fp8, fp8-dynamic or nvfp4)");
  expect_refusal(bf16, with_files({"--quant", "none"}), "unknown --quant 'none'");
  expect_refusal(bf16, {"--quant", "fp8", "--quant-out", q, "--scale-layout", "linear"},
                 "--scale-layout is for nvfp4's block scales; fp8 has none");
  expect_refusal(bf16, with_files({"--quant", "fp8-dynamic", "--scale-layout", "swizzled"}),
                 "--scale-layout is for nvfp4");
  expect_refusal(bf16, with_files({"--quant", "nvfp4", "--scale-layout", "8x4"}),
                 "unknown --scale-layout '8x4' (choose swizzled or linear)");
  expect_refusal(bf16, {"--scale-layout", "linear"},
                 "--scale-layout belongs to the quantised output: give --quant too");
  expect_refusal(bf16, {"--quant-out", q}, "--quant-out belongs to the quantised output");
  expect_refusal(bf16, {"--quant-scale", "2"}, "--quant-scale belongs to the quantised output");
  expect_refusal(bf16, {"--quant", "nvfp4", "--scale-out", s}, "--quant-out is required with --quant");
  expect_refusal(bf16, {"--quant", "nvfp4", "--quant-out", q}, "--scale-out is required with --quant nvfp4");
  expect_refusal(bf16, {"--quant", "fp8-dynamic", "--quant-out", q},
                 "--scale-out is required with --quant fp8-dynamic");
  expect_refusal(bf16, with_files({"--quant", "fp8"}), "static fp8 has no scale output");
  expect_refusal(bf16, with_files({"--quant", "fp8-dynamic", "--quant-scale", "2"}),
                 "--quant-scale is for fp8 and nvfp4");
  expect_refusal(bf16, with_files({"--quant", "nvfp4", "--quant-scale", "1e300"}),
                 "--quant-scale 1e+300 is not a finite number as the fp32");
  expect_refusal(bf16, with_files({"--quant", "nvfp4", "--quant-scale", "nan"}), "--quant-scale 'nan' is not a finite");
  expect_refusal(bf16, with_files({"--quant", "nvfp4", "--quant-scale", "inf"}), "--quant-scale 'inf' is not a finite");
  expect_refusal(bf16, {"--quant", "nvfp4", "--quant-out", q, "--scale-out", q},
                 "--quant-out and --scale-out both name");
  expect_refusal(bf16, {"--quant", "fp8", "--quant-out", bf16.dir.file("ro.npy")},
                 "--residual-out and --quant-out both name");
  // The model's own refusals, before anything is computed.
  expect_refusal(fp32_case, with_files({"--quant", "nvfp4"}),
                 "([2, 2, 64] fp32): --quant nvfp4 cannot run: NVFP4 quantisation takes bf16 or fp16 input, not fp32");
  expect_refusal(odd, with_files({"--quant", "nvfp4"}), "NVFP4 quantisation needs D divisible by 16; D = 72");
  // --quant without the fused call.
  const auto plain = run_in_process({"reference", "-i", bf16.dir.file("x.npy"), "-d", "bf16", "-o",
                                     bf16.dir.file("y.npy"), "--quant", "fp8", "--quant-out", q});
  CHECK(plain.code == 2);
  CHECK_THAT(plain.err, Catch::Contains("--quant quantises the fused call's normalised output: give --residual and "
                                        "--gamma too"));
  CHECK_FALSE(bf16.wrote_any());
  // explain takes the quantisation but writes no files.
  const auto explain_files = run_in_process(bf16.explain_args(0, 0, {"--quant", "fp8", "--quant-out", q}));
  CHECK(explain_files.code == 2);
  const auto explain_fp32 = run_in_process(fp32_case.explain_args(0, 0, {"--quant", "nvfp4"}));
  CHECK(explain_fp32.code == 2);
  CHECK_THAT(explain_fp32.err, Catch::Contains("NVFP4 quantisation takes bf16 or fp16 input"));
  CHECK(explain_fp32.out.empty());
}

TEST_CASE("dequant refuses files whose shapes, dtypes or modes do not go together", "[cpu]") {
  QuantCase c(DType::kBf16, 2, 5, 64);
  const std::string q = c.dir.file("q.npy"), s = c.dir.file("s.npy");
  REQUIRE(run_in_process(c.reference_args({"--quant", "nvfp4", "--quant-out", q, "--scale-out", s})).code == 0);
  const auto expect_refusal = [](const std::vector<std::string>& args, const std::string& message) {
    const auto r = run_in_process(args);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
  };
  expect_refusal({"dequant", "--quant-out", q, "--scale-out", s}, "--quant is required");
  expect_refusal({"dequant", "--quant", "nvfp4", "--scale-out", s}, "--quant-out");
  expect_refusal({"dequant", "--quant", "nvfp4", "--quant-out", q}, "nvfp4 needs --scale-out");
  expect_refusal({"dequant", "--quant", "fp8", "--quant-out", q, "--scale-out", s}, "fp8 has no scale output");
  expect_refusal({"dequant", "--quant", "fp8-dynamic", "--quant-out", q, "--scale-out", s, "--quant-scale", "2"},
                 "--quant-scale is for fp8 and nvfp4");
  // The swizzled scales under the linear layout: 512 bytes where [5, 4] (20) are needed.
  expect_refusal({"dequant", "--quant", "nvfp4", "--quant-out", q, "--scale-out", s, "--scale-layout", "linear"},
                 "is [128, 4] (512 bytes); for N = 5, D = 64 (from --quant-out) the linear layout takes uint8 "
                 "[N, D / 16] = [5, 4], 20 bytes");
  // NVFP4 codes read as FP8: fine for fp8 (D = 32), but dynamic FP8's scales must be fp32 [N, 1].
  expect_refusal({"dequant", "--quant", "fp8-dynamic", "--quant-out", q, "--scale-out", s},
                 "dynamic FP8's token scales are fp32 [N, 1] = [5, 1]");
  CHECK(run_in_process({"dequant", "--quant", "fp8", "--quant-out", q}).code == 0);
  // Codes that are not bytes, or not [N, D / 2] with D a multiple of 16.
  expect_refusal({"dequant", "--quant", "nvfp4", "--quant-out", c.dir.file("y.npy"), "--scale-out", s},
                 "has dtype '<u2'; it must hold bytes (|u1, numpy.uint8)");
  write_file_atomically(c.dir.file("q5.npy"), encode_npy_bytes({5, 5}, std::vector<std::uint8_t>(25)));
  expect_refusal({"dequant", "--quant", "nvfp4", "--quant-out", c.dir.file("q5.npy"), "--scale-out", s},
                 "NVFP4 codes are [N, D / 2], so D = 10, which is not a multiple of 16");
  write_file_atomically(c.dir.file("q1.npy"), encode_npy_bytes({160}, std::vector<std::uint8_t>(160)));
  expect_refusal({"dequant", "--quant", "nvfp4", "--quant-out", c.dir.file("q1.npy"), "--scale-out", s},
                 "is [160]; nvfp4 codes are [N, D / 2]");
  // The printout's element must lie in the codes; --output takes every element and no input's name.
  expect_refusal({"dequant", "--quant", "nvfp4", "--quant-out", q, "--scale-out", s, "--token", "5"},
                 "--token 5 is outside [0, 5)");
  expect_refusal({"dequant", "--quant", "nvfp4", "--quant-out", q, "--scale-out", s, "--col", "64"},
                 "--col 64 is outside [0, 64)");
  expect_refusal({"dequant", "--quant", "nvfp4", "--quant-out", q, "--scale-out", s, "-o", s}, "which is an input");
  expect_refusal(
      {"dequant", "--quant", "nvfp4", "--quant-out", q, "--scale-out", s, "-o", c.dir.file("d.npy"), "-t", "1"},
      "--token and --col choose what is printed");
  CHECK_FALSE(std::filesystem::exists(c.dir.file("d.npy")));
  // The flattened block scales are taken too.
  const ByteArray flat = read_npy_bytes(s, "s");
  write_file_atomically(c.dir.file("flat.npy"), encode_npy_bytes({512}, flat.bytes));
  const auto r = run_in_process({"dequant", "--quant", "nvfp4", "--quant-out", q, "--scale-out", c.dir.file("flat.npy"),
                                 "-o", c.dir.file("d.npy")});
  INFO(r.err);
  CHECK(r.code == 0);
}

TEST_CASE("explain --quant follows one element through each quantisation with the model's operations", "[cpu]") {
  QuantCase c(DType::kBf16, 2, 5, 64);
  const FusedOptions options = options_for(Strategy::kOneShot, Profile::kFlashInfer, DType::kBf16);
  const auto explain = [&](std::int64_t token, std::int64_t col, std::vector<std::string> extra) {
    extra.insert(extra.end(), {"-s", "oneshot"});
    const auto r = run_in_process(c.explain_args(token, col, extra));
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("fused element [") && Catch::Contains("the other strategy, TWOSHOT:"));
    return r.out.substr(r.out.find("\nquantised ("));
  };
  // NVFP4, element 37 of row 2 (block 2, element 5, the high nibble of byte 2 x 32 + 18).
  const QuantOptions nvfp4{QuantMode::kNvfp4, fp32_from_double(3.0), ScaleLayout::kSwizzled128x4};
  const QuantizedOutput q = reference_fused_quant(c.input, c.residual, c.gamma, options, nvfp4).quant;
  const std::uint8_t sf = q.scale_out.at(static_cast<std::size_t>(scale_offset(nvfp4.layout, 2, 2, 64)));
  const std::uint8_t code = q.quant_out.at(2 * 32 + 18) >> 4;
  const std::string out = explain(2, 37, {"--quant", "nvfp4", "--quant-scale", "3"});
  for (const std::string& line :
       {std::string("quantised (nvfp4, global scale 0x40400000 (3), swizzled block scales), oneshot/flashinfer"),
        std::string("block 2 of row 2: columns [32, 48) of the bf16 outputs; element 5 of it is x = 0x"),
        std::string("amax in bf16 (|x|, NaNs dropped) = 0x"), std::string("scale input = g 0x40400000 (3) * (f(amax)"),
        fmt::format("block scale SF = e4m3(scale input) = 0x{:02X}", sf),
        std::string("element scale = g / f(SF) (div.approx)"), fmt::format("= 0x{:X} (", code),
        std::string("quant_out[2, 18] (byte 82) = 0x"), std::string("element 37 is its high nibble"),
        fmt::format("scale_out byte {} (swizzled 128 x 4 tiles: tile row 0, tile column 0, row 2 of 32-row group 0, "
                    "scale 2 of 4) = 0x{:02X}",
                    scale_offset(nvfp4.layout, 2, 2, 64), sf),
        std::string("the other strategy, TWOSHOT, quantises this element to 0x")})
    CHECK_THAT(out, Catch::Contains(line));
  CHECK_THAT(explain(2, 37, {"--quant", "nvfp4", "--scale-layout", "linear"}),
             Catch::Contains("scale_out byte 10 (linear: row 2 x 4 blocks + block 2)"));
  // Static FP8: the reciprocal of the scale, the product, the code.
  const std::string fp8 = explain(1, 3, {"--quant", "fp8", "--quant-scale", "0.37"});
  for (const char* line :
       {"value = the normalised output widened to fp32 = 0x", "1 / output_scale = rcp.approx(0x3EBD70A4",
        "value * (1 / output_scale) = 0x", "e4m3 (cvt.rn.satfinite, RN-even) = 0x", "quant_out[1, 3] (byte 67) = 0x"})
    CHECK_THAT(fp8, Catch::Contains(line));
  // Dynamic FP8 under ONESHOT (the T outputs) and TWOSHOT (the fp32 values), with the token's scale.
  const std::string dynamic = explain(4, 0, {"--quant", "fp8-dynamic"});
  for (const char* line : {"ONESHOT quantises the bf16 outputs, widened to fp32", "row 4's absmax (max of |x| from +0",
                           "absmax / 448 (div.approx) = 0x", "scale = max(that, the floor 2^-9 / 448 = 0x36924925",
                           "value / scale (div.approx)", "clamp: max(quotient, -448) = 0x", "scale_out[4] = 0x",
                           "the other strategy, TWOSHOT, quantises this element to 0x"})
    CHECK_THAT(dynamic, Catch::Contains(line));
  const auto twoshot = run_in_process(c.explain_args(4, 0, {"--quant", "fp8-dynamic", "-s", "twoshot", "-p", "ieee"}));
  REQUIRE(twoshot.code == 0);
  CHECK_THAT(twoshot.out, Catch::Contains("TWOSHOT quantises the fp32 values before their narrowing to bf16") &&
                              Catch::Contains("absmax / 448 (div.rn)") &&
                              Catch::Contains("IEEE division (div.rn), no FTZ"));
  const auto invariant = run_in_process(c.explain_args(4, 0, {"--quant", "fp8-dynamic", "-p", "invariant"}));
  REQUIRE(invariant.code == 0);
  CHECK_THAT(invariant.out, Catch::Contains("the invariant profile quantises the fp32 values"));
}

TEST_CASE("explain --quant shows the zero-row floor, a NaN row's -448 and NVFP4's zero block", "[cpu]") {
  // Token 0 all zero (inputs and residual), token 1 a NaN.
  QuantCase c(DType::kFp16, 2, 2, 32);
  for (std::int64_t d = 0; d < 32; ++d) {
    c.input.set_bits(d, 0u);
    c.input.set_bits(2 * 32 + d, 0u);
    c.residual.set_bits(d, 0u);
  }
  c.input.set_bits(32 + 5, 0x7E00u);
  write_npy(c.dir.file("x.npy"), c.input);
  write_npy(c.dir.file("r.npy"), c.residual);
  const auto zero = run_in_process(c.explain_args(0, 3, {"--quant", "fp8-dynamic"}));
  REQUIRE(zero.code == 0);
  CHECK_THAT(zero.out, Catch::Contains("= 0x36924925 (4.35965421e-06) (the floor)"));
  const auto nan = run_in_process(c.explain_args(1, 3, {"--quant", "fp8-dynamic"}));
  REQUIRE(nan.code == 0);
  CHECK_THAT(nan.out, Catch::Contains("(PTX max drops the NaN: -448)") && Catch::Contains("= 0xFE (-448)"));
  const auto block = run_in_process(c.explain_args(0, 20, {"--quant", "nvfp4"}));
  REQUIRE(block.code == 0);
  CHECK_THAT(block.out, Catch::Contains("block scale SF = e4m3(scale input) = 0x00 (0)") &&
                            Catch::Contains("element scale = 0 (SF is 0"));
  const auto nan_block = run_in_process(c.explain_args(1, 3, {"--quant", "nvfp4"}));
  REQUIRE(nan_block.code == 0);
  CHECK_THAT(nan_block.out, Catch::Contains("a NaN gives +6) = 0x7 (6)"));
}
