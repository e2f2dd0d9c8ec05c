// How a workspace whose ranks live in several processes learns its peers' memory: each process exports the
// allocations of its own ranks as shareable handles, and a PeerExchange (implemented by the caller: the
// harness does it over its rendezvous and AF_UNIX fd passing) hands every process every rank's handle.
// The CUDA layer only defines the interface, so it needs no sockets and no knowledge of launchers.
//
// Plain C++: no CUDA headers needed by callers.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace ar::cuda {

/// The kind of shareable handle a rank's allocation is exported as (SPEC section 8).
enum class HandleType {
  kPosixFd,  ///< CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR: a file descriptor, one host only
  kFabric,   ///< CU_MEM_HANDLE_TYPE_FABRIC: 64 opaque bytes, any host of one NVLink domain (needs IMEX)
};

std::string_view handle_type_name(HandleType t);

inline constexpr std::size_t kFabricHandleBytes = 64;  ///< sizeof(CUmemFabricHandle)

/// One rank's exported allocation.
struct ShareableHandle {
  int rank = -1;
  std::int64_t allocation_bytes = 0;                      ///< every rank's must be equal (one VA stride per rank)
  int fd = -1;                                            ///< kPosixFd: a descriptor valid in the receiving process
  std::array<std::uint8_t, kFabricHandleBytes> fabric{};  ///< kFabric: the handle bytes
};

class PeerExchange {
 public:
  virtual ~PeerExchange() = default;
  /// Every process calls this once with the handles of its own ranks; each gets back the handles of all
  /// ranks of the job, in rank order. Descriptors in the result stay open until the next exchange() or the
  /// exchange's destruction (importing them makes the CUDA handle independent of the descriptor). Throws
  /// std::runtime_error (or a subclass) when a peer is missing or the transport fails.
  virtual std::vector<ShareableHandle> exchange(HandleType type, std::span<const ShareableHandle> mine) = 0;
  /// Returns once every process has called it (throws like exchange()).
  virtual void barrier() = 0;
};

}  // namespace ar::cuda
