// Inputs an audit of the commands found accepted or mishandled, each now refused with exit 2 and a message
// naming the problem, and with no output written: one file under two names, an empty option value, a
// built-in case's options beside a file, a golden folder that is not there, a quantised output of no tokens,
// a companion file whose shape is wrong (refused from its header), a report that could not be printed, an
// output folder that takes no file, a .npy header string with a control character, and the GPU commands' own
// option mistakes, which a machine without a GPU reported as "no GPU".
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "harness/io/npy.h"
#include "harness/io/output_file.h"
#include "tests/support/cli_runs.h"
#include "tests/support/npy_by_hand.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using test::run_in_process;

namespace {

/// Runs args in this process: exit 2 and a message containing `message`.
void expect_refused(const std::vector<std::string>& args, const std::string& message) {
  const test::CliResult r = run_in_process(args);
  INFO(args[0] << ": " << r.err);
  CHECK(r.code == kExitUsage);
  CHECK_THAT(r.err, Catch::Contains("error:") && Catch::Contains(message));
}

/// expect_refused, for a GPU command: refused for the option, before any GPU is looked for.
void expect_refused_before_gpu(const std::vector<std::string>& args, const std::string& message) {
  const test::CliResult r = run_in_process(args);
  INFO(args[0] << " " << args[1] << ": " << r.err);
  CHECK(r.code == kExitUsage);
  CHECK_THAT(r.err, Catch::Contains(message) && !Catch::Contains("no GPU"));
}

/// A [2, 3, 64] fp32 input, a [3, 64] residual and a [64] gamma in `dir`.
void write_fused_inputs(const test::ScratchDir& dir) {
  write_npy(dir.file("x.npy"), HostTensor(DType::kFp32, {2, 3, 64}));
  write_npy(dir.file("r.npy"), HostTensor(DType::kFp32, {3, 64}));
  write_npy(dir.file("g.npy"), HostTensor(DType::kFp32, {64}));
}

}  // namespace

TEST_CASE("two names of one file are one output: refused, not written twice", "[cpu]") {
  const test::ScratchDir dir;
  write_fused_inputs(dir);
  std::filesystem::create_directory(dir.file("sub"));
  std::filesystem::create_directory_symlink(dir.path(), dir.file("link"));
  CHECK(same_file(dir.file("y.npy"), dir.file("sub/../y.npy")));
  CHECK(same_file(dir.file("y.npy"), dir.file("link/y.npy")));
  CHECK_FALSE(same_file(dir.file("y.npy"), dir.file("z.npy")));
  std::filesystem::create_hard_link(dir.file("x.npy"), dir.file("x_again.npy"));
  CHECK(same_file(dir.file("x.npy"), dir.file("x_again.npy")));

  for (const std::string& other : {dir.file("sub/../y.npy"), dir.file("link/y.npy")}) {
    expect_refused({"reference", "-i", dir.file("x.npy"), "-o", dir.file("y.npy"), "--residual", dir.file("r.npy"),
                    "--gamma", dir.file("g.npy"), "--residual-out", other},
                   "--output and --residual-out both name");
    CHECK_FALSE(std::filesystem::exists(dir.file("y.npy")));
  }
  // dequant's output may not be its input under another name (it would be overwritten).
  write_file_atomically(dir.file("q.npy"), encode_npy_bytes({2, 32}, std::vector<std::uint8_t>(64, 0x38)));
  expect_refused({"dequant", "--quant", "fp8", "--quant-out", dir.file("q.npy"), "-o", dir.file("link/q.npy")},
                 "which is an input");
  CHECK(read_npy_bytes(dir.file("q.npy"), "q").bytes == std::vector<std::uint8_t>(64, 0x38));
  // sim's trace and JSON report.
  expect_refused({"sim", "-w", "2", "--runs", "1", "--trace", dir.file("t.json"), "--json-out", dir.file("sub/../t.json")},
                 "name the same file");
  CHECK_FALSE(std::filesystem::exists(dir.file("t.json")));
}

TEST_CASE("an option given an empty value is refused, not read as left out", "[cpu]") {
  const test::ScratchDir dir;
  write_fused_inputs(dir);
  expect_refused({"invariance", "--json", ""}, "--json is empty");
  expect_refused({"sim", "--trace", ""}, "--trace is empty");
  expect_refused({"compare", "-d", ""}, "--dtype is empty");
  expect_refused({"reference", "-i", dir.file("x.npy"), "-o", dir.file("y.npy"), "-d", ""}, "--dtype is empty");
  for (const char* command : {"run", "bench", "probe"}) expect_refused_before_gpu({command, "--json", ""}, "--json is empty");
  CHECK_FALSE(std::filesystem::exists(dir.file("y.npy")));
}

TEST_CASE("compare refuses the built-in case's options beside --input", "[cpu]") {
  const test::ScratchDir dir;
  write_fused_inputs(dir);
  for (const std::vector<std::string>& option : {std::vector<std::string>{"-w", "8"}, {"-n", "8"}, {"--hidden", "128"},
                                                 {"--seed", "3"}}) {
    std::vector<std::string> args{"compare", "-i", dir.file("x.npy")};
    args.insert(args.end(), option.begin(), option.end());
    expect_refused(args, "shapes the built-in case");
  }
  CHECK(run_in_process({"compare", "-i", dir.file("x.npy")}).code == 0);
}

TEST_CASE("data --check of a folder that is not there is a usage error, not 'every file differs'", "[cpu]") {
  const test::ScratchDir dir;
  expect_refused({"data", "--check", "--out", dir.file("missing")}, "is not a folder");
  write_npy(dir.file("file.npy"), HostTensor(DType::kFp32, {4}));
  expect_refused({"data", "--check", "--out", dir.file("file.npy")}, "is not a folder");
}

