// `mnnvl-ar sim --trace` and `--json-out`, in-process: every output path is checked before any simulation, the
// trace file is the search's streamed trace byte for byte, the two outputs appear both or neither, and a
// failure the search found is printed even when its files cannot be written.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include <sys/resource.h>
#include <unistd.h>

#include "sim_test_support.h"
#include "tests/harness/test_support.h"

namespace ar {
namespace {

namespace fs = std::filesystem;
using test::run;

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

/// While alive, no file this process writes may grow past `bytes`: a write past it fails (EFBIG) the way one
/// on a full disk does, and a test needs no full disk. SIGXFSZ, which would kill the process, is ignored.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &old_);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};

TEST_CASE("sim refuses bad --trace and --json-out paths before any simulation", "[cpu]") {
  test::ScratchDir dir;
  fs::create_directories(dir.path() / "a folder");
  fs::create_symlink(dir.path() / "elsewhere.json", dir.path() / "link.json");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--trace", dir.file("missing/t.json")}, "the folder '" + dir.file("missing") + "' does not exist"},
      {{"--json-out", dir.file("missing/r.json")}, "does not exist"},
      {{"--trace", dir.file("a folder")}, "is not a regular file"},
      {{"--json-out", dir.file("link.json")}, "symbolic link"},
      // A good trace path does not start the search when the JSON's is bad, and is not written.
      {{"--trace", dir.file("t.json"), "--json-out", dir.file("a folder")}, "is not a regular file"},
      {{"--trace", dir.file("missing/t.json"), "--json-out", dir.file("r.json")}, "does not exist"},
  };
  for (const auto& [extra, message] : cases) {
    // A hundred million schedules per leg: hours of simulation, were it to start.
    const auto start = std::chrono::steady_clock::now();
    const auto r = run(with({"sim", "--mutation", "no-clear", "--runs", "100000000"}, extra));
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    INFO(extra.back() << ": " << r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::StartsWith("mnnvl-ar sim: error: cannot write") && Catch::Contains(message));
    CHECK(r.out.empty());  // no verdict: nothing ran
    CHECK(took.count() < 10);
    CHECK(names_in(dir.path()) == std::set<std::string>{"a folder", "link.json"});
  }
}

TEST_CASE("the --trace file is the search's streamed trace, byte for byte", "[cpu]") {
  using sim::test::config_of;
  struct Case {
    std::vector<std::string> args;
    sim::SearchLeg leg;
    int code;
  };
  const std::vector<Case> cases{
      {{"--world-size", "4", "--calls", "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=3", "--mutation", "no-clear",
        "--schedule", "random", "--seed", "1", "--runs", "100"},
       {config_of(4, "oneshot:N=3,twoshot:N=5,oneshot:N=2,twoshot:N=3", 16, DType::kBf16, sim::Mutation::kNoClear,
                  sim::Writer::kUnicast, 1, 3),
        sim::ScheduleKind::kRandom, 1, 100},
       1},
      {{"--world-size", "2", "--calls", "oneshot,twoshot", "--schedule", "adversarial", "--seed", "4", "--runs", "3"},
       {config_of(2, "oneshot,twoshot", 16, DType::kBf16, sim::Mutation::kNone, sim::Writer::kUnicast, 1, 3),
        sim::ScheduleKind::kAdversarial, 4, 3},
       0},
  };
  for (const Case& c : cases) {
    test::ScratchDir dir;
    const auto r = run(with(with({"sim"}, c.args), {"--trace", dir.file("t.json")}));
    INFO(r.err);
    CHECK(r.code == c.code);
    CHECK_THAT(r.out, Catch::Contains("trace: " + dir.file("t.json") + " (open in ui.perfetto.dev)"));
    sim::StringTraceSink sink;
    sim::SearchOptions options;
    options.trace = &sink;
    sim::run_search({c.leg}, options);
    CHECK(test::read_text(dir.file("t.json")) == sink.text);
    CHECK(names_in(dir.path()) == std::set<std::string>{"t.json"});
  }
}

TEST_CASE("sim prints the failure it found even when its trace cannot be written, and writes neither output", "[cpu]") {
  test::ScratchDir dir;
  const std::vector<std::string> outputs{"--trace", dir.file("t.json"), "--json-out", dir.file("r.json")};
  test::CliResult text, json, passed;
  {
    // The trace of this failure is about 400 kB; the JSON result would fit.
    const FileSizeLimit full_disk(16 * 1024);
    text = run(with({"sim", "--mutation", "no-clear"}, outputs));
    json = run(with({"sim", "--mutation", "no-clear", "--json"}, outputs));
    passed = run(with({"sim", "--world-size", "2", "--calls", "oneshot,twoshot", "--runs", "2"}, outputs));
  }  // checked with the limit lifted, so that a report of a failed check can be written anywhere

  INFO(text.err);
  CHECK(text.code == 1);  // the protocol failure, not the lost file, decides the exit code
  CHECK_THAT(text.out, Catch::Contains("FAILED") && Catch::Contains("reproduce: mnnvl-ar sim") &&
                           Catch::Contains("its last 40 steps"));
  CHECK_THAT(text.out, !Catch::Contains("trace: "));
  CHECK_THAT(text.err, Catch::StartsWith("mnnvl-ar sim: error: cannot write '" + dir.file("t.json") + "'") &&
                           Catch::Contains("neither --trace nor --json-out was written"));

  CHECK(json.code == 1);
  const nlohmann::json j = nlohmann::json::parse(json.out);
  CHECK(j.at("passed") == false);
  CHECK(j.at("failure").at("reproduce").get<std::string>().find("--mutation no-clear") != std::string::npos);
  CHECK_THAT(json.err, Catch::Contains(dir.file("t.json")));

  // Nothing failed but the file: that is an error of its own.
  CHECK(passed.code == 2);
  CHECK_THAT(passed.out, Catch::Contains("PASSED"));
  CHECK_THAT(passed.err, Catch::Contains("cannot write '" + dir.file("t.json") + "'"));

  CHECK(names_in(dir.path()).empty());
}

TEST_CASE("sim prints its verdict when the outputs' folder vanishes before they are put in place", "[cpu]") {
  test::ScratchDir dir;
  const fs::path folder = dir.path() / "outputs";
  fs::create_directories(folder);
  // Removes the folder as soon as the command has opened both its unnamed files there (they show in
  // /proc/self/fd as "<folder>/#<inode> (deleted)"): after the paths were checked, while the search runs.
  std::atomic<bool> removed = false, stop = false;
  std::thread remover([&] {
    const std::string prefix = folder.string() + "/";
    while (!stop && !removed) {
      std::error_code ec;
      int open_there = 0;
      for (const auto& fd : fs::directory_iterator("/proc/self/fd", ec)) {
        const fs::path target = fs::read_symlink(fd.path(), ec);
        if (!ec && target.string().rfind(prefix, 0) == 0) ++open_there;
      }
      if (open_there == 2) {
        fs::remove_all(folder, ec);
        removed = true;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  // About a second of search (longer with sanitizers): ample time for the removal.
  const auto r =
      run({"sim", "--world-size", "8", "--calls", "oneshot:N=4,twoshot:N=9,oneshot:N=3,twoshot:N=4", "--runs", "400",
           "--trace", (folder / "t.json").string(), "--json-out", (folder / "r.json").string()});
  stop = true;
  remover.join();
  REQUIRE(removed);
  INFO(r.err);
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("PASSED"));
  CHECK_THAT(r.err, Catch::StartsWith("mnnvl-ar sim: error: cannot write '" + (folder / "t.json").string() + "'") &&
                        Catch::Contains("neither --trace nor --json-out was written"));
  CHECK(names_in(dir.path()).empty());
}

}  // namespace
}  // namespace ar
