// mnnvl-ar: the command users run. Everything happens in run_cli; see harness/cli.cpp for the commands.
#include <iostream>
#include <string>
#include <vector>

#include "harness/commands/cli.h"
#include "harness/io/exit_codes.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  const std::vector<std::string> args(argv + 1, argv + argc);
  const int code = ar::run_cli(args, std::cout, std::cerr);
  // A report on standard output that could not be written (a full disk, a closed pipe) is a failure, not a
  // truncated result with exit 0.
  if (!std::cout.flush()) {
    std::cerr << "mnnvl-ar: error: writing to standard output failed\n";
    return code != 0 ? code : ar::kExitUsage;
  }
  return code;
}
