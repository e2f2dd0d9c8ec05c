// Merging what the processes of a `run` job found in one call: counts add up, the first mismatch is the
// lowest rank's, ranks in different processes are compared through their digests, a timeout stops all.
#include <catch2/catch.hpp>

#include "harness/job/call_report.h"

using namespace ar;

TEST_CASE("a call report survives the trip between processes", "[cpu]") {
  CallReport r;
  r.elements = 4096;
  r.mismatches = 3;
  r.first = RankMismatch{2, 17, 0x4B16, 0x4B17};
  r.disagreeing = 1;
  r.digests = {{2, "aa"}, {3, "bb"}};
  r.flags_bad = {3};
  r.timeout = GpuTimeout{"rank 2 timed out waiting for rank 1", 2, 1, 5};
  const CallReport back = CallReport::from_json(r.to_json());
  CHECK(back.to_json() == r.to_json());
  REQUIRE(back.first);
  CHECK(back.first->gpu == 0x4B16);
  REQUIRE(back.timeout);
  CHECK(back.timeout->peer == 1);
  CHECK_THROWS_WITH(CallReport::from_json("{\"elements\": 1}"), Catch::Contains("malformed call report"));
}

TEST_CASE("reports of two processes merge into one row", "[cpu]") {
  CallReport p0, p1;
  p0.elements = p1.elements = 2048;
  p0.digests = {{0, "same"}, {1, "same"}};
  p1.digests = {{2, "same"}, {3, "other"}};
  p1.mismatches = 5;
  p1.first = RankMismatch{3, 9, 1, 2};
  p0.mismatches = 1;
  p0.first = RankMismatch{1, 40, 7, 8};
  const std::vector<CallReport> reports{p0, p1};
  const MergedCall m = merge_call_reports(reports, 4);
  CHECK(m.elements == 4096);
  CHECK(m.mismatches == 6);
  REQUIRE(m.first);
  CHECK(m.first->rank == 1);        // the lowest rank that differs, whichever process found it
  CHECK(m.ranks_disagreeing == 1);  // rank 3, in another process than rank 0: seen through the digests
  CHECK(m.digests == std::vector<std::string>{"same", "same", "same", "other"});
  CHECK(m.flags_bad.empty());
  CHECK_FALSE(m.timeout);
}

TEST_CASE("without every digest, each process's own count of disagreeing ranks is used", "[cpu]") {
  CallReport one;
  one.disagreeing = 2;
  const std::vector<CallReport> reports{one};
  const MergedCall m = merge_call_reports(reports, 8);
  CHECK(m.ranks_disagreeing == 2);
  CHECK(m.digests.empty());
}

TEST_CASE("a timeout and bad flags anywhere reach every process", "[cpu]") {
  CallReport p0, p1, p2;
  p1.timeout = GpuTimeout{"rank 1 timed out waiting for rank 2", 1, 2, 3};
  p2.timeout = GpuTimeout{"rank 2 timed out waiting for rank 1", 2, 1, 3};
  p2.flags_bad = {2};
  const std::vector<CallReport> reports{p0, p1, p2};
  const MergedCall m = merge_call_reports(reports, 3);
  REQUIRE(m.timeout);
  CHECK(m.timeout->rank == 1);
  CHECK(m.flags_bad == std::vector<int>{2});
}
