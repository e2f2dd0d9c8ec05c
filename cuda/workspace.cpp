#include "cuda/workspace.h"

#include <algorithm>
#include <stdexcept>

#include <cuda.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <unistd.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "cuda/detail/driver_api.h"
#include "cuda/detail/fill.h"

namespace ar::cuda {
namespace {

CUmemAllocationHandleType driver_handle_type(HandleType t) {
  return t == HandleType::kFabric ? CU_MEM_HANDLE_TYPE_FABRIC : CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
}

}  // namespace

std::string_view handle_type_name(HandleType t) {
  return t == HandleType::kFabric ? "fabric" : "POSIX file-descriptor";
}

Workspace::Workspace(const Options& options) : options_(options) {
  const int world = options.world_size;
  if (!is_supported_world_size(world))
    throw std::invalid_argument(
        fmt::format("world size {} is not supported (supported: {})", world, world_sizes_text()));
  if (options.buffer_bytes_request <= 0) throw std::invalid_argument("the Lamport buffer request must be positive");
  if (options.direct_scatter_bytes < 0 || options.direct_broadcast_bytes < 0)
    throw std::invalid_argument("the direct region's row bytes must not be negative");
  view_.world_size = world;  // holds_every_rank() compares with it
  rank_devices_ = options.rank_devices.empty() ? std::vector<int>(world, options.device) : options.rank_devices;
  if (static_cast<int>(rank_devices_.size()) != world)
    throw std::invalid_argument(fmt::format("rank_devices names {} devices for {} ranks", rank_devices_.size(), world));
  if (options.local_ranks.empty()) {
    for (int r = 0; r < world; ++r) local_ranks_.push_back(r);
  } else {
    local_ranks_ = options.local_ranks;
    std::sort(local_ranks_.begin(), local_ranks_.end());
    if (std::unique(local_ranks_.begin(), local_ranks_.end()) != local_ranks_.end() || local_ranks_.front() < 0 ||
        local_ranks_.back() >= world)
      throw std::invalid_argument(fmt::format("local ranks must be distinct ranks of W = {}", world));
  }
  if (!holds_every_rank() && options.exchange == nullptr)
    throw std::invalid_argument("a workspace whose ranks live in several processes needs a peer exchange");
  // Access is granted to the devices of this process's ranks; the others' devices belong to other processes.
  for (int r : local_ranks_) devices_.push_back(rank_devices_[r]);
  std::sort(devices_.begin(), devices_.end());
  devices_.erase(std::unique(devices_.begin(), devices_.end()), devices_.end());

  // One process: POSIX handles are asked for, so the memory could be exported, but it never is; a driver
  // that refuses them gets process-local memory. Several processes: the agreed handle type or nothing.
  const CUmemAllocationHandleType handle_type =
      holds_every_rank() ? CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR : driver_handle_type(options.handle_type);
  try {
    create_and_map(static_cast<unsigned long long>(handle_type));
    reset();
  } catch (...) {
    release();
    throw;
  }
}

void Workspace::create_and_map(unsigned long long requested) {
  const detail::DriverApi& api = detail::driver_api();
  const int world = view_.world_size;
  auto handle_type = static_cast<CUmemAllocationHandleType>(requested);
  const std::int64_t request = round_up(options_.buffer_bytes_request, kBufferAlignment);

  std::size_t granularity = 0;
  for (int d : devices_) {
    const CUmemAllocationProp prop = detail::allocation_prop(d, handle_type);
    std::size_t g = 0;
    AR_CUDA_CHECK(api.cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
    granularity = std::max(granularity, g);
  }
  granularity_ = static_cast<std::int64_t>(granularity);
  // FlashInfer: allocation = round_up(3 buffers + signal pad, granularity); usable = allocation - pad. The
  // direct path's region follows, in granules of its own, so BPB is FlashInfer's whether or not it exists.
  const std::int64_t lamport_bytes = round_up(kLamportBufferCount * request + kSignalPadBytes, granularity_);
  view_.buffer_bytes = buffer_bytes_from_usable(lamport_bytes - kSignalPadBytes);
  if (options_.direct_scatter_bytes > 0 || options_.direct_broadcast_bytes > 0) {
    view_.direct = direct_region(world, options_.direct_scatter_bytes, options_.direct_broadcast_bytes,
                                 kMaxDirectBlocks);
    view_.direct_offset = lamport_bytes;
  }
  allocation_bytes_ = lamport_bytes + round_up(view_.direct.bytes, granularity_);
  handles_.assign(world, 0);
  mapped_.assign(world, false);
  const std::size_t bytes = static_cast<std::size_t>(allocation_bytes_);

  CUdeviceptr base = 0;
  AR_CUDA_CHECK(api.cuMemAddressReserve(&base, bytes * world, granularity, 0, 0));
  reserved_base_ = base;
  const auto map = [&](int r) {
    const CUdeviceptr at = base + static_cast<CUdeviceptr>(allocation_bytes_) * r;
    AR_CUDA_CHECK(api.cuMemMap(at, bytes, 0, handles_[r], 0));
    mapped_[r] = true;
    view_.peers.base[r] = at;
  };

  // 1. The local ranks' allocations.
  for (int r : local_ranks_) {
    CUmemGenericAllocationHandle handle = 0;
    CUmemAllocationProp prop = detail::allocation_prop(rank_devices_[r], handle_type);
    CUresult made = api.cuMemCreate(&handle, bytes, &prop, 0);
    if (holds_every_rank() &&
        (made == CUDA_ERROR_NOT_PERMITTED || made == CUDA_ERROR_NOT_SUPPORTED || made == CUDA_ERROR_INVALID_VALUE)) {
      handle_type = CU_MEM_HANDLE_TYPE_NONE;  // exportable handles refused here: keep the memory process-local
      prop = detail::allocation_prop(rank_devices_[r], handle_type);
      made = api.cuMemCreate(&handle, bytes, &prop, 0);
    }
    if (made != CUDA_SUCCESS && !holds_every_rank())
      throw std::runtime_error(fmt::format("rank {}: cuMemCreate of {} bytes with {} handles on GPU {} failed: {}", r,
                                           bytes, handle_type_name(options_.handle_type), rank_devices_[r],
                                           detail::describe_driver_result(made)));
    AR_CUDA_CHECK(made);
    handles_[r] = handle;
    map(r);
  }
  if (handle_type != CU_MEM_HANDLE_TYPE_NONE)
    exported_as_ = holds_every_rank() ? HandleType::kPosixFd : options_.handle_type;

  // 2. Several processes: export the local allocations, exchange, import and map every other rank's.
  if (!holds_every_rank()) {
    std::vector<ShareableHandle> mine;
    std::vector<int> exported_fds;
    try {
      for (int r : local_ranks_) {
        ShareableHandle h;
        h.rank = r;
        h.allocation_bytes = allocation_bytes_;
        if (options_.handle_type == HandleType::kPosixFd) {
          AR_CUDA_CHECK(
              api.cuMemExportToShareableHandle(&h.fd, handles_[r], CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0));
          exported_fds.push_back(h.fd);
        } else {
          CUmemFabricHandle fabric{};
          AR_CUDA_CHECK(api.cuMemExportToShareableHandle(&fabric, handles_[r], CU_MEM_HANDLE_TYPE_FABRIC, 0));
          std::copy(std::begin(fabric.data), std::end(fabric.data), h.fabric.begin());
        }
        mine.push_back(h);
      }
      const std::vector<ShareableHandle> all = options_.exchange->exchange(options_.handle_type, mine);
      // The peers hold their own descriptors now (SCM_RIGHTS duplicates them); ours can go.
      for (int fd : exported_fds) ::close(fd);
      exported_fds.clear();
      if (static_cast<int>(all.size()) != world)
        throw std::runtime_error(
            fmt::format("the handle exchange returned {} handles for {} ranks", all.size(), world));
      for (int r = 0; r < world; ++r) {
        const ShareableHandle& h = all[r];
        if (h.rank != r)
          throw std::runtime_error(fmt::format("the handle exchange put rank {} at index {}", h.rank, r));
        if (h.allocation_bytes != allocation_bytes_)
          throw std::runtime_error(fmt::format(
              "rank {} allocated {} bytes per rank but this process allocated {}: the ranks' GPUs round the workspace "
              "to different granularities, so one address stride cannot serve them all",
              r, h.allocation_bytes, allocation_bytes_));
        if (is_local(r)) continue;
        CUmemGenericAllocationHandle imported = 0;
        if (options_.handle_type == HandleType::kPosixFd) {
          const CUresult got =
              api.cuMemImportFromShareableHandle(&imported, reinterpret_cast<void*>(static_cast<std::uintptr_t>(h.fd)),
                                                 CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
          if (got != CUDA_SUCCESS)
            throw std::runtime_error(fmt::format("cannot import rank {}'s POSIX file-descriptor handle: {}", r,
                                                 detail::describe_driver_result(got)));
        } else {
          CUmemFabricHandle fabric{};
          std::copy(h.fabric.begin(), h.fabric.end(), fabric.data);
          const CUresult got = api.cuMemImportFromShareableHandle(&imported, &fabric, CU_MEM_HANDLE_TYPE_FABRIC);
          if (got != CUDA_SUCCESS)
            throw std::runtime_error(
                fmt::format("cannot import rank {}'s fabric handle: {}", r, detail::describe_driver_result(got)));
        }
        handles_[r] = imported;
        map(r);
      }
    } catch (...) {
      for (int fd : exported_fds) ::close(fd);
      throw;
    }
  }

  // 3. Read-write access for this process's devices over every rank's memory.
  std::vector<CUmemAccessDesc> access;
  for (int d : devices_) {
    CUmemAccessDesc a{};
    a.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    a.location.id = d;
    a.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    access.push_back(a);
  }
  AR_CUDA_CHECK(api.cuMemSetAccess(base, bytes * world, access.data(), access.size()));

  // 4. Flags of the local ranks only: a kernel reads and advances its own rank's flags and nobody else's.
  for (int r : local_ranks_) {
    detail::DeviceGuard guard(rank_devices_[r]);
    void* flags = nullptr;
    AR_CUDA_CHECK(cudaMalloc(&flags, kFlagsBlockWords * sizeof(std::uint32_t)));
    view_.flags[r] = static_cast<std::uint32_t*>(flags);
  }
}

Workspace::~Workspace() { release(); }

bool Workspace::is_local(int rank) const { return std::binary_search(local_ranks_.begin(), local_ranks_.end(), rank); }

void Workspace::release() noexcept {
  const detail::DriverApi* api = detail::driver_api_if_loaded();
  for (int r = 0; r < view_.world_size; ++r) {
    if (view_.flags[r]) {
      AR_CUDA_CHECK_NOTHROW(cudaFree(view_.flags[r]));
      view_.flags[r] = nullptr;
    }
  }
  if (!api) return;
  for (std::size_t r = 0; r < handles_.size(); ++r) {
    if (mapped_[r]) {
      AR_CUDA_CHECK_NOTHROW(api->cuMemUnmap(view_.peers.base[r], static_cast<std::size_t>(allocation_bytes_)));
      mapped_[r] = false;
    }
    if (handles_[r]) {  // created or imported: either way this process's reference goes
      AR_CUDA_CHECK_NOTHROW(api->cuMemRelease(handles_[r]));
      handles_[r] = 0;
    }
  }
  if (reserved_base_) {
    AR_CUDA_CHECK_NOTHROW(
        api->cuMemAddressFree(reserved_base_, static_cast<std::size_t>(allocation_bytes_) * handles_.size()));
    reserved_base_ = 0;
  }
}

void Workspace::reset() {
  const LamportFlags initial = initial_flags(static_cast<std::uint32_t>(view_.buffer_bytes));
  std::uint32_t block[kFlagsBlockWords] = {};
  std::copy(initial.words.begin(), initial.words.end(), block);
  const std::int64_t lamport_bytes = allocation_bytes_ - round_up(view_.direct.bytes, granularity_);
  for (int r : local_ranks_) {
    detail::DeviceGuard guard(rank_devices_[r]);
    // Every word of [0, allocation - signal pad) becomes the sentinel, as FlashInfer's lamport_initialize.
    detail::fill_words(reinterpret_cast<void*>(view_.peers.base[r]),
                       static_cast<std::uint64_t>(lamport_bytes - kSignalPadBytes) / 4, kLamportEmptyWord, nullptr);
    // The direct region too: its flags then hold no value a launch publishes (reference direct_flag_value).
    if (view_.direct.bytes > 0)
      detail::fill_words(reinterpret_cast<void*>(view_.peers.base[r] + view_.direct_offset),
                         static_cast<std::uint64_t>(view_.direct.bytes) / 4, kLamportEmptyWord, nullptr);
    AR_CUDA_CHECK(cudaMemcpy(view_.flags[r], block, sizeof(block), cudaMemcpyHostToDevice));
  }
  for (int d : devices_) {
    detail::DeviceGuard guard(d);
    AR_CUDA_CHECK(cudaDeviceSynchronize());
  }
  // No peer may store into a buffer before its owner has filled it with the sentinel.
  if (!holds_every_rank()) options_.exchange->barrier();
}

LamportFlags Workspace::flags(int rank) const {
  if (!is_local(rank)) throw std::invalid_argument(fmt::format("rank {} runs in another process", rank));
  LamportFlags f;
  detail::DeviceGuard guard(rank_devices_.at(rank));
  AR_CUDA_CHECK(cudaMemcpy(f.words.data(), view_.flags[rank], sizeof(f.words), cudaMemcpyDeviceToHost));
  return f;
}

std::uint32_t Workspace::completed_calls(int rank) const {
  if (!is_local(rank)) throw std::invalid_argument(fmt::format("rank {} runs in another process", rank));
  std::uint32_t calls = 0;
  detail::DeviceGuard guard(rank_devices_.at(rank));
  AR_CUDA_CHECK(cudaMemcpy(&calls, view_.flags[rank] + kCallCounterWord, sizeof(calls), cudaMemcpyDeviceToHost));
  return calls;
}

}  // namespace ar::cuda
