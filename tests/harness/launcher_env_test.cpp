#include <catch2/catch.hpp>

#include <map>

#include "harness/io/exit_codes.h"
#include "harness/job/launcher_env.h"

using namespace ar;

namespace {
EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}
}  // namespace

TEST_CASE("torchrun variables", "[cpu]") {
  const auto i = detect_launch(env_of({{"RANK", "3"},
                                       {"WORLD_SIZE", "8"},
                                       {"LOCAL_RANK", "1"},
                                       {"LOCAL_WORLD_SIZE", "2"},
                                       {"MASTER_ADDR", "node7"},
                                       {"MASTER_PORT", "29501"}}));
  CHECK(i.launcher == "torchrun");
  CHECK(i.rank == 3);
  CHECK(i.world_size == 8);
  CHECK(i.local_rank == 1);
  CHECK(i.local_world_size == 2);
  CHECK(i.address == "node7");
  CHECK(i.port == 29501);
}

TEST_CASE("Slurm variables and node lists", "[cpu]") {
  const auto i = detect_launch(env_of({{"SLURM_PROCID", "5"},
                                       {"SLURM_NTASKS", "16"},
                                       {"SLURM_LOCALID", "1"},
                                       {"SLURM_NTASKS_PER_NODE", "4(x4)"},
                                       {"SLURM_JOB_NODELIST", "gpu-[003-005,010]"},
                                       {"SLURM_JOB_ID", "123"}}));
  CHECK(i.launcher == "slurm");
  CHECK(i.rank == 5);
  CHECK(i.local_world_size == 4);
  CHECK(i.address == "gpu-003");
  CHECK(i.port == 20123);
  CHECK(first_host_of_nodelist("a1,b2") == "a1");
  CHECK(first_host_of_nodelist("solo") == "solo");
  CHECK(first_host_of_nodelist("n[7]") == "n7");
}

TEST_CASE("Open MPI and PMI variables", "[cpu]") {
  const auto ompi = detect_launch(env_of({{"OMPI_COMM_WORLD_RANK", "2"},
                                          {"OMPI_COMM_WORLD_SIZE", "4"},
                                          {"OMPI_COMM_WORLD_LOCAL_RANK", "2"},
                                          {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}));
  CHECK(ompi.launcher == "openmpi");
  CHECK(ompi.rank == 2);
  CHECK(ompi.address.empty());  // MPI names no rendezvous host: MASTER_ADDR must
  const auto pmi = detect_launch(env_of({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"MASTER_ADDR", "h"}}));
  CHECK(pmi.launcher == "pmi");
  CHECK(pmi.local_rank == 1);
  CHECK(pmi.address == "h");
}

TEST_CASE("no launcher: a single rank on loopback", "[cpu]") {
  const auto i = detect_launch(env_of({}));
  CHECK(i.launcher == "single");
  CHECK(i.world_size == 1);
  CHECK(i.address == "127.0.0.1");
}

TEST_CASE("malformed variables are named", "[cpu]") {
  CHECK_THROWS_WITH(detect_launch(env_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}})), Catch::Contains("RANK='x'"));
  CHECK_THROWS_WITH(detect_launch(env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}})), Catch::Contains("not below"));
  CHECK_THROWS_WITH(detect_launch(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "0"}})),
                    Catch::Contains("MASTER_PORT"));
  // A port past 65535 is refused, not wrapped onto another port (99999 would listen on 34463).
  CHECK_THROWS_WITH(detect_launch(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "99999"}})),
                    Catch::Contains("MASTER_PORT='99999' is not a valid number (from 1 to 65535)"));
  CHECK(detect_launch(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "65535"}})).port == 65535);
  CHECK_THROWS_WITH(detect_launch(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_ID", "12x"}})),
                    Catch::Contains("SLURM_JOB_ID='12x'"));
  CHECK(detect_launch(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_ID", "123456789"}})).port ==
        20000 + 123456789 % 20000);
}

TEST_CASE("GPU choice from the local rank", "[cpu]") {
  LaunchInfo i;
  i.local_rank = 5;
  i.local_world_size = 8;
  CHECK(choose_device(i, 8).device == 5);
  CHECK_FALSE(choose_device(i, 8).shared);
  CHECK(choose_device(i, 2).device == 1);
  CHECK(choose_device(i, 2).shared);
}

TEST_CASE("under torchrun's agent store, rank 0 listens past MASTER_PORT", "[cpu]") {
  // torchrun's agent serves the workers' torch.distributed store on MASTER_PORT and says so.
  std::map<std::string, std::string> vars{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                                          {"MASTER_PORT", "29500"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"}};
  CHECK(detect_launch(env_of(vars)).port == 29501);
  vars["TORCHELASTIC_USE_AGENT_STORE"] = "False";  // the agent's store is elsewhere: MASTER_PORT is free
  CHECK(detect_launch(env_of(vars)).port == 29500);
  vars["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  vars["MASTER_PORT"] = "65535";
  CHECK_THROWS_WITH(detect_launch(env_of(vars)), Catch::Contains("MASTER_PORT=65535 is torchrun's own store"));
}
