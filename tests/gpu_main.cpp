// The Catch2 main of the [gpu] test binaries. Without a usable CUDA device (or with fewer than the binary's
// AR_MIN_GPUS) the binary prints "SKIPPED: ..." and exits 77, which CTest (SKIP_RETURN_CODE 77) reports as
// skipped, never as passed. Listing tests (--list*, as catch_discover_tests does at build time) needs no
// device.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

// Tests that link the CUDA layer get AR_HAVE_CUDA_LAYER from ar_cuda. A build without it (no CUDA compiler at
// configure time) has no GPU test binaries: each is registered as this main alone, which says so
// (cmake/ArTesting.cmake).
#if AR_HAVE_CUDA_LAYER
#include "cuda/device.h"
static std::optional<std::string> why_no_device() {
  if (auto why = ar::cuda::unavailable_reason()) return "no CUDA device (" + *why + ")";
  const int count = ar::cuda::device_count();
  if (count < AR_MIN_GPUS)
    return "these tests need " + std::to_string(AR_MIN_GPUS) + " GPUs; this machine shows " + std::to_string(count);
  return std::nullopt;
}
#else
static std::optional<std::string> why_no_device() {
  return std::string("this build has no CUDA layer (no CUDA compiler at configure time), so its GPU tests were not built");
}
#endif

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::string_view(argv[i]).starts_with("--list");
  if (!listing) {
    if (auto why = why_no_device()) {
      std::printf("SKIPPED: %s\n", why->c_str());
      return 77;
    }
  }
  return Catch::Session().run(argc, argv);
}
