// SPEC section 8's handle choice as the processes of a job make it: every branch of the rule, the fall-back
// to POSIX handles on one host with the reasons fabric handles were not possible, and the refusals.
#include <catch2/catch.hpp>

#include "harness/io/exit_codes.h"
#include "harness/job/handle_choice.h"

using namespace ar;

namespace {

// A rank whose GPU allows fabric handles in every respect, on host `host`.
SharingFacts fabric_ready(int rank, const std::string& host = "node-a") {
  SharingFacts f;
  f.rank = rank;
  f.host = host;
  f.host_id = host + "/boot";
  f.posix_supported = true;
  f.fabric_attribute = true;
  f.fabric_state = 3;
  f.fabric_status = 0;
  f.fabric_status_text = "Success";
  f.cluster_uuid_nonzero = true;
  f.imex_directory = true;
  f.imex_channels = 1;
  f.fabric_trial_made = true;
  return f;
}

// What the one-GPU and two-GPU machines of this project report: attribute yes, fabric state completed, but a
// zero cluster UUID and no IMEX channel.
SharingFacts like_the_test_machine(int rank) {
  SharingFacts f = fabric_ready(rank);
  f.cluster_uuid_nonzero = false;
  f.imex_directory = false;
  f.imex_channels = 0;
  f.fabric_trial_made = false;
  return f;
}

}  // namespace

TEST_CASE("the fabric rule of SPEC section 8, rank by rank", "[cpu]") {
  SharingFacts f = fabric_ready(0);
  CHECK_FALSE(fabric_rule_refusal(f));

  SharingFacts no_attribute = f;
  no_attribute.fabric_attribute = false;
  CHECK_THAT(*fabric_rule_refusal(no_attribute), Catch::Contains("HANDLE_TYPE_FABRIC_SUPPORTED = 0"));

  SharingFacts no_nvml = f;
  no_nvml.nvml_error = "libnvidia-ml.so.1 could not be loaded";
  CHECK_THAT(*fabric_rule_refusal(no_nvml), Catch::Contains("NVML gives no fabric state"));

  SharingFacts in_progress = f;
  in_progress.fabric_state = 2;
  CHECK_THAT(*fabric_rule_refusal(in_progress), Catch::Contains("'in progress', not 'completed'"));

  SharingFacts failed = f;
  failed.fabric_status = 999;
  failed.fabric_status_text = "Unknown Error";
  CHECK_THAT(*fabric_rule_refusal(failed), Catch::Contains("registration failed: Unknown Error"));

  CHECK_THAT(*fabric_rule_refusal(like_the_test_machine(0)), Catch::Contains("cluster UUID is all zeros"));
}

TEST_CASE("a trial allocation is made only where it can tell something", "[cpu]") {
  std::vector<SharingFacts> ready{fabric_ready(0), fabric_ready(1)};
  std::vector<SharingFacts> zero_uuid{like_the_test_machine(0), like_the_test_machine(1)};
  CHECK(should_try_fabric(HandleRequest::kAuto, ready));
  CHECK_FALSE(should_try_fabric(HandleRequest::kAuto, zero_uuid));  // the rule already says no
  CHECK(should_try_fabric(HandleRequest::kFabric, zero_uuid));      // asked for: show the driver's own answer
  CHECK_FALSE(should_try_fabric(HandleRequest::kPosix, ready));
  zero_uuid[1].fabric_attribute = false;
  CHECK_FALSE(should_try_fabric(HandleRequest::kFabric, zero_uuid));
}

TEST_CASE("fabric handles when every rank allows them, even across hosts", "[cpu]") {
  const std::vector<SharingFacts> ranks{fabric_ready(0, "node-a"), fabric_ready(1, "node-b")};
  const HandleDecision d = choose_handles(HandleRequest::kAuto, ranks);
  REQUIRE(d.kind);
  CHECK(*d.kind == HandleKind::kFabric);
  CHECK_FALSE(d.one_host);
  CHECK(d.fabric_refusals.empty());
}

TEST_CASE("one host without an NVLink domain falls back to POSIX handles and says why", "[cpu]") {
  const std::vector<SharingFacts> ranks{like_the_test_machine(0), like_the_test_machine(1), like_the_test_machine(2)};
  const HandleDecision d = choose_handles(HandleRequest::kAuto, ranks);
  REQUIRE(d.kind);
  CHECK(*d.kind == HandleKind::kPosix);
  CHECK(d.one_host);
  REQUIRE(d.fabric_refusals.size() == 1);  // one reason, shared by all three ranks
  CHECK_THAT(d.fabric_refusals[0], Catch::StartsWith("ranks 0-2: ") && Catch::Contains("cluster UUID is all zeros") &&
                                       Catch::Contains("/dev/nvidia-caps-imex-channels does not exist"));
  CHECK_THAT(d.summary, Catch::Contains("POSIX file descriptors, all 3 ranks being on one host"));
}

