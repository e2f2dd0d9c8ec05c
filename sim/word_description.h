// A word of the simulated memory in words, for diagnoses and traces: where it is (describe_word) and how it got
// its value (describe_ghost). The checker, the operations, Simulation and both protocols' kernel programs use
// these, so every message names a word the same way.
#pragma once

#include <cstdint>
#include <string>

#include "sim/config.h"
#include "sim/memory_model.h"

namespace ar::sim {

/// A word's location for people: "r1 buffer 2 +96 B" or "r1 flag word 8".
std::string describe_word(const SimConfig& config, int rank, std::uint32_t word);

/// A word's provenance: "initial fill", "clear by r1 in call 2", "data from r0 in call 3", "flags of r1 in call 2".
std::string describe_ghost(Ghost g);

}  // namespace ar::sim
