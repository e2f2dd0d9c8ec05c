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
    "Rank 0 listens on the port; every process must present the same token ($MNNVL_AR_TOKEN, the file\n"
    "$MNNVL_AR_TOKEN_FILE, or --token-file; --spawn makes one up). A process uses GPU LOCAL_RANK % (GPUs it\n"
    "sees); several ranks may share a GPU (they time-slice: right for checking bits, not for timing). With W\n"
    "ranks and P processes each process runs W / P of them (W must be a multiple of P). Before any kernel\n"
    "runs the processes compare what they will do and refuse, naming the difference; a process that dies\n"
    "makes the others stop within the timeouts, naming it. Only rank 0 prints results; every process exits\n"
    "with the same code when the job ends normally. Memory is shared through POSIX file descriptors on one\n"
    "host or fabric handles across hosts (--handles; see SPEC section 8).";

void add_job_options(po::options_description& options, JobOptions& job) {
  options.add_options()
      ("rendezvous", po::value(&job.rendezvous)->default_value(""),
       "HOST:PORT where rank 0 listens (default: MASTER_ADDR:MASTER_PORT or the launcher's)")
      ("token-file", po::value(&job.token_file)->default_value(""),
       "file holding the job's shared token (default: $MNNVL_AR_TOKEN, else $MNNVL_AR_TOKEN_FILE)")
      ("rendezvous-timeout-ms", po::value(&job.timeout_ms)->default_value(60000),
       "how long any process waits for a peer (joining, gathering results) before giving up");
}

}  // namespace ar
