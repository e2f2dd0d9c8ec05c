#include "harness/commands/cli.h"

#include <array>
#include <new>
#include <ostream>

#include <fmt/ostream.h>

#include "harness/commands/commands.h"
#include "harness/io/exit_codes.h"

namespace ar {
namespace {

constexpr std::array kCommands{
    Command{"compare", "ONESHOT vs TWOSHOT vs every profile on one input (default: a built-in adversarial case)",
            compare_command},
    Command{"reference", "compute the bit-exact all-reduce of a [W, N, D] .npy on the CPU", reference_command},
    Command{"explain", "show the addition tree of one output element and why strategies/profiles differ",
            explain_command},
    Command{"dequant", "decode the quantised outputs of `reference --quant` (FP8, NVFP4) to fp32", dequant_command},
    Command{"diff", "compare two .npy files bit for bit (exit 1 when they differ)", diff_command},
    Command{"accuracy", "each strategy's error against the exact sum, in ULPs", accuracy_command},
    Command{"invariance", "which batch sizes can change a token's bits, with a witness at each boundary",
            invariance_command},
    Command{"data", "regenerate the seeded golden cases and their manifest (data/)", data_command},
    Command{"sim", "simulate the Lamport protocol under adversarial schedules and mutations", sim_command},
    Command{"run", "run call sequences on the GPU and compare every rank with the reference, bit for bit", run_command},
    Command{"bench", "nccl-tests style benchmark of the kernels, with NCCL as baseline", bench_command},
    Command{"probe", "bring-up report: GPUs, NVLink, fabric, handles, peers, and a bit-exact all-reduce",
            probe_command},
    Command{"mufu", "prove the CPU model of the GPU's approximate rsqrt, rcp and div on every input", mufu_command},
};

void print_usage(std::ostream& out) {
  fmt::print(out,
             "mnnvl-ar: a bit-exact model, protocol simulator and checker of the MNNVL (Lamport) all-reduce\n\n"
             "usage: mnnvl-ar <command> [options]      mnnvl-ar <command> --help\n\ncommands:\n");
  for (const Command& c : kCommands) fmt::print(out, "  {:<10} {}\n", c.name, c.summary);
  fmt::print(out,
             "\nexit codes: 0 ok, 1 a check found a difference, 2 bad usage or input\n"
             "start with: mnnvl-ar compare      (then: mnnvl-ar explain --help)\n");
}

}  // namespace

std::span<const Command> commands() { return kCommands; }

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    print_usage(err);
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_usage(out);
    return kExitOk;
  }
  if (args[0] == "--version") {
    fmt::print(out, "mnnvl-ar {}\n", MNNVL_AR_VERSION);
    return kExitOk;
  }
  for (const Command& c : kCommands) {
    if (c.name != args[0]) continue;
    const CommandArgs rest(args.begin() + 1, args.end());
    try {
      return c.run(rest, out, err);
    } catch (const UsageError& e) {
      fmt::print(err, "mnnvl-ar {}: error: {}\n", c.name, e.what());
      return kExitUsage;
    } catch (const std::invalid_argument& e) {  // the reference's shape and argument checks
      fmt::print(err, "mnnvl-ar {}: error: {}\n", c.name, e.what());
      return kExitUsage;
    } catch (const std::bad_alloc&) {  // inputs whose sizes are real but too large for this machine
      fmt::print(err, "mnnvl-ar {}: error: not enough memory: this call's tensors are larger than this machine can "
                      "allocate\n", c.name);
      return kExitUsage;
    }
  }
  fmt::print(err, "mnnvl-ar: unknown command '{}'\n\n", args[0]);
  print_usage(err);
  return kExitUsage;
}

}  // namespace ar
