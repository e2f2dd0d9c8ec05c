// PLACEHOLDER while the run command is being written; must be replaced before it lands.
#include "harness/commands.h"
#include "harness/exit_codes.h"

namespace ar {
int run_command(const CommandArgs&, std::ostream&, std::ostream&) { throw UsageError("'run' is not built yet"); }
}  // namespace ar
