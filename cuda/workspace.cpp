#include "cuda/workspace.h"

#include <algorithm>
#include <stdexcept>

#include <cuda.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "cuda/detail/driver_api.h"
#include "cuda/detail/fill.h"

namespace ar::cuda {
namespace {

CUmemAllocationProp allocation_prop(int device, CUmemAllocationHandleType handle_type) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  prop.requestedHandleTypes = handle_type;
  return prop;
}

}  // namespace

Workspace::Workspace(const Options& options) {
  const int world = options.world_size;
  if (!is_supported_world_size(world))
    throw std::invalid_argument(fmt::format("world size {} is not supported (supported: 2, 4, 8, 16, 32, 64)", world));
  if (options.buffer_bytes_request <= 0)
    throw std::invalid_argument("the Lamport buffer request must be positive");
  rank_devices_ = options.rank_devices.empty() ? std::vector<int>(world, options.device) : options.rank_devices;
  if (static_cast<int>(rank_devices_.size()) != world)
    throw std::invalid_argument(fmt::format("rank_devices names {} devices for {} ranks", rank_devices_.size(), world));
  devices_ = rank_devices_;
  std::sort(devices_.begin(), devices_.end());
  devices_.erase(std::unique(devices_.begin(), devices_.end()), devices_.end());

  const detail::DriverApi& api = detail::driver_api();
  const std::int64_t request = round_up(options.buffer_bytes_request, kBufferAlignment);

  // POSIX file-descriptor handles, so a later multi-process group can export them; none if refused.
  CUmemAllocationHandleType handle_type = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  std::size_t granularity = 0;
  for (int d : devices_) {
    const CUmemAllocationProp prop = allocation_prop(d, handle_type);
    std::size_t g = 0;
    AR_CUDA_CHECK(api.cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
    granularity = std::max(granularity, g);
  }
  granularity_ = static_cast<std::int64_t>(granularity);
  // FlashInfer: allocation = round_up(3 buffers + signal pad, granularity); usable = allocation - pad.
  allocation_bytes_ = round_up(kLamportBufferCount * request + kSignalPadBytes, granularity_);
  view_.world_size = world;
  view_.buffer_bytes = buffer_bytes_from_usable(allocation_bytes_ - kSignalPadBytes);

  handles_.assign(world, 0);
  mapped_.assign(world, false);
  try {
    CUdeviceptr base = 0;
    AR_CUDA_CHECK(api.cuMemAddressReserve(&base, static_cast<std::size_t>(allocation_bytes_) * world, granularity, 0, 0));
    reserved_base_ = base;
    for (int r = 0; r < world; ++r) {
      CUmemGenericAllocationHandle handle = 0;
      CUmemAllocationProp prop = allocation_prop(rank_devices_[r], handle_type);
      CUresult made = api.cuMemCreate(&handle, static_cast<std::size_t>(allocation_bytes_), &prop, 0);
      if (made == CUDA_ERROR_NOT_PERMITTED || made == CUDA_ERROR_NOT_SUPPORTED || made == CUDA_ERROR_INVALID_VALUE) {
        handle_type = CU_MEM_HANDLE_TYPE_NONE;  // exportable handles refused here: keep the memory process-local
        prop = allocation_prop(rank_devices_[r], handle_type);
        made = api.cuMemCreate(&handle, static_cast<std::size_t>(allocation_bytes_), &prop, 0);
      }
      AR_CUDA_CHECK(made);
      handles_[r] = handle;
      const CUdeviceptr at = base + static_cast<CUdeviceptr>(allocation_bytes_) * r;
      AR_CUDA_CHECK(api.cuMemMap(at, static_cast<std::size_t>(allocation_bytes_), 0, handle, 0));
      mapped_[r] = true;
      view_.peers.base[r] = at;
    }
    std::vector<CUmemAccessDesc> access;
    for (int d : devices_) {
      CUmemAccessDesc a{};
      a.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
      a.location.id = d;
      a.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
      access.push_back(a);
    }
    AR_CUDA_CHECK(api.cuMemSetAccess(base, static_cast<std::size_t>(allocation_bytes_) * world, access.data(), access.size()));
    for (int r = 0; r < world; ++r) {
      detail::DeviceGuard guard(rank_devices_[r]);
      void* flags = nullptr;
      AR_CUDA_CHECK(cudaMalloc(&flags, kFlagsBlockWords * sizeof(std::uint32_t)));
      view_.flags[r] = static_cast<std::uint32_t*>(flags);
    }
    reset();
  } catch (...) {
    release();
    throw;
  }
}

Workspace::~Workspace() { release(); }

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
    if (handles_[r]) {
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
  for (int r = 0; r < view_.world_size; ++r) {
    detail::DeviceGuard guard(rank_devices_[r]);
    // Every word of [0, allocation - signal pad) becomes the sentinel, as FlashInfer's lamport_initialize.
    detail::fill_words(reinterpret_cast<void*>(view_.peers.base[r]),
                       static_cast<std::uint64_t>(allocation_bytes_ - kSignalPadBytes) / 4, kLamportEmptyWord, nullptr);
    AR_CUDA_CHECK(cudaMemcpy(view_.flags[r], block, sizeof(block), cudaMemcpyHostToDevice));
  }
  for (int d : devices_) {
    detail::DeviceGuard guard(d);
    AR_CUDA_CHECK(cudaDeviceSynchronize());
  }
}

LamportFlags Workspace::flags(int rank) const {
  LamportFlags f;
  detail::DeviceGuard guard(rank_devices_.at(rank));
  AR_CUDA_CHECK(cudaMemcpy(f.words.data(), view_.flags[rank], sizeof(f.words), cudaMemcpyDeviceToHost));
  return f;
}

std::uint32_t Workspace::completed_calls(int rank) const {
  std::uint32_t calls = 0;
  detail::DeviceGuard guard(rank_devices_.at(rank));
  AR_CUDA_CHECK(cudaMemcpy(&calls, view_.flags[rank] + kCallCounterWord, sizeof(calls), cudaMemcpyDeviceToHost));
  return calls;
}

}  // namespace ar::cuda
