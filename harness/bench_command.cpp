// PLACEHOLDER while the bench command is being written; must be replaced before it lands.
#include "harness/commands.h"
#include "harness/exit_codes.h"

namespace ar {
int bench_command(const CommandArgs&, std::ostream&, std::ostream&) { throw UsageError("'bench' is not built yet"); }
}  // namespace ar
