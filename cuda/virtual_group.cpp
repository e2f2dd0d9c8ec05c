#include "cuda/virtual_group.h"

#include <algorithm>
#include <stdexcept>

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "cuda/detail/fill.h"

namespace ar::cuda {

VirtualGroup::VirtualGroup(const Options& options) : options_(options) {
  detail::DeviceGuard guard(options.device);
  workspace_ = std::make_unique<Workspace>(Workspace::Options{.world_size = options.world_size,
                                                              .buffer_bytes_request = options.buffer_bytes_request,
                                                              .device = options.device,
                                                              .local_ranks = options.local_ranks,
                                                              .handle_type = options.handle_type,
                                                              .exchange = options.exchange});
  channel_ = std::make_unique<WaitChannel>(options.device);
  cudaStream_t s = nullptr;
  AR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_ = s;
  io_stride_ = round_up(std::max<std::int64_t>(options.io_bytes_per_rank, 16), 256);
  const std::vector<int>& local = workspace_->local_ranks();
  const std::size_t total = static_cast<std::size_t>(io_stride_) * local.size();
  try {
    AR_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&inputs_), total));
    AR_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&outputs_), total));
  } catch (...) {
    if (inputs_) AR_CUDA_CHECK_NOTHROW(cudaFree(inputs_));
    AR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(s));
    throw;
  }
  for (std::size_t i = 0; i < local.size(); ++i)
    io_.push_back(RankIo{local[i], inputs_ + io_stride_ * i, outputs_ + io_stride_ * i});
}

int VirtualGroup::slot_of(int rank) const {
  for (std::size_t i = 0; i < io_.size(); ++i)
    if (io_[i].rank == rank) return static_cast<int>(i);
  throw std::invalid_argument(rank >= 0 && rank < options_.world_size
                                  ? fmt::format("rank {} runs in another process", rank)
                                  : fmt::format("no rank {} in this group", rank));
}

VirtualGroup::~VirtualGroup() {
  detail::DeviceGuard guard(options_.device);
  if (stream_) AR_CUDA_CHECK_NOTHROW(cudaStreamSynchronize(stream_));
  if (inputs_) AR_CUDA_CHECK_NOTHROW(cudaFree(inputs_));
  if (outputs_) AR_CUDA_CHECK_NOTHROW(cudaFree(outputs_));
  if (stream_) AR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(stream_));
}

