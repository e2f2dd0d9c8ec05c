// The fast host engine against the scalar model, and the tensor-level entry point.
#include <catch2/catch.hpp>

#include <vector>

#include "reference/all_reduce.h"
#include "reference/float_bits.h"

using namespace ar;

namespace {

HostTensor random_tensor(DType t, int world, std::int64_t tokens, std::int64_t hidden, std::uint64_t seed) {
  HostTensor in(t, {world, tokens, hidden});
  const FloatFormat f = float_format(t);
  std::uint64_t s = seed;
  for (std::int64_t i = 0; i < in.size(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const auto bits = static_cast<std::uint32_t>(s >> 32);
    std::uint32_t x = 0;
    switch (bits % 32) {
      case 0: x = f.sign_mask(); break;                         // -0
      case 1: x = f.canonical_nan() ^ (bits & 0x8001u); break;  // NaNs with payloads, both signs
      case 2: x = f.infinity() | (bits & 0x80000000u ? f.sign_mask() : 0); break;
      case 3: x = (bits >> 5) & (f.sign_mask() | f.fraction_mask()); break;                         // subnormals
      case 4: x = f.exponent_mask() - (1u << f.fraction_bits) + (bits & f.fraction_mask()); break;  // near max
      default: {
        const int e = int((bits >> 8) % 60) - 30 + f.bias();
        x = (std::uint32_t(std::clamp(e, 1, 2 * f.bias())) << f.fraction_bits) | ((bits >> 3) & f.fraction_mask());
        if (bits & 4) x |= f.sign_mask();
      }
    }
    in.set_bits(i, x);
  }
  return in;
}

}  // namespace

TEST_CASE("fast engine equals the scalar model bit for bit", "[cpu]") {
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    for (int world : kWorldSizes) {
      const HostTensor in = random_tensor(t, world, 3, 16 * 16 / dtype_bytes(t) + 8, 1234u + world);
      for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
        for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kTrtllm, Profile::kInvariant}) {
          const HostTensor fast = reference_all_reduce(in, s, p, Engine::kFast);
          const HostTensor scalar = reference_all_reduce(in, s, p, Engine::kScalar);
          INFO(dtype_name(t) << " W=" << world << " " << strategy_name(s) << "/" << profile_name(p));
          REQUIRE(fast == scalar);
        }
      }
    }
  }
}

TEST_CASE("fast engine, exact order: its double sums and their fallback equal the scalar model", "[cpu][invariant]") {
  // Finite values only, so the fast engine takes its double path wherever the magnitudes allow; `spread` sets how
  // far apart the exponents of one element's values lie, from well inside a double's 53 bits to well past them
  // (the fallback), across the limit of exact_in_double for each type and W. Ties of T are common here: the
  // values share few significant bits.
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    const FloatFormat f = float_format(t);
    for (int world : kWorldSizes) {
      for (int spread : {4, 20, 28, 40, 60, 2 * f.bias()}) {
        HostTensor in(t, {world, 2, 96});
        std::uint64_t s = 77u + world * 131u + spread;
        for (std::int64_t i = 0; i < in.size(); ++i) {
          s = s * 6364136223846793005ull + 1442695040888963407ull;
          const auto bits = static_cast<std::uint32_t>(s >> 32);
          const int e = std::clamp(f.bias() + int((bits >> 8) % (spread + 1)) - spread / 2, 0, 2 * f.bias());
          std::uint32_t x = (std::uint32_t(e) << f.fraction_bits) | (bits & f.fraction_mask() & ~0x3u);
          if (bits & 0x80000000u) x |= f.sign_mask();
          if (bits % 11 == 0) x = 0;
          in.set_bits(i, x);
        }
        for (Strategy st : {Strategy::kOneShot, Strategy::kTwoShot}) {
          INFO(dtype_name(t) << " W=" << world << " spread " << spread);
          REQUIRE(reference_all_reduce(in, st, Profile::kInvariant, Engine::kFast) ==
                  reference_all_reduce(in, st, Profile::kInvariant, Engine::kScalar));
        }
      }
    }
  }
}

TEST_CASE("fast engine leaves the host FPU state as it found it", "[cpu]") {
  const HostTensor in = random_tensor(DType::kBf16, 4, 2, 64, 5);
  const float tiny = 1e-40f;  // subnormal: survives only without FTZ/DAZ
  (void)reference_all_reduce(in, Strategy::kOneShot, Profile::kFlashInfer, Engine::kFast);
  volatile float t = tiny;
  CHECK(t * 1.0f != 0.0f);
}

TEST_CASE("AUTO picks ONESHOT up to 1 MiB inclusive", "[cpu]") {
  CHECK(resolve_strategy(Strategy::kAuto, {8, 9, 7168, DType::kBf16}) == Strategy::kOneShot);  // SPEC example
  CHECK(resolve_strategy(Strategy::kAuto, {8, 10, 7168, DType::kBf16}) == Strategy::kTwoShot);
  CHECK(resolve_strategy(Strategy::kAuto, {8, 64, 1024, DType::kBf16}) == Strategy::kOneShot);  // exactly 1 MiB
  CHECK(resolve_strategy(Strategy::kAuto, {8, 65, 1024, DType::kBf16}) == Strategy::kTwoShot);
}

TEST_CASE("shape validation names the problem", "[cpu]") {
  CHECK(validate_shape({3, 1, 8, DType::kBf16}).value() ==
        "world size 3 is not supported (supported: 2, 4, 8, 16, 32, 64)");
  CHECK(world_sizes_text(" or ") == "2, 4, 8, 16, 32 or 64");
  CHECK(kMaxWorldSize == 64);
  CHECK(validate_shape({2, 0, 8, DType::kBf16}).value().find("N must be at least 1") != std::string::npos);
  CHECK(validate_shape({2, 1, 12, DType::kBf16}).value().find("multiple of 8") != std::string::npos);
  CHECK(validate_shape({2, 1, 12, DType::kFp32}) == std::nullopt);
  CHECK(validate_shape({2, 1, 6, DType::kFp32}).value().find("multiple of 4") != std::string::npos);
  HostTensor bad(DType::kBf16, {3, 1, 8});
  CHECK_THROWS_WITH(reference_all_reduce(bad, Strategy::kOneShot, Profile::kFlashInfer),
                    Catch::Contains("world size 3 is not supported"));
}
