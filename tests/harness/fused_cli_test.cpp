// The fused residual-add + RMSNorm on the command line: `reference` writes what the model computes, both
// files or neither; every bad combination is refused before any work; `explain` shows the element's path
// and where the strategies part.
#include <catch2/catch.hpp>

#include <bit>
#include <filesystem>
#include <functional>

#include "harness/io/npy.h"
#include "reference/float_ops.h"
#include "reference/fused_rms_norm.h"
#include "tests/support/cli_runs.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using test::run_in_process;

namespace {

std::uint32_t fp32(float v) { return std::bit_cast<std::uint32_t>(v); }

// Values of T from a deterministic function of the element index: the high half of the fp32 for bf16.
HostTensor tensor_of(DType t, std::vector<std::int64_t> shape, const std::function<float(std::int64_t)>& value) {
  HostTensor x(t, std::move(shape));
  for (std::int64_t i = 0; i < x.size(); ++i) x.set_bits(i, t == DType::kBf16 ? fp32(value(i)) >> 16 : fp32(value(i)));
  return x;
}

float wave(std::int64_t i) { return static_cast<float>((i * 37 % 101) - 50) / 32.0f; }

// Input, residual and gamma files of one fused case, and the arguments that name them.
struct FusedCase {
  test::ScratchDir dir;
  HostTensor input, residual, gamma;