void VirtualGroup::upload(const HostTensor& input) {
  if (input.shape().size() != 3 || input.dim(0) != options_.world_size)
    throw std::invalid_argument(fmt::format("upload needs a [{}, N, D] tensor", options_.world_size));
  const std::int64_t shard = input.dim(1) * input.dim(2) * dtype_bytes(input.dtype());
  if (shard > io_stride_)
    throw std::invalid_argument(fmt::format("a rank's shard of {} bytes exceeds the group's {} bytes per rank", shard,
                                            io_stride_));
  detail::DeviceGuard guard(options_.device);
  for (const RankIo& io : io_)
    AR_CUDA_CHECK(cudaMemcpyAsync(const_cast<void*>(io.input), input.bytes().data() + shard * io.rank, shard,
                                  cudaMemcpyHostToDevice, stream_));
  AR_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void VirtualGroup::poison_outputs() {
  detail::DeviceGuard guard(options_.device);
  detail::fill_words(outputs_, static_cast<std::uint64_t>(io_stride_) * io_.size() / 4, 0xFFFFFFFFu, stream_);
  AR_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

AllReduceArguments VirtualGroup::arguments(const Call& call, std::span<const int> ranks) {
  AllReduceArguments a;
  a.shape = call.shape;
  a.strategy = call.strategy;
  a.profile = call.profile;
  a.launch_with_pdl = call.pdl;
  a.workspace = &workspace_->view();
  a.device = options_.device;
  a.timeout_ns = options_.timeout_ns;
  a.round_bytes = options_.round_bytes;
  a.channel = channel_->view();
  if (ranks.empty()) {
    a.ranks = io_;
  } else {
    subset_.clear();
    for (int r : ranks) subset_.push_back(io_[slot_of(r)]);
    a.ranks = subset_;
  }
  const std::int64_t shard = call.shape.bytes_per_rank();
  if (shard > io_stride_)
    throw std::invalid_argument(
        fmt::format("the call's {} bytes per rank exceed the group's {} bytes per rank", shard, io_stride_));
  return a;
}

Status VirtualGroup::can_run(const Call& call, std::span<const int> ranks) {
  return can_implement(arguments(call, ranks));
}

LaunchPlan VirtualGroup::plan(const Call& call, std::span<const int> ranks) {
  return plan_launch(arguments(call, ranks));
}

void VirtualGroup::enqueue(const Call& call, std::span<const int> ranks) { launch(arguments(call, ranks), stream_); }

std::optional<WaitError> VirtualGroup::finish() {
  {
    detail::DeviceGuard guard(options_.device);
    AR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  std::optional<WaitError> e = channel_->take();
  if (e && workspace_->holds_every_rank()) workspace_->reset();
  return e;
}

std::optional<WaitError> VirtualGroup::run(const Call& call, std::span<const int> ranks) {
  enqueue(call, ranks);
  return finish();
}

HostTensor VirtualGroup::download(int rank, const ProblemShape& shape) {
  HostTensor out(shape.dtype, {shape.tokens, shape.hidden});
  detail::DeviceGuard guard(options_.device);
  AR_CUDA_CHECK(cudaMemcpyAsync(out.bytes().data(), io_[slot_of(rank)].output, out.bytes().size(),
                                cudaMemcpyDeviceToHost, stream_));
  AR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return out;
}

void VirtualGroup::reset() { workspace_->reset(); }

double VirtualGroup::time_us(const Call& call, int warmup, int iterations, int graph_launches,
                             const std::function<void()>& before_timing) {
  if (iterations < 1) throw std::invalid_argument("time_us needs at least one iteration");
  detail::DeviceGuard guard(options_.device);
  for (int i = 0; i < warmup; ++i) enqueue(call);
  if (auto e = finish()) throw std::runtime_error(describe_wait_error(*e));

  cudaEvent_t start = nullptr, stop = nullptr;
  AR_CUDA_CHECK(cudaEventCreate(&start));
  AR_CUDA_CHECK(cudaEventCreate(&stop));
  cudaGraphExec_t exec = nullptr;
  float ms = 0.0f;
  double calls = 0;
  try {
    if (graph_launches > 0) {
      cudaGraph_t graph = nullptr;
      AR_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      try {
        for (int i = 0; i < iterations; ++i) enqueue(call);
      } catch (...) {
        (void)cudaStreamEndCapture(stream_, &graph);
        if (graph) (void)cudaGraphDestroy(graph);
        throw;
      }
      AR_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
      const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
      AR_CUDA_CHECK_NOTHROW(cudaGraphDestroy(graph));
      AR_CUDA_CHECK(made);
      AR_CUDA_CHECK(cudaGraphLaunch(exec, stream_));  // one replay to warm the graph
      if (before_timing) {
        if (auto e = finish()) throw std::runtime_error(describe_wait_error(*e));
        before_timing();
      }
      AR_CUDA_CHECK(cudaEventRecord(start, stream_));
      for (int g = 0; g < graph_launches; ++g) AR_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
      AR_CUDA_CHECK(cudaEventRecord(stop, stream_));
      calls = static_cast<double>(graph_launches) * iterations;
    } else {
      if (before_timing) before_timing();  // the warm-up has finished above
      AR_CUDA_CHECK(cudaEventRecord(start, stream_));
      for (int i = 0; i < iterations; ++i) enqueue(call);
      AR_CUDA_CHECK(cudaEventRecord(stop, stream_));
      calls = iterations;
    }
    AR_CUDA_CHECK(cudaEventSynchronize(stop));
    AR_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  } catch (...) {
    if (exec) AR_CUDA_CHECK_NOTHROW(cudaGraphExecDestroy(exec));
    AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(start));
    AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(stop));
    throw;
  }
  if (exec) AR_CUDA_CHECK_NOTHROW(cudaGraphExecDestroy(exec));
  AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(start));
  AR_CUDA_CHECK_NOTHROW(cudaEventDestroy(stop));
  if (auto e = finish()) throw std::runtime_error(describe_wait_error(*e));
  return static_cast<double>(ms) * 1000.0 / calls;
}

}  // namespace ar::cuda
