// The Catch2 main of the [gpu] test binaries. Without a usable CUDA device the binary prints
// "SKIPPED: no CUDA device" and exits 77, which CTest (SKIP_RETURN_CODE 77) reports as skipped, never as
// passed. Listing tests (--list*, as catch_discover_tests does at build time) needs no device.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

// Tests that link the CUDA layer get AR_HAVE_CUDA_LAYER from ar_cuda; a GPU test in a build without it
// can never find a device.
#if AR_HAVE_CUDA_LAYER
#include "cuda/device.h"
static std::optional<std::string> why_no_device() { return ar::cuda::unavailable_reason(); }
#else
static std::optional<std::string> why_no_device() { return std::string("this build has no CUDA layer"); }
#endif

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::string_view(argv[i]).starts_with("--list");
  if (!listing) {
    if (auto why = why_no_device()) {
      std::printf("SKIPPED: no CUDA device (%s)\n", why->c_str());
      return 77;
    }
  }
  return Catch::Session().run(argc, argv);
}