  FusedCase(DType t, int world, std::int64_t tokens, std::int64_t hidden)
      : input(tensor_of(t, {world, tokens, hidden}, wave)),
        residual(tensor_of(t, {tokens, hidden}, [](std::int64_t i) { return wave(i + 7) / 4; })),
        gamma(tensor_of(t, {hidden}, [](std::int64_t i) { return 1.0f + static_cast<float>(i % 9) / 16; })) {
    write();
  }
  void write() {
    write_npy(dir.file("x.npy"), input);
    write_npy(dir.file("r.npy"), residual);
    write_npy(dir.file("g.npy"), gamma);
  }
  std::vector<std::string> reference_args(std::vector<std::string> extra = {}) const {
    std::vector<std::string> a{"reference",       "-i",
                               dir.file("x.npy"), "-o",
                               dir.file("y.npy"), "--residual",
                               dir.file("r.npy"), "--gamma",
                               dir.file("g.npy"), "--residual-out",
                               dir.file("ro.npy")};
    if (input.dtype() == DType::kBf16) a.insert(a.end(), {"--dtype", "bf16"});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  bool wrote_any() const {
    return std::filesystem::exists(dir.file("y.npy")) || std::filesystem::exists(dir.file("ro.npy"));
  }
};

}  // namespace

TEST_CASE("the fused reference writes both outputs, bit for bit the model's", "[cpu]") {
  struct Run {
    DType dtype;
    std::vector<std::string> extra;
    FusedOptions options;
  };
  FusedOptions defaults;
  defaults.epsilon = default_epsilon(DType::kBf16);
  FusedOptions tuned;
  tuned.strategy = Strategy::kTwoShot;
  tuned.epsilon = fp32_from_double(1e-6);
  tuned.weight_bias = fp32(1.0f);
  tuned.sm_count = 8;
  FusedOptions fp32_ieee;
  fp32_ieee.strategy = Strategy::kOneShot;
  fp32_ieee.profile = Profile::kIeee;
  fp32_ieee.epsilon = default_epsilon(DType::kFp32);
  for (const Run& r : {Run{DType::kBf16, {}, defaults},
                       Run{DType::kBf16, {"-s", "twoshot", "--eps", "1e-6", "--weight-bias", "1", "--sms", "8"}, tuned},
                       Run{DType::kFp32, {"-s", "oneshot", "-p", "ieee"}, fp32_ieee}}) {
    FusedCase c(r.dtype, 4, 3, 1024);
    const auto cli = run_in_process(c.reference_args(r.extra));
    INFO(cli.err);
    REQUIRE(cli.code == 0);
    CHECK(cli.err.empty());
    const FusedResult expected = reference_fused_rms_norm(c.input, c.residual, c.gamma, r.options);
    CHECK(read_npy(c.dir.file("y.npy"), r.dtype) == expected.normalized);
    CHECK(read_npy(c.dir.file("ro.npy"), r.dtype) == expected.residual_out);
    CHECK_THAT(cli.out, Catch::Contains("(normalised) and") && Catch::Contains("fused"));
  }
}

TEST_CASE("every fused refusal exits 2 with its message and writes neither file", "[cpu]") {
  FusedCase c(DType::kFp32, 2, 2, 64);
  const auto expect_refusal = [&](const std::vector<std::string>& args, const std::string& message) {
    const auto r = run_in_process(args);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK_FALSE(c.wrote_any());
  };
  const std::string x = c.dir.file("x.npy"), y = c.dir.file("y.npy"), ro = c.dir.file("ro.npy");
  const std::string res = c.dir.file("r.npy"), g = c.dir.file("g.npy");
  expect_refusal({"reference", "-i", x, "-o", y, "--residual", res, "--residual-out", ro}, "--residual needs --gamma");
  expect_refusal({"reference", "-i", x, "-o", y, "--gamma", g}, "--gamma needs --residual");
  expect_refusal({"reference", "-i", x, "-o", y, "--residual", res, "--gamma", g}, "--residual-out is required");
  expect_refusal({"reference", "-i", x, "-o", y, "--eps", "1e-6"}, "--eps belongs to the fused call");
  expect_refusal({"reference", "-i", x, "-o", y, "--residual-out", ro}, "--residual-out belongs to the fused call");
  expect_refusal(c.reference_args({"-p", "trtllm"}), "flashinfer, ieee and invariant profiles, not trtllm");
  expect_refusal(c.reference_args({"--eps", "nan"}), "--eps 'nan' is not a finite number");
  expect_refusal(c.reference_args({"--eps", "inf"}), "--eps 'inf' is not a finite number");
  expect_refusal(c.reference_args({"--eps", "1e300"}), "not a finite number as the fp32");
  expect_refusal(c.reference_args({"--weight-bias", "-inf"}), "--weight-bias '-inf' is not a finite number");
  expect_refusal(c.reference_args({"--weight-bias", "1e39"}), "not a finite number as the fp32");
  expect_refusal(c.reference_args({"--sms", "0"}), "--sms 0 is outside [1, 1024]");
  expect_refusal(c.reference_args({"--sms", "1025"}), "--sms 1025 is outside [1, 1024]");
  expect_refusal(c.reference_args({"--sms", "2x"}), "--sms '2x' is not a whole number");
  expect_refusal({"reference", "-i", x, "-o", y, "--residual", res, "--gamma", g, "--residual-out", y}, "both name");

  // Shapes and dtypes that do not go with the input ([2, 2, 64] fp32).
  write_npy(res, HostTensor(DType::kFp32, {2, 72}));
  expect_refusal(c.reference_args(), "--residual '" + res + "' is [2, 72]; it must be [N, D] = [2, 64]");
  write_npy(res, HostTensor(DType::kFp16, {2, 64}));
  expect_refusal(c.reference_args(), "holds fp16 but --dtype fp32");
  c.write();
  write_npy(g, HostTensor(DType::kFp32, {1, 64}));
  expect_refusal(c.reference_args(), "it must be [D] = [64]");
  c.write();

  // A row no launch takes: fp32 rows wider than 32768 elements (docs/fused.md).
  FusedCase wide(DType::kFp32, 2, 1, 32772);
  const auto r = run_in_process(wide.reference_args({"-s", "twoshot"}));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("([2, 1, 32772] fp32, 132 SMs): the fused call cannot run"));
  CHECK_FALSE(wide.wrote_any());

  // A bad input file stops the fused call too, before either output exists.
  expect_refusal(
      {"reference", "-i", c.dir.file("nope.npy"), "-o", y, "--residual", res, "--gamma", g, "--residual-out", ro},
      "nope.npy");
}

