// Outputs are all-or-nothing: a SIGKILL at any moment of a write leaves the old file or the new one and
// nothing else; targets that are not regular files are refused; a planted link redirects nothing.
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <stdexcept>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness/io/exit_codes.h"
#include "harness/io/output_file.h"
#include "test_support.h"

using namespace ar;
namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

}  // namespace

TEST_CASE("a SIGKILL at random moments while writing leaves the old file or the new one, and at most a hidden copy the next write removes",
          "[cpu][slow]") {
  test::ScratchDir dir;
  const std::string target = dir.file("out.bin");
  // Two contents of 8 MiB that differ everywhere, so a mix of them is seen.
  const std::string a(8 << 20, 'a'), b(8 << 20, 'b');
  write_file_atomically(target, a);
  std::mt19937_64 rng(7);
  int saw_old = 0, saw_new = 0;
  for (int round = 0; round < 60; ++round) {
    const std::string& next = round % 2 ? a : b;
    const std::string before = read_all(target);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {  // the writer: one write, as a command would make it
      try {
        write_file_atomically(target, next);
      } catch (...) {
        ::_exit(3);
      }
      ::_exit(0);
    }
    ::usleep(static_cast<useconds_t>(rng() % 40000));  // 0-40 ms: before, during and after the write
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    INFO("round " << round);
    // Besides the target, only a complete hidden copy can remain: a kill between linking the synced file
    // under its temporary name and the rename (no system call replaces a file by an unnamed one). The next
    // write of the target removes it (below).
    std::set<std::string> names = names_in(dir.path());
    CHECK(names.erase("out.bin") == 1);
    for (const std::string& n : names) {
      CHECK(n.rfind(".out.bin.", 0) == 0);
      CHECK(n.ends_with(".partial"));
    }
    const std::string after = read_all(target);
    CHECK((after == before || after == next));
    (after == before ? saw_old : saw_new) += 1;
  }
  // Both outcomes happened, so the kills really fell before and after the commit.
  CHECK(saw_old > 0);
  CHECK(saw_new > 0);
  write_file_atomically(target, a);
  CHECK(names_in(dir.path()) == std::set<std::string>{"out.bin"});
}

TEST_CASE("targets that are not regular files are refused, before anything is written", "[cpu]") {
  test::ScratchDir dir;
  CHECK_THROWS_WITH(check_output_path("/dev/null"), Catch::Contains("not a regular file"));
  CHECK_THROWS_WITH(check_output_path(dir.path().string()), Catch::Contains("not a regular file"));
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(write_file_atomically(fifo, "x"), Catch::Contains("not a regular file"));
  const std::string victim = dir.file("victim");
  write_file_atomically(victim, "precious");
  const std::string link = dir.file("link.json");
  REQUIRE(::symlink(victim.c_str(), link.c_str()) == 0);
  CHECK_THROWS_WITH(write_file_atomically(link, "overwritten"), Catch::Contains("symbolic link"));
  CHECK(read_all(victim) == "precious");
  CHECK_THROWS_WITH(check_output_path(dir.file("no/such/folder/x.npy")), Catch::Contains("does not exist"));
  CHECK_THROWS_WITH(check_output_path(""), Catch::Contains("empty"));
}

TEST_CASE("a link planted where a temporary file used to be named redirects nothing", "[cpu]") {
  test::ScratchDir dir;
  const std::string victim = dir.file("victim");
  write_file_atomically(victim, "precious");
  // Every name the old writer could have used (".out.json.tmp<pid>") and a few guesses of the new one.
  for (const std::string& name : {".out.json.tmp" + std::to_string(::getpid()), std::string(".out.json.partial"),
                                  ".out.json." + std::to_string(::getpid()) + ".partial"})
    REQUIRE(::symlink(victim.c_str(), dir.file(name).c_str()) == 0);
  write_file_atomically(dir.file("out.json"), "new");
  write_file_atomically(dir.file("out.json"), "newer");  // replacing an existing file takes the other path
  CHECK(read_all(dir.file("out.json")) == "newer");
  CHECK(read_all(victim) == "precious");
}

