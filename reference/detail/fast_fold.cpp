// Why this equals the scalar model bit for bit:
// - x86 SSE adds are IEEE binary32 RN-even. With MXCSR.DAZ a subnormal operand is read as a zero of the same
//   sign, and with MXCSR.FTZ a subnormal result becomes a zero of the same sign: exactly add.ftz.f32. Where
//   tininess is detected does not matter, because a sum of two floats that lands below 2^-126 is exact.
// - NaNs: x86 keeps payloads and gives 0xFFC00000 for Inf - Inf, the GPU gives 0x7FFFFFFF. A NaN never
//   turns back into a number, so canonicalising once, when narrowing, gives the same bits.
// - -0 inputs are sanitised while widening, as the kernels do before storing.
// - The exact order (invariant profile) sums in doubles. A double holds the sum exactly when every partial
//   sum is a multiple of the smallest input's last bit below 2^53 of them; double_sum_is_exact checks that from
//   the largest and smallest magnitudes, and the rare element that fails it (or holds a NaN or an Inf) goes
//   to reduce_element. An exact double rounded once to T is the exact sum rounded once.
// The tests compare this engine with reduce_element on every case they have.
#include "reference/detail/fast_fold.h"

#include <array>
#include <bit>
#include <cstring>
#include <vector>

#include "reference/exact_sum.h"
#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "reference/fold.h"
#include "reference/reduction_order.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#define AR_HAVE_MXCSR 1
#else
#define AR_HAVE_MXCSR 0
#endif

namespace ar::detail {
namespace {

constexpr std::int64_t kBlock = 1024;  // elements folded together; the accumulators stay in L1

#if AR_HAVE_MXCSR
/// Sets MXCSR to round-to-nearest, all exceptions masked, FTZ+DAZ on or off; restores it on exit.
class MxcsrScope {
 public:
  explicit MxcsrScope(bool ftz_daz) : saved_(_mm_getcsr()) {
    constexpr unsigned kMaskAll = 0x1F80, kFtz = 0x8000, kDaz = 0x0040;
    _mm_setcsr(kMaskAll | (ftz_daz ? kFtz | kDaz : 0u));
  }
  ~MxcsrScope() { _mm_setcsr(saved_); }
  MxcsrScope(const MxcsrScope&) = delete;
  MxcsrScope& operator=(const MxcsrScope&) = delete;

