// The Lamport workspace: every rank's three Lamport buffers in memory made with the CUDA virtual memory API
// (cuMemCreate / cuMemAddressReserve / cuMemMap / cuMemSetAccess), sized by reference/workspace.h, plus
// the flags block of every rank this process runs. No multicast object is created: each GPU maps every
// rank's buffer (a peer mapping when the rank lives on another GPU) and kernels store to peers through those
// unicast addresses.
//
// Ranks may live in several processes (SPEC section 8): each process then creates only its own ranks'
// allocations, exports them as shareable handles (POSIX file descriptors or fabric handles), receives the
// others' through a PeerExchange and maps them at the same place in one reserved range (rank r at
// base + r * allocation). A kernel touches only its own rank's flags, so flags are never shared.
//
// Owner + handle: a Workspace owns the allocations, mappings and flags; view() hands out a trivially
// copyable WorkspaceView that launches copy into their parameters.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "cuda/params.h"
#include "cuda/peer_exchange.h"
#include "reference/workspace.h"

namespace ar::cuda {

/// What a launch needs of a workspace (trivially copyable).
struct WorkspaceView {
  int world_size = 0;
  std::int64_t buffer_bytes = 0;             ///< BPB, also in every rank's flags word 2
  PeerTable peers{};                         ///< this process's address of every rank's buffers
  std::uint32_t* flags[kMaxWorldSize] = {};  ///< the flags block of every rank of this process (else null)
  /// The direct path's region (reference DirectRegion; bytes 0: none), at peers.base[r] + direct_offset of every
  /// rank r, after its Lamport buffers and signal pad.
  DirectRegion direct{};
  std::int64_t direct_offset = 0;
};

class Workspace {
 public:
  struct Options {
    int world_size = 2;
    /// Bytes per Lamport buffer asked for (request_buffer_bytes(); rounded up to 32 here). The workspace
    /// gets at least this; BPB = buffer_bytes_from_usable(allocation - signal pad), usually more.
    std::int64_t buffer_bytes_request = 0;
    /// TWOSHOT's direct path (docs/large-messages.md): the largest SCATTER and BROADCAST rows of a direct call
    /// (reference direct_scatter_bytes, direct_broadcast_bytes); both 0: no direct region.
    std::int64_t direct_scatter_bytes = 0;
    std::int64_t direct_broadcast_bytes = 0;
    /// The device of every rank. Empty: every rank on `device` (virtual ranks). One process may drive
    /// several GPUs this way; each device gets access to every rank's memory.
    std::vector<int> rank_devices;
    int device = 0;
    /// The ranks this process runs: it creates their memory and flags. Empty: every rank (one process).
    /// Otherwise the other ranks' memory comes from `exchange`, exported as `handle_type`.
    std::vector<int> local_ranks;
    HandleType handle_type = HandleType::kPosixFd;
    PeerExchange* exchange = nullptr;  ///< required when local_ranks leaves ranks out; used during construction
                                       ///< and by reset()
  };

  /// Creates, maps and Lamport-initialises the local ranks' buffers and flags, and maps every other rank's
  /// buffers. With several processes, returns only after every process has initialised its ranks (so no
  /// peer stores into a buffer before its owner filled it). Throws CudaError, std::runtime_error naming the
  /// problem (a refused handle type, a peer of another allocation size), or std::invalid_argument for bad
  /// options.
  explicit Workspace(const Options& options);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  int world_size() const { return view_.world_size; }
  std::int64_t buffer_bytes() const { return view_.buffer_bytes; }     ///< BPB
  std::int64_t allocation_bytes() const { return allocation_bytes_; }  ///< per rank, granularity-rounded
  std::int64_t granularity() const { return granularity_; }
  int device_of(int rank) const { return rank_devices_.at(rank); }
  const WorkspaceView& view() const { return view_; }
  const std::vector<int>& local_ranks() const { return local_ranks_; }
  bool is_local(int rank) const;
  /// True when this process holds every rank (nothing was imported).
  bool holds_every_rank() const { return static_cast<int>(local_ranks_.size()) == view_.world_size; }
  /// How the local ranks' memory was exported (nullopt: not exportable, one process only).
  std::optional<HandleType> exported_as() const { return exported_as_; }

  /// Lamport initialisation of the local ranks (every word of their buffers = 0x80000000, as FlashInfer's
  /// lamport_initialize; the direct region's too) and initial flags {0, 2, BPB, 0, 0, 0, 0, 0, 0}, call counter 0. Blocking; with
  /// several processes it ends with a barrier, so every process must call it. Also the recovery after a
  /// timeout.
  void reset();

  /// A local rank's nine flags words as the device holds them (blocking).
  LamportFlags flags(int rank) const;
  /// Calls the rank has completed since the last reset (blocking).
  std::uint32_t completed_calls(int rank) const;

 private:
  void release() noexcept;  // frees whatever exists; safe on a half-built workspace
  void create_and_map(unsigned long long requested_handle_type);  // CUmemAllocationHandleType

  Options options_;
  std::vector<int> local_ranks_;
  std::optional<HandleType> exported_as_;
  std::vector<int> rank_devices_;
  std::vector<int> devices_;  // distinct
  std::int64_t allocation_bytes_ = 0;
  std::int64_t granularity_ = 0;
  std::uint64_t reserved_base_ = 0;
  std::vector<unsigned long long> handles_;  // CUmemGenericAllocationHandle per rank
  std::vector<bool> mapped_;
  WorkspaceView view_;
};

}  // namespace ar::cuda