TEST_CASE("an uncommitted output leaves no trace: an output set is all or nothing", "[cpu]") {
  test::ScratchDir dir;
  {
    OutputFile f(dir.file("never.bin"));
    f.write("data");
  }  // destroyed without commit
  CHECK(names_in(dir.path()).empty());
  write_file_atomically(dir.file("one.json"), "old one");
  // The second target is a folder: refused before either file is touched.
  fs::create_directories(dir.path() / "two.json");
  CHECK_THROWS_AS(OutputSet({dir.file("one.json"), dir.file("two.json")}), UsageError);
  CHECK(read_all(dir.file("one.json")) == "old one");
  OutputSet set({dir.file("one.json"), dir.file("three.json")});
  set.file(0).write("new one");
  set.file(1).write("new three");
  CHECK(read_all(dir.file("one.json")) == "old one");  // nothing shows before commit
  CHECK_FALSE(fs::exists(dir.path() / "three.json"));
  set.commit();
  CHECK(read_all(dir.file("one.json")) == "new one");
  CHECK(read_all(dir.file("three.json")) == "new three");
  CHECK(names_in(dir.path()) == std::set<std::string>{"one.json", "three.json", "two.json"});
}

TEST_CASE("a name left by a writer killed between link and rename is removed by the next write", "[cpu]") {
  test::ScratchDir dir;
  write_file_atomically(dir.file("out.json"), "old");
  // A pid that is surely not running: the highest the kernel can give, plus one.
  const std::string stale = dir.file(".out.json.4194305.0123456789abcdef.partial");
  write_file_atomically(stale, "left behind");
  write_file_atomically(dir.file("out.json"), "new");
  CHECK_FALSE(fs::exists(stale));
  CHECK(read_all(dir.file("out.json")) == "new");
}

TEST_CASE("an output set puts neither file in place when a folder vanished or a target changed before commit",
          "[cpu]") {
  test::ScratchDir dir;
  fs::create_directories(dir.path() / "a");
  fs::create_directories(dir.path() / "b");
  write_file_atomically(dir.file("a/one.json"), "old one");
  OutputSet set({dir.file("a/one.json"), dir.file("b/two.json")});
  set.file(0).write("new one");
  set.file(1).write("new two");
  fs::remove_all(dir.path() / "b");  // after the check, before the commit
  try {
    set.commit();
    FAIL("the commit succeeded without the folder");
  } catch (const UsageError& e) {
    CHECK_THAT(e.what(), Catch::Contains("cannot write '" + dir.file("b/two.json") + "'"));
  }
  CHECK(read_all(dir.file("a/one.json")) == "old one");
  CHECK(names_in(dir.path() / "a") == std::set<std::string>{"one.json"});  // no hidden name left behind either

  // A target that became a folder meanwhile is found before any target changes, too.
  OutputSet again({dir.file("a/one.json"), dir.file("a/three.json")});
  again.file(0).write("new one");
  again.file(1).write("new three");
  fs::create_directories(dir.path() / "a" / "three.json");
  CHECK_THROWS_AS(again.commit(), UsageError);
  CHECK(read_all(dir.file("a/one.json")) == "old one");
  CHECK(names_in(dir.path() / "a") == std::set<std::string>{"one.json", "three.json"});
}

TEST_CASE("an output's contents can be discarded and written again before commit", "[cpu]") {
  test::ScratchDir dir;
  OutputFile f(dir.file("trace.json"));
  f.write("the trace of a run no longer shown");
  f.discard_contents();
  f.write("the one shown");
  f.commit();
  CHECK(read_all(dir.file("trace.json")) == "the one shown");
  CHECK_THROWS_AS(f.discard_contents(), std::logic_error);
}

TEST_CASE("an output folder is made before the work, and a file or a device in its place is refused", "[cpu]") {
  const test::ScratchDir dir;
  const std::string nested = (dir.path() / "a" / "b").string();
  prepare_output_folder(nested);
  CHECK(fs::is_directory(nested));
  prepare_output_folder(nested);  // an existing folder is fine
  std::ofstream(dir.path() / "file") << "x";
  CHECK_THROWS_WITH(prepare_output_folder((dir.path() / "file").string()), Catch::Contains("is not a folder"));
  CHECK_THROWS_WITH(prepare_output_folder((dir.path() / "file" / "below").string()),
                    Catch::Contains("cannot write into"));
  CHECK_THROWS_WITH(prepare_output_folder("/dev/null"), Catch::Contains("is not a folder"));
  CHECK_THROWS_AS(prepare_output_folder(""), UsageError);
}
