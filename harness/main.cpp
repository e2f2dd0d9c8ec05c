// mnnvl-ar: the command users run. Everything happens in run_cli; see harness/cli.cpp for the commands.
#include <iostream>
#include <string>
#include <vector>

#include "harness/commands/cli.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  const std::vector<std::string> args(argv + 1, argv + argc);
  const int code = ar::run_cli(args, std::cout, std::cerr);
  std::cout.flush();
  return code;
}
