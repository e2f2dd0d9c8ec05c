// Sizes from the command line and from files are checked before anything is multiplied or allocated: the
// issue's reproductions (shapes whose N x D or W x N x D x E wrapped) end with exit 2 and a message naming the
// problem, never a crash, an exit 0, "identical" or a protocol failure. Tags: [wrapping] the cases and
// their kin, [boundary] the limits seen from the command line.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/cli_runs.h"
#include "tests/support/npy_by_hand.h"
#include "tests/support/scratch_dir.h"

using namespace ar;
using test::run_in_process;

namespace {

/// A .npy file written by hand: format 1.0, `header_dict` padded to 64 bytes, then `data_bytes` bytes. The
/// header may claim any shape; the data need not match it.
void write_npy_by_hand(const std::string& path, const std::string& header_dict, std::size_t data_bytes) {
  std::ofstream(path, std::ios::binary) << test::npy_with_header(header_dict, data_bytes);
}

std::string npy_header(const std::string& descr, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
}

/// Exit 2, `message` in the error, and nothing that reads as a result.
void expect_refused(const std::vector<std::string>& args, const std::string& message) {
  const test::CliResult r = run_in_process(args);
  std::string line;
  for (const std::string& a : args) line += a + " ";
  INFO(line << "\nstdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("error:") && Catch::Contains(message));
  CHECK_THAT(r.out, !Catch::Contains("identical") && !Catch::Contains("FAILED") && !Catch::Contains("wrote"));
  CHECK_THAT(r.err, !Catch::Contains("no GPU"));  // refused for its size, before any GPU is looked for
}

}  // namespace

TEST_CASE("a shape (2, 2**59+1, 8) with 32 data bytes is refused by reference, explain, diff and accuracy",
          "[cpu][wrapping]") {
  test::ScratchDir dir;
  // Unchecked, 2 x (2**59 + 1) x 8 x 2 bytes wrapped to 32: `reference` aborted on an uncaught exception,
  // `explain` segfaulted and `diff` called the file equal to itself.
  for (const auto& [descr, dtype] : {std::pair{"<f2", ""}, std::pair{"<u2", "bf16"}, std::pair{"<f4", ""}}) {
    const std::string in = dir.file("wrap.npy"), out = dir.file("out.npy");
    write_npy_by_hand(in, npy_header(descr, "2, 576460752303423489, 8"), 32);
    std::vector<std::string> as;
    if (*dtype) as = {"--dtype", dtype};
    const auto with = [&](std::vector<std::string> args) {
      args.insert(args.end(), as.begin(), as.end());
      return args;
    };
    const std::string message = "has shape (2, 576460752303423489, 8)";
    expect_refused(with({"reference", "-i", in, "-o", out}), message);
    CHECK_FALSE(std::filesystem::exists(out));
    expect_refused(with({"explain", "-i", in, "-t", "0", "-c", "0"}), message);
    expect_refused(with({"diff", in, in}), message);
    expect_refused(with({"diff", in, in, "--json"}), message);
    expect_refused(with({"accuracy", "-i", in}), message);
    expect_refused(with({"compare", "-i", in}), message);
    CHECK_THAT(run_in_process(with({"reference", "-i", in, "-o", out})).err, Catch::Contains("overflows 64 bits"));
  }
}

TEST_CASE("a shape (2, 2**62, 8) with no data makes reference exit 2 and write nothing", "[cpu][wrapping]") {
  test::ScratchDir dir;
  // Unchecked, the size wrapped to 0 bytes, which matched the empty data: exit 0 and a bogus output file.
  for (const char* descr : {"<f2", "<f4"}) {
    write_npy_by_hand(dir.file("empty.npy"), npy_header(descr, "2, 4611686018427387904, 8"), 0);
    expect_refused({"reference", "-i", dir.file("empty.npy"), "-o", dir.file("out.npy")},
                   "has shape (2, 4611686018427387904, 8)");
    CHECK_FALSE(std::filesystem::exists(dir.file("out.npy")));
  }
  // Any shape whose product is 0 mod 2**64: the product of the others may not hide behind a zero either.
  write_npy_by_hand(dir.file("zero.npy"), npy_header("<f2", "0, 4611686018427387904, 8"), 0);
  expect_refused({"reference", "-i", dir.file("zero.npy"), "-o", dir.file("out.npy")}, "overflows 64 bits");
}

TEST_CASE("compare -n 4294967296 --hidden 4294967296 exits 2, naming the product", "[cpu][wrapping]") {
  // Unchecked, N x D = 2**64 wrapped to 0, passed the 2^28-element limit, and the input generator segfaulted.
  expect_refused({"compare", "-n", "4294967296", "--hidden", "4294967296"},
                 "W x N x D x E = 16 x 4294967296 x 4294967296 x 2 bytes overflows 64 bits");
  expect_refused({"compare", "-w", "2", "-n", "9223372036854775807", "--hidden", "8"}, "overflows 64 bits");
  expect_refused({"compare", "-w", "64", "-n", "1", "--hidden", "9223372036854775800", "-d", "fp32"},
                 "overflows 64 bits");
}

TEST_CASE("sim --calls oneshot:N=274177:D=538243370485768 exits 2, not a protocol failure", "[cpu][wrapping]") {
  // Unchecked, N x D x W x E wrapped to 64 bytes: BPB = 64 and the simulation "failed" out of bounds.
  expect_refused({"sim", "--calls", "oneshot:N=274177:D=538243370485768"},
                 "call 1 (oneshot N=274177 D=538243370485768 bf16): the input's size W x N x D x E = 4 x 274177 x "
                 "538243370485768 x 2 bytes overflows 64 bits");
  expect_refused({"sim", "--tokens", "9223372036854775807"}, "overflows 64 bits");
  expect_refused({"sim", "--hidden", "9223372036854775800"}, "overflows 64 bits");
  expect_refused({"sim", "--world-size", "64", "--calls", "twoshot:N=274177:D=538243370485768:dtype=fp32"},
                 "64 x 274177 x 538243370485768 x 4 bytes overflows 64 bits");
  // 3 buffers x 4 ranks x BPB wrapped to 4096 bytes, "small enough to simulate".
  expect_refused({"sim", "--buffer-bytes", "3074457345618258944"}, "above the 32-bit limit");
}

TEST_CASE("run and bench refuse sizes that wrap before the job starts or the GPU is looked for", "[cpu][wrapping]") {
  expect_refused({"run", "--calls", "oneshot:N=274177:D=538243370485768"},
                 "--calls at W = 2: call 1 (oneshot N=274177 D=538243370485768 bf16)");
  expect_refused({"run", "--calls", "oneshot,twoshot", "-N", "9223372036854775807"}, "overflows 64 bits");
  expect_refused({"run", "--world", "8", "-D", "9223372036854775800"}, "overflows 64 bits");
  expect_refused({"run", "--calls", "oneshot:N=4x"}, "N must be an integer >= 1, got '4x'");
  // 2^62 bytes per rank: W x size is 2^63 at W = 2.
  expect_refused({"bench", "-b", "4611686018427387904", "-e", "4611686018427387904"},
                 "at W = 2 (oneshot): the input's size W x N x D x E");
}

TEST_CASE("run and bench refuse calls past the kernels' 32-bit sizes before the job starts", "[cpu][boundary]") {
  // fp32 at W = 2, D = 4: the last N whose ONESHOT buffer fits 32 bits is 134217727.
  expect_refused({"run", "--world", "2", "--dtype", "fp32", "--calls", "oneshot:N=134217728:D=4"},
                 "needs 4294967296 bytes per Lamport buffer, above the 32-bit limit 4294967295");
  expect_refused({"run", "--world", "2", "--dtype", "bf16", "--calls", "oneshot:N=134217728:D=8"},
                 "N*D*W = 2147483648 elements exceeds the kernels' 32-bit int arithmetic");
  // The whole sequence at every world size asked for: here it fits W = 32, not W = 64.
  expect_refused({"run", "--dtype", "bf16", "--calls", "oneshot:N=4096:D=8192"}, "--calls at W = 64");
  expect_refused({"bench", "-b", "1G", "-e", "1G", "-W", "4"}, "size 1G of bf16 at W = 4 (oneshot)");
  expect_refused({"run", "--round-bytes", "-2"}, "--round-bytes must be -1");
  expect_refused({"bench", "--round-bytes", "-2"}, "--round-bytes must be -1");
}

TEST_CASE("input files: a first dimension past int is not a small world size, and 2^48 bytes is the limit",
          "[cpu][boundary]") {
  test::ScratchDir dir;
  // (2**32 + 2, 0, 8): no data, and the first dimension truncated to an int read as W = 2.
  write_npy_by_hand(dir.file("w.npy"), npy_header("<f2", "4294967298, 0, 8"), 0);
  expect_refused({"reference", "-i", dir.file("w.npy"), "-o", dir.file("out.npy")}, "world size 4294967298");
  expect_refused({"explain", "-i", dir.file("w.npy"), "-t", "0", "-c", "0"}, "world size 4294967298");
  // Past 2^48 bytes without overflowing: refused by its size against the file, before any allocation.
  write_npy_by_hand(dir.file("big.npy"), npy_header("<f2", "2, 8796093022209, 8"), 64);
  expect_refused({"reference", "-i", dir.file("big.npy"), "-o", dir.file("out.npy")}, "281474976710688 data bytes");
  // Explain's element must lie inside [N, D]: the bound is N and D, not their product.
  write_npy_by_hand(dir.file("small.npy"), npy_header("<f2", "2, 2, 8"), 64);
  expect_refused({"explain", "-i", dir.file("small.npy"), "-t", "2", "-c", "0"}, "--token 2 is outside [0, 2)");
  expect_refused({"explain", "-i", dir.file("small.npy"), "-t", "0", "-c", "8"}, "--col 8 is outside [0, 8)");
  expect_refused({"explain", "-i", dir.file("small.npy"), "-t", "0", "-c", "9223372036854775807"}, "outside");
  expect_refused({"diff", dir.file("small.npy"), dir.file("w.npy")}, "has shape");
}
