#include "harness/commands/fused_explain.h"

#include <ostream>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "reference/explain.h"

namespace ar {
namespace {

std::string upper(Strategy s) { return s == Strategy::kOneShot ? "ONESHOT" : "TWOSHOT"; }

bool is_zero(std::uint32_t bits, DType t) { return (bits & (t == DType::kFp32 ? 0x7FFFFFFFu : 0x7FFFu)) == 0; }

void print_launch(std::ostream& out, const FusedElementExplanation& e) {
  const NormLaunch& l = e.launch;
  fmt::print(out, "launch ({}): {}, {} block(s) of {} threads (bs), {} load(s) per thread, {} packs of {} a row\n",
             upper(l.strategy), l.cluster_launch ? "a cluster launch" : "no cluster", l.cluster_size(), l.block_size(),
             l.loads_per_thread(), l.packs_per_row, l.elements_per_pack);
  fmt::print(out, "  [{}, {}] is element {} of pack {}: block {} (blockIdx.y), thread {} = warp {} lane {}, load {}\n",
             e.token, e.index, e.slot, e.index / l.elements_per_pack, e.owner.block_rank, e.owner.thread, e.warp,
             e.lane, e.owner.load);
}

void print_butterfly(std::ostream& out, const char* label, const ButterflyTrace& b) {
  fmt::print(out, "  {} ({} lanes{}), lane 0 after each xor step:\n", label, b.lanes,
             b.lanes < 32 ? ", +0 from the missing ones" : "");
  static constexpr int kMasks[] = {16, 8, 4, 2, 1};
  for (int i = 0; i < 5; ++i) fmt::print(out, "    xor {:>2}: {}\n", kMasks[i], format_fp32(b.lane0[i]));
}

void print_sum_tree(std::ostream& out, const FusedElementExplanation& e) {
  const RowTrace& row = e.row;
  const BlockTrace& block = row.blocks.at(static_cast<std::size_t>(e.owner.block_rank));
  fmt::print(out, "sum of squares of row {} (each thread from +0, {}):\n", e.token,
             e.launch.squares_in_t
                 ? "the square in T, widened and added in fp32"
                 : "an fp32 fma of the widened value with itself");
  fmt::print(out, "  thread {} of block {}: {}\n", e.owner.thread, e.owner.block_rank,
             format_fp32(block.thread_sums.at(static_cast<std::size_t>(e.owner.thread))));
  print_butterfly(out, fmt::format("warp {} butterfly", e.warp).c_str(),
                  block.warps.at(static_cast<std::size_t>(e.warp)));
  print_butterfly(
      out, fmt::format("block {} second level over {} warp sums", e.owner.block_rank, block.warps.size()).c_str(),
      block.second_level);
  if (row.cluster_partials.empty()) {
    fmt::print(out, "  no cluster fold: the block sum is the row's\n");
  } else {
    fmt::print(out, "  cluster fold over the DSMEM slots, from +0:\n");
    for (std::size_t b = 0; b < row.blocks.size(); ++b)
      fmt::print(out, "    + block {} {} = {}\n", b, format_fp32(row.blocks[b].sum()),
                 format_fp32(row.cluster_partials[b]));
  }
  fmt::print(out, "  sum = {}\n", format_fp32(row.sum));
}

void print_scale(std::ostream& out, const FusedElementExplanation& e, const FusedOptions& o) {
  const RowTrace& row = e.row;
  fmt::print(out, "scale: float(D) = {}\n", format_fp32(row.hidden_as_fp32));
  if (!norm_arithmetic(o).reciprocal_fma) {  // as row_scale: ieee divides with div.rn
    fmt::print(out, "  mean = div.rn(sum, float(D)) = {}\n", format_fp32(row.mean));
    fmt::print(out, "  rsqrt input = mean + eps {} = {}\n", format_fp32(o.epsilon), format_fp32(row.rsqrt_input));
  } else {
    fmt::print(out, "  {} = {}\n", o.profile == Profile::kInvariant ? "1/D rounded once" : "rcp(D)",
               format_fp32(row.hidden_reciprocal));
    fmt::print(out, "  rsqrt input = fma(sum, rcp(D), eps {}) = {}\n", format_fp32(o.epsilon),
               format_fp32(row.rsqrt_input));
  }
  fmt::print(out, "  rsqrt output (the row's scale{}) = {}\n",
             o.profile == Profile::kInvariant ? ", correctly rounded" : "", format_fp32(row.rsqrt_output));
}

void print_products(std::ostream& out, const FusedElementExplanation& e, const FusedOptions& o) {
  const DType t = e.launch.dtype;
  fmt::print(out, "output: wb + gamma = {} + {} = {}\n", format_fp32(o.weight_bias), format_value(e.gamma, t),
             format_fp32(e.gamma_term));
  if (!e.launch.gamma_first) {
    fmt::print(out, "  ONESHOT (f(pre) * scale) * (wb + gamma):\n    f(pre) * scale = {}\n",
               format_fp32(e.first_product));
  } else {
    fmt::print(out, "  {} ((wb + gamma) * f(pre)) * scale:\n    (wb + gamma) * f(pre) = {}\n",
               o.profile == Profile::kInvariant ? "invariant" : "TWOSHOT", format_fp32(e.first_product));
  }
  fmt::print(out, "    second product = {}\n  narrowed to {}: {}\n", format_fp32(e.second_product), dtype_name(t),
             format_value(e.normalized, t));
}

void print_element(std::ostream& out, const FusedElementExplanation& e, const FusedOptions& o) {
  const DType t = e.launch.dtype;
  print_launch(out, e);
  fmt::print(out, "pre = all-reduce {} + residual {} = {} (also the residual output)\n", format_value(e.all_reduced, t),
             format_value(e.residual, t), format_value(e.pre, t));
  print_sum_tree(out, e);
  print_scale(out, e, o);
  print_products(out, e, o);
  if (e.normalized_undefined_on_gpu) fmt::print(out, "warning: {}\n", undefined_norm_warning(e.launch));
}

// Where ONESHOT-fused and TWOSHOT-fused part for this element, checked in the order the kernel computes.
std::string where_they_part(const FusedElementExplanation& one, const FusedElementExplanation& two, DType t) {
  if (one.normalized == two.normalized)
    return fmt::format("ONESHOT-fused and TWOSHOT-fused give the same bits for this element: {}",
                       format_value(one.normalized, t));
  const std::string head = fmt::format("ONESHOT-fused gives {}, TWOSHOT-fused {}: ", format_value(one.normalized, t),
                                       format_value(two.normalized, t));
  if (one.pre != two.pre) {
    if (is_zero(one.all_reduced, t) && is_zero(two.all_reduced, t))
      return head + fmt::format(
                        "they part at the residual add, the -0 case: ONESHOT's all-reduce is {}, TWOSHOT's "
                        "sanitised {}, so pre is {} against {}",
                        format_value(one.all_reduced, t), format_value(two.all_reduced, t), format_value(one.pre, t),
                        format_value(two.pre, t));
    return head + fmt::format(
                      "the all-reduce results differ ({} against {}; `explain` without the fused options "
                      "shows why), so pre does too",
                      format_value(one.all_reduced, t), format_value(two.all_reduced, t));
  }
  if (one.row.sum != two.row.sum)
    return head + fmt::format(
                      "a different sum of squares, {} against {} (the launch shapes give different trees{}), "
                      "so a different scale, {} against {}",
                      format_fp32(one.row.sum), format_fp32(two.row.sum),
                      t == DType::kFp32 ? "" : ", and ONESHOT squares in T", format_fp32(one.row.rsqrt_output),
                      format_fp32(two.row.rsqrt_output));
  return head + fmt::format(
                    "the multiplication order: the same scale {}, but ONESHOT's (f(pre) * scale) * (wb + "
                    "gamma) = {} and TWOSHOT's ((wb + gamma) * f(pre)) * scale = {}",
                    format_fp32(one.row.rsqrt_output), format_fp32(one.second_product),
                    format_fp32(two.second_product));
}

}  // namespace

FusedElementExplanation print_fused_explanation(std::ostream& out, const std::string& input_path, const RankInputs& in,
                             const FusedInputs& fused, std::int64_t token, std::int64_t col) {
  const ProblemShape& s = in.shape;
  const FusedElementExplanation main = fused_explanation(input_path, in, fused, token, col);
  fmt::print(out, "fused element [{}, {}] of {}: W = {}, {}, N = {}, D = {}, {}, eps {}, weight bias {}, {} SMs\n\n",
             token, col, input_path, s.world_size, dtype_name(s.dtype), s.tokens, s.hidden,
             profile_name(fused.options.profile), format_fp32(fused.options.epsilon),
             format_fp32(fused.options.weight_bias), fused.options.sm_count);
  print_element(out, main, fused.options);

  FusedInputs other_inputs = fused;
  other_inputs.options.strategy = main.launch.strategy == Strategy::kOneShot ? Strategy::kTwoShot : Strategy::kOneShot;
  fmt::print(out, "\nthe other strategy, {}:\n", upper(other_inputs.options.strategy));
  FusedElementExplanation other;
  try {
    other = explain_fused_element(in.tensor, fused.residual, fused.gamma, other_inputs.options, token, col);
  } catch (const std::invalid_argument& e) {
    fmt::print(out, "  FlashInfer makes no launch for it at this shape: {}\n", e.what());
    return main;
  }
  print_element(out, other, other_inputs.options);
  const bool main_is_one = main.launch.strategy == Strategy::kOneShot;
  fmt::print(out, "\n{}\n", where_they_part(main_is_one ? main : other, main_is_one ? other : main, s.dtype));
  return main;
}

}  // namespace ar
