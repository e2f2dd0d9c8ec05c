// Ranks as separate processes on one GPU, through the mnnvl-ar executable: two and four processes sharing
// memory through exported POSIX handles must give exactly the bits of the single-process virtual-rank run
// of the same inputs (compared by the sha256 of every rank's output of every call); a rank that is killed
// mid-run ends the job within the timeout with a message naming it; probe runs and passes.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

std::string cli() {
  const char* over = std::getenv("AR_CLI");  // the GPU suite runs binaries copied away from the build tree
  return over ? over : AR_CLI_PATH;
}

struct Scratch {
  std::string dir =
      (std::filesystem::temp_directory_path() / fmt::format("mnnvl_ar_mp_test_{}", ::getpid())).string();
  Scratch() {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  std::string file(const std::string& name) const { return dir + "/" + name; }
};

struct Outcome {
  int code = -1;
  std::string output;
  std::chrono::duration<double> took{};
};

Outcome mnnvl_ar(const Scratch& s, const std::string& arguments, const std::string& environment = "") {
  const std::string log = s.file("log");
  const std::string command =
      fmt::format("{} timeout -k 5 300 {} {} >{} 2>&1", environment, cli(), arguments, log);
  const auto start = std::chrono::steady_clock::now();
  const int status = std::system(command.c_str());
  Outcome o;
  o.took = std::chrono::steady_clock::now() - start;
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  o.output = text.str();
  return o;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

// The same calls, inputs and order: only how the ranks are spread over processes differs.
const std::string kCalls =
    "run --world 4,8 --dtype bf16,fp32 --profile both --pdl both --calls oneshot:N=3,twoshot:N=37:D=256,auto:N=11 "
    "--repeat 2 --inputs random --seed 7 --timeout-ms 10000 --digests";

void require_same_bits(const nlohmann::json& single, const nlohmann::json& multi, int processes) {
  CHECK(multi.at("job").at("processes") == processes);
  CHECK(multi.at("summary").at("result") == "ok");
  const auto& a = single.at("rows");
  const auto& b = multi.at("rows");
  REQUIRE(a.size() == b.size());
  REQUIRE(a.size() > 0);
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("call " << i + 1 << " with " << processes << " processes");
    CHECK(a[i].at("seed") == b[i].at("seed"));
    CHECK(b[i].at("mismatches") == 0);
    REQUIRE(a[i].at("output_sha256").size() == a[i].at("world_size").get<std::size_t>());
    CHECK(a[i].at("output_sha256") == b[i].at("output_sha256"));
  }
}

}  // namespace

TEST_CASE("2 and 4 processes on one GPU give the bits of one process with virtual ranks", "[gpu][slow]") {
  Scratch s;
  const Outcome single = mnnvl_ar(s, kCalls + " --json " + s.file("single.json"));
  INFO(single.output);
  REQUIRE(single.code == 0);
  const nlohmann::json reference = read_json(s.file("single.json"));
  for (int processes : {2, 4}) {
    const std::string json = s.file(fmt::format("spawn{}.json", processes));
    const Outcome multi = mnnvl_ar(s, fmt::format("{} --spawn {} --json {}", kCalls, processes, json));
    INFO(multi.output);
    REQUIRE(multi.code == 0);
    CHECK_THAT(multi.output, Catch::Contains("# handles: POSIX file descriptors"));
    require_same_bits(reference, read_json(json), processes);
  }
}

TEST_CASE("processes started by hand with torchrun's variables give the same bits", "[gpu]") {
  Scratch s;
  const std::string args = "--world 2 --dtype bf16 --profile flashinfer --pdl on --calls oneshot:N=5,twoshot:N=64 "
                           "--inputs random --seed 3 --digests";
  const Outcome single = mnnvl_ar(s, "run " + args + " --json " + s.file("single.json"));
  INFO(single.output);
  REQUIRE(single.code == 0);
  const std::string common = fmt::format("WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT={} "
                                         "MNNVL_AR_TOKEN=t NCCL_NVLS_ENABLE=0",
                                         20000 + ::getpid() % 20000);
  const std::string script = fmt::format(
      "({c} RANK=1 LOCAL_RANK=1 timeout -k 5 120 {cli} run {a} >{d}/r1 2>&1; echo $? >{d}/c1) & "
      "{c} RANK=0 LOCAL_RANK=0 timeout -k 5 120 {cli} run {a} --json {d}/multi.json >{d}/r0 2>&1; echo $? >{d}/c0; wait",
      fmt::arg("c", common), fmt::arg("cli", cli()), fmt::arg("a", args), fmt::arg("d", s.dir));
  REQUIRE(std::system(("bash -c '" + script + "'").c_str()) == 0);
  std::ifstream c0(s.file("c0")), c1(s.file("c1"));
  int code0 = -1, code1 = -1;
  c0 >> code0;
  c1 >> code1;
  CHECK(code0 == 0);
  CHECK(code1 == 0);
  require_same_bits(read_json(s.file("single.json")), read_json(s.file("multi.json")), 2);
}

TEST_CASE("a rank killed mid-run ends the job within the timeout, named", "[gpu]") {
  Scratch s;
  const Outcome o = mnnvl_ar(s, "run --spawn 4 --world 4 --dtype bf16 --profile flashinfer --pdl off "
                                "--calls oneshot:N=4,twoshot:N=64 --repeat 3 --timeout-ms 2000 "
                                "--die-after-call 2 --die-rank 2 --rendezvous-timeout-ms 30000");
  INFO(o.output);
  CHECK(o.code == 1);
  CHECK(o.took < 45s);
  CHECK_THAT(o.output, Catch::Contains("--die-after-call 2: killing this process"));
  CHECK_THAT(o.output, Catch::Contains("rank 2 closed its connection"));
  CHECK_THAT(o.output, Catch::Contains("waiting for rank 2"));  // the device waits name it too
}

TEST_CASE("probe passes alone and as two processes", "[gpu]") {
  Scratch s;
  const Outcome alone = mnnvl_ar(s, "probe --json " + s.file("p1.json"));
  INFO(alone.output);
  CHECK(alone.code == 0);
  const nlohmann::json one = read_json(s.file("p1.json"));
  CHECK(one.at("result") == "ok");
  CHECK(one.at("allreduce").size() >= 2);
  const Outcome two = mnnvl_ar(s, "probe --spawn 2 --json " + s.file("p2.json"));
  INFO(two.output);
  CHECK(two.code == 0);
  const nlohmann::json j = read_json(s.file("p2.json"));
  CHECK(j.at("processes") == 2);
  CHECK_THAT(j.at("handles").get<std::string>(), Catch::Contains("POSIX file descriptors"));
  for (const auto& a : j.at("allreduce")) CHECK(a.at("mismatches") == 0);
}
