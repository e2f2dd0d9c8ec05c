// `run` and `bench --direct-from BYTES`: the option is read as a size and a negative one refused before the
// job starts; the workspace of a group holds a direct call's rows in its direct region, not in the Lamport
// buffers; and the plan, the tables and the JSON say which calls took the direct path.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "harness/commands/bench_report.h"
#include "harness/commands/list_options.h"
#include "harness/commands/run_plan.h"
#include "harness/commands/run_report.h"
#include "harness/io/exit_codes.h"
#include "harness/job/gpu_job.h"
#include "harness/job/job.h"
#include "reference/workspace.h"
#include "tests/support/cli_runs.h"
#include "tests/support/launcher_env.h"

using namespace ar;

TEST_CASE("run and bench refuse a negative --direct-from before the job starts, naming the option", "[cpu]") {
  for (const char* command : {"run", "bench"})
    for (const std::vector<std::string>& option :
         {std::vector<std::string>{"--direct-from", "-1"}, std::vector<std::string>{"--direct-from=-4096"}}) {
      std::vector<std::string> args{command};
      args.insert(args.end(), option.begin(), option.end());
      const test::CliResult r = test::run_in_process(args);
      INFO(command << " " << option.back() << ": " << r.err);
      CHECK(r.code == kExitUsage);
      CHECK_THAT(r.err, Catch::Contains("error:") && Catch::Contains("--direct-from must be >= 0"));
      CHECK_THAT(r.err, !Catch::Contains("no GPU"));  // refused before any GPU is looked for
    }
  for (const char* command : {"run", "bench"})
    for (const char* bad : {"2x", "1.5M", "", "-1K"}) {
      const test::CliResult r = test::run_in_process({command, "--direct-from", bad});
      INFO(command << " --direct-from '" << bad << "': " << r.err);
      CHECK(r.code == kExitUsage);
      CHECK_THAT(r.err, Catch::Contains("--direct-from"));
    }
}

TEST_CASE("the --direct-from option takes 0 or a size as -b does", "[cpu]") {
  CHECK(direct_from_option("--direct-from", "0") == 0);
  CHECK(direct_from_option("--direct-from", "4096") == 4096);
  CHECK(direct_from_option("--direct-from", "16M") == std::int64_t(16) << 20);
  CHECK(direct_from_option("--direct-from", "1G") == std::int64_t(1) << 30);
  CHECK(test::usage_error_of([] { (void)direct_from_option("--direct-from", "-1"); }) ==
        "--direct-from must be >= 0 (0: no call takes the direct path), got -1");
  CHECK_THAT(test::usage_error_of([] { (void)direct_from_option("--direct-from", "16Q"); }),
             Catch::Contains("--direct-from '16Q' is not a size"));
}

TEST_CASE("the help of run and bench teaches --direct-from", "[cpu]") {
  for (const char* command : {"run", "bench"}) {
    const test::CliResult r = test::run_in_process({command, "--help"});
    INFO(command);
    CHECK(r.code == kExitOk);
    CHECK_THAT(r.out, Catch::Contains("--direct-from") && Catch::Contains("take the direct path") &&
                          Catch::Contains("docs/large-messages.md"));
  }
}

