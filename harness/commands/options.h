// Shared pieces of every command's option parsing (Boost.Program_options): parsing with --help handling,
// and (option_names.h) turning dtype / strategy / profile names into values.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include <boost/program_options.hpp>

#include "harness/commands/cli.h"
#include "harness/commands/option_names.h"
#include "reference/strategy.h"

namespace ar {

namespace po = boost::program_options;

/// What a command says about itself in --help: the synopsis line and a paragraph that teaches.
struct CommandHelp {
  std::string usage;        ///< "mnnvl-ar diff A.npy B.npy [options]"
  std::string description;  ///< what it does, why, examples, exit codes
};

/// Parses `args` into `vm`. Returns an exit code when the command should stop now (--help printed: 0);
/// throws UsageError for unknown or malformed options.
std::optional<int> parse_command_line(const CommandArgs& args, const po::options_description& options,
                                      const po::positional_options_description& positional, const CommandHelp& help,
                                      po::variables_map& vm, std::ostream& out);

/// Whether the command line gave option `name` (not merely its default).
bool option_given(const po::variables_map& vm, const char* name);

}  // namespace ar
