#include "harness/commands/fused_explain.h"

#include <array>
#include <ostream>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "reference/explain.h"
#include "reference/float_bits.h"
#include "reference/quant_formats.h"

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

std::string e4m3_text(std::uint8_t code) {
  return fmt::format("0x{:02X} ({:.9g})", code, to_double(fp32_from_e4m3(code), DType::kFp32));
}

std::string e2m1_text(std::uint8_t code) {
  return fmt::format("0x{:X} ({:.9g})", code, to_double(fp32_from_e2m1(code), DType::kFp32));
}

const char* division_text(const QuantArithmetic& q) { return q.approx_division ? "div.approx" : "div.rn"; }

// What an e4m3 conversion did with a value beyond its range or a NaN.
std::string e4m3_note(std::uint32_t value, std::uint8_t code) {
  if (is_nan(value, kFp32Format)) return " (a NaN becomes e4m3's NaN, 0x7F)";
  if ((code & 0x7F) == kE4m3Largest && (value & 0x7FFFFFFFu) > kE4m3LargestFp32)
    return " (beyond 448: saturated, satfinite)";
  return "";
}

/// The code of element [token, col] in a quantised output.
std::uint8_t code_at(const QuantizedOutput& q, std::int64_t token, std::int64_t col) {
  const std::int64_t i = token * q.hidden + col;
  if (q.mode != QuantMode::kNvfp4) return q.quant_out.at(static_cast<std::size_t>(i));
  const std::uint8_t byte = q.quant_out.at(static_cast<std::size_t>(i / 2));
  return static_cast<std::uint8_t>(i % 2 == 0 ? byte & 0xF : byte >> 4);
}

void print_static_fp8(std::ostream& out, const QuantArithmetic& q, const QuantOptions& quant, std::uint32_t value,
                      std::int64_t token, std::int64_t col, std::int64_t hidden) {
  const std::uint32_t inverse = quant_reciprocal(q, quant.scale);
  const std::uint32_t product = quant_mul(q, value, inverse);
  const std::uint8_t code = e4m3_from_fp32(product);
  fmt::print(out, "  value = the normalised output widened to fp32 = {}\n", format_fp32(value));
  fmt::print(out, "  1 / output_scale = {}({}) = {}\n", q.approx_division ? "rcp.approx" : "div.rn(1, scale) ",
             format_fp32(quant.scale), format_fp32(inverse));
  fmt::print(out, "  value * (1 / output_scale) = {}\n", format_fp32(product));
  fmt::print(out, "  e4m3 (cvt.rn.satfinite, RN-even) = {}{}\n", e4m3_text(code), e4m3_note(product, code));
  fmt::print(out, "  quant_out[{}, {}] (byte {}) = 0x{:02X}\n", token, col, token * hidden + col, code);
}