TEST_CASE("an ONESHOT shape the GPU leaves undefined is written with a warning", "[cpu]") {
  FusedCase c(DType::kBf16, 2, 1, 8200);  // (513, 2, 1): one thread beyond the row (docs/fused.md)
  const auto r = run_in_process(c.reference_args({"-s", "oneshot"}));
  CHECK(r.code == 0);
  CHECK_THAT(r.err, Catch::Contains("warning: the GPU's normalised output is undefined for this shape") &&
                        Catch::Contains("2 block(s) of 513 threads for 1025 packs") &&
                        Catch::Contains("1 thread(s) beyond the row"));
  CHECK(std::filesystem::exists(c.dir.file("y.npy")));
  CHECK(std::filesystem::exists(c.dir.file("ro.npy")));
  const auto two = run_in_process(c.reference_args({"-s", "twoshot"}));
  CHECK(two.code == 0);
  CHECK(two.err.empty());
  const auto explained = run_in_process({"explain", "-i", c.dir.file("x.npy"), "-d", "bf16", "-t", "0", "-c", "0", "-s",
                                         "oneshot", "--residual", c.dir.file("r.npy"), "--gamma", c.dir.file("g.npy")});
  CHECK(explained.code == 0);
  CHECK_THAT(explained.out, Catch::Contains("warning: the GPU's normalised output is undefined for this shape"));
}

TEST_CASE("explain shows the fused element's path and the thread that owns it", "[cpu]") {
  FusedCase c(DType::kBf16, 2, 1, 7168);  // ONESHOT at N = 1: 8 blocks of 112 threads
  const auto r = run_in_process({"explain", "-i", c.dir.file("x.npy"), "-d", "bf16", "-t", "0", "-c", "1000", "-s",
                                 "oneshot", "--residual", c.dir.file("r.npy"), "--gamma", c.dir.file("g.npy")});
  INFO(r.err);
  REQUIRE(r.code == 0);
  for (const char* section :
       {"launch (ONESHOT): a cluster launch, 8 block(s) of 112 threads (bs), 1 load(s) per thread",
        // pack 125 = blockIdx.y * bs + threadIdx.x = 1 * 112 + 13
        "[0, 1000] is element 0 of pack 125: block 1 (blockIdx.y), thread 13 = warp 0 lane 13, load 0",
        "pre = all-reduce 0x", "sum of squares of row 0", "thread 13 of block 1: 0x", "warp 0 butterfly (32 lanes)",
        "xor 16: 0x", "block 1 second level over 4 warp sums", "cluster fold over the DSMEM slots", "+ block 7 0x",
        "float(D) = 0x45E00000 (7168)", "rcp(D) = 0x", "rsqrt input = fma(sum, rcp(D), eps 0x3C000000",
        "rsqrt output (the row's scale) = 0x", "wb + gamma = 0x00000000 (0) + 0x",
        "ONESHOT (f(pre) * scale) * (wb + gamma)", "narrowed to bf16: 0x",
        "the other strategy, TWOSHOT:", "launch (TWOSHOT)", "TWOSHOT ((wb + gamma) * f(pre)) * scale", "ONESHOT-fused"})
    CHECK_THAT(r.out, Catch::Contains(section));
  const auto bad = run_in_process(
      {"explain", "-i", c.dir.file("x.npy"), "-d", "bf16", "-t", "0", "-c", "0", "--residual", c.dir.file("r.npy")});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Contains("--residual needs --gamma"));
  const auto trtllm = run_in_process({"explain", "-i", c.dir.file("x.npy"), "-d", "bf16", "-t", "0", "-c", "0", "-p",
                                      "trtllm", "--residual", c.dir.file("r.npy"), "--gamma", c.dir.file("g.npy")});
  CHECK(trtllm.code == 2);
}

