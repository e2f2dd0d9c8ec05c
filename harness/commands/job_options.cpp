#include "harness/commands/job_options.h"

namespace ar {

const char* const kJobHelp =
    "ranks as processes: one process per GPU (or several ranks per process, several processes per GPU),\n"
    "started by a launcher; the command needs no other argument under it:\n"
    "  torchrun     RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT\n"
    "  Slurm        SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE; rank 0 is the first host\n"
    "               of SLURM_JOB_NODELIST, port 20000 + job id % 20000 (MASTER_ADDR/MASTER_PORT override)\n"
    "  Open MPI     OMPI_COMM_WORLD_RANK/_SIZE/_LOCAL_RANK/_LOCAL_SIZE; MPICH: PMI_RANK, PMI_SIZE (with\n"
    "               MASTER_ADDR and MASTER_PORT, or --rendezvous, naming rank 0's host and a free port)\n"
    "  --spawn K    this command starts K processes on this host itself (rank 0 is this one)\n"
    "Rank 0 listens on the port. A job of several processes needs a token, the same on every process\n"
    "($MNNVL_AR_TOKEN, the file $MNNVL_AR_TOKEN_FILE, or --token-file; --spawn makes its own), and refuses to\n"
    "start without one. The token is never sent: rank 0 and each rank prove to each other that they know it\n"
    "(HMAC-SHA256 over fresh nonces), so a process that takes the port first can neither join nor pose as\n"
    "rank 0. Use a random token of 128 bits or more: export MNNVL_AR_TOKEN=$(openssl rand -hex 16). A process\n"
    "uses GPU LOCAL_RANK % (GPUs it sees); several ranks may share a GPU (they time-slice: right for checking\n"
    "bits, not for timing). With W ranks and P processes each process runs W / P of them (W must be a\n"
    "multiple of P). Before any kernel runs the processes compare what they will do and refuse, naming the\n"
    "difference; a process that dies makes the others stop within the timeouts, naming it. Only rank 0 prints\n"
    "results; every process exits with the same code when the job ends normally. Memory is shared through\n"
    "POSIX file descriptors on one host or fabric handles across hosts (--handles; see SPEC section 8).";

void add_job_options(po::options_description& options, JobOptions& job) {
  // clang-format off
  options.add_options()
      ("rendezvous", po::value(&job.rendezvous)->default_value(""),
       "HOST:PORT where rank 0 listens (default: MASTER_ADDR:MASTER_PORT or the launcher's)")
      ("token-file", po::value(&job.token_file)->default_value(""),
       "file whose first line is the job's token (default: $MNNVL_AR_TOKEN, else the file $MNNVL_AR_TOKEN_FILE)")
      ("rendezvous-timeout-ms", po::value(&job.timeout_ms)->default_value(60000),
       "how long any process waits for a peer (joining, gathering results) before giving up");
  // clang-format on
}

}  // namespace ar
