#include "reference/fused_rms_norm.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "reference/all_reduce.h"
#include "reference/detail/fast_norm.h"
#include "reference/float_ops.h"

namespace ar {
namespace {

constexpr int kWarpSize = 32;
constexpr std::array<int, 5> kXorMasks{16, 8, 4, 2, 1};
using Lanes = std::array<std::uint32_t, kWarpSize>;

// warpReduceSumFull / warpReduceSumPartial (CUH:616-662): at each step every lane adds its partner's value
// (`val += shfl_xor`), or +0 when the partner lies beyond the `lanes` that exist. All lanes are kept, since
// later steps read what earlier ones left in other lanes.
ButterflyTrace butterfly(Lanes values, int lanes, bool ftz) {
  ButterflyTrace trace;
  trace.lanes = lanes;
  for (std::size_t level = 0; level < kXorMasks.size(); ++level) {
    Lanes next{};
    for (int i = 0; i < lanes; ++i) {
      const int partner = i ^ kXorMasks[level];
      next[i] = add_fp32(values[i], partner < lanes ? values[partner] : 0u, ftz);
    }
    values = next;
    trace.lane0[level] = values[0];
  }
  return trace;
}

// blockReduceSum<float, true> (CUH:728-787). With a partial last warp, that warp butterflies over its
// existing lanes only; then warp 0 butterflies the warp sums padded with +0 (over the block's own lanes when
// the block is a single partial warp). Without one, every warp does both levels over 32 lanes.
BlockTrace reduce_block(std::vector<std::uint32_t> thread_sums, bool ftz) {
  BlockTrace block;
  const int size = static_cast<int>(thread_sums.size());
  const int warp_count = (size + kWarpSize - 1) / kWarpSize;
  const bool partial = size % kWarpSize != 0;
  Lanes warp_sums{};
  for (int w = 0; w < warp_count; ++w) {
    const int lanes = std::min(kWarpSize, size - w * kWarpSize);
    Lanes values{};
    std::copy_n(thread_sums.begin() + w * kWarpSize, lanes, values.begin());
    block.warps.push_back(butterfly(values, lanes, ftz));
    warp_sums[w] = block.warps.back().sum();
  }
  block.second_level = butterfly(warp_sums, partial && warp_count == 1 ? size : kWarpSize, ftz);
  block.thread_sums = std::move(thread_sums);
  return block;
}

// One thread's sum of squares from +0: ONESHOT squares in T (mul.rn, CUH:1010) and adds the widened square
// with add.ftz.f32, except fp32 where the multiply-add contracts to an fma; TWOSHOT (and the invariant
// profile) always fmas the widened value (CUH:1433-1439). Loads outer, the pack's elements inner.
std::uint32_t thread_sum(const NormLaunch& launch, const NormArithmetic& arithmetic, std::span<const std::uint32_t> pre,
                         int block_rank, int thread) {
  const DType t = launch.dtype;
  const bool square_in_t = launch.squares_in_t;
  std::uint32_t acc = 0;
  for (int load = 0; load < launch.loads_per_thread(); ++load) {
    const int pack = pack_of(launch, block_rank, thread, load);
    if (pack < 0) continue;
    for (int j = 0; j < launch.elements_per_pack; ++j) {
      const std::uint32_t x = pre[static_cast<std::size_t>(pack) * launch.elements_per_pack + j];
      if (square_in_t) {
        acc = add_fp32(acc, widen_to_fp32(mul_native(x, x, t), t), arithmetic.ftz);
      } else {
        const std::uint32_t f = widen_to_fp32(x, t);
        acc = fma_fp32(f, f, acc, arithmetic.ftz);
      }
    }
  }
  return acc;
}

struct ElementProducts {
  std::uint32_t gamma_term = 0, first = 0, second = 0;
};

// The output of one element: ONESHOT (f(pre) * rcp) * (wb + f(gamma)) (CUH:1032-1033), TWOSHOT and the
// invariant profile ((wb + f(gamma)) * f(pre)) * rcp (CUH:1477-1478). `wb + f(gamma)` is a real add even for
// wb = 0.
ElementProducts element_products(const NormLaunch& launch, const NormArithmetic& arithmetic, std::uint32_t pre,
                                 std::uint32_t gamma, std::uint32_t scale) {
  const DType t = launch.dtype;
  ElementProducts p;
  p.gamma_term = add_fp32(arithmetic.weight_bias, widen_to_fp32(gamma, t), arithmetic.ftz);
  const std::uint32_t value = widen_to_fp32(pre, t);
  if (!launch.gamma_first) {
    p.first = mul_fp32(value, scale, arithmetic.ftz);
    p.second = mul_fp32(p.first, p.gamma_term, arithmetic.ftz);
  } else {
    p.first = mul_fp32(p.gamma_term, value, arithmetic.ftz);
    p.second = mul_fp32(p.first, scale, arithmetic.ftz);
  }
  return p;
}

struct Prepared {
  ProblemShape shape;
  NormLaunch launch;
  NormArithmetic arithmetic;
  HostTensor all_reduced;  // [N, D]
};

Prepared prepare(const HostTensor& input, const HostTensor& residual, const HostTensor& gamma,
                 const FusedOptions& options) {
  Prepared p;
  p.shape = shape_of_input(input);
  if (auto why = validate_shape(p.shape)) throw std::invalid_argument(*why);
  const DType t = p.shape.dtype;
  if (residual.dtype() != t || gamma.dtype() != t)
    throw std::invalid_argument("residual and gamma must have the input's dtype " + std::string(dtype_name(t)));
  if (residual.shape() != std::vector<std::int64_t>{p.shape.tokens, p.shape.hidden})
    throw std::invalid_argument("the residual must be [N, D] = [" + std::to_string(p.shape.tokens) + ", " +
                                std::to_string(p.shape.hidden) + "]");
  if (gamma.shape() != std::vector<std::int64_t>{p.shape.hidden})
    throw std::invalid_argument("gamma must be [D] = [" + std::to_string(p.shape.hidden) + "]");
  if (options.profile == Profile::kTrtllm)
    throw std::invalid_argument("the fused norm is modelled for the flashinfer, ieee and invariant profiles only");
  p.arithmetic = norm_arithmetic(options);
  if (!p.arithmetic.approx.complete())
    throw std::invalid_argument("the fused norm needs models of rsqrt.approx and rcp.approx");
  const Strategy resolved = resolve_strategy(options.strategy, p.shape);
  p.launch = norm_launch_for(options.profile, resolved, p.shape.tokens, p.shape.hidden, t, options.sm_count);
  p.all_reduced = reference_all_reduce(input, resolved, options.profile, options.engine);
  return p;
}

}  // namespace

NormArithmetic norm_arithmetic(const FusedOptions& options) {
  const auto math = [](Profile p) {
    switch (p) {
      case Profile::kIeee: return kGpuApproxMathNoFtz;
      case Profile::kInvariant: return kCorrectlyRoundedMath;
      case Profile::kFlashInfer:
      case Profile::kTrtllm: break;
    }
    return kGpuApproxMath;
  };
  return {options.epsilon, options.weight_bias, flushes_subnormals(options.profile),
          options.profile != Profile::kIeee, options.approx.value_or(math(options.profile))};
}

std::uint32_t row_scale(const NormArithmetic& arithmetic, std::int64_t hidden, std::uint32_t sum, RowTrace* trace) {
  RowTrace local;
  RowTrace& row = trace != nullptr ? *trace : local;
  row.sum = sum;
  // rsqrtf(sum / D + eps) (CUH:1029, 1465), D converted exactly. Under fast-math the division is
  // rcp.approx(D) and a multiply, which ptxas fuses with the add into one fma (approx_math.h); without it,
  // an IEEE division and a separate add. The invariant profile takes the fma with 1/D rounded once.
  row.hidden_as_fp32 = fp32_from_integer(static_cast<std::uint64_t>(hidden));
  if (arithmetic.reciprocal_fma) {
    row.hidden_reciprocal = arithmetic.approx.reciprocal(row.hidden_as_fp32);
    row.rsqrt_input = fma_fp32(row.sum, row.hidden_reciprocal, arithmetic.epsilon, arithmetic.ftz);
  } else {
    row.mean = div_fp32(row.sum, row.hidden_as_fp32);
    row.rsqrt_input = add_fp32(row.mean, arithmetic.epsilon, /*ftz=*/false);
  }
  row.rsqrt_output = arithmetic.approx.rsqrt(row.rsqrt_input);
  return row.rsqrt_output;
}

std::uint32_t fused_rms_norm_row(const NormLaunch& launch, const NormArithmetic& arithmetic,
                        std::span<const std::uint32_t> all_reduced, std::span<const std::uint32_t> residual,
                        std::span<const std::uint32_t> gamma, std::span<std::uint32_t> normalized,
                        std::span<std::uint32_t> residual_out, RowTrace* trace) {
  const DType t = launch.dtype;
  const auto width = static_cast<std::size_t>(launch.hidden);
  if (all_reduced.size() != width || residual.size() != width || gamma.size() != width || normalized.size() != width ||
      residual_out.size() != width)
    throw std::invalid_argument("every row of the fused norm holds D = " + std::to_string(width) + " values");

  // The residual add in T: native 16-bit add (one rounding, no flushing), or the fp32 add (CUH:997, 1428).
  for (std::size_t d = 0; d < width; ++d)
    residual_out[d] = t == DType::kFp32 ? add_fp32(all_reduced[d], residual[d], arithmetic.ftz)
                                        : add_native(all_reduced[d], residual[d], t);
  const std::span<const std::uint32_t> pre = residual_out;

  RowTrace local;
  RowTrace& row = trace != nullptr ? *trace : local;
  row = RowTrace{};
  for (int b = 0; b < launch.cluster_size(); ++b) {
    std::vector<std::uint32_t> sums(static_cast<std::size_t>(launch.block_size()));
    for (int thread = 0; thread < launch.block_size(); ++thread)
      sums[static_cast<std::size_t>(thread)] = thread_sum(launch, arithmetic, pre, b, thread);
    row.blocks.push_back(reduce_block(std::move(sums), arithmetic.ftz));
  }
  // The cluster: every block folds the DSMEM slots 0..cs-1 from +0 in the same order (CUH:1016-1028,
  // 1448-1463), so all get the same bits. A single block keeps its own sum.
  if (launch.cluster_launch && launch.cluster_size() > 1) {
    std::uint32_t acc = 0;
    for (const BlockTrace& block : row.blocks) {
      acc = add_fp32(acc, block.sum(), arithmetic.ftz);
      row.cluster_partials.push_back(acc);
    }
    row.sum = acc;
  } else {
    row.sum = row.blocks.front().sum();
  }
  row.rsqrt_output = row_scale(arithmetic, launch.hidden, row.sum, &row);

  for (std::size_t d = 0; d < width; ++d) {
    const ElementProducts p = element_products(launch, arithmetic, pre[d], gamma[d], row.rsqrt_output);
    normalized[d] = narrow_from_fp32(p.second, t);
  }
  return row.rsqrt_output;
}

std::uint32_t normalized_fp32(const NormLaunch& launch, const NormArithmetic& arithmetic, std::uint32_t pre,
                              std::uint32_t gamma, std::uint32_t scale) {
  return element_products(launch, arithmetic, pre, gamma, scale).second;
}

FusedResult reference_fused_rms_norm(const HostTensor& input, const HostTensor& residual, const HostTensor& gamma,
                                     const FusedOptions& options) {
  Prepared p = prepare(input, residual, gamma, options);
  const std::int64_t n = p.shape.tokens, width = p.shape.hidden;
  FusedResult result;
  result.normalized = HostTensor(p.shape.dtype, {n, width}, HostTensor::kUninitialized);
  result.residual_out = HostTensor(p.shape.dtype, {n, width}, HostTensor::kUninitialized);
  result.launch = p.launch;
  result.normalized_undefined_on_gpu = p.launch.exited_threads() > 0;
  result.row_scales.resize(static_cast<std::size_t>(n));
  if (options.engine == Engine::kFast) {
    detail::fast_fused_rows(p.launch, p.arithmetic, p.all_reduced, residual, gamma, result.normalized,
                            result.residual_out, result.row_scales);
    return result;
  }
  const std::vector<std::uint32_t> gamma_bits = gamma.bits_range(0, width);
  std::vector<std::uint32_t> normalized(static_cast<std::size_t>(width)), residual_out(normalized.size());
  for (std::int64_t token = 0; token < n; ++token) {
    result.row_scales[static_cast<std::size_t>(token)] =
        fused_rms_norm_row(p.launch, p.arithmetic, p.all_reduced.bits_range(token * width, width),
                           residual.bits_range(token * width, width), gamma_bits, normalized, residual_out);
    for (std::int64_t d = 0; d < width; ++d) {
      result.normalized.set_bits(token * width + d, normalized[static_cast<std::size_t>(d)]);
      result.residual_out.set_bits(token * width + d, residual_out[static_cast<std::size_t>(d)]);
    }
  }
  return result;
}

FusedElementExplanation explain_fused_element(const HostTensor& input, const HostTensor& residual,
                                              const HostTensor& gamma, const FusedOptions& options, std::int64_t token,
                                              std::int64_t index) {
  Prepared p = prepare(input, residual, gamma, options);
  const std::int64_t width = p.shape.hidden;
  if (token < 0 || token >= p.shape.tokens || index < 0 || index >= width)
    throw std::out_of_range("element [" + std::to_string(token) + ", " + std::to_string(index) + "] is outside [" +
                            std::to_string(p.shape.tokens) + ", " + std::to_string(width) + "]");
  FusedElementExplanation e;
  e.launch = p.launch;
  e.token = token;
  e.index = index;
  e.normalized_undefined_on_gpu = p.launch.exited_threads() > 0;
  const int pack = static_cast<int>(index / p.launch.elements_per_pack);
  e.owner = pack_owner(p.launch, pack);
  e.warp = e.owner.thread / kWarpSize;
  e.lane = e.owner.thread % kWarpSize;
  e.slot = static_cast<int>(index % p.launch.elements_per_pack);

  const std::vector<std::uint32_t> ar_row = p.all_reduced.bits_range(token * width, width);
  const std::vector<std::uint32_t> residual_row = residual.bits_range(token * width, width);
  const std::vector<std::uint32_t> gamma_row = gamma.bits_range(0, width);
  std::vector<std::uint32_t> normalized(static_cast<std::size_t>(width)), residual_out(normalized.size());
  fused_rms_norm_row(p.launch, p.arithmetic, ar_row, residual_row, gamma_row, normalized, residual_out, &e.row);
  const auto d = static_cast<std::size_t>(index);
  e.all_reduced = ar_row[d];
  e.residual = residual_row[d];
  e.pre = residual_out[d];
  e.gamma = gamma_row[d];
  const ElementProducts products =
      element_products(p.launch, p.arithmetic, e.pre, e.gamma, e.row.rsqrt_output);
  e.gamma_term = products.gamma_term;
  e.first_product = products.first;
  e.second_product = products.second;
  e.normalized = normalized[d];
  return e;
}

}  // namespace ar