TEST_CASE("a call that takes the direct path is sized in the direct region, not in the Lamport buffers", "[cpu]") {
  const std::int64_t from = std::int64_t(1) << 20;
  const ProblemShape big{2, 64, 8192, DType::kBf16};    // 1 MiB a rank: at the threshold
  const ProblemShape small{2, 32, 8192, DType::kBf16};  // 512 KiB a rank: below it
  REQUIRE(big.bytes_per_rank() == from);
  REQUIRE(resolve_strategy(Strategy::kAuto, big) == Strategy::kTwoShot);

  SECTION("plain TWOSHOT at the threshold, requested or resolved from AUTO") {
    for (Strategy requested : {Strategy::kTwoShot, Strategy::kAuto}) {
      GroupSizing sizing;
      sizing.direct_from_bytes = from;
      sizing.add(requested, big);
      INFO(strategy_name(requested));
      CHECK(sizing.direct_scatter_bytes == direct_scatter_bytes(big));
      CHECK(sizing.direct_broadcast_bytes == direct_broadcast_bytes(big));
      CHECK(sizing.direct_scatter_bytes > 0);
      CHECK(sizing.direct_broadcast_bytes > 0);
      CHECK(sizing.buffer_bytes == kBufferAlignment);  // the Lamport buffers do not grow for it
      CHECK(sizing.io_bytes == big.bytes_per_rank());
      CHECK_FALSE(sizing.norm_io);
    }
  }
  SECTION("below the threshold, fused, ONESHOT, or no --direct-from: the Lamport buffers, no direct region") {
    struct Case {
      Strategy requested;
      ProblemShape shape;
      bool fused;
      std::int64_t direct_from;
    };
    for (const Case& c : {Case{Strategy::kTwoShot, small, false, from}, Case{Strategy::kTwoShot, big, true, from},
                          Case{Strategy::kOneShot, big, false, from}, Case{Strategy::kTwoShot, big, false, 0}}) {
      GroupSizing sizing;
      sizing.direct_from_bytes = c.direct_from;
      sizing.add(c.requested, c.shape, c.fused);
      INFO(strategy_name(c.requested) << " N=" << c.shape.tokens << (c.fused ? " fused" : "") << " direct from "
                                      << c.direct_from);
      CHECK(sizing.direct_scatter_bytes == 0);
      CHECK(sizing.direct_broadcast_bytes == 0);
      CHECK(sizing.buffer_bytes == std::max(kBufferAlignment, required_buffer_bytes(c.requested, c.shape)));
      CHECK(sizing.norm_io == c.fused);
    }
  }
  SECTION("a direct call and a Lamport one on the same group: each grows its own part") {
    GroupSizing sizing;
    sizing.direct_from_bytes = from;
    sizing.add(Strategy::kTwoShot, big);
    sizing.add(Strategy::kTwoShot, small);
    sizing.add(Strategy::kTwoShot, big, /*fused=*/true);  // bench --fused: the fused call of the same size
    CHECK(sizing.direct_scatter_bytes == direct_scatter_bytes(big));
    CHECK(sizing.direct_broadcast_bytes == direct_broadcast_bytes(big));
    CHECK(sizing.buffer_bytes == required_buffer_bytes(Strategy::kTwoShot, big));
    CHECK(sizing.norm_io);
  }
}

