// Kept for tests/sim/sim_command_test.cpp, which includes the helpers by this path: they now live in
// tests/support/ (scratch_dir.h, cli_runs.h). New tests include those.
#pragma once

#include "tests/support/cli_runs.h"
#include "tests/support/scratch_dir.h"

namespace ar::test {

/// The old name of run_in_process.
inline CliResult run(const std::vector<std::string>& args) { return run_in_process(args); }

}  // namespace ar::test
