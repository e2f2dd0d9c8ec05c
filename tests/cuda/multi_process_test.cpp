// Ranks as separate processes on one GPU, through the mnnvl-ar executable: two and four processes sharing
// memory through exported POSIX handles must give exactly the bits of the single-process virtual-rank run
// of the same inputs (compared by the sha256 of every rank's output of every call); a rank that is killed
// mid-run ends the job within the timeout with a message naming it; probe runs and passes.
#include <catch2/catch.hpp>

#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tests/support/cli_runs.h"
#include "tests/support/launcher_env.h"
#include "tests/support/scratch_dir.h"

using namespace std::chrono_literals;
using ar::test::ProcessOutcome;

namespace {

/// Runs `mnnvl-ar <arguments>`; a GPU job may take minutes, so its limit is longer than the default.
ProcessOutcome mnnvl_ar(const std::string& arguments) { return ar::test::run_process({arguments}, 300s); }

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(ar::test::read_text(path)); }

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
  ar::test::ScratchDir s;
  const ProcessOutcome single = mnnvl_ar(kCalls + " --json " + s.file("single.json"));
  INFO(single.output);
  REQUIRE(single.code == 0);
  const nlohmann::json reference = read_json(s.file("single.json"));
  for (int processes : {2, 4}) {
    const std::string json = s.file(fmt::format("spawn{}.json", processes));
    const ProcessOutcome multi = mnnvl_ar(fmt::format("{} --spawn {} --json {}", kCalls, processes, json));
    INFO(multi.output);
    REQUIRE(multi.code == 0);
    CHECK_THAT(multi.output, Catch::Contains("# handles: POSIX file descriptors"));
    require_same_bits(reference, read_json(json), processes);
  }
}

TEST_CASE("processes started by hand with torchrun's variables give the same bits", "[gpu]") {
  ar::test::ScratchDir s;
  const std::string args =
      "run --world 2 --dtype bf16 --profile flashinfer --pdl on --calls oneshot:N=5,twoshot:N=64 "
      "--inputs random --seed 3 --digests";
  const ProcessOutcome single = mnnvl_ar(args + " --json " + s.file("single.json"));
  INFO(single.output);
  REQUIRE(single.code == 0);
  const std::uint16_t port = ar::test::free_port();
  const std::string job = " MNNVL_AR_TOKEN=t NCCL_NVLS_ENABLE=0";
  const auto ranks = ar::test::run_processes(
      {{args + " --json " + s.file("multi.json"), ar::test::torchrun_environment(0, 2, port) + job},
       {args, ar::test::torchrun_environment(1, 2, port) + job}},
      120s);
  INFO("rank 0: " << ranks[0].output << "\nrank 1: " << ranks[1].output);
  CHECK(ranks[0].code == 0);
  CHECK(ranks[1].code == 0);
  require_same_bits(read_json(s.file("single.json")), read_json(s.file("multi.json")), 2);
}

TEST_CASE("a rank killed mid-run ends the job within the timeout, named", "[gpu]") {
  const ProcessOutcome o = mnnvl_ar(
      "run --spawn 4 --world 4 --dtype bf16 --profile flashinfer --pdl off "
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
  ar::test::ScratchDir s;
  const ProcessOutcome alone = mnnvl_ar("probe --json " + s.file("p1.json"));
  INFO(alone.output);
  CHECK(alone.code == 0);
  const nlohmann::json one = read_json(s.file("p1.json"));
  CHECK(one.at("result") == "ok");
  CHECK(one.at("allreduce").size() >= 2);
  const ProcessOutcome two = mnnvl_ar("probe --spawn 2 --json " + s.file("p2.json"));
  INFO(two.output);
  CHECK(two.code == 0);
  const nlohmann::json j = read_json(s.file("p2.json"));
  CHECK(j.at("processes") == 2);
  CHECK_THAT(j.at("handles").get<std::string>(), Catch::Contains("POSIX file descriptors"));
  for (const auto& a : j.at("allreduce")) CHECK(a.at("mismatches") == 0);
}
