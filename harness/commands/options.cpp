#include "harness/commands/options.h"

#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/io/exit_codes.h"

namespace ar {

std::optional<int> parse_command_line(const CommandArgs& args, const po::options_description& options,
                                      const po::positional_options_description& positional,
                                      const CommandHelp& help, po::variables_map& vm, std::ostream& out) {
  po::options_description all = options;
  all.add_options()("help,h", "show this help");
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
      fmt::print(out, "usage: {}\n\n{}\n\n", help.usage, help.description);
      out << all << "\n";
      return kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(fmt::format("{} (usage: {}; see --help)", e.what(), help.usage));
  }
  return std::nullopt;
}

DType dtype_option(const std::string& name) {
  if (auto t = parse_dtype(name)) return *t;
  throw UsageError(fmt::format("unknown dtype '{}' (choose bf16, fp16 or fp32)", name));
}

std::optional<DType> optional_dtype_option(const std::string& name) {
  if (name.empty()) return std::nullopt;
  return dtype_option(name);
}

Strategy strategy_option(const std::string& name) {
  if (auto s = parse_strategy(name)) return *s;
  throw UsageError(fmt::format("unknown strategy '{}' (choose oneshot, twoshot or auto)", name));
}

Profile profile_option(const std::string& name) {
  if (auto p = parse_profile(name)) return *p;
  throw UsageError(fmt::format("unknown profile '{}' (choose flashinfer, ieee or trtllm)", name));
}

}  // namespace ar