 private:
  unsigned saved_;
};
#endif

const std::array<std::uint32_t, 65536>& fp16_widen_table() {
  static const auto table = [] {
    std::array<std::uint32_t, 65536> t{};
    for (std::uint32_t h = 0; h < 65536; ++h)
      t[h] = widen_to_fp32(sanitize_negative_zero(h, DType::kFp16), DType::kFp16);
    return t;
  }();
  return table;
}

template <DType T>
struct Storage;
template <>
struct Storage<DType::kBf16> {
  using Word = std::uint16_t;
  static float widen(Word h, const std::uint32_t*) {
    return std::bit_cast<float>(h == 0x8000u ? 0u : std::uint32_t(h) << 16);
  }
};
template <>
struct Storage<DType::kFp16> {
  using Word = std::uint16_t;
  static float widen(Word h, const std::uint32_t* table) { return std::bit_cast<float>(table[h]); }
};
template <>
struct Storage<DType::kFp32> {
  using Word = std::uint32_t;
  static float widen(Word w, const std::uint32_t*) { return std::bit_cast<float>(w == 0x80000000u ? 0u : w); }
};

// acc[j] (+)= widen(plane[j]) for j < n. Kept out of line so no float operation can move across the
// MXCSR change made by the caller.
template <DType T>
[[gnu::noinline]] void accumulate(float* __restrict acc, const typename Storage<T>::Word* __restrict plane,
                                  std::int64_t n, const std::uint32_t* table) {
  for (std::int64_t j = 0; j < n; ++j) acc[j] = acc[j] + Storage<T>::widen(plane[j], table);
}

template <DType T>
[[gnu::noinline]] void assign(float* __restrict acc, const typename Storage<T>::Word* __restrict plane, std::int64_t n,
                              const std::uint32_t* table) {
  for (std::int64_t j = 0; j < n; ++j) acc[j] = Storage<T>::widen(plane[j], table);
}

[[gnu::noinline]] void add_into(float* __restrict acc, const float* __restrict chunk, std::int64_t n) {
  for (std::int64_t j = 0; j < n; ++j) acc[j] = acc[j] + chunk[j];
}

template <DType T>
void narrow_block(const float* acc, std::int64_t n, bool sanitize_result, typename Storage<T>::Word* out) {
  for (std::int64_t j = 0; j < n; ++j) {
    std::uint32_t bits = std::bit_cast<std::uint32_t>(acc[j]);
    const bool nan = (bits & 0x7FFFFFFFu) > 0x7F800000u;
    std::uint32_t narrowed;
    if constexpr (T == DType::kFp32) {
      narrowed = nan ? 0x7FFFFFFFu : bits;
    } else if constexpr (T == DType::kBf16) {
      // RN-even on the integer pattern; carries run into the exponent and overflow to Inf by themselves.
      narrowed = nan ? 0x7FFFu : (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    } else {
      narrowed = narrow_from_fp32(bits, DType::kFp16);
    }
    const std::uint32_t negative_zero = T == DType::kFp32 ? 0x80000000u : 0x8000u;
    if (sanitize_result && narrowed == negative_zero) narrowed = 0;
    out[j] = static_cast<typename Storage<T>::Word>(narrowed);
  }
}

template <DType T>
void exact_fold_typed(const typename Storage<T>::Word* planes, int world, std::int64_t count, const ReductionOrder& order,
                      typename Storage<T>::Word* out) {
  const std::uint32_t* table = T == DType::kFp16 ? fp16_widen_table().data() : nullptr;
  std::vector<double> sum(kBlock);
  std::vector<std::uint32_t> largest(kBlock), smallest(kBlock);  // |x| bits; smallest non-zero |x| bits - 1
  std::vector<std::uint32_t> element(static_cast<std::size_t>(world));
  for (std::int64_t begin = 0; begin < count; begin += kBlock) {
    const std::int64_t n = std::min(kBlock, count - begin);
    std::fill_n(sum.data(), n, 0.0);
    std::fill_n(largest.data(), n, 0u);
    std::fill_n(smallest.data(), n, 0xFFFFFFFFu);
    for (int r = 0; r < world; ++r) {
      const auto* plane = planes + r * count + begin;
      for (std::int64_t j = 0; j < n; ++j) {
        const float x = Storage<T>::widen(plane[j], table);
        const std::uint32_t magnitude = std::bit_cast<std::uint32_t>(x) & 0x7FFFFFFFu;
        sum[j] += static_cast<double>(x);
        largest[j] = std::max(largest[j], magnitude);
        smallest[j] = std::min(smallest[j], magnitude - 1u);  // a zero wraps to the largest value: ignored
      }
    }
    for (std::int64_t j = 0; j < n; ++j) {
      std::uint32_t bits;
      if (largest[j] < 0x7F800000u && double_sum_is_exact(largest[j], smallest[j] + 1u, world, float_format(T))) {
        bits = round_from_double(sum[j], float_format(T));
      } else {  // a NaN or an Inf, or magnitudes too far apart for a double: the scalar model
        for (int r = 0; r < world; ++r) element[r] = planes[r * count + begin + j];
        bits = reduce_element(element, T, order);
      }
      out[begin + j] = static_cast<typename Storage<T>::Word>(bits);
    }
  }
}

template <DType T>
void fold_typed(const std::byte* planes_bytes, int world, std::int64_t count, const ReductionOrder& order,
                std::byte* out_bytes) {
  using Word = typename Storage<T>::Word;
  const Word* planes = reinterpret_cast<const Word*>(planes_bytes);
  Word* out = reinterpret_cast<Word*>(out_bytes);
  if (order.exact) return exact_fold_typed<T>(planes, world, count, order, out);
  const std::uint32_t* table = T == DType::kFp16 ? fp16_widen_table().data() : nullptr;
  std::vector<float> acc(kBlock), chunk(kBlock);
  const auto plane = [&](int r, std::int64_t begin) { return planes + r * count + begin; };

  for (std::int64_t begin = 0; begin < count; begin += kBlock) {
    const std::int64_t n = std::min(kBlock, count - begin);
    if (order.chunk == 0) {
      int first = 0;
      if (order.seed_with_first) {
        assign<T>(acc.data(), plane(0, begin), n, table);
        first = 1;
      } else {
        std::fill_n(acc.data(), n, 0.0f);
      }
      for (int r = first; r < world; ++r) accumulate<T>(acc.data(), plane(r, begin), n, table);
    } else {
      std::fill_n(acc.data(), n, 0.0f);
      for (int c = 0; c < order.chunk_count(); ++c) {
        std::fill_n(chunk.data(), n, 0.0f);
        for (int r = c * order.chunk; r < (c + 1) * order.chunk; ++r)
          accumulate<T>(chunk.data(), plane(r, begin), n, table);
        add_into(acc.data(), chunk.data(), n);
      }
    }
    narrow_block<T>(acc.data(), n, order.sanitize_result, out + begin);
  }
}

}  // namespace

bool fast_fold_planes(const std::byte* planes, int world, std::int64_t count, DType t, const ReductionOrder& order,
                      std::byte* out) {
#if AR_HAVE_MXCSR
  const MxcsrScope fpu(order.ftz);
  switch (t) {
    case DType::kBf16: fold_typed<DType::kBf16>(planes, world, count, order, out); break;
    case DType::kFp16: fold_typed<DType::kFp16>(planes, world, count, order, out); break;
    case DType::kFp32: fold_typed<DType::kFp32>(planes, world, count, order, out); break;
  }
  return true;
#else
  (void)planes, (void)world, (void)count, (void)t, (void)order, (void)out;
  return false;
#endif
}

}  // namespace ar::detail
