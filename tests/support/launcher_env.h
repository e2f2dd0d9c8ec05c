// What a launcher gives the processes of a job, for tests that start ranks themselves: the variables the
// job layer reads, a free loopback port for rank 0, and torchrun's settings for one rank.
#pragma once

#include <cstdint>
#include <string>

namespace ar::test {

/// Every variable the job layer reads to find its launcher, its rendezvous and its token
/// (harness/job/launcher_env.cpp, rendezvous.cpp): what a test clears, so that neither the machine's own
/// launcher nor a --spawn test earlier in the same process (it makes its process rank 0) leaks into it.
inline constexpr const char* kLauncherVariables[] = {"RANK",
                                                     "LOCAL_RANK",
                                                     "WORLD_SIZE",
                                                     "LOCAL_WORLD_SIZE",
                                                     "OMPI_COMM_WORLD_RANK",
                                                     "OMPI_COMM_WORLD_SIZE",
                                                     "OMPI_COMM_WORLD_LOCAL_RANK",
                                                     "OMPI_COMM_WORLD_LOCAL_SIZE",
                                                     "PMI_RANK",
                                                     "PMI_SIZE",
                                                     "MPI_LOCALRANKID",
                                                     "MPI_LOCALNRANKS",
                                                     "SLURM_PROCID",
                                                     "SLURM_NTASKS",
                                                     "SLURM_LOCALID",
                                                     "SLURM_NTASKS_PER_NODE",
                                                     "SLURM_JOB_NODELIST",
                                                     "SLURM_NODELIST",
                                                     "SLURM_JOB_ID",
                                                     "MASTER_ADDR",
                                                     "MASTER_PORT",
                                                     "MNNVL_AR_TOKEN",
                                                     "MNNVL_AR_TOKEN_FILE"};

/// A loopback TCP port for a test's rank 0, held for the rest of this process: the OS picks it, and a socket
/// bound to it with SO_REUSEADDR but not listening keeps it. The rank 0 that the test starts (which binds
/// with SO_REUSEADDR too) can listen there, but no other process can take it meanwhile (tests run side by
/// side), and no connection made while rank 0 is not yet listening can be given it as its own end: a
/// connection from a port to itself (TCP's simultaneous open) would otherwise look like rank 0.
std::uint16_t free_port();

/// "RANK=r LOCAL_RANK=r WORLD_SIZE=w LOCAL_WORLD_SIZE=w MASTER_ADDR=127.0.0.1 MASTER_PORT=port": the
/// variables torchrun sets for rank `rank` of `world` processes on this host, as shell assignments.
std::string torchrun_environment(int rank, int world, std::uint16_t port);

}  // namespace ar::test