TEST_CASE("a quantised output of no tokens or no codes is refused", "[cpu]") {
  const test::ScratchDir dir;
  for (const std::vector<std::int64_t>& shape : {std::vector<std::int64_t>{0, 32}, {3, 0}}) {
    write_file_atomically(dir.file("q0.npy"), encode_npy_bytes(shape, {}));
    expect_refused({"dequant", "--quant", "fp8", "--quant-out", dir.file("q0.npy"), "-o", dir.file("d.npy")},
                   "at least one token of at least one code");
    CHECK_FALSE(std::filesystem::exists(dir.file("d.npy")));
  }
}

TEST_CASE("a residual of the wrong shape is refused from its header, before its data is read", "[cpu]") {
  const test::ScratchDir dir;
  write_fused_inputs(dir);
  // A file of a header alone, stating [3, 65536, 4096] fp32: were its data read first, it would be refused as
  // truncated, so the message shows the shape was checked from the header.
  write_file_atomically(dir.file("big_r.npy"),
                        test::npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 65536, 4096), }", 0));
  expect_refused({"reference", "-i", dir.file("x.npy"), "-o", dir.file("y.npy"), "--residual", dir.file("big_r.npy"),
                  "--gamma", dir.file("g.npy"), "--residual-out", dir.file("ro.npy")},
                 "is [3, 65536, 4096]; it must be [N, D] = [3, 64]");
  CHECK_FALSE(std::filesystem::exists(dir.file("y.npy")));
}

TEST_CASE("a report that cannot be written to standard output fails the command", "[cpu]") {
  // /dev/full refuses every write: the help text is lost, so the exit code may not be 0.
  if (!std::filesystem::is_character_file("/dev/full")) {
    WARN("no /dev/full here: nothing to test");
    return;
  }
  const std::string command = test::cli_path() + " --help > /dev/full 2>/dev/null";
  const int status = std::system(command.c_str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == kExitUsage);
  CHECK(WEXITSTATUS(std::system((test::cli_path() + " --help > /dev/null").c_str())) == 0);
}

TEST_CASE("an output folder that takes no new file is refused before the work", "[cpu]") {
  // /proc passes root's access test but makes no file; the report would otherwise be lost after the work.
  // For another user the access test refuses it already (another message), so only root's case is tested.
  if (!std::filesystem::is_directory("/proc/self") || ::access("/proc", W_OK) != 0) {
    WARN("no /proc writable by this user: nothing to test");
    return;
  }
  for (const std::vector<std::string>& args : {std::vector<std::string>{"invariance", "--json", "/proc/i.json"},
                                               {"bench", "-J", "/proc/b.json"}}) {
    const auto start = std::chrono::steady_clock::now();
    const test::CliResult r = run_in_process(args);
    INFO(args[0] << ": " << r.err);
    CHECK(r.code == kExitUsage);
    CHECK_THAT(r.err, Catch::Contains("cannot create a file in the folder '/proc'"));
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 5.0);
  }
}

TEST_CASE("a .npy header string with a control character is malformed, its message whole", "[cpu]") {
  const test::ScratchDir dir;
  const std::string dict = std::string("{'descr': '<f4") + '\0' + "x', 'fortran_order': False, 'shape': (2, 1, 4), }";
  write_file_atomically(dir.file("nul.npy"), test::npy_with_header(dict, 32));
  expect_refused({"reference", "-i", dir.file("nul.npy"), "-o", dir.file("y.npy")},
                 "has a malformed .npy header: 'descr' is not a quoted string");
}

TEST_CASE("the GPU commands refuse their own bad options before they look for a GPU", "[cpu]") {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"run", "--omit-rank", "99"}, "--omit-rank 99 is not a rank of any --world"},
      {{"run", "--omit-rank", "-5"}, "--omit-rank -5 is not a rank"},
      {{"run", "--inputs", "golden", "--data", "/nonexistent-golden-set"}, "is not a folder"},
      {{"run", "--device", "-2"}, "--device -2 is not a GPU number"},
      {{"run", "--devices", "0,0"}, "GPU 0 is named twice"},
      {{"bench", "--devices", "a"}, "'a' is not a GPU number"},
      {{"bench", "--pdl", "2"}, "--pdl 2: give 1"},
      {{"bench", "-c", "-1"}, "--check -1: give 1"},
      {{"bench", "--label", "a=1", "--label", "a=2"}, "--label a is given twice"},
      {{"probe", "--device", "-3"}, "--device -3 is not a GPU number"},
  };
  for (const auto& [args, message] : cases) expect_refused_before_gpu(args, message);
}

TEST_CASE("a list option naming an item twice, -N 0, and --batches' options without it are refused", "[cpu]") {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"run", "--world", "2,8,2"}, "--world names '2' twice"},
      {{"bench", "-W", "2,2"}, "-W names '2' twice"},
      {{"bench", "-d", "bf16,fp32,bf16"}, "-d names 'bf16' twice"},
      {{"bench", "-s", "oneshot,oneshot"}, "-s names 'oneshot' twice"},
      {{"run", "-N", "0"}, "-N 0 must be at least 1"},
      {{"run", "--batch-strategies", "oneshot"}, "--batch-strategies belongs to --batches"},
      {{"run", "--batch-bytes", "0"}, "--batch-bytes belongs to --batches"},
  };
  for (const auto& [args, message] : cases) expect_refused_before_gpu(args, message);
}