void print_dynamic_fp8(std::ostream& out, const QuantArithmetic& q, const FusedQuantResult& r, const FusedInputs& fused,
                       std::int64_t token, std::int64_t col) {
  const DType t = r.fused.normalized.dtype();
  const std::int64_t hidden = r.fused.normalized.dim(1);
  // The values the kernel quantises: ONESHOT's T outputs, or the fp32 values TWOSHOT (and the invariant
  // profile) hold before the narrowing, which the model recomputes from pre, gamma and the row's scale.
  const NormArithmetic norm = norm_arithmetic(fused.options);
  std::vector<std::uint32_t> values(static_cast<std::size_t>(hidden));
  for (std::int64_t d = 0; d < hidden; ++d) {
    const std::int64_t i = token * hidden + d;
    values[static_cast<std::size_t>(d)] =
        q.dynamic_from_fp32 ? normalized_fp32(r.fused.launch, norm, r.fused.residual_out.bits(i), fused.gamma.bits(d),
                                              r.fused.row_scales.at(static_cast<std::size_t>(token)))
                            : widen_to_fp32(r.fused.normalized.bits(i), t);
  }
  if (q.dynamic_from_fp32)
    fmt::print(out, "  {} quantises the fp32 values before their narrowing to {} (not the {} outputs)\n",
               fused.options.profile == Profile::kInvariant ? "the invariant profile" : "TWOSHOT", dtype_name(t),
               dtype_name(t));
  else
    fmt::print(out, "  ONESHOT quantises the {} outputs, widened to fp32\n", dtype_name(t));
  const std::uint32_t value = values[static_cast<std::size_t>(col)];
  fmt::print(out, "  value = {}\n", format_fp32(value));
  const std::uint32_t absmax = fp8_dynamic_absmax(q, values);
  std::int64_t at = -1;
  for (std::int64_t d = 0; d < hidden && at < 0 && !is_zero(absmax, kFp32Format); ++d)
    if (quant_abs(q, values[static_cast<std::size_t>(d)]) == absmax) at = d;
  fmt::print(out, "  row {}'s absmax (max of |x| from +0, NaNs dropped{}) = {}{}\n", token, q.ftz ? ", FTZ" : "",
             format_fp32(absmax), at >= 0 ? fmt::format(", at column {}", at) : std::string());
  const std::uint32_t quotient0 = quant_divide(q, absmax, kE4m3LargestFp32);
  const std::uint32_t scale = quant_max(q, quotient0, kDynamicFp8MinScale);
  fmt::print(out, "  absmax / 448 ({}) = {}\n", division_text(q), format_fp32(quotient0));
  fmt::print(out, "  scale = max(that, the floor 2^-9 / 448 = {}) = {}{}\n", format_fp32(kDynamicFp8MinScale),
             format_fp32(scale), scale == kDynamicFp8MinScale && quotient0 != scale ? " (the floor)" : "");
  const std::uint32_t quotient = quant_divide(q, value, scale);
  const std::uint32_t lower = quant_max(q, quotient, kE4m3LargestFp32 | kFp32Format.sign_mask());
  const std::uint32_t clamped = quant_min(q, lower, kE4m3LargestFp32);
  const std::uint8_t code = e4m3_from_fp32(clamped);
  fmt::print(out, "  value / scale ({}) = {}\n", division_text(q), format_fp32(quotient));
  fmt::print(out, "  clamp: max(quotient, -448) = {}{}, min(that, 448) = {}\n", format_fp32(lower),
             is_nan(quotient, kFp32Format) ? " (PTX max drops the NaN: -448)" : "", format_fp32(clamped));
  fmt::print(out, "  e4m3 (cvt.rn.satfinite, RN-even) = {}\n", e4m3_text(code));
  fmt::print(out, "  quant_out[{}, {}] (byte {}) = 0x{:02X}; scale_out[{}] = {}\n", token, col, token * hidden + col,
             code, token, format_fp32(scale));
}

void print_nvfp4(std::ostream& out, const QuantArithmetic& q, const QuantOptions& quant, const FusedQuantResult& r,
                 std::int64_t token, std::int64_t col) {
  const DType t = r.fused.normalized.dtype();
  const std::int64_t hidden = r.fused.normalized.dim(1);
  const std::int64_t k = col / kNvfp4BlockElements, first = k * kNvfp4BlockElements;
  const auto i = static_cast<std::size_t>(col - first);
  std::array<std::uint32_t, kNvfp4BlockElements> values{};
  for (std::size_t j = 0; j < values.size(); ++j)
    values[j] = r.fused.normalized.bits(token * hidden + first + static_cast<std::int64_t>(j));
  const Nvfp4Block b = nvfp4_block(q, t, values, quant.scale);
  const std::uint32_t sf = fp32_from_e4m3(b.scale_code);
  fmt::print(out, "  block {} of row {}: columns [{}, {}) of the {} outputs; element {} of it is x = {}\n", k, token,
             first, first + kNvfp4BlockElements, dtype_name(t), i, format_value(values[i], t));
  fmt::print(out, "  amax in {} (|x|, NaNs dropped) = {}\n", dtype_name(t), format_value(b.amax, t));
  fmt::print(out, "  scale input = g {} * (f(amax) * 1/6 {}) = {}\n", format_fp32(quant.scale),
             format_fp32(kReciprocalOfSix), format_fp32(b.scale_input));
  fmt::print(out, "  block scale SF = e4m3(scale input) = {}{}\n", e4m3_text(b.scale_code),
             e4m3_note(b.scale_input, b.scale_code));
  if (is_zero(sf, kFp32Format))
    fmt::print(out, "  element scale = 0 (SF is 0, and FlashInfer's (SF != 0) guard gives 0)\n");
  else
    fmt::print(out, "  element scale = g / f(SF) ({}) = {}\n", division_text(q), format_fp32(b.element_scale));
  const std::uint8_t code = e2m1_from_fp32(b.products[i]);
  fmt::print(out, "  f(x) * element scale = {}\n", format_fp32(b.products[i]));
  fmt::print(out, "  e2m1 (RN-even onto 0, 0.5, 1, 1.5, 2, 3, 4, 6, saturating; a NaN gives +6) = {}\n",
             e2m1_text(code));
  const std::int64_t byte = (token * hidden + col) / 2;
  fmt::print(out, "  quant_out[{}, {}] (byte {}) = 0x{:02X}: element {} is its {} nibble\n", token, col / 2, byte,
             b.packed[i / 2], col, col % 2 == 0 ? "low" : "high");
  const std::int64_t offset = scale_offset(quant.layout, token, k, hidden);
  if (quant.layout == ScaleLayout::kLinear)
    fmt::print(out, "  scale_out byte {} (linear: row {} x {} blocks + block {}) = 0x{:02X}\n", offset, token,
               scale_blocks(hidden), k, b.scale_code);
  else
    fmt::print(out,
               "  scale_out byte {} (swizzled 128 x 4 tiles: tile row {}, tile column {}, row {} of 32-row group {}, "
               "scale {} of 4) = 0x{:02X}\n",
               offset, token / 128, k / 4, token % 32, (token % 128) / 32, k % 4, b.scale_code);
}

