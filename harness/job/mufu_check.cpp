#include "harness/job/mufu_check.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "reference/fused_quant.h"
#include "reference/mufu.h"
#include "reference/quant_formats.h"

namespace ar {
namespace {

constexpr std::uint64_t kInputs = std::uint64_t{1} << 32;

/// Compares results [begin, end) of a chunk whose inputs are (first + i) * stride.
struct SliceResult {
  std::uint64_t differ = 0;
  std::vector<MufuDifference> first;
};

SliceResult compare_slice(const MufuSweepSpec& spec, std::span<const std::uint32_t> hardware, std::uint64_t first,
                          std::uint64_t stride, std::size_t begin, std::size_t end) {
  SliceResult r;
  for (std::size_t i = begin; i < end; ++i) {
    const auto x = static_cast<std::uint32_t>((first + i) * stride);
    const std::uint32_t model = mufu_model(spec, x);
    if (model == hardware[i]) continue;
    ++r.differ;
    if (r.first.size() < kMufuKeptDifferences) r.first.push_back({x, hardware[i], model});
  }
  return r;
}

}  // namespace

std::vector<MufuSweepSpec> mufu_check_sweeps() {
  std::vector<MufuSweepSpec> sweeps{{MufuOp::kRsqrt, 0}, {MufuOp::kRsqrtNoFtz, 0}, {MufuOp::kRcp, 0}};
  for (const float b : kMufuDivisors) sweeps.push_back({MufuOp::kDiv, std::bit_cast<std::uint32_t>(b)});
  sweeps.push_back({MufuOp::kDivHashed, 0});
  sweeps.push_back({MufuOp::kE4m3, 0});
  sweeps.push_back({MufuOp::kDivByE4m3Max, kE4m3LargestFp32});
  sweeps.push_back({MufuOp::kE2m1, 0});
  return sweeps;
}

std::string mufu_sweep_name(const MufuSweepSpec& spec) {
  switch (spec.op) {
    case MufuOp::kRsqrt: return "rsqrt.approx.ftz.f32(x)";
    case MufuOp::kRsqrtNoFtz: return "rsqrt.approx.f32(x)";
    case MufuOp::kRcp: return "rcp.approx.ftz.f32(x)";
    case MufuOp::kDiv: return fmt::format("div.approx.ftz.f32(a, {})", std::bit_cast<float>(spec.divisor));
    case MufuOp::kE4m3: return "cvt.rn.satfinite.e4m3x2.f32(x)";
    case MufuOp::kE2m1: return "e2m1(x), computed (no cvt on sm_90)";
    case MufuOp::kDivByE4m3Max: return "div.approx.ftz.f32(a, 448 constant)";
    case MufuOp::kDivHashed: break;
  }
  return "div.approx.ftz.f32(hash(b), b)";
}

MufuOperands mufu_operands(const MufuSweepSpec& spec, std::uint32_t x) {
  switch (spec.op) {
    case MufuOp::kRsqrt:
    case MufuOp::kRsqrtNoFtz:
    case MufuOp::kRcp:
    case MufuOp::kE4m3:
    case MufuOp::kE2m1: return {x, 0};
    case MufuOp::kDiv:
    case MufuOp::kDivByE4m3Max: return {x, spec.divisor};
    case MufuOp::kDivHashed: break;
  }
  return {mufu_hashed_dividend(x), x};
}

std::uint32_t mufu_model(const MufuSweepSpec& spec, std::uint32_t x) {
  switch (spec.op) {
    case MufuOp::kRsqrt: return rsqrt_approx_ftz_bits(x);
    case MufuOp::kRsqrtNoFtz: return rsqrt_approx_bits(x);
    case MufuOp::kRcp: return rcp_approx_ftz_bits(x);
    case MufuOp::kE4m3: return e4m3_from_fp32(x);
    case MufuOp::kE2m1: return e2m1_from_fp32(x);
    case MufuOp::kDivByE4m3Max:
    case MufuOp::kDiv:
    case MufuOp::kDivHashed: break;
  }
  const MufuOperands o = mufu_operands(spec, x);
  return div_approx_ftz_bits(o.a, o.b);
}

MufuSweepResult run_mufu_sweep(GpuMufuSweep& gpu, const MufuSweepSpec& spec, const MufuCheckOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const std::uint64_t stride = std::max<std::uint64_t>(options.stride, 1);
  const std::uint64_t total = (kInputs + stride - 1) / stride;
  const unsigned threads = std::max(options.threads, 1u);
  MufuSweepResult result{spec, total, 0, {}, 0};
  std::vector<SliceResult> slices(threads);
  for (std::uint64_t first = 0; first < total; first += gpu.chunk()) {
    const std::uint64_t count = std::min(gpu.chunk(), total - first);
    const std::span<const std::uint32_t> hardware = gpu.run(spec.op, first, count, stride, spec.divisor);
    // Contiguous slices, so each thread's first differences come in input order and the merge below
    // keeps the chunk's first ones.
    std::vector<std::jthread> workers;
    for (unsigned t = 0; t < threads; ++t) {
      const std::size_t begin = count * t / threads, end = count * (t + 1) / threads;
      workers.emplace_back(
          [&, t, begin, end] { slices[t] = compare_slice(spec, hardware, first, stride, begin, end); });
    }
    workers.clear();  // joins
    for (const SliceResult& s : slices) {
      result.differ += s.differ;
      for (const MufuDifference& d : s.first)
        if (result.first.size() < kMufuKeptDifferences) result.first.push_back(d);
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

namespace {

/// Deltas of `op` over the canonical inputs first .. first + table.size() - 1, entry i at table[i].
void capture_deltas(GpuMufuSweep& gpu, MufuOp op, std::uint32_t first, std::vector<std::int8_t>& table) {
  for (std::uint64_t done = 0; done < table.size(); done += gpu.chunk()) {
    const std::uint64_t count = std::min<std::uint64_t>(gpu.chunk(), table.size() - done);
    const std::span<const std::uint32_t> hardware = gpu.run(op, first + done, count, 1, 0);
    for (std::uint64_t i = 0; i < count; ++i) {
      const auto x = static_cast<std::uint32_t>(first + done + i);
      const std::uint32_t predicted = op == MufuOp::kRsqrt ? rsqrt_predictor_bits(x) : rcp_predictor_bits(x);
      const std::int64_t delta = std::int64_t{hardware[i]} - std::int64_t{predicted};
      if (delta < -128 || delta > 127)
        throw std::runtime_error(fmt::format("{}(0x{:08x}) is 0x{:08x}, {} ulp from the predictor's 0x{:08x}",
                                             op == MufuOp::kRsqrt ? "rsqrt" : "rcp", x, hardware[i], delta, predicted));
      table[done + i] = static_cast<std::int8_t>(delta);
    }
  }
}

}  // namespace

MufuCapture capture_mufu_tables(GpuMufuSweep& gpu) {
  MufuCapture c{std::vector<std::int8_t>(kRsqrtDeltaEntries), std::vector<std::int8_t>(kRcpDeltaEntries)};
  // rsqrt's canonical inputs, [1, 4), are one run of bit patterns from 1.0 (exponent fields 127 and 128);
  // entry ((E & 1) << 23) | m puts the even field's half first, so capture the two halves apart.
  std::vector<std::int8_t> odd(kRsqrtDeltaEntries / 2), even(kRsqrtDeltaEntries / 2);
  capture_deltas(gpu, MufuOp::kRsqrt, 0x3F800000u, odd);
  capture_deltas(gpu, MufuOp::kRsqrt, 0x40000000u, even);
  std::copy(even.begin(), even.end(), c.rsqrt.begin());
  std::copy(odd.begin(), odd.end(), c.rsqrt.begin() + kRsqrtDeltaEntries / 2);
  capture_deltas(gpu, MufuOp::kRcp, 0x3F800000u, c.rcp);
  return c;
}

}  // namespace ar
