// mnnvl-ar diff: are two .npy files the same, bit for bit?
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "harness/commands/commands.h"
#include "harness/commands/options.h"
#include "harness/commands/tensor_format.h"
#include "harness/io/exit_codes.h"
#include "harness/io/npy.h"

namespace ar {

int diff_command(const CommandArgs& args, std::ostream& out, std::ostream&) {
  std::string a_path, b_path, dtype_text;
  po::options_description options("options");
  // clang-format off
  options.add_options()("a", po::value(&a_path)->required(), "first .npy")("b", po::value(&b_path)->required(),
                                                                           "second .npy")(
      "dtype,d", po::value(&dtype_text)->default_value(""), "bf16 to read <u2 words as bf16")(
      "json", "print the result as one JSON object instead of text");
  // clang-format on
  po::positional_options_description positional;
  positional.add("a", 1).add("b", 1);
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar diff A.npy B.npy [--dtype bf16] [--json]",
      "Compares two tensors bit for bit (no tolerance: +0 and -0 differ, NaN payloads differ). Prints how many\n"
      "elements differ, the first one, the largest distance in ULPs and a histogram of distances.\n\n"
      "example:\n  mnnvl-ar diff out_gpu.npy out_ref.npy --dtype bf16 || mnnvl-ar explain ...\n\n"
      "exit codes: 0 identical, 1 they differ, 2 bad usage, unreadable files, or different shape/dtype"};
  if (auto code = parse_command_line(args, options, positional, help, vm, out)) return *code;

  const auto as_dtype = optional_dtype_option(dtype_text);
  const HostTensor a = read_npy(a_path, as_dtype), b = read_npy(b_path, as_dtype);
  if (a.dtype() != b.dtype())
    throw UsageError(
        fmt::format("'{}' holds {} but '{}' holds {}", a_path, dtype_name(a.dtype()), b_path, dtype_name(b.dtype())));
  if (a.shape() != b.shape())
    throw UsageError(fmt::format("'{}' has shape ({}) but '{}' has shape ({})", a_path, fmt::join(a.shape(), ", "),
                                 b_path, fmt::join(b.shape(), ", ")));
  const BitDiff d = compare_bits(a, b);
  if (vm.count("json")) {
    nlohmann::json j{{"elements", d.elements},
                     {"differing", d.differing},
                     {"max_ulp", d.max_ulp},
                     {"nan_mismatches", d.nan_mismatches},
                     {"zero_sign_only", d.zero_sign_only},
                     {"histogram", d.histogram}};
    j["histogram_buckets"] = kUlpBucketNames;
    if (d.differing) {
      j["first_index"] = d.first_index;
      j["first"] = {{"a", d.first_a}, {"b", d.first_b}};
    }
    fmt::print(out, "{}\n", j.dump());
  } else {
    print_bit_diff(out, d, a, "A", "B");
  }
  return d.differing ? kExitDifference : kExitOk;
}

}  // namespace ar