const char* quant_arithmetic_text(Profile p) {
  switch (p) {
    case Profile::kFlashInfer: return "fast-math: rcp.approx, div.approx (MUFU.RCP and an FTZ multiply), FTZ";
    case Profile::kIeee: return "IEEE division (div.rn), no FTZ";
    case Profile::kInvariant: return "correctly rounded operations only, no FTZ";
    case Profile::kTrtllm: break;
  }
  return "";
}

}  // namespace

void print_quant_explanation(std::ostream& out, const std::string& input_path, const RankInputs& in,
                             const FusedInputs& fused, const QuantOptions& quant, std::int64_t token,
                             std::int64_t col) {
  const FusedQuantResult r = fused_quant_reference(input_path, in, fused, quant);
  const QuantArithmetic q =
      quant_arithmetic(fused.options.profile, r.fused.launch.strategy, norm_arithmetic(fused.options).approx);
  fmt::print(out, "\nquantised ({}), {}/{}: {}\n", describe_quant(quant), strategy_name(r.fused.launch.strategy),
             profile_name(fused.options.profile), quant_arithmetic_text(fused.options.profile));
  const DType t = in.shape.dtype;
  switch (quant.mode) {
    case QuantMode::kFp8:
      print_static_fp8(out, q, quant, widen_to_fp32(r.fused.normalized.bits(token * in.shape.hidden + col), t), token,
                       col, in.shape.hidden);
      break;
    case QuantMode::kFp8Dynamic: print_dynamic_fp8(out, q, r, fused, token, col); break;
    case QuantMode::kNvfp4: print_nvfp4(out, q, quant, r, token, col); break;
    case QuantMode::kNone: return;
  }
  FusedInputs other = fused;
  other.options.strategy = r.fused.launch.strategy == Strategy::kOneShot ? Strategy::kTwoShot : Strategy::kOneShot;
  FusedQuantResult o;
  try {
    o = reference_fused_quant(in.tensor, other.residual, other.gamma, other.options, quant);
  } catch (const std::invalid_argument& e) {
    fmt::print(out, "the other strategy, {}: FlashInfer makes no launch for it at this shape: {}\n",
               upper(other.options.strategy), e.what());
    return;
  }
  const std::uint8_t mine = code_at(r.quant, token, col), theirs = code_at(o.quant, token, col);
  const auto text = [&](std::uint8_t c) { return quant.mode == QuantMode::kNvfp4 ? e2m1_text(c) : e4m3_text(c); };
  std::string scales;
  if (quant.mode == QuantMode::kFp8Dynamic)
    scales = fmt::format(" with token scale {} (against {})", format_fp32(o.quant.token_scales.at(token)),
                         format_fp32(r.quant.token_scales.at(token)));
  fmt::print(out, "the other strategy, {}, quantises this element to {}{}: {}\n", upper(other.options.strategy),
             text(theirs), scales, mine == theirs ? "the same code" : "a different code");
}

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