TEST_CASE("fabric asked for but refused by the driver: the driver's words, then POSIX on one host", "[cpu]") {
  std::vector<SharingFacts> ranks{like_the_test_machine(0), like_the_test_machine(1)};
  for (SharingFacts& f : ranks) {
    f.fabric_trial_made = true;
    f.fabric_trial_error = "cuMemCreate(FABRIC): CUDA_ERROR_NOT_PERMITTED (operation not permitted)";
  }
  const HandleDecision d = choose_handles(HandleRequest::kFabric, ranks);
  REQUIRE(d.kind);
  CHECK(*d.kind == HandleKind::kPosix);
  CHECK_THAT(d.summary, Catch::Contains("--handles fabric was asked for, but fabric handles are not possible") &&
                            Catch::Contains("operation not permitted") && Catch::Contains("no IMEX channel"));
}

TEST_CASE("a trial that fails on one rank of a fabric-ready job keeps every rank on POSIX", "[cpu]") {
  std::vector<SharingFacts> ranks{fabric_ready(0), fabric_ready(1)};
  ranks[1].fabric_trial_error = "cuMemCreate(FABRIC): CUDA_ERROR_NOT_PERMITTED (operation not permitted)";
  const HandleDecision d = choose_handles(HandleRequest::kAuto, ranks);
  REQUIRE(d.kind);
  CHECK(*d.kind == HandleKind::kPosix);
  REQUIRE(d.fabric_refusals.size() == 1);
  CHECK_THAT(d.fabric_refusals[0], Catch::StartsWith("rank 1: a trial allocation failed"));
}

TEST_CASE("several hosts without fabric handles are refused, naming the hosts", "[cpu]") {
  std::vector<SharingFacts> ranks{like_the_test_machine(0), like_the_test_machine(1)};
  ranks[1].host = "node-b";
  ranks[1].host_id = "node-b/boot";
  const HandleDecision d = choose_handles(HandleRequest::kAuto, ranks);
  CHECK_FALSE(d.kind);
  CHECK_THAT(d.summary, Catch::Contains("2 hosts") && Catch::Contains("rank 0 on node-a") &&
                            Catch::Contains("rank 1 on node-b") && Catch::Contains("cluster UUID is all zeros"));
  // Asking for POSIX handles across hosts is refused too, whatever fabric could do.
  std::vector<SharingFacts> ready{fabric_ready(0, "node-a"), fabric_ready(1, "node-b")};
  const HandleDecision posix = choose_handles(HandleRequest::kPosix, ready);
  CHECK_FALSE(posix.kind);
  CHECK_THAT(posix.summary, Catch::Contains("of one host only"));
}

TEST_CASE("two containers of one machine are one host: two machines of one name are not", "[cpu]") {
  std::vector<SharingFacts> ranks{like_the_test_machine(0), like_the_test_machine(1)};
  ranks[1].host = "container-2";  // another name, same boot id: the same kernel
  CHECK(choose_handles(HandleRequest::kAuto, ranks).one_host);
  ranks[1].host = "node-a";
  ranks[1].host_id = "node-a/other-boot";
  CHECK_FALSE(choose_handles(HandleRequest::kAuto, ranks).kind);
}

TEST_CASE("a GPU without POSIX handles on one host needs fabric handles", "[cpu]") {
  std::vector<SharingFacts> ranks{like_the_test_machine(0), like_the_test_machine(1)};
  ranks[0].posix_supported = false;
  const HandleDecision d = choose_handles(HandleRequest::kAuto, ranks);
  CHECK_FALSE(d.kind);
  CHECK_THAT(d.summary, Catch::Contains("rank 0 cannot export POSIX"));
}

TEST_CASE("sharing facts travel between ranks as JSON", "[cpu]") {
  SharingFacts f = like_the_test_machine(3);
  f.fabric_trial_made = true;
  f.fabric_trial_error = "operation not permitted";
  const SharingFacts back = SharingFacts::from_json(f.to_json());
  CHECK(back.to_json() == f.to_json());
  CHECK(back.rank == 3);
  CHECK(back.fabric_trial_error == "operation not permitted");
  CHECK_THROWS_WITH(SharingFacts::from_json("{\"rank\": 1}"), Catch::Contains("malformed sharing facts"));
  CHECK_THROWS_WITH(SharingFacts::from_json("not json"), Catch::Contains("malformed sharing facts"));
}

TEST_CASE("handle options and rank lists in words", "[cpu]") {
  CHECK(handle_request_option("auto") == HandleRequest::kAuto);
  CHECK(handle_request_option("fabric") == HandleRequest::kFabric);
  CHECK_THROWS_AS(handle_request_option("ipc"), UsageError);
  CHECK(ranks_text({2}) == "rank 2");
  CHECK(ranks_text({0, 1, 2, 3}) == "ranks 0-3");
  CHECK(ranks_text({0, 2, 5, 6, 7}) == "ranks 0, 2, 5-7");
}
