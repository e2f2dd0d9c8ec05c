// Why this equals fused_rms_norm_row bit for bit:
// - Every operation is the model's, in the model's order: each fast path of fast_float_ops.h answers only
//   where it gives the model's bits, and the model (with the profile's FTZ flag) answers the rest.
// - `wb + f(gamma)` depends on neither the row nor the launch, so it is computed once per call.
// - A warp's butterfly is computed only on the lanes that lane 0's result reads: after the step with mask m,
//   lane 0 depends on lanes 0..m-1 alone, and lane i < m reads itself and lane i + m. The model's other lanes
//   hold values that lane 0 never reads.
// - Only block 0 is summed when the blocks' sums are not folded (a launch without a cluster has one block).
// tests/reference/fast_norm_test.cpp compares the two engines on random and edge rows of every dtype,
// strategy and profile (the invariant one included), over launches with clusters, partial warps and exited threads.
#include "reference/detail/fast_norm.h"

#include <algorithm>
#include <array>
#include <type_traits>
#include <vector>

#include "reference/detail/fast_float_ops.h"
#include "reference/float_ops.h"

namespace ar::detail {
namespace {

constexpr int kWarpSize = 32;
using Lanes = std::array<std::uint32_t, kWarpSize>;

[[gnu::always_inline]] inline std::uint32_t add32(std::uint32_t a, std::uint32_t b, bool ftz) {
  if (const auto r = fast_add<kFp32Format>(a, b)) return *r;
  return add_fp32(a, b, ftz);
}

[[gnu::always_inline]] inline std::uint32_t mul32(std::uint32_t a, std::uint32_t b, bool ftz) {
  if (const auto r = fast_mul<kFp32Format>(a, b)) return *r;
  return mul_fp32(a, b, ftz);
}

[[gnu::always_inline]] inline std::uint32_t fma32(std::uint32_t a, std::uint32_t b, std::uint32_t c, bool ftz) {
  if (const auto r = fast_fma_fp32(a, b, c)) return *r;
  return fma_fp32(a, b, c, ftz);
}

// Lane 0 of butterfly(values, lanes): lanes at or beyond `lanes` read as +0.
std::uint32_t butterfly_lane0(Lanes& values, int lanes, bool ftz) {
  for (int mask = kWarpSize / 2; mask >= 1; mask /= 2)
    for (int i = 0; i < std::min(mask, lanes); ++i)
      values[i] = add32(values[i], i + mask < lanes ? values[i + mask] : 0u, ftz);
  return values[0];
}

template <DType T>
class RowEngine {
 public:
  using Word = std::conditional_t<T == DType::kFp32, std::uint32_t, std::uint16_t>;
  static constexpr FloatFormat kFormat = float_format(T);

  RowEngine(const NormLaunch& launch, const NormArithmetic& arithmetic, const Word* gamma)
      : launch_(launch),
        arithmetic_(arithmetic),
        ftz_(arithmetic.ftz),
        width_(static_cast<std::size_t>(launch.hidden)),
        gamma_terms_(width_),
        wide_(width_) {
    for (std::size_t d = 0; d < width_; ++d)
      gamma_terms_[d] = add_fp32(arithmetic.weight_bias, widen_to_fp32(gamma[d], T), ftz_);
  }

  std::uint32_t run(const Word* all_reduced, const Word* residual, Word* normalized, Word* residual_out) {
    for (std::size_t d = 0; d < width_; ++d) {
      const std::uint32_t pre = residual_add(all_reduced[d], residual[d]);
      residual_out[d] = static_cast<Word>(pre);
      wide_[d] = widen(pre);
    }
    std::uint32_t sum = 0;
    if (launch_.cluster_launch && launch_.cluster_size() > 1) {
      for (int b = 0; b < launch_.cluster_size(); ++b) sum = add32(sum, block_sum(residual_out, b), ftz_);
    } else {
      sum = block_sum(residual_out, 0);
    }
    const std::uint32_t scale = row_scale(arithmetic_, launch_.hidden, sum);
    if (!launch_.gamma_first) {
      for (std::size_t d = 0; d < width_; ++d)
        normalized[d] = narrow(mul32(mul32(wide_[d], scale, ftz_), gamma_terms_[d], ftz_));
    } else {
      for (std::size_t d = 0; d < width_; ++d)
        normalized[d] = narrow(mul32(mul32(gamma_terms_[d], wide_[d], ftz_), scale, ftz_));
    }
    return scale;
  }

 private:
  std::uint32_t residual_add(std::uint32_t a, std::uint32_t b) const {
    if constexpr (T == DType::kFp32) {
      return add32(a, b, ftz_);
    } else {
      if (const auto r = fast_add<kFormat>(a, b)) return *r;
      return add_native(a, b, T);
    }
  }

