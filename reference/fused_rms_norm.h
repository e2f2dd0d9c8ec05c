// The fused all-reduce + residual-add + RMSNorm (non-quantised) of FlashInfer, bit for bit (SPEC section 7):
// `pre = AR + residual` in T, `residual_out = pre`, then each row's sum of squares along the kernel's own
// summation tree (per-thread sums, warp butterflies, the block's second level, the cluster's DSMEM slots),
// the scale `rsqrt(sum / D + eps)` through the approximate operations given, and the strategy's own order
// of the two output multiplications, narrowed once to T.
//
// The tree comes from the launch shape (fused_launch.h), so the normalised bits depend on N and the SM count;
// `residual_out` depends on neither.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "reference/all_reduce.h"
#include "reference/approx_math.h"
#include "reference/fused_launch.h"
#include "reference/rsqrt_rn.h"
#include "reference/tensor.h"

namespace ar {

/// The arithmetic of one row's norm besides its launch shape.
struct NormArithmetic {
  std::uint32_t epsilon = 0;      ///< fp32 bits, as the kernel holds it (narrowed on the host)
  std::uint32_t weight_bias = 0;  ///< fp32 bits; 0 for plain RMSNorm, 1.0 for Gemma-style (1 + gamma)
  bool ftz = true;                ///< fp32 adds, multiplies and fmas flush (-use_fast_math): flushes_subnormals
  /// The rsqrt's input is fma(sum, reciprocal(float(D)), eps): fast-math's rcp.approx, or the invariant
  /// profile's correctly rounded 1/D (one division fewer on a row's critical path). False (ieee): a build
  /// without fast-math, div.rn(sum, float(D)) + eps.
  bool reciprocal_fma = true;
  ApproxMath approx;
};

/// One warp's butterfly as seen by its lane 0: the value after each xor step (masks 16, 8, 4, 2, 1).
struct ButterflyTrace {
  int lanes = 32;  ///< lanes that exist; a partial warp reads +0 from the missing ones
  std::array<std::uint32_t, 5> lane0{};
  std::uint32_t sum() const { return lane0[4]; }
};

/// One block's reduction (blockReduceSum<float, true>, CUH:728-787).
struct BlockTrace {
  std::vector<std::uint32_t> thread_sums;  ///< per threadIdx.x; +0 for threads without a pack
  std::vector<ButterflyTrace> warps;       ///< first level, one per warp
  ButterflyTrace second_level;             ///< warp sums (then +0) butterflied again; lane 0 is the block sum
  std::uint32_t sum() const { return second_level.sum(); }
};

/// Everything one row's scale went through.
struct RowTrace {
  std::vector<BlockTrace> blocks;               ///< per block of the row's cluster (blockIdx.y)
  std::vector<std::uint32_t> cluster_partials;  ///< the DSMEM fold after slot 0, 1, ... (empty without one)
  std::uint32_t sum = 0;                        ///< the row's sum of squares as the kernel has it
  std::uint32_t hidden_as_fp32 = 0;             ///< float(D)
  std::uint32_t hidden_reciprocal = 0;          ///< rcp.approx(float(D)), or 1/D rounded once (invariant)
  std::uint32_t mean = 0;                       ///< div.rn(sum, float(D)) (ieee profile)
  std::uint32_t rsqrt_input = 0;                ///< fma(sum, hidden_reciprocal, eps), or mean + eps (ieee)
  std::uint32_t rsqrt_output = 0;               ///< the scale every element of the row is multiplied by
};

/// One row: `all_reduced`, `residual` and `gamma` hold D values of T (bits). Writes D values of T to
/// `normalized` and `residual_out`; fills `trace` when given. Returns the row's scale (fp32 bits).
std::uint32_t fused_rms_norm_row(const NormLaunch& launch, const NormArithmetic& arithmetic,
                        std::span<const std::uint32_t> all_reduced, std::span<const std::uint32_t> residual,
                        std::span<const std::uint32_t> gamma, std::span<std::uint32_t> normalized,
                        std::span<std::uint32_t> residual_out, RowTrace* trace = nullptr);

/// The scale of a row whose sum of squares is `sum` (step 7 of docs/fused.md): `rsqrt(fma(sum, rcp(float(D)),
/// eps))` (FTZ under fast-math; the invariant profile without FTZ, with 1/D and the rsqrt correctly rounded),
/// `rsqrt(div.rn(sum, float(D)) + eps)` under ieee. Fills the trace's `sum` and the fields from
/// `hidden_as_fp32` on when given.
std::uint32_t row_scale(const NormArithmetic& arithmetic, std::int64_t hidden, std::uint32_t sum,
                        RowTrace* trace = nullptr);

/// The normalised value of one element before its narrowing to T (fp32 bits): `pre` and `gamma` in T, `scale`
/// the row's, each strategy's order of the two products. What TWOSHOT's dynamic FP8 quantises.
std::uint32_t normalized_fp32(const NormLaunch& launch, const NormArithmetic& arithmetic, std::uint32_t pre,
                              std::uint32_t gamma, std::uint32_t scale);

/// Python's default epsilon, `torch.finfo(dtype).eps` (PY:567-568), as the fp32 the kernel holds: 2^-7 for
/// bf16, 2^-10 for fp16, 2^-23 for fp32. (The C++ op's own default, 1e-5, is reachable only by calling it
/// directly.)
constexpr std::uint32_t default_epsilon(DType t) {
  switch (t) {
    case DType::kBf16: return 0x3C000000u;
    case DType::kFp16: return 0x3A800000u;
    case DType::kFp32: break;
  }
  return 0x34000000u;
}

struct FusedOptions {
  Strategy strategy = Strategy::kAuto;  ///< AUTO resolves by the all-reduce's 1 MiB rule
  /// kFlashInfer (FTZ everywhere) or kIeee (no FTZ: a build without fast-math, whose division is the IEEE
  /// div.rn.f32 and whose rsqrt does not flush; `approx` must then model those).
  Profile profile = Profile::kFlashInfer;
  int sm_count = kDefaultSmCount;
  std::uint32_t epsilon = 0;      ///< fp32 bits (fp32_from_double(eps))
  std::uint32_t weight_bias = 0;  ///< fp32 bits
  /// The MUFU models; none = the GPU's for the profile (kGpuApproxMath, or kGpuApproxMathNoFtz for ieee).
  std::optional<ApproxMath> approx;
  /// kScalar: the all-reduce's scalar model and fused_rms_norm_row on every row (the definition). kFast: the
  /// fast fold, then rows with the common case's arithmetic inline and per-call work done once; the tests
  /// prove it equal to kScalar.
  Engine engine = Engine::kFast;
};

/// The arithmetic FusedOptions asks for: its epsilon and weight bias, FTZ unless the profile is ieee, and its
/// MUFU models (none given: the GPU's for the profile). Does not check them (reference_fused_rms_norm does).
NormArithmetic norm_arithmetic(const FusedOptions& options);

struct FusedResult {
  HostTensor normalized;    ///< [N, D]
  HostTensor residual_out;  ///< [N, D]
  std::vector<std::uint32_t> row_scales;  ///< [N] each row's scale, rsqrt's output (fp32 bits)
  NormLaunch launch;
  /// The GPU's normalised output is undefined for this shape: ONESHOT threads beyond the row return before
  /// the block reduction (NormLaunch::exited_threads). The model then counts them as +0; residual_out is
  /// still exact.
  bool normalized_undefined_on_gpu = false;
};

/// The whole fused call: `input` [W, N, D] (every rank's shard), `residual` [N, D], `gamma` [D], all of one
/// dtype. Throws std::invalid_argument naming the problem for a shape, dtype, profile or launch that cannot
/// run (Profile::kTrtllm's fused norm is not modelled).
FusedResult reference_fused_rms_norm(const HostTensor& input, const HostTensor& residual, const HostTensor& gamma,
                                     const FusedOptions& options);

/// One element of the fused output and how it came about, for `explain`.
struct FusedElementExplanation {
  NormLaunch launch;
  std::int64_t token = 0;
  std::int64_t index = 0;                                ///< d, within the row
  PackOwner owner;                                       ///< the block and thread that load its pack
  int warp = 0;                                          ///< owner.thread / 32
  int lane = 0;                                          ///< owner.thread % 32
  int slot = 0;                                          ///< its place in the pack (the inner loop of the thread's sum)
  std::uint32_t all_reduced = 0, residual = 0, pre = 0;  ///< T bits; pre is also residual_out
  std::uint32_t gamma = 0;                               ///< T bits
  std::uint32_t gamma_term = 0;                          ///< weight_bias + f(gamma), fp32
  std::uint32_t first_product = 0;                       ///< ONESHOT f(pre)*rcp; TWOSHOT (wb + f(gamma))*f(pre)
  std::uint32_t second_product = 0;                      ///< the fp32 value narrowed to the output
  std::uint32_t normalized = 0;                          ///< T bits
  RowTrace row;
  bool normalized_undefined_on_gpu = false;
};

FusedElementExplanation explain_fused_element(const HostTensor& input, const HostTensor& residual,
                                              const HostTensor& gamma, const FusedOptions& options, std::int64_t token,
                                              std::int64_t index);

}  // namespace ar
