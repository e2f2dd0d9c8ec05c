// Helpers of the [gpu] tests: run one call on a virtual-rank group and compare every rank's output with
// reference/ bit for bit, and every rank's flags with reference advance_flags().
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cuda/virtual_group.h"
#include "reference/bit_diff.h"
#include "reference/workspace.h"

namespace ar::test {

/// The reference's view of every rank's flags, advanced call by call.
struct FlagsModel {
  std::vector<LamportFlags> ranks;
  explicit FlagsModel(const cuda::VirtualGroup& g);
};

struct CallCheck {
  std::int64_t elements = 0;    ///< compared, over all ranks
  std::int64_t mismatches = 0;  ///< differing elements, over all ranks
  int first_rank = -1;          ///< the first rank that differs
  BitDiff first;                ///< its diff
  bool flags_match = true;
  std::string flags_detail;
  std::optional<cuda::WaitError> wait;
  std::string quant_detail;      ///< the first quantised byte or scale that differs
  std::string describe() const;  ///< for failure messages
};

/// Uploads `input`, poisons the outputs, runs `call`, compares. Updates `model` when given.
CallCheck run_and_check(cuda::VirtualGroup& g, const HostTensor& input, const cuda::VirtualGroup::Call& call,
                        FlagsModel* model = nullptr);

/// The inputs of a fused call besides the all-reduce's: residual [N, D], gamma [D], and the arithmetic.
struct NormInputs {
  HostTensor residual;
  HostTensor gamma;
  cuda::NormArguments arguments;  ///< its `quant` set: a quantised call
  std::uint32_t quant_scale = 0x3F800000u;  ///< fp32 bits of the output_scale (static FP8, NVFP4)
};

/// Seeded random residual and gamma for `shape` (full mantissas, exponents within +-`spread` of 0), with
/// eps = the dtype's default, weight bias `weight_bias` (fp32 bits) and the tree of `sm_count` SMs.
NormInputs random_norm_inputs(const ProblemShape& shape, std::uint64_t seed, int spread, std::uint32_t weight_bias,
                              int sm_count);

/// The fused call: uploads everything, poisons the outputs, runs `call` (whose norm is set from `norm`)
/// and compares every rank's normalised output and residual_out with reference_fused_rms_norm bit for bit
/// (both counted in elements and mismatches; residual_out read from the residual for a call in place), and a
/// quantised call's codes and scales with quantize_fused (every byte of the codes, every token scale, NVFP4's
/// scale byte of every block). Updates `model` when given.
CallCheck run_and_check_fused(cuda::VirtualGroup& g, const HostTensor& input, const NormInputs& norm,
                              cuda::VirtualGroup::Call call, FlagsModel* model = nullptr);

/// A group for W ranks whose workspace fits every shape in `shapes` under every strategy.
cuda::VirtualGroup::Options group_options(int world, const std::vector<ProblemShape>& shapes);

/// Every golden case (harness/golden_cases.h) under every strategy, both kernel profiles and PDL off and on,
/// on one group per world size made from `options(world, shapes)`; REQUIREs every call bit-exact with the
/// flags the reference predicts. Returns the calls run.
using GroupOptionsFor = std::function<cuda::VirtualGroup::Options(int world, const std::vector<ProblemShape>& shapes)>;
int run_every_golden_case(const GroupOptionsFor& options);

/// The fused calls of a sweep, how many of them took the register rows' kernels, and how many of those computed
/// each row by several blocks (replica_plan).
struct LaunchSweep {
  int calls = 0, register_calls = 0, replicated_calls = 0;
  /// The plan of the fused `call` with `norm`'s arguments, counted (not its calls: the sweep counts those).
  cuda::LaunchPlan plan(cuda::VirtualGroup& g, cuda::VirtualGroup::Call call, const NormInputs& norm);
};

/// "W=4 bf16 N=5 D=32 oneshot/flashinfer pdl=on"
std::string label(const cuda::VirtualGroup::Call& call);

}  // namespace ar::test
