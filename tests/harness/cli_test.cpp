// The mnnvl-ar contract scripts rely on: exit codes 0 / 1 / 2, messages that name the problem, and no
// output file after an error.
#include <catch2/catch.hpp>

#include <filesystem>

#include "harness/io/golden_cases.h"
#include "harness/io/npy.h"
#include "tests/support/cli_runs.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using test::run_in_process;

namespace {

// W = 16, every column [2^24, 1 x14, -2^24]: ONESHOT gives 7 (0x40E0), TWOSHOT 0 (the 10.7 reference test).
HostTensor chunk_order_input() {
  HostTensor in(DType::kBf16, {16, 1, 8});
  for (int r = 0; r < 16; ++r)
    for (int d = 0; d < 8; ++d) in.set_bits(r * 8 + d, r == 0 ? 0x4B80 : r == 15 ? 0xCB80 : 0x3F80);
  return in;
}

}  // namespace

TEST_CASE("help and unknown commands", "[cpu]") {
  CHECK(run_in_process({"--help"}).code == 0);
  CHECK_THAT(run_in_process({"--help"}).out, Catch::Contains("explain"));
  CHECK(run_in_process({}).code == 2);
  CHECK(run_in_process({"frobnicate"}).code == 2);
  for (const char* c : {"reference", "explain", "diff", "compare", "accuracy", "data"}) {
    const auto r = run_in_process({c, "--help"});
    INFO(c);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("exit codes"));
  }
  CHECK(run_in_process({"reference", "--no-such-flag"}).code == 2);
}

TEST_CASE("reference writes the bit-exact result", "[cpu]") {
  test::ScratchDir dir;
  write_npy(dir.file("x.npy"), chunk_order_input());
  for (const auto& [strategy, expected] : {std::pair{"oneshot", 0x40E0u}, std::pair{"twoshot", 0x0000u}}) {
    const auto r = run_in_process(
        {"reference", "-i", dir.file("x.npy"), "-o", dir.file("y.npy"), "--dtype", "bf16", "--strategy", strategy});
    REQUIRE(r.code == 0);
    const HostTensor y = read_npy(dir.file("y.npy"), DType::kBf16);
    CHECK(y.shape() == std::vector<std::int64_t>{1, 8});
    for (std::int64_t i = 0; i < 8; ++i) CHECK(y.bits(i) == expected);
  }
  // diff: 0 for identical, 1 for different, 2 for mismatched shapes.
  run_in_process({"reference", "-i", dir.file("x.npy"), "-o", dir.file("one.npy"), "-d", "bf16", "-s", "oneshot"});
  run_in_process({"reference", "-i", dir.file("x.npy"), "-o", dir.file("two.npy"), "-d", "bf16", "-s", "twoshot"});
  CHECK(run_in_process({"diff", dir.file("one.npy"), dir.file("one.npy"), "-d", "bf16"}).code == 0);
  const auto d = run_in_process({"diff", dir.file("one.npy"), dir.file("two.npy"), "-d", "bf16"});
  CHECK(d.code == 1);
  CHECK_THAT(d.out, Catch::Contains("8 of 8 elements differ"));
  CHECK(run_in_process({"diff", dir.file("one.npy"), dir.file("x.npy"), "-d", "bf16"}).code == 2);
}