  static std::uint32_t widen(std::uint32_t x) {
    if (const auto r = fast_widen<T>(x)) return *r;
    return widen_to_fp32(x, T);
  }

  static Word narrow(std::uint32_t x) {
    if (const auto r = fast_narrow<T>(x)) return static_cast<Word>(*r);
    return static_cast<Word>(narrow_from_fp32(x, T));
  }

  // The thread's sum of squares from +0, loads outer and the pack's elements inner: a launch that squares in
  // T (ONESHOT's, 16-bit) adds the widened square, every other fmas the widened value.
  std::uint32_t thread_sum(const Word* pre, int block, int thread) const {
    const bool square_in_t = launch_.squares_in_t;
    const auto elements = static_cast<std::size_t>(launch_.elements_per_pack);
    std::uint32_t acc = 0;
    for (int load = 0; load < launch_.loads_per_thread(); ++load) {
      const int pack = pack_of(launch_, block, thread, load);
      if (pack < 0) continue;
      const std::size_t first = static_cast<std::size_t>(pack) * elements;
      if (square_in_t) {
        for (std::size_t i = first; i < first + elements; ++i) {
          const auto square = fast_mul<kFormat>(pre[i], pre[i]);
          acc = add32(acc, widen(square ? *square : mul_native(pre[i], pre[i], T)), ftz_);
        }
      } else {
        for (std::size_t i = first; i < first + elements; ++i) acc = fma32(wide_[i], wide_[i], acc, ftz_);
      }
    }
    return acc;
  }

  // blockReduceSum: each warp's butterfly, then the warp sums (padded with +0) butterflied again, over the
  // block's own lanes when it is one partial warp.
  std::uint32_t block_sum(const Word* pre, int block) const {
    const int size = launch_.block_size();
    const int warp_count = (size + kWarpSize - 1) / kWarpSize;
    Lanes warp_sums{};
    for (int w = 0; w < warp_count; ++w) {
      const int lanes = std::min(kWarpSize, size - w * kWarpSize);
      Lanes values{};
      for (int i = 0; i < lanes; ++i) values[i] = thread_sum(pre, block, w * kWarpSize + i);
      warp_sums[w] = butterfly_lane0(values, lanes, ftz_);
    }
    const bool partial = size % kWarpSize != 0;
    return butterfly_lane0(warp_sums, partial && warp_count == 1 ? size : kWarpSize, ftz_);
  }

  const NormLaunch& launch_;
  const NormArithmetic& arithmetic_;
  bool ftz_;
  std::size_t width_;
  std::vector<std::uint32_t> gamma_terms_;  // wb + f(gamma), fp32
  std::vector<std::uint32_t> wide_;         // f(pre) of the current row
};

template <DType T>
void rows_typed(const NormLaunch& launch, const NormArithmetic& arithmetic, const HostTensor& all_reduced,
                const HostTensor& residual, const HostTensor& gamma, HostTensor& normalized, HostTensor& residual_out,
                std::span<std::uint32_t> row_scales) {
  using Word = typename RowEngine<T>::Word;
  const auto storage = [](const HostTensor& t) { return reinterpret_cast<const Word*>(t.bytes().data()); };
  const auto writable = [](HostTensor& t) { return reinterpret_cast<Word*>(t.bytes().data()); };
  RowEngine<T> engine(launch, arithmetic, storage(gamma));
  const std::int64_t width = launch.hidden;
  for (std::int64_t token = 0; token < all_reduced.dim(0); ++token) {
    const std::int64_t row = token * width;
    row_scales[static_cast<std::size_t>(token)] = engine.run(storage(all_reduced) + row, storage(residual) + row, writable(normalized) + row,
               writable(residual_out) + row);
  }
}

}  // namespace

void fast_fused_rows(const NormLaunch& launch, const NormArithmetic& arithmetic, const HostTensor& all_reduced,
                     const HostTensor& residual, const HostTensor& gamma, HostTensor& normalized,
                     HostTensor& residual_out, std::span<std::uint32_t> row_scales) {
  switch (launch.dtype) {
    case DType::kBf16:
      rows_typed<DType::kBf16>(launch, arithmetic, all_reduced, residual, gamma, normalized, residual_out, row_scales);
      break;
    case DType::kFp16:
      rows_typed<DType::kFp16>(launch, arithmetic, all_reduced, residual, gamma, normalized, residual_out, row_scales);
      break;
    case DType::kFp32:
      rows_typed<DType::kFp32>(launch, arithmetic, all_reduced, residual, gamma, normalized, residual_out, row_scales);
      break;
  }
}

}  // namespace ar::detail
