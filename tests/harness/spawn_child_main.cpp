// A minimal rank for the spawn tests: reads its place in the job from the launcher variables, joins the
// rendezvous, and all-gathers its rank. Mode "die" makes rank 1 exit right after joining, as a crash would.
#include <unistd.h>
#include <cstdio>
#include <cstring>
#include <string>

#include "harness/job/launcher_env.h"
#include "harness/job/rendezvous.h"
#include "harness/job/rendezvous_auth.h"

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "gather";
  const ar::LaunchInfo info = ar::detect_launch(ar::process_environment());
  ar::RendezvousOptions o;
  o.rank = info.rank;
  o.world_size = info.world_size;
  o.address = info.address;
  o.port = info.port;
  o.token = mode == "wrong-token" ? "not the job's token" : ar::token_from_environment();
  o.timeout = std::chrono::milliseconds(4000);
  try {
    ar::Rendezvous rv(o);
    if (mode == "die" && info.rank == 1) _exit(3);
    const auto all = rv.all_gather(std::to_string(info.rank));
    rv.barrier();
    return all.size() == static_cast<std::size_t>(info.world_size) ? 0 : 4;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