TEST_CASE("bad inputs exit 2 with a message and leave no output file", "[cpu]") {
  test::ScratchDir dir;
  const auto expect_refusal = [&](const HostTensor& in, const std::string& message,
                                  std::vector<std::string> extra = {}) {
    write_npy(dir.file("in.npy"), in);
    std::vector<std::string> args{"reference", "-i", dir.file("in.npy"), "-o", dir.file("out.npy")};
    if (in.dtype() == DType::kBf16) args.insert(args.end(), {"--dtype", "bf16"});
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_in_process(args);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK_FALSE(std::filesystem::exists(dir.file("out.npy")));
  };
  expect_refusal(HostTensor(DType::kBf16, {3, 2, 8}), "world size 3 is not supported");
  expect_refusal(HostTensor(DType::kBf16, {128, 1, 8}), "world size 128");
  expect_refusal(HostTensor(DType::kBf16, {2, 2, 12}), "not a multiple of 8");
  expect_refusal(HostTensor(DType::kFp32, {2, 2, 6}), "not a multiple of 4");
  expect_refusal(HostTensor(DType::kBf16, {2, 0, 8}), "N must be at least 1");
  expect_refusal(HostTensor(DType::kBf16, {2, 8}), "an all-reduce input is 3-D");
  expect_refusal(HostTensor(DType::kBf16, {2, 1, 8}), "unknown strategy 'fastest'", {"--strategy", "fastest"});
  expect_refusal(HostTensor(DType::kBf16, {2, 1, 8}), "unknown profile", {"--profile", "nccl"});
  expect_refusal(HostTensor(DType::kFp32, {2, 1, 8}), "holds fp32 but --dtype bf16", {"--dtype", "bf16"});
  // An unwritable output: the folder does not exist.
  write_npy(dir.file("ok.npy"), HostTensor(DType::kFp32, {2, 1, 8}));
  const auto r = run_in_process({"reference", "-i", dir.file("ok.npy"), "-o", dir.file("missing/out.npy")});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("cannot write"));
  CHECK(run_in_process({"reference", "-i", dir.file("nope.npy"), "-o", dir.file("out.npy")}).code == 2);
}

TEST_CASE("explain prints the tree and names the chunk step at W = 16", "[cpu]") {
  test::ScratchDir dir;
  write_npy(dir.file("x.npy"), chunk_order_input());
  const auto r =
      run_in_process({"explain", "-i", dir.file("x.npy"), "-d", "bf16", "-t", "0", "-c", "3", "-s", "oneshot"});
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("-- chunk 1: ranks 8..15, starts from +0 --"));
  CHECK_THAT(r.out, Catch::Contains("why oneshot/flashinfer and twoshot/flashinfer differ"));
  CHECK_THAT(r.out, Catch::Contains("first part after rank 8"));
  CHECK(run_in_process({"explain", "-i", dir.file("x.npy"), "-d", "bf16", "-t", "1", "-c", "0"}).code == 2);
  CHECK(run_in_process({"explain", "-i", dir.file("x.npy"), "-d", "bf16", "-t", "0", "-c", "8"}).code == 2);
}

TEST_CASE("compare runs on the built-in case and shows ONESHOT vs TWOSHOT differ at W = 16", "[cpu]") {
  const auto r = run_in_process({"compare"});
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("oneshot/flashinfer and twoshot/flashinfer first differ"));
  // At W = 16 the invariant profile's row is the exact sum.
  CHECK_THAT(r.out, Catch::Contains("oneshot/invariant") && Catch::Contains("no order: the exact sum"));
  // fp16 at W = 8: one order for every strategy and profile (the invariant profile's is FlashInfer's with IEEE
  // adds, and fp16 sums never flush), so every row agrees.
  const auto fp16 = run_in_process({"compare", "-d", "fp16", "-w", "8"});
  CHECK_THAT(fp16.out, !Catch::Contains("first differ"));
  CHECK_THAT(fp16.out, Catch::Contains("all strategies and profiles agree bit for bit"));
  CHECK(run_in_process({"compare", "-w", "12"}).code == 2);
}

TEST_CASE("the GPU commands teach the launchers, --spawn and their exit codes", "[cpu]") {
  for (const char* c : {"run", "bench", "probe"}) {
    const auto r = run_in_process({c, "--help"});
    INFO(c);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("torchrun") && Catch::Contains("SLURM_PROCID") &&
                          Catch::Contains("OMPI_COMM_WORLD_RANK") && Catch::Contains("--spawn K") &&
                          Catch::Contains("MNNVL_AR_TOKEN") && Catch::Contains("exit codes"));
  }
  CHECK_THAT(run_in_process({"--help"}).out, Catch::Contains("probe"));
}
