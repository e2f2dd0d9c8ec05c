#include "sim/mutation.h"

namespace ar::sim {

std::optional<Mutation> parse_mutation(std::string_view name) {
  for (const MutationInfo& m : kMutationTable)
    if (m.name == name) return m.mutation;
  return std::nullopt;
}

}  // namespace ar::sim
