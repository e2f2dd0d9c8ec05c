// make_sim_config's sizes: calls whose products wrap are refused by name (not simulated into a "protocol
// failure"), and the buffer size is bounded before it is multiplied. Tags: [wrapping], [boundary].
#include <catch2/catch.hpp>

#include <limits>
#include <stdexcept>
#include <vector>

#include "reference/call_sequence.h"
#include "sim/config.h"

using namespace ar;
using namespace ar::sim;

namespace {

SimConfig config_with(int world, const ProblemShape& shape, std::optional<std::int64_t> buffer_bytes) {
  return make_sim_config(world, {ResolvedCall{Strategy::kOneShot, shape}}, buffer_bytes, 1, Writer::kUnicast,
                         Mutation::kNone);
}

}  // namespace

TEST_CASE("a call whose size wraps is refused by the config, naming the product", "[cpu][wrapping]") {
  // Built directly, past resolve_calls: the config checks the shapes itself. Unchecked, N x D x W x E wrapped
  // to 64 bytes, BPB became 64 and the simulation reported an out-of-bounds "protocol failure".
  const ProblemShape wrapped{4, 274177, 538243370485768, DType::kBf16};
  CHECK_THROWS_WITH(config_with(4, wrapped, std::nullopt),
                    Catch::Contains("call 1") &&
                        Catch::Contains("W x N x D x E = 4 x 274177 x 538243370485768 x 2 bytes overflows 64 bits"));
  CHECK_THROWS_WITH(config_with(4, wrapped, 64), Catch::Contains("overflows 64 bits"));
}

TEST_CASE("the buffer size at the 32-bit flag word's limit, and far past it", "[cpu][boundary]") {
  const ProblemShape small{2, 1, 8, DType::kBf16};
  // The last multiple of 32 below 2^32 is a BPB the flags can hold; it is only too large to simulate.
  CHECK_THROWS_WITH(config_with(2, small, 4294967264), Catch::Contains("too large to simulate"));
  CHECK_THROWS_WITH(config_with(2, small, 4294967296),
                    Catch::Contains("4294967296 bytes is above the 32-bit limit 4294967295"));
  // 3 buffers x 4 ranks x this wraps int64; it must not pass for a small workspace.
  CHECK_THROWS_WITH(config_with(4, {4, 1, 8, DType::kBf16}, 3074457345618258944), Catch::Contains("32-bit limit"));
  const std::int64_t last_multiple = std::numeric_limits<std::int64_t>::max() / 32 * 32;
  CHECK_THROWS_WITH(config_with(2, small, last_multiple), Catch::Contains("32-bit limit"));
  // The largest that simulates: 3 buffers x 2 ranks x BPB = 256 MiB.
  const std::int64_t largest = (kMaxSimulatedBytes / 6) / 32 * 32;
  CHECK(config_with(2, small, largest).buffer_bytes == largest);
  CHECK_THROWS_WITH(config_with(2, small, largest + 32), Catch::Contains("too large to simulate"));
}
