// The mnnvl-ar command line: a registry of subcommands, each a function from arguments to an exit code.
// Commands write to the streams they are given, so tests run them in-process.
#pragma once

#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ar {

using CommandArgs = std::vector<std::string>;  ///< arguments after the command name
using CommandFn = int (*)(const CommandArgs& args, std::ostream& out, std::ostream& err);

struct Command {
  std::string_view name;
  std::string_view summary;  ///< one line for `mnnvl-ar --help`
  CommandFn run;
};

/// Every command, in the order `--help` lists them.
std::span<const Command> commands();

/// Runs `mnnvl-ar <args...>` (args[0] is the command name) and returns its exit code. Usage and input
/// errors are printed to `err` as "mnnvl-ar <command>: error: ..." and give exit code 2.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace ar