TEST_CASE("explain names where ONESHOT-fused and TWOSHOT-fused part", "[cpu]") {
  const auto explain = [](FusedCase& c, std::vector<std::string> extra) {
    c.write();
    std::vector<std::string> a{"explain",           "-i",      c.dir.file("x.npy"), "-t", "0", "-c", "0", "--residual",
                               c.dir.file("r.npy"), "--gamma", c.dir.file("g.npy")};
    a.insert(a.end(), extra.begin(), extra.end());
    const auto r = run_in_process(a);
    INFO(r.err);
    CHECK(r.code == 0);
    return r.out;
  };
  // The docs' underflow: pre = 0.5, scale = rsqrt(8 * 0.25 / 8 + 0) = 2, gamma = 2^-126. ONESHOT keeps
  // (0.5 * 2) * 2^-126; TWOSHOT flushes 2^-126 * 0.5 first.
  FusedCase order(DType::kFp32, 2, 1, 8);
  order.input = tensor_of(DType::kFp32, {2, 1, 8}, [](std::int64_t) { return 0.25f; });
  order.residual = tensor_of(DType::kFp32, {1, 8}, [](std::int64_t) { return 0.0f; });
  order.gamma = tensor_of(DType::kFp32, {8}, [](std::int64_t) { return 0x1p-126f; });
  CHECK_THAT(explain(order, {"--eps", "0"}), Catch::Contains("the multiplication order: the same scale"));
  // The same row with gamma = 1: both orders are exact.
  order.gamma = tensor_of(DType::kFp32, {8}, [](std::int64_t) { return 1.0f; });
  CHECK_THAT(explain(order, {"--eps", "0"}),
             Catch::Contains("ONESHOT-fused and TWOSHOT-fused give the same bits for this element: 0x3F800000 (1)"));
  // -1.5 * 2^-126 + 2^-126 flushes to -0 in ONESHOT's fold; TWOSHOT sanitises it to +0; a -0 residual keeps
  // the sign of each.
  FusedCase zero(DType::kFp32, 2, 1, 8);
  zero.input = tensor_of(DType::kFp32, {2, 1, 8}, [](std::int64_t i) { return i < 8 ? -0x1.8p-126f : 0x1p-126f; });
  zero.residual = tensor_of(DType::kFp32, {1, 8}, [](std::int64_t) { return -0.0f; });
  CHECK_THAT(explain(zero, {}), Catch::Contains("the -0 case"));
}

TEST_CASE("run and bench refuse a fused call no GPU could run before any job starts", "[cpu]") {
  test::ScratchDir dir;
  const std::string json = dir.file("out.json");
  const auto expect_refusal = [&](const std::vector<std::string>& args, const std::string& message) {
    const auto r = run_in_process(args);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK_FALSE(std::filesystem::exists(json));
  };
  // FlashInfer's fused kernels take no row wider than 65536 16-bit elements.
  expect_refusal({"run", "--world", "2", "--dtype", "bf16", "--calls", "twoshot:N=1:D=65544:fused", "--json", json},
                 "call 1 (twoshot N=1 D=65544 bf16 fused): FlashInfer's fused kernel refuses it");
  expect_refusal({"run", "--world", "2", "--dtype", "bf16", "--calls", "twoshot:N=1:D=262152:fused", "-p", "invariant",
                  "--json", json},
                 "is beyond");
  expect_refusal({"run", "--world", "2", "--calls", "oneshot:N=2:D=64:fused", "--expect", "trtllm", "--json", json},
                 "the fused norm is modelled for flashinfer, ieee and invariant, not trtllm");
  expect_refusal({"run", "--world", "2", "--calls", "oneshot:N=2:D=64:fused", "--sms", "0", "--json", json},
                 "--sms 0 is outside [1, 1024]");
  expect_refusal({"run", "--world", "2", "--calls", "oneshot:N=2:D=64:fused", "--eps", "nan", "--json", json},
                 "--eps 'nan' is not a finite number");
  expect_refusal({"run", "--world", "2", "--calls", "oneshot:N=2:D=64:fused:fused", "--json", json}, "fused");
  expect_refusal({"bench", "--fused", "-W", "2", "-d", "bf16", "-D", "65544", "-b", "131088", "-e", "131088", "-J", json},
                 "the flashinfer fused launch refuses it");
}
