// mnnvl-ar dequant: the values the quantised outputs of `reference --quant` stand for (reference dequantize),
// written as fp32 [N, D] or printed for a few elements with their codes and scales.
#include <algorithm>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/commands/commands.h"
#include "harness/commands/fused_options.h"
#include "harness/commands/options.h"
#include "harness/io/exit_codes.h"
#include "harness/io/npy.h"
#include "harness/io/output_file.h"
#include "harness/io/quant_files.h"
#include "reference/explain.h"
#include "reference/quant_formats.h"

namespace ar {
namespace {

/// How many elements the printout shows.
constexpr std::int64_t kPrinted = 8;

std::string code_text(std::uint8_t code, std::uint32_t value_bits, int digits) {
  return fmt::format("0x{:0{}X} ({:.9g})", code, digits, to_double(value_bits, DType::kFp32));
}

/// One element's code, the scale it is decoded with, and the value `dequantize` gave.
std::string element_line(const QuantizedOutput& q, std::uint32_t output_scale, std::int64_t token, std::int64_t col,
                         std::uint32_t value) {
  const std::int64_t i = token * q.hidden + col;
  switch (q.mode) {
    case QuantMode::kFp8: {
      const std::uint8_t code = q.quant_out[static_cast<std::size_t>(i)];
      return fmt::format("code {} x output_scale {} = {}", code_text(code, fp32_from_e4m3(code), 2),
                         format_fp32(output_scale), format_fp32(value));
    }
    case QuantMode::kFp8Dynamic: {
      const std::uint8_t code = q.quant_out[static_cast<std::size_t>(i)];
      return fmt::format("code {} x token scale {} = {}", code_text(code, fp32_from_e4m3(code), 2),
                         format_fp32(q.token_scales[static_cast<std::size_t>(token)]), format_fp32(value));
    }
    case QuantMode::kNvfp4: {
      const std::uint8_t byte = q.quant_out[static_cast<std::size_t>(i / 2)];
      const auto code = static_cast<std::uint8_t>(i % 2 == 0 ? byte & 0xF : byte >> 4);
      const std::int64_t block = col / kNvfp4BlockElements;
      const std::int64_t at = scale_offset(q.layout, token, block, q.hidden);
      const std::uint8_t sf = q.scale_out[static_cast<std::size_t>(at)];
      return fmt::format("code {} ({} nibble of byte {}) x block {} scale {} (scale_out byte {}) / g {} = {}",
                         code_text(code, fp32_from_e2m1(code), 1), i % 2 == 0 ? "low" : "high", i / 2, block,
                         code_text(sf, fp32_from_e4m3(sf), 2), at, format_fp32(output_scale), format_fp32(value));
    }
    case QuantMode::kNone: break;
  }
  return {};
}

}  // namespace

int dequant_command(const CommandArgs& args, std::ostream& out, std::ostream&) {
  std::string output;
  std::int64_t token = 0, col = 0;
  QuantArgs quant_args;
  po::options_description options("options");
  // clang-format off
  options.add_options()
      ("output,o", po::value(&output), "where to write the decoded values, fp32 [N, D] .npy; without it a few are printed")
      ("token,t", po::value(&token)->default_value(0), "without --output: the row whose values are printed")
      ("col,c", po::value(&col)->default_value(0), "without --output: the first column printed (8 are)");
  // clang-format on
  add_quant_options(options, quant_args, QuantFiles::kReads);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar dequant --quant fp8|fp8-dynamic|nvfp4 --quant-out Q.npy [--scale-out S.npy] [--quant-scale X]\n"
      "       [--scale-layout swizzled|linear] [--output Y.npy | --token T --col C]",
      "Decodes the quantised output of `mnnvl-ar reference --quant` (or FlashInfer's, saved as .npy) into the\n"
      "values it stands for, each step exact and rounded once to fp32:\n"
      "  fp8          e4m3(q) x X                       (X = --quant-scale, the output_scale; default 1)\n"
      "  fp8-dynamic  e4m3(q) x S[token]                (S: the fp32 [N, 1] token scales)\n"
      "  nvfp4        e2m1(q) x e4m3(SF) / X            (SF: the block's byte of S in the layout; X = g)\n"
      "Pass the same --quant, --quant-scale and --scale-layout as to `reference`. N and D come from Q's shape\n"
      "(uint8 [N, D], or [N, D / 2] for nvfp4); S must have the shape `reference` writes (--help there), or\n"
      "the same values flattened ([N] token scales, nvfp4's bytes in one row). A NaN code decodes to NaN (e4m3\n"
      "0x7F/0xFF); e2m1 has none.\n\n"
      "examples:\n"
      "  mnnvl-ar dequant --quant nvfp4 --quant-out q.npy --scale-out s.npy -o y.npy\n"
      "  mnnvl-ar dequant --quant fp8 --quant-scale 0.5 --quant-out q.npy --token 3\n\n"
      "exit codes: 0 ok, 2 bad usage or input (nothing is written)"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;
  if (!vm.count("quant")) throw UsageError("--quant is required: the codes' format (fp8, fp8-dynamic or nvfp4)");
  const QuantOptions quant = quant_options(vm, quant_args);
  const bool to_file = vm.count("output") > 0;
  const bool scale_given = vm.count("scale-out") > 0;
  if (to_file) {
    if (!vm["token"].defaulted() || !vm["col"].defaulted())
      throw UsageError("--token and --col choose what is printed; with --output every value is written");
    for (const std::string* input : {&quant_args.quant_out, &quant_args.scale_out})
      if ((input == &quant_args.quant_out || scale_given) && same_file(*input, output))
        throw UsageError(fmt::format("--output names '{}', which is an input", output));
    check_output_path(output);  // before reading
  }
  const QuantizedOutput q =
      read_quant_files(quant.mode, quant.layout, quant_args.quant_out,
                       scale_given ? std::optional<std::string>(quant_args.scale_out) : std::nullopt);
  if (to_file) {
    write_npy(output, dequantize(q, quant.scale));
    fmt::print(out, "wrote {}: fp32 [{}, {}] decoded from {} ({})\n", output, q.tokens, q.hidden, quant_args.quant_out,
               describe_quant(quant));
    return kExitOk;
  }
  // The element chosen is checked before the whole tensor is decoded (a large one takes a while).
  if (token < 0 || token >= q.tokens)
    throw UsageError(
        fmt::format("--token {} is outside [0, {}) ({} has N = {})", token, q.tokens, quant_args.quant_out, q.tokens));
  if (col < 0 || col >= q.hidden)
    throw UsageError(
        fmt::format("--col {} is outside [0, {}) ({} has D = {})", col, q.hidden, quant_args.quant_out, q.hidden));
  const HostTensor values = dequantize(q, quant.scale);
  fmt::print(out, "{}: {}, N = {}, D = {}\n", quant_args.quant_out, describe_quant(quant), q.tokens, q.hidden);
  for (std::int64_t c = col; c < std::min(q.hidden, col + kPrinted); ++c)
    fmt::print(out, "  [{}, {}] {}\n", token, c,
               element_line(q, quant.scale, token, c, values.bits(token * q.hidden + c)));
  return kExitOk;
}

}  // namespace ar
