// The fused residual-add + RMSNorm calls (calls marked fused) in the simulator: FlashInfer's fused TWOSHOT as two
// kernels under PDL (the all-reduce kernel neither arrives nor touches the flags, rmsNormLamport launches once the
// all-reduce kernel has triggered, arrives once per token, waits for it, then advances the flags with TWOSHOT's
// record), its fused launches in clusters (one arrival per cluster), our fused kernels (ONESHOT unchanged, the
// TWOSHOT owner writing its own BROADCAST row, which every rank polls), and mixed fused and plain sequences that
// pass seeded schedules with outputs equal to the reference all-reduce.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "reference/fused_launch.h"
#include "sim_test_support.h"

namespace ar::sim::test {
namespace {

/// The operations rank `rank` issued in call `call` from CTAs [cta_begin, cta_end) (trace numbering: the
/// all-reduce kernel's CTAs, then rmsNormLamport's).
std::vector<TraceEvent> ops_of(const TraceRecorder& trace, int rank, int call, int cta_begin, int cta_end) {
  std::vector<TraceEvent> ops;
  for (const TraceEvent& e : trace.events())
    if (e.kind == TraceEvent::Kind::kOp && e.rank == rank && e.call == call && e.cta >= cta_begin && e.cta < cta_end)
      ops.push_back(e);
  return ops;
}

int count(const std::vector<TraceEvent>& ops, const std::string& name) {
  return static_cast<int>(std::count_if(ops.begin(), ops.end(), [&](const TraceEvent& e) { return e.name == name; }));
}

/// Stores among `ops` whose ghost is of kind `kind`.
int stores_of(const std::vector<TraceEvent>& ops, WriteKind kind) {
  return static_cast<int>(
      std::count_if(ops.begin(), ops.end(), [&](const TraceEvent& e) { return e.words > 0 && e.ghost.kind == kind; }));
}

std::uint64_t first_step(const std::vector<TraceEvent>& ops, const std::string& name = "") {
  std::uint64_t s = ~0ull;
  for (const TraceEvent& e : ops)
    if (name.empty() || e.name == name) s = std::min(s, e.step);
  return s;
}
std::uint64_t last_step(const std::vector<TraceEvent>& ops, const std::string& name = "") {
  std::uint64_t s = 0;
  for (const TraceEvent& e : ops)
    if (name.empty() || e.name == name) s = std::max(s, e.step);
  return s;
}

SimConfig with_protocol(SimConfig c, Protocol p) {
  c.protocol = p;
  return c;
}

TEST_CASE(
    "FlashInfer's fused TWOSHOT: the all-reduce kernel neither arrives nor updates the flags, "
    "rmsNormLamport does, after PDL lets it start and the all-reduce kernel has completed",
    "[cpu]") {
  // W = 4, D = 16 bf16 (two packs): call 1's all-reduce kernel has 3 x 2 CTAs of one pack; rmsNormLamport's
  // launch is norm_launch's: one CTA per token, no cluster at this width.
  const Writer writer = GENERATE(Writer::kUnicast, Writer::kMulticast);
  const SimConfig config =
      config_of(4, "twoshot:N=5,twoshot:N=3:fused,oneshot:N=2", 16, DType::kBf16, Mutation::kNone, writer);
  const NormLaunch launch = norm_launch(Strategy::kTwoShot, 3, 16, DType::kBf16);
  REQUIRE_FALSE(launch.cluster_launch);
  int overlapping_flag_reads = 0;
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    TraceRecorder trace;
    const SeededRun run = run_once(config, seed, seed % 2 == 0, &trace);
    INFO(writer_name(writer) << " seed " << seed << ": " << describe_failure(run.result));
    REQUIRE(run.result.finished);
    const std::vector<GridShape>& grids = run.calls[1].grids;
    REQUIRE(grids.size() == 2);
    CHECK(grids[0].kernel == Kernel::kAllReduce);
    CHECK(grids[0].ctas == 6);
    CHECK(grids[1].kernel == Kernel::kNorm);
    CHECK(grids[1].ctas == 3);
    CHECK(grids[1].lanes == launch.block_size() * launch.loads_per_thread());
    CHECK(grids[1].arrivals() == 3);
    for (int r = 0; r < 4; ++r) {
      INFO("rank " << r);
      const auto ar = ops_of(trace, r, 1, 0, 6);
      const auto norm = ops_of(trace, r, 1, 6, 9);
      // The all-reduce kernel: flags read, scatter, trigger, clears, reduce and broadcast; nothing else.
      CHECK(count(ar, "griddepcontrol_launch_dependents") == 6);
      CHECK(count(ar, "ld_v4") == 12);
      for (const char* absent : {"red_release_gpu_add_u32", "bar_cta_sync", "ld_volatile_u32", "st_u32",
                                 "griddepcontrol_wait", "barrier_cluster_arrive"})
        CHECK(count(ar, absent) == 0);
      CHECK(stores_of(ar, WriteKind::kFlags) == 0);
      // rmsNormLamport: one arrival per token, polls of its packs, the wait, and the flag update by its CTA 0.
      CHECK(count(norm, "ld_v4") == 6);
      CHECK(count(norm, "bar_cta_sync") == 3);
      CHECK(count(norm, "red_release_gpu_add_u32") == 3);
      CHECK(count(norm, "ld_volatile_v4") >= 6);
      CHECK(count(norm, "griddepcontrol_wait") == 3);
      CHECK(stores_of(norm, WriteKind::kFlags) == 3);  // words 0-3, words 4-7, the counter reset
      for (const TraceEvent& e : norm)
        if (e.words > 0) CHECK(e.cta == 6);
      CHECK(stores_of(norm, WriteKind::kData) + stores_of(norm, WriteKind::kClear) == 0);
      // PDL: it starts once every all-reduce CTA has triggered; its wait returns once they have all finished.
      CHECK(first_step(norm) > last_step(ar, "griddepcontrol_launch_dependents"));
      CHECK(first_step(norm, "griddepcontrol_wait") > last_step(ar));
      CHECK(first_step(norm, "st_v4") > last_step(ar));
      if (first_step(norm, "ld_v4") < last_step(ar)) ++overlapping_flag_reads;
    }
  }
  // The two kernels do run side by side: rmsNormLamport reads the flags while the all-reduce kernel still runs.
  CHECK(overlapping_flag_reads > 0);
}

TEST_CASE("rmsNormLamport records TWOSHOT's clear: the next call clears both stages of the fused call's buffer",
          "[cpu]") {
  // W = 4, D = 16 bf16, BPB 512: the fused TWOSHOT N = 3 in buffer 1 records {round_up(3,4)*32 = 128, 3*32 = 96};
  // the ONESHOT after it clears exactly [BPB, +128) and [BPB + BPB/2, +96).
  for (const Protocol p : {Protocol::kFlashInfer, Protocol::kOurs}) {
    const SimConfig config = with_protocol(config_of(4, "twoshot:N=5,twoshot:N=3:fused,oneshot:N=2"), p);
    REQUIRE(config.buffer_bytes == 512);
    TraceRecorder trace;
    const SeededRun run = run_once(config, 3, true, &trace);
    INFO(protocol_name(p) << ": " << describe_failure(run.result));
    REQUIRE(run.result.finished);
    for (int r = 0; r < 4; ++r) {
      std::set<std::int64_t> want = byte_range(512, 128);
      for (std::int64_t b : byte_range(512 + 256, 96)) want.insert(b);
      INFO("rank " << r);
      CHECK(bytes_written(trace, r, 2, WriteKind::kClear) == want);
    }
  }
}

TEST_CASE("FlashInfer's fused launches in clusters arrive once per cluster, from cluster block 0", "[cpu]") {
  // bf16 D = 1024 (128 packs): norm_launch gives two blocks of 64 threads per token for both strategies, a
  // cluster launch.
  const SimConfig config = config_of(2, "oneshot:N=2:fused,twoshot:N=3:fused,oneshot:N=1", 1024);
  for (const Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
    const NormLaunch launch = norm_launch(s, s == Strategy::kOneShot ? 2 : 3, 1024, DType::kBf16);
    REQUIRE(launch.cluster_launch);
    REQUIRE(launch.cluster_size() == 2);
    REQUIRE(launch.block_size() == 64);
  }
  TraceRecorder trace;
  const SeededRun run = run_once(config, 5, true, &trace, /*record_outputs=*/true);
  INFO(describe_failure(run.result));
  REQUIRE(run.result.finished);
  check_outputs_equal_reference(config, run);
  const GridShape& oneshot = run.calls[0].grids.at(0);
  CHECK((oneshot.ctas == 4 && oneshot.lanes == 64 && oneshot.cluster == 2 && oneshot.arrivals() == 2));
  const GridShape& norm = run.calls[1].grids.at(1);
  CHECK((norm.ctas == 6 && norm.lanes == 64 && norm.cluster == 2 && norm.arrivals() == 3));
  const int norm_first = static_cast<int>(run.calls[1].grids.at(0).ctas);
  struct Launch {
    int call, cta_begin, clusters;
  };
  for (const Launch& l : {Launch{0, 0, 2}, Launch{1, norm_first, 3}}) {
    for (int r = 0; r < 2; ++r) {
      INFO("call " << l.call << " rank " << r);
      const auto ops = ops_of(trace, r, l.call, l.cta_begin, l.cta_begin + 2 * l.clusters);
      CHECK(count(ops, "barrier_cluster_arrive") == 2 * l.clusters);
      CHECK(count(ops, "barrier_cluster_wait") == l.clusters);
      CHECK(count(ops, "red_release_gpu_add_u32") == l.clusters);
      CHECK(count(ops, "bar_cta_sync") == 0);
      for (const TraceEvent& e : ops) {
        if (e.name != "red_release_gpu_add_u32") continue;
        const int block = e.cta - l.cta_begin;
        CHECK(block % 2 == 0);  // cluster block 0 increments, after both blocks of its cluster arrived
        for (const TraceEvent& a : ops)
          if (a.name == "barrier_cluster_arrive" && (a.cta - l.cta_begin) / 2 == block / 2) CHECK(a.step < e.step);
      }
    }
  }
}

TEST_CASE("our fused TWOSHOT: the owner stores its sum into every rank's BROADCAST, its own included", "[cpu]") {
  // W = 4, N = 5, D = 16 bf16, BPB 512: call 0 in buffer 0 (BROADCAST at byte 256, 32 bytes a token), call 2 in
  // buffer 2. The fused call fills every row of every rank's BROADCAST; the plain one leaves each rank's own rows
  // (tokens t % 4 == r) empty, the owner keeping its sum as its output.
  SimConfig config = with_protocol(config_of(4, "twoshot:N=5:fused,oneshot:N=2,twoshot:N=5"), Protocol::kOurs);
  REQUIRE(config.buffer_bytes == 512);
  TraceRecorder trace;
  const SeededRun run = run_once(config, 9, false, &trace, /*record_outputs=*/true);
  INFO(describe_failure(run.result));
  REQUIRE(run.result.finished);
  check_outputs_equal_reference(config, run);
  for (int r = 0; r < 4; ++r) {
    INFO("rank " << r);
    std::set<std::int64_t> fused, plain;
    for (std::int64_t b : bytes_written(trace, r, 0, WriteKind::kData, /*deliveries=*/true))
      if (b >= 256 && b < 512) fused.insert(b);
    for (std::int64_t b : bytes_written(trace, r, 2, WriteKind::kData, /*deliveries=*/true))
      if (b >= 2 * 512 + 256) plain.insert(b - 2 * 512);
    CHECK(fused == byte_range(256, 5 * 32));
    std::set<std::int64_t> others;
    for (int t = 0; t < 5; ++t)
      if (t % 4 != r)
        for (std::int64_t b : byte_range(256 + t * 32, 32)) others.insert(b);
    CHECK(plain == others);
    // The ONESHOT call after the fused one clears all the rows it wrote.
    for (std::int64_t b : byte_range(256, 5 * 32)) CHECK(bytes_written(trace, r, 1, WriteKind::kClear).count(b) == 1);
  }
}

TEST_CASE("our fused ONESHOT is our ONESHOT: the same operations in the same schedule", "[cpu]") {
  const SimConfig plain = with_protocol(config_of(4, "oneshot:N=3,oneshot:N=2:D=24,oneshot:N=1"), Protocol::kOurs);
  const SimConfig fused =
      with_protocol(config_of(4, "oneshot:N=3:fused,oneshot:N=2:D=24:fused,oneshot:N=1"), Protocol::kOurs);
  for (std::uint64_t seed : {1, 2, 3}) {
    TraceRecorder a, b;
    REQUIRE(run_once(plain, seed, seed == 2, &a).result.finished);
    REQUIRE(run_once(fused, seed, seed == 2, &b).result.finished);
    std::vector<std::string> ops_a, ops_b;
    for (const TraceEvent& e : a.events())
      if (e.kind == TraceEvent::Kind::kOp || e.kind == TraceEvent::Kind::kDelivery)
        ops_a.push_back(fmt::format("{} r{} {} {} {}", e.step, e.rank, e.cta, e.name, e.detail));
    for (const TraceEvent& e : b.events())
      if (e.kind == TraceEvent::Kind::kOp || e.kind == TraceEvent::Kind::kDelivery)
        ops_b.push_back(fmt::format("{} r{} {} {} {}", e.step, e.rank, e.cta, e.name, e.detail));
    INFO("seed " << seed);
    CHECK(!ops_a.empty());
    CHECK(ops_a == ops_b);
  }
}

TEST_CASE("mixed fused and plain sequences pass seeded schedules with both protocols", "[cpu]") {
  const std::string calls = GENERATE(
      std::string("twoshot:N=5,twoshot:N=3:fused,oneshot:N=2:fused,twoshot:N=4:fused,oneshot:N=1,auto:N=6:fused"),
      std::string("oneshot:N=2:fused:dtype=fp32:D=8,twoshot:N=7:fused:D=24,twoshot:N=1:fused:dtype=fp16,"
                  "oneshot:N=3,twoshot:N=2"));
  const int world = GENERATE(2, 4, 8);
  const Writer writer = GENERATE(Writer::kUnicast, Writer::kMulticast);
  const Arrival arrival = GENERATE(Arrival::kFlashInfer, Arrival::kAfterFlags);
  SimConfig config = config_of(world, calls, 16, DType::kBf16, Mutation::kNone, writer);
  config.arrival = arrival;
  require_seeded_passes(
      config, 50, 4, fmt::format("{} W = {} {} arrival {}", calls, world, writer_name(writer), arrival_name(arrival)));
  if (writer == Writer::kUnicast && arrival == Arrival::kFlashInfer) {
    SimConfig ours = with_protocol(config_of(world, calls), Protocol::kOurs);
    require_seeded_passes(ours, 50, 4, fmt::format("ours {} W = {}", calls, world));
    ours.max_blocks_per_rank = 2;
    ours.round_tokens = 2;
    require_seeded_passes(ours, 70, 4, fmt::format("ours, two blocks, rounds of two tokens, {} W = {}", calls, world));
  }
}

TEST_CASE("every rank's all-reduce result of every fused call equals reference_all_reduce bit for bit", "[cpu]") {
  const int world = GENERATE(2, 4, 16);
  const Protocol p = GENERATE(Protocol::kFlashInfer, Protocol::kOurs);
  const SimConfig config =
      with_protocol(config_of(world,
                              "oneshot:N=3:fused,twoshot:N=5:dtype=fp32:D=8:fused,auto:N=2:dtype=fp16:fused,"
                              "twoshot:N=4,twoshot:N=3:fused",
                              16),
                    p);
  const SeededRun run = run_once(config, 77, true, nullptr, /*record_outputs=*/true);
  INFO(protocol_name(p) << " W = " << world << ": " << describe_failure(run.result));
  REQUIRE(run.result.finished);
  check_outputs_equal_reference(config, run);
}

TEST_CASE("a fused call FlashInfer's fused kernels do not launch is refused by name", "[cpu]") {
  // ONESHOT (plain or fused) takes D up to 8 blocks of 1024 threads of one pack: bf16 D = 65536.
  const auto config = [](const char* calls) { return config_of(2, calls, 8, DType::kBf16, Mutation::kNone); };
  CHECK_NOTHROW(config("oneshot:N=1:D=65536:fused"));
  CHECK_THROWS_WITH(config("oneshot:N=1,oneshot:N=1:D=65544:fused"),
                    Catch::Contains("call 2 (fused)") && Catch::Contains("exceeds the maximum supported hidden"));
}

}  // namespace
}  // namespace ar::sim::test
