#include "cuda/nccl_baseline.h"

#include <dlfcn.h>

#include <cstdlib>
#include <stdexcept>

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "cuda/detail/stream_timer.h"

namespace ar::cuda {

// The few NCCL entry points used, declared from NCCL's public C API (nccl.h): results and enums are ints,
// communicators opaque pointers.
struct NcclBaseline::Api {
  using Result = int;
  Result (*get_version)(int*) = nullptr;
  const char* (*get_error_string)(Result) = nullptr;
  Result (*comm_init_all)(void** comms, int ndev, const int* devices) = nullptr;
  Result (*comm_destroy)(void* comm) = nullptr;
  Result (*group_start)() = nullptr;
  Result (*group_end)() = nullptr;
  Result (*all_reduce)(const void* send, void* recv, std::size_t count, int datatype, int op, void* comm,
                       cudaStream_t stream) = nullptr;
};

namespace {

constexpr int kNcclSum = 0;
constexpr int kNcclFloat16 = 6, kNcclFloat32 = 7, kNcclBfloat16 = 9;

int nccl_type(DType t) {
  switch (t) {
    case DType::kBf16: return kNcclBfloat16;
    case DType::kFp16: return kNcclFloat16;
    case DType::kFp32: break;
  }
  return kNcclFloat32;
}

template <class Fn>
void resolve(void* handle, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  if (fn == nullptr) throw std::runtime_error(fmt::format("the NCCL library lacks {}", name));
}

}  // namespace

NcclBaseline::NcclBaseline(const std::string& library, const std::vector<int>& devices)
    : api_(std::make_unique<Api>()), devices_(devices) {
  if (devices.size() < 2) throw std::runtime_error("the NCCL baseline needs at least 2 GPUs");
  // Never NVLink multicast (NVLS), whatever the environment says.
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  handle_ = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr)
    throw std::runtime_error(
        fmt::format("cannot load NCCL from '{}': {} (give --nccl-lib PATH or set AR_NCCL_LIB)", library, dlerror()));
  resolve(handle_, "ncclGetVersion", api_->get_version);
  resolve(handle_, "ncclGetErrorString", api_->get_error_string);
  resolve(handle_, "ncclCommInitAll", api_->comm_init_all);
  resolve(handle_, "ncclCommDestroy", api_->comm_destroy);
  resolve(handle_, "ncclGroupStart", api_->group_start);
  resolve(handle_, "ncclGroupEnd", api_->group_end);
  resolve(handle_, "ncclAllReduce", api_->all_reduce);
  int v = 0;
  api_->get_version(&v);
  version_ = fmt::format("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100);
  comms_.assign(devices.size(), nullptr);
  if (int r = api_->comm_init_all(comms_.data(), static_cast<int>(devices.size()), devices.data()); r != 0)
    throw std::runtime_error(fmt::format("ncclCommInitAll failed: {}", api_->get_error_string(r)));
  for (int d : devices) {
    detail::DeviceGuard guard(d);
    cudaStream_t s = nullptr;
    AR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    streams_.push_back(s);
  }
  send_.assign(devices.size(), nullptr);
  recv_.assign(devices.size(), nullptr);
}

NcclBaseline::~NcclBaseline() {
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    detail::DeviceGuard guard(devices_[i]);
    if (i < streams_.size()) AR_CUDA_CHECK_NOTHROW(cudaStreamSynchronize(static_cast<cudaStream_t>(streams_[i])));
    if (send_.size() > i && send_[i]) AR_CUDA_CHECK_NOTHROW(cudaFree(send_[i]));
    if (recv_.size() > i && recv_[i]) AR_CUDA_CHECK_NOTHROW(cudaFree(recv_[i]));
    if (i < streams_.size()) AR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(static_cast<cudaStream_t>(streams_[i])));
    if (comms_.size() > i && comms_[i] && api_->comm_destroy) api_->comm_destroy(comms_[i]);
  }
  if (handle_) dlclose(handle_);
}

void NcclBaseline::enqueue(std::size_t count, DType dtype) {
  if (int r = api_->group_start(); r != 0)
    throw std::runtime_error(fmt::format("ncclGroupStart failed: {}", api_->get_error_string(r)));
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    const int r = api_->all_reduce(send_[i], recv_[i], count, nccl_type(dtype), kNcclSum, comms_[i],
                                   static_cast<cudaStream_t>(streams_[i]));
    if (r != 0) {
      (void)api_->group_end();
      throw std::runtime_error(fmt::format("ncclAllReduce failed: {}", api_->get_error_string(r)));
    }
  }
  if (int r = api_->group_end(); r != 0)
    throw std::runtime_error(fmt::format("ncclGroupEnd failed: {}", api_->get_error_string(r)));
}

void NcclBaseline::synchronize() {
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    detail::DeviceGuard guard(devices_[i]);
    AR_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(streams_[i])));
  }
}

double NcclBaseline::time_us(std::int64_t bytes, DType dtype, int warmup, int iterations, int graph_launches) {
  if (iterations < 1) throw std::invalid_argument("NCCL timing needs at least one iteration");
  if (bytes > capacity_) {
    for (std::size_t i = 0; i < devices_.size(); ++i) {
      detail::DeviceGuard guard(devices_[i]);
      if (send_[i]) AR_CUDA_CHECK(cudaFree(send_[i]));
      if (recv_[i]) AR_CUDA_CHECK(cudaFree(recv_[i]));
      send_[i] = recv_[i] = nullptr;
      AR_CUDA_CHECK(cudaMalloc(&send_[i], static_cast<std::size_t>(bytes)));
      AR_CUDA_CHECK(cudaMalloc(&recv_[i], static_cast<std::size_t>(bytes)));
      AR_CUDA_CHECK(cudaMemset(send_[i], 0, static_cast<std::size_t>(bytes)));
    }
    capacity_ = bytes;
  }
  const std::size_t count = static_cast<std::size_t>(bytes / dtype_bytes(dtype));
  detail::TimedWork work;
  work.devices = devices_;
  for (void* s : streams_) work.streams.push_back(static_cast<cudaStream_t>(s));
  work.launch = [&] { enqueue(count, dtype); };
  // Every GPU's stream captures at once: NCCL's grouped launch enqueues on all of them together.
  work.capture = detail::GraphCapture::kAllStreams;
  work.synchronize = [&] { synchronize(); };
  return detail::time_per_iteration_us(work, warmup, iterations, graph_launches);
}

}  // namespace ar::cuda
