#include "harness/commands/options.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/io/exit_codes.h"

namespace ar {
namespace {

template <class T>
bool parses_as(const std::string& token, T& out) {
  const char* end = token.data() + token.size();
  const auto [at, ec] = std::from_chars(token.data(), end, out);
  return !token.empty() && ec == std::errc() && at == end;
}

template <class T>
bool check_integer(const po::value_semantic* semantic, const std::string& name, const std::string& token) {
  if (!dynamic_cast<const po::typed_value<T>*>(semantic)) return false;
  T v{};
  if (!parses_as(token, v))
    throw UsageError(fmt::format("--{} '{}' is not a whole number from {} to {}", name, token,
                                 std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
  return true;
}

bool check_real(const po::value_semantic* semantic, const std::string& name, const std::string& token) {
  if (!dynamic_cast<const po::typed_value<double>*>(semantic)) return false;
  double v = 0;
  if (!parses_as(token, v) || !std::isfinite(v))
    throw UsageError(fmt::format("--{} '{}' is not a finite number", name, token));
  return true;
}

/// Boost reads "2abc" as an error but "-5" as a huge unsigned and "nan" as a number: every numeric option's
/// every token must be the whole of a number in its type's range (and finite), or the command stops here. And
/// no option takes an empty value: `--json ''` would otherwise read as `--json` left out, and write nothing.
void check_option_tokens(const po::parsed_options& parsed, const po::options_description& all) {
  for (const po::option& o : parsed.options) {
    if (o.unregistered || o.string_key.empty()) continue;
    const po::option_description* d = all.find_nothrow(o.string_key, false);
    if (!d) continue;
    const po::value_semantic* semantic = d->semantic().get();
    for (const std::string& token : o.value) {
      if (token.empty()) throw UsageError(fmt::format("--{} is empty: give it a value, or leave it out", o.string_key));
      (void)(check_integer<int>(semantic, o.string_key, token) || check_integer<long>(semantic, o.string_key, token) ||
             check_integer<long long>(semantic, o.string_key, token) ||
             check_integer<unsigned>(semantic, o.string_key, token) ||
             check_integer<unsigned long>(semantic, o.string_key, token) ||
             check_integer<unsigned long long>(semantic, o.string_key, token) ||
             check_real(semantic, o.string_key, token));
    }
  }
}

}  // namespace

bool option_given(const po::variables_map& vm, const char* name) { return vm.count(name) && !vm[name].defaulted(); }

std::optional<int> parse_command_line(const CommandArgs& args, const po::options_description& options,
                                      const po::positional_options_description& positional, const CommandHelp& help,
                                      po::variables_map& vm, std::ostream& out) {
  po::options_description all = options;
  all.add_options()("help,h", "show this help");
  try {
    const po::parsed_options parsed = po::command_line_parser(args).options(all).positional(positional).run();
    check_option_tokens(parsed, all);
    po::store(parsed, vm);
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

}  // namespace ar