TEST_CASE("run's plan, table and JSON say which calls take the direct path", "[cpu]") {
  RunSettings s;
  s.kind = InputKind::kExact;
  s.specs =
      parse_call_sequence("twoshot:N=4:D=64,twoshot:N=2:D=64,twoshot:N=4:D=64:fused,oneshot:N=4:D=64,auto:N=4:D=64");
  s.dtypes = {DType::kBf16};
  s.profiles = {Profile::kFlashInfer};
  s.pdls = {false};
  s.repeat = 1;
  s.sms = 132;
  s.direct_from_bytes = 4 * 64 * 2;  // N = 4 rows of D = 64 bf16
  const std::vector<PlannedCall> planned = plan_calls(s, 2);
  REQUIRE(planned.size() == 5);
  REQUIRE(planned[4].resolved == Strategy::kOneShot);  // AUTO at this size: not TWOSHOT, not direct
  const std::vector<bool> direct{true, false, false, false, false};
  for (std::size_t i = 0; i < planned.size(); ++i) {
    INFO("call " << i + 1);
    CHECK(takes_direct_path(s, planned[i]) == direct[i]);
  }

  for (const char* name : test::kLauncherVariables) ::unsetenv(name);
  const Job job(0, "run", {}, JobOptions{});
  const std::string plan = describe_plan(job, s, 2, HandleKind::kPosix, planned);
  CHECK_THAT(plan, Catch::Contains("\ndirect-from 512\n"));
  CHECK_THAT(plan, Catch::Contains("call 1: seq twoshot N=4 D=64 bf16 W=2") && Catch::Contains("seed=2 direct\n"));
  CHECK_THAT(plan, Catch::Contains("seed=3\n") && !Catch::Contains("seed=3 direct"));
  CHECK_THAT(plan, Catch::Contains("sms=132\n") && !Catch::Contains("sms=132 direct"));  // fused: never direct
  s.direct_from_bytes = 0;  // a process with another --direct-from states another plan
  CHECK(describe_plan(job, s, 2, HandleKind::kPosix, planned) != plan);
  s.direct_from_bytes = 4 * 64 * 2;

  RunResult result;
  for (std::size_t i = 0; i < planned.size(); ++i) {
    const PlannedCall& c = planned[i];
    RunRow row{static_cast<int>(i) + 1, c.label, c.call, c.expect, c.resolved, c.seed};
    row.direct = takes_direct_path(s, c);
    result.rows.push_back(row);
  }
  std::ostringstream table;
  print_run_report(table, result);
  CHECK_THAT(table.str(), Catch::Contains("twoshot (direct)"));
  CHECK_THAT(table.str(), Catch::Contains("twoshot+norm") && !Catch::Contains("(direct)+norm"));
  const nlohmann::json j = nlohmann::json::parse(run_json(s, RunPlace{}, result));
  CHECK(j["direct_from_bytes"] == 512);
  for (std::size_t i = 0; i < direct.size(); ++i) CHECK(j["rows"][i]["direct"] == direct[i]);
}

TEST_CASE("bench's table and JSON say which rows took the direct path, and the JSON its threshold", "[cpu]") {
  BenchSettings s;
  s.direct_from_bytes = std::int64_t(16) << 20;
  BenchRow row;
  row.world = 2;
  row.bytes = std::int64_t(16) << 20;
  row.shape = {2, 2048, 4096, DType::kBf16};
  row.requested = Strategy::kTwoShot;
  row.resolved = Strategy::kTwoShot;
  row.direct = takes_direct_path(row.resolved, false, row.shape, s.direct_from_bytes);
  REQUIRE(row.direct);
  row.us = 100;
  BenchRow lamport = row;
  lamport.requested = lamport.resolved = Strategy::kOneShot;
  lamport.direct = takes_direct_path(lamport.resolved, false, lamport.shape, s.direct_from_bytes);
  REQUIRE_FALSE(lamport.direct);

  // The strategy column is wide enough for "twoshot (direct)": every line has the header's width.
  const std::string header = bench_table_header(false, false, false, {}, true);
  std::ostringstream direct_line, lamport_line;
  print_bench_row(direct_line, row, false, true);
  print_bench_row(lamport_line, lamport, false, true);
  CHECK_THAT(direct_line.str(), Catch::Contains(" twoshot (direct) "));
  CHECK_THAT(lamport_line.str(), !Catch::Contains("(direct)"));
  CHECK(direct_line.str().size() == header.size() + 1);
  CHECK(lamport_line.str().size() == header.size() + 1);
  // Without --direct-from the table is as it was.
  CHECK(bench_table_header(false, false, false) == bench_table_header(false, false, false, {}, false));
  CHECK(bench_table_header(false, false, false).size() + 8 == header.size());

  const nlohmann::json j = nlohmann::json::parse(bench_json(s, BenchPlace{}, {row, lamport}, "2026-01-01T00:00:00Z"));
  CHECK(j["settings"]["direct_from_bytes"] == std::int64_t(16) << 20);
  CHECK(j["rows"][0]["direct"] == true);
  CHECK(j["rows"][1]["direct"] == false);
}
