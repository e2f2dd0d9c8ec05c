// The visibility model of sim/memory_model.h through the operations of sim/ops.h: 8-byte tearing, lazy
// delivery at reads, coherence per CTA, races between CTAs, the release of red_release_gpu_add_u32, multicast,
// and the checker's delivery invariants.
#include <catch2/catch.hpp>

#include "sim_test_support.h"

namespace ar::sim::test {
namespace {

constexpr Pack kData{0x11111111u, 0x22222222u, 0x33333333u, 0x44444444u};
constexpr Pack kEmpty{kLamportEmptyWord, kLamportEmptyWord, kLamportEmptyWord, kLamportEmptyWord};

/// A simulation to drive operations on by hand (its own launches never run).
struct Bench {
  SimConfig config = config_of(2, "oneshot:N=1:D=8");
  std::vector<CallContext> calls = make_call_contexts(config, 1);
  ScriptChooser chooser;
  Simulation sim{config, calls, chooser};
  CtaState cta0, cta1;
  Bench() {
    cta0.rank = 0;
    cta1.rank = 1;
    cta1.index = 0;
  }
  Pack poll(int rank, std::uint32_t word, CtaState& reader) {
    Ops ops(sim, reader);
    Pack words{};
    std::array<Ghost, 4> ghosts{};
    REQUIRE(ops.ld_volatile_v4({rank, word}, words, ghosts));
    return words;
  }
};

Ghost data(int writer, int call) {
  return {WriteKind::kData, static_cast<std::uint8_t>(writer), static_cast<std::uint16_t>(call)};
}

TEST_CASE("memory starts as the Lamport sentinel with the initial flags", "[cpu]") {
  Bench b;
  CHECK(b.poll(0, 0, b.cta0) == kEmpty);
  Ops ops(b.sim, b.cta0);
  const Pack flags = ops.ld_v4({0, 3 * 8});  // BPB = 32 bytes: flags start at word 24
  CHECK(flags == Pack{0, 2, 32, 0});
}

TEST_CASE("a 16-byte store lands as two 8-byte halves that a read may see separately", "[cpu]") {
  Bench b;
  Ops ops(b.sim, b.cta1);
  ops.st_v4({0, 4}, kData, data(1, 0));
  SECTION("the read sees neither half") {
    b.chooser.script = {false, false};
    CHECK(b.poll(0, 4, b.cta0) == kEmpty);
  }
  SECTION("the read sees only the high half: a torn store") {
    b.chooser.script = {false, true};
    CHECK(b.poll(0, 4, b.cta0) == Pack{kLamportEmptyWord, kLamportEmptyWord, 0x33333333u, 0x44444444u});
    SECTION("once seen, a half stays visible") {
      b.chooser.script = {false};
      CHECK(b.poll(0, 4, b.cta0) == Pack{kLamportEmptyWord, kLamportEmptyWord, 0x33333333u, 0x44444444u});
    }
  }
  SECTION("the read sees both") {
    b.chooser.script = {true, true};
    CHECK(b.poll(0, 4, b.cta0) == kData);
  }
}

TEST_CASE("stores of one CTA to the same words land in program order", "[cpu]") {
  Bench b;
  Ops ops(b.sim, b.cta1);
  ops.st_v4({0, 8}, kEmpty, {WriteKind::kClear, 1, 0});
  ops.st_v4({0, 8}, kData, data(1, 0));
  b.chooser.fallback = true;
  CHECK(b.poll(0, 8, b.cta0) == kData);
}

TEST_CASE("stores of two CTAs to the same words race: either may land last", "[cpu]") {
  Bench b;
  Ops first(b.sim, b.cta0);
  Ops second(b.sim, b.cta1);
  first.st_v4({0, 8}, kData, data(0, 0));
  const Pack other{5, 6, 7, 8};
  second.st_v4({0, 8}, other, data(1, 0));
  SECTION("the later store lands last") {
    // Read: see unit 1 (first, low; the racing second low does not land first), see unit 2 (first, high; no
    // race first), see the second's low and high halves.
    b.chooser.script = {true, false, true, false, true, true};
    CHECK(b.poll(0, 8, b.cta0) == other);
  }
  SECTION("the later store lands first and is overwritten") {
    b.chooser.script = {true, true, true, true};
    CHECK(b.poll(0, 8, b.cta0) == kData);
    // ... and the checker sees data landing on data that was never cleared.
    CHECK(b.sim.checker().failed());
    CHECK(b.sim.checker().failure().kind == FailureKind::kOverwriteUncleared);
  }
}

TEST_CASE("red_release_gpu_add_u32 publishes the CTA's own-rank stores, not its stores to peers", "[cpu]") {
  Bench b;
  Ops ops(b.sim, b.cta0);
  ops.st_v4({0, 0}, kData, data(0, 0));
  ops.st_v4({1, 0}, kData, data(0, 0));
  ops.red_release_gpu_add_u32({0, 24 + 8}, 1);
  b.chooser.fallback = false;  // reads see nothing still in flight
  CHECK(b.poll(0, 0, b.cta0) == kData);
  CHECK(b.poll(1, 0, b.cta1) == kEmpty);
  CHECK(ops.ld_volatile_u32({0, 24 + 8}) == 1);
}

TEST_CASE("multimem_st_v4 reaches every rank's buffer at the same offset", "[cpu]") {
  Bench b;
  Ops ops(b.sim, b.cta1);
  ops.multimem_st_v4(4, kData, data(1, 0));
  CHECK(b.poll(0, 4, b.cta0) == kData);
  CHECK(b.poll(1, 4, b.cta1) == kData);
}

TEST_CASE("a clear landing on data of its own or a later call is reported", "[cpu]") {
  Bench b;
  Ops peer(b.sim, b.cta1);
  Ops owner(b.sim, b.cta0);
  peer.st_v4({0, 0}, kData, data(1, 2));  // call 2's data ...
  b.chooser.fallback = true;
  b.poll(0, 0, b.cta0);
  owner.st_v4({0, 0}, kEmpty, {WriteKind::kClear, 0, 1});  // ... erased by the owner's clear in call 1
  b.poll(0, 0, b.cta0);
  REQUIRE(b.sim.checker().failed());
  CHECK(b.sim.checker().failure().kind == FailureKind::kClearUnread);
  CHECK_THAT(b.sim.checker().failure().message, Catch::Contains("data from r1 in call 2"));
}

TEST_CASE("a store outside the three buffers is reported", "[cpu]") {
  Bench b;
  Ops ops(b.sim, b.cta0);
  ops.st_v4({0, 24}, kEmpty, {WriteKind::kClear, 0, 1});  // word 24 = byte 96 = 3 * BPB: the end
  REQUIRE(b.sim.checker().failed());
  CHECK(b.sim.checker().failure().kind == FailureKind::kOutOfBounds);
}

}  // namespace
}  // namespace ar::sim::test
