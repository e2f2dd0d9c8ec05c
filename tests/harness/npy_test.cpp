// .npy reading and writing, including every way a file can be wrong.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/io/npy.h"
#include "tests/support/npy_by_hand.h"
#include "tests/support/scratch_dir.h"

using namespace ar;

using test::npy_with_header;

namespace {

void write_raw(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

}  // namespace

TEST_CASE("npy round trip keeps every bit", "[cpu]") {
  test::ScratchDir dir;
  HostTensor t(DType::kBf16, {2, 3, 8});
  for (std::int64_t i = 0; i < t.size(); ++i) t.set_bits(i, static_cast<std::uint32_t>(0x8000 + i * 977));
  write_npy(dir.file("x.npy"), t);
  CHECK(read_npy(dir.file("x.npy"), DType::kBf16) == t);
  HostTensor f(DType::kFp32, {4});
  f.set_bits(0, 0x7FC00001);
  write_npy(dir.file("f.npy"), f);
  CHECK(read_npy(dir.file("f.npy")) == f);
  // The data starts on a 64-byte boundary, as numpy writes it.
  CHECK((std::filesystem::file_size(dir.file("f.npy")) - 16) % 64 == 0);
}

TEST_CASE("bad .npy files are refused with a message naming the problem", "[cpu]") {
  test::ScratchDir dir;
  const std::string p = dir.file("bad.npy");
  write_raw(p, npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 4), }", 32));
  CHECK_THROWS_WITH(read_npy(p), Catch::Contains("Fortran order"));
  write_raw(p, npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", 31));
  CHECK_THROWS_WITH(read_npy(p), Catch::Contains("truncated"));
  write_raw(p, npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 4), }", 64));
  CHECK_THROWS_WITH(read_npy(p), Catch::Contains("dtype '<f8'"));
  write_raw(p, npy_with_header("{'descr': '<u2', 'fortran_order': False, 'shape': (2, 4), }", 16));
  CHECK_THROWS_WITH(read_npy(p), Catch::Contains("--dtype bf16"));
  CHECK_NOTHROW(read_npy(p, DType::kBf16));
  CHECK_THROWS_WITH(read_npy(p, DType::kFp16), Catch::Contains("--dtype bf16"));
  write_raw(p, npy_with_header("{'descr': '<f2', 'fortran_order': False, 'shape': (2, x), }", 16));
  CHECK_THROWS_WITH(read_npy(p), Catch::Contains("malformed .npy header: a shape entry"));
  write_raw(p, "not a numpy file at all");
  CHECK_THROWS_WITH(read_npy(p), Catch::Contains("not a .npy file"));
  write_raw(p, std::string("\x93NUMPY\x01\x00\xff\x7f", 10));
  CHECK_THROWS_WITH(read_npy(p), Catch::Contains("is truncated: its .npy header claims 32767 bytes"));
  CHECK_THROWS_WITH(read_npy(dir.file("missing.npy")), Catch::Contains("cannot open"));
}

TEST_CASE("a failed write leaves no file behind", "[cpu]") {
  test::ScratchDir dir;
  HostTensor t(DType::kFp32, {4});
  CHECK_THROWS_WITH(write_npy(dir.file("no/such/folder/y.npy"), t), Catch::Contains("cannot write"));
  CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("shapes whose size wraps or does not match the data are refused before anything is allocated", "[cpu]") {
  test::ScratchDir dir;
  const std::string p = dir.file("wrap.npy");
  // 2 * (2**59 + 1) * 8 elements * 2 bytes wraps to 32 bytes in 64-bit arithmetic: refused as overflow.
  write_raw(p, npy_with_header("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 576460752303423489, 8), }", 32));
  CHECK_THROWS_WITH(read_npy(p), Catch::Contains("overflows 64 bits"));
  // 2 * 2**62 * 8 elements of 4 bytes: overflows too, with no data at all.
  write_raw(p, npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4611686018427387904, 8), }", 0));
  CHECK_THROWS_WITH(read_npy(p), Catch::Contains("overflows 64 bits"));
  // A size that fits but is not what the file holds: refused by the size check, not by a failed allocation.
  write_raw(p, npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", 16));
  CHECK_THROWS_WITH(read_npy(p), Catch::Contains("needs 4398046511104 data bytes, the file has 16"));
}

TEST_CASE("an input that is not a regular file is refused, not read forever", "[cpu]") {
  test::ScratchDir dir;
  CHECK_THROWS_WITH(read_npy("/dev/zero"), Catch::Contains("not a regular file"));
  CHECK_THROWS_WITH(read_npy(dir.path()), Catch::Contains("not a regular file"));
  const std::string fifo = dir.file("fifo.npy");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(read_npy(fifo), Catch::Contains("not a regular file"));  // no writer: must not wait for one
  const int writer = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK);
  REQUIRE(writer >= 0);
  CHECK_THROWS_WITH(read_npy(fifo), Catch::Contains("not a regular file"));
  ::close(writer);
}
