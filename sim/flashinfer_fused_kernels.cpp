// FlashInfer's fused residual-add + RMSNorm calls (SPEC sections 4.2, 6 and 7; Protocol::kFlashInfer) as the
// simulator runs them: the programs of the fused TWOSHOT's two kernels, and the cluster arrival of the fused
// launches. sim/flashinfer_kernels.cpp steps their phases; the norm's arithmetic is not modelled (it is local to
// a rank and reads nothing of the protocol's memory): what each kernel polls is checked as the call's all-reduce
// result, the `AR_T` of SPEC 7 that `residual_out` and the norm start from.
//
// ONESHOT fused: the ONESHOT program in the norm's cluster launch (reference norm_launch: grid (N, cs), cs blocks
// of bs threads per token, one pack per thread), so CTA (t, b) handles packs b*bs .. b*bs + bs - 1 of token t.
//   3. arrive: every block arrives on the cluster barrier; cluster block 0 waits for the others and increments
//      the counter once for the cluster. CTA 0 waits for N arrivals.
// TWOSHOT fused, the all-reduce kernel (WaitForResults = false), CTA (token t, lanes), rank r:
//   1. read the flags                     4. clear dirty stage 0
//   2. scatter the pack to owner t % W    5. owner: poll SCATTER, fold, store the sum into BROADCAST[t] of every
//   3. trigger (launch_dependents)           rank, its own included
//                                         6. clear dirty stage 1
//   No arrival, no BROADCAST poll, no flag update.
// TWOSHOT fused, rmsNormLamport (norm_launch: a cluster (N, cs) or one CTA per token of bs threads and up to 8
// loads each), CTA (token t, packs of its block), rank r; launched once every CTA of the all-reduce kernel has
// triggered. Its own trigger, at its very start, is not modelled: the next call's kernel waits at its top for
// this grid to complete, so launching that kernel early changes nothing.
//   1. read the flags, before its griddepcontrol.wait (the all-reduce kernel does not modify them)
//   2. arrive, after issuing its loads: the cluster arrival, or bar_cta_sync + red_release_gpu_add_u32
//   3. poll each of its BROADCAST[t] packs until clean (checked as the call's all-reduce result)
//   4. griddepcontrol.wait: the all-reduce kernel has completed
//   5. CTA 0: wait for N arrivals, store the flags (S = 2, {round_up(N,W)*D*E, N*D*E}), reset the counter.
//   It clears nothing.
#include <algorithm>
#include <array>
#include <span>

#include "sim/detail/kernel_support.h"

namespace ar::sim::detail {
namespace {

constexpr std::array kTwoShotFusedAllReduce{Phase::kReadFlagsLow, Phase::kReadFlagsHigh, Phase::kScatter,
                                            Phase::kTrigger,      Phase::kClearStage0,   Phase::kReduce,
                                            Phase::kClearStage1,  Phase::kDone};
constexpr std::array kRmsNormLamport{
    Phase::kReadFlagsLow, Phase::kReadFlagsHigh, Phase::kArrive,         Phase::kGather,       Phase::kGridSync,
    Phase::kWaitArrivals, Phase::kStoreFlagsLow, Phase::kStoreFlagsHigh, Phase::kResetCounter, Phase::kDone};
// The fused-ar-updates-flags mutation: the all-reduce kernel also arrives and rotates the flags, as its unfused
// form does (with the arrival variant's order as well).
constexpr std::array kTwoShotFusedAllReduceUpdating{
    Phase::kReadFlagsLow,   Phase::kReadFlagsHigh, Phase::kScatter, Phase::kTrigger,      Phase::kClearStage0,
    Phase::kReduce,         Phase::kClearStage1,   Phase::kArrive,  Phase::kWaitArrivals, Phase::kStoreFlagsLow,
    Phase::kStoreFlagsHigh, Phase::kResetCounter,  Phase::kDone};
constexpr std::array kTwoShotFusedAllReduceUpdatingEarly{
    Phase::kReadFlagsLow,   Phase::kReadFlagsHigh, Phase::kArrive,      Phase::kScatter,      Phase::kTrigger,
    Phase::kClearStage0,    Phase::kReduce,        Phase::kClearStage1, Phase::kWaitArrivals, Phase::kStoreFlagsLow,
    Phase::kStoreFlagsHigh, Phase::kResetCounter,  Phase::kDone};

/// Position of the arrival in the CTA's program.
std::uint8_t arrive_pc(const KernelEnv& env) {
  const std::span<const Phase> p = flashinfer_program(env);
  return static_cast<std::uint8_t>(std::find(p.begin(), p.end(), Phase::kArrive) - p.begin());
}

}  // namespace

std::span<const Phase> flashinfer_fused_program(const KernelEnv& env) {
  if (!env.call.fused || env.call.strategy != Strategy::kTwoShot) return {};
  if (env.grid.kernel == Kernel::kNorm) return kRmsNormLamport;
  if (env.config.mutation != Mutation::kFusedArUpdatesFlags) return kTwoShotFusedAllReduce;
  return env.config.arrival == Arrival::kAfterFlags ? std::span<const Phase>(kTwoShotFusedAllReduceUpdatingEarly)
                                                    : kTwoShotFusedAllReduceUpdating;
}

bool waits_at_cluster_barrier(const CtaState& c, const KernelEnv& env) {
  return env.grid.cluster_launch && c.phase(env) == Phase::kArrive && c.sub == 1;
}

void step_cluster_arrive(CtaState& c, KernelEnv& env) {
  if (c.sub == 0) {
    // Every thread of every block arrives; the blocks other than cluster block 0 go on without waiting.
    env.ops.barrier_cluster_arrive();
    if (c.index % static_cast<std::uint32_t>(env.grid.cluster) == 0)
      c.sub = 1;
    else
      next_pc(c);
    return;
  }
  // Cluster block 0, once every block has arrived (the simulator holds it until then): its warp 0 waits, and
  // its thread 0 increments the counter once for the whole cluster.
  env.ops.barrier_cluster_wait();
  env.ops.red_release_gpu_add_u32({c.rank, env.flags_word + kArrivalWord}, 1);
  next_pc(c);
}

bool reads_unpolled(const KernelEnv& env) {
  return env.grid.kernel == Kernel::kNorm && env.config.mutation == Mutation::kNormReadsUnpolled;
}

}  // namespace ar::sim::detail

namespace ar::sim {

bool past_cluster_arrival(const CtaState& member, const KernelEnv& env) {
  if (member.status == CtaStatus::kDone) return true;
  if (member.status == CtaStatus::kUndispatched) return false;
  const std::uint8_t pc = detail::arrive_pc(env);
  return member.pc > pc || (member.pc == pc && member.sub == 1);
}

}  // namespace ar::sim
