// One function per mnnvl-ar subcommand; each lives in harness/<name>_command.cpp.
#pragma once

#include "harness/commands/cli.h"

namespace ar {

int reference_command(const CommandArgs& args, std::ostream& out, std::ostream& err);
int explain_command(const CommandArgs& args, std::ostream& out, std::ostream& err);
int dequant_command(const CommandArgs& args, std::ostream& out, std::ostream& err);
int diff_command(const CommandArgs& args, std::ostream& out, std::ostream& err);
int compare_command(const CommandArgs& args, std::ostream& out, std::ostream& err);
int accuracy_command(const CommandArgs& args, std::ostream& out, std::ostream& err);
int invariance_command(const CommandArgs& args, std::ostream& out, std::ostream& err);
int data_command(const CommandArgs& args, std::ostream& out, std::ostream& err);
int sim_command(const CommandArgs& args, std::ostream& out, std::ostream& err);    // harness/sim_command.cpp
int run_command(const CommandArgs& args, std::ostream& out, std::ostream& err);    // harness/run_command.cpp
int bench_command(const CommandArgs& args, std::ostream& out, std::ostream& err);  // harness/bench_command.cpp
int probe_command(const CommandArgs& args, std::ostream& out, std::ostream& err);  // harness/probe_command.cpp
int mufu_command(const CommandArgs& args, std::ostream& out, std::ostream& err);   // harness/mufu_command.cpp

}  // namespace ar
