// PLACEHOLDER while the sim command is being written; must be replaced before it lands.
#include "harness/commands.h"
#include "harness/exit_codes.h"

namespace ar {
int sim_command(const CommandArgs&, std::ostream&, std::ostream&) { throw UsageError("'sim' is not built yet"); }
}  // namespace ar
