#include "cuda/virtual_group.h"

#include <algorithm>
#include <stdexcept>

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "cuda/detail/check.h"
#include "cuda/detail/device_guard.h"
#include "cuda/detail/fill.h"
#include "cuda/detail/stream_timer.h"
#include "cuda/rms_norm.h"

namespace ar::cuda {

namespace {

/// Per rank, for fused calls: residual, residual_out, gamma, and the all-reduce result of a call whose norm
/// runs as a separate kernel.
constexpr std::int64_t kNormBuffers = 4;
/// Each rank's output_scale takes this many bytes after its quant_out and scale_out.
constexpr std::int64_t kQuantScaleBytes = 256;

/// The GPU of every rank: this process's ranks in contiguous equal blocks over `devices` (ranks of other
/// processes get the first device; they are never launched here, and a workspace only grants access to
/// the devices of its local ranks).
std::vector<int> rank_devices(int world, const std::vector<int>& local, const std::vector<int>& devices) {
  if (local.size() % devices.size() != 0)
    throw std::invalid_argument(
        fmt::format("{} ranks cannot be split evenly over {} GPUs", local.size(), devices.size()));
  std::vector<int> sorted = devices;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    throw std::invalid_argument("a GPU is named twice in the group's devices");
  std::vector<int> out(world, devices.front());
  const std::size_t per = local.size() / devices.size();
  for (std::size_t i = 0; i < local.size(); ++i) out[local[i]] = devices[i / per];
  return out;
}

}  // namespace

VirtualGroup::VirtualGroup(const Options& options) : options_(options) {
  if (options_.devices.empty()) options_.devices = {options.device};
  std::vector<int> local = options.local_ranks;
  if (local.empty())
    for (int r = 0; r < options.world_size; ++r) local.push_back(r);
  std::sort(local.begin(), local.end());
  workspace_ = std::make_unique<Workspace>(
      Workspace::Options{.world_size = options.world_size,
                         .buffer_bytes_request = options.buffer_bytes_request,
                         .direct_scatter_bytes = options.direct_scatter_bytes,
                         .direct_broadcast_bytes = options.direct_broadcast_bytes,
                         .rank_devices = rank_devices(options.world_size, local, options_.devices),
                         .device = options_.devices.front(),
                         .local_ranks = options.local_ranks,
                         .handle_type = options.handle_type,
                         .exchange = options.exchange});
  io_stride_ = round_up(std::max<std::int64_t>(options.io_bytes_per_rank, 16), 256);
  // Scales: dynamic FP8's 4N bytes (N <= io_stride / 16, a row being at least one 16-byte pack) or NVFP4's
  // swizzled (N + 127) * D / 16 bytes (under io_stride / 32 + 1 MiB for D <= 2^17): this holds either.
  scale_stride_ = round_up(io_stride_ / 4 + (std::int64_t{1} << 20), 256);
  const std::int64_t quant_stride = io_stride_ + scale_stride_ + kQuantScaleBytes;
  try {
    for (int device : options_.devices) {
      Lane& lane = lanes_.emplace_back();
      lane.device = device;
      detail::DeviceGuard guard(device);
      lane.channel = std::make_unique<WaitChannel>(device);
      cudaStream_t s = nullptr;
      AR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      lane.stream = s;
      std::vector<int> mine;
      for (int r : workspace_->local_ranks())
        if (workspace_->device_of(r) == device) mine.push_back(r);
      const std::size_t total = static_cast<std::size_t>(io_stride_) * mine.size();
      AR_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&lane.inputs), total));
      AR_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&lane.outputs), total));
      if (options.norm_io) {
        AR_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&lane.norm_io), kNormBuffers * total));
        AR_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&lane.quant_io), quant_stride * mine.size()));
      }
      for (std::size_t i = 0; i < mine.size(); ++i) {
        RankIo& io = lane.io.emplace_back(RankIo{mine[i], lane.inputs + io_stride_ * i, lane.outputs + io_stride_ * i});
        if (lane.norm_io == nullptr) continue;
        std::uint8_t* norm = lane.norm_io + kNormBuffers * io_stride_ * i;
        io.residual = norm;
        io.residual_out = norm + io_stride_;
        io.gamma = norm + 2 * io_stride_;
        std::uint8_t* quant = lane.quant_io + quant_stride * i;
        io.quant_out = quant;
        io.scale_out = quant + io_stride_;
        io.quant_scale = reinterpret_cast<const float*>(quant + io_stride_ + scale_stride_);
      }
    }
  } catch (...) {
    release();
    throw;
  }
}

VirtualGroup::~VirtualGroup() { release(); }

void VirtualGroup::release() noexcept {
  for (Lane& lane : lanes_) {
    try {
      detail::DeviceGuard guard(lane.device);
      if (lane.stream) AR_CUDA_CHECK_NOTHROW(cudaStreamSynchronize(lane.stream));
      if (lane.inputs) AR_CUDA_CHECK_NOTHROW(cudaFree(lane.inputs));
      if (lane.outputs) AR_CUDA_CHECK_NOTHROW(cudaFree(lane.outputs));
      if (lane.norm_io) AR_CUDA_CHECK_NOTHROW(cudaFree(lane.norm_io));
      if (lane.quant_io) AR_CUDA_CHECK_NOTHROW(cudaFree(lane.quant_io));
      if (lane.stream) AR_CUDA_CHECK_NOTHROW(cudaStreamDestroy(lane.stream));
      lane.channel.reset();
    } catch (...) {  // a device that cannot be made current: nothing more can be freed on it
    }
  }
  lanes_.clear();
}

std::vector<int> VirtualGroup::devices() const {
  std::vector<int> out;
  for (const Lane& lane : lanes_) out.push_back(lane.device);
  return out;
}

std::pair<VirtualGroup::Lane*, const RankIo*> VirtualGroup::find(int rank) {
  for (Lane& lane : lanes_)
    for (const RankIo& io : lane.io)
      if (io.rank == rank) return {&lane, &io};
  throw std::invalid_argument(rank >= 0 && rank < options_.world_size
                                  ? fmt::format("rank {} runs in another process", rank)
                                  : fmt::format("no rank {} in this group", rank));
}

void VirtualGroup::upload(const HostTensor& input) {
  if (input.shape().size() != 3 || input.dim(0) != options_.world_size)
    throw std::invalid_argument(fmt::format("upload needs a [{}, N, D] tensor", options_.world_size));
  const std::int64_t shard = input.dim(1) * input.dim(2) * dtype_bytes(input.dtype());
  if (shard > io_stride_)
    throw std::invalid_argument(
        fmt::format("a rank's shard of {} bytes exceeds the group's {} bytes per rank", shard, io_stride_));
  for (Lane& lane : lanes_) {
    detail::DeviceGuard guard(lane.device);
    for (const RankIo& io : lane.io)
      AR_CUDA_CHECK(cudaMemcpyAsync(const_cast<void*>(io.input), input.bytes().data() + shard * io.rank, shard,
                                    cudaMemcpyHostToDevice, lane.stream));
  }
  for (Lane& lane : lanes_) {
    detail::DeviceGuard guard(lane.device);
    AR_CUDA_CHECK(cudaStreamSynchronize(lane.stream));
  }
}

void VirtualGroup::upload_norm_inputs(const HostTensor& residual, const HostTensor& gamma) {
  if (!options_.norm_io) throw std::invalid_argument("this group has no residual or gamma (Options::norm_io)");
  if (residual.shape().size() != 2 || gamma.shape().size() != 1 || gamma.dim(0) != residual.dim(1) ||
      gamma.dtype() != residual.dtype())
    throw std::invalid_argument("upload_norm_inputs needs a residual [N, D] and a gamma [D] of one dtype");
  const std::int64_t bytes = static_cast<std::int64_t>(residual.bytes().size());
  if (bytes > io_stride_)
    throw std::invalid_argument(
        fmt::format("a residual of {} bytes exceeds the group's {} bytes per rank", bytes, io_stride_));
  for (Lane& lane : lanes_) {
    detail::DeviceGuard guard(lane.device);
    for (const RankIo& io : lane.io) {
      AR_CUDA_CHECK(cudaMemcpyAsync(const_cast<void*>(io.residual), residual.bytes().data(), bytes,
                                    cudaMemcpyHostToDevice, lane.stream));
      AR_CUDA_CHECK(cudaMemcpyAsync(const_cast<void*>(io.gamma), gamma.bytes().data(), gamma.bytes().size(),
                                    cudaMemcpyHostToDevice, lane.stream));
    }
    AR_CUDA_CHECK(cudaStreamSynchronize(lane.stream));
  }
}

void VirtualGroup::upload_quant_scale(std::uint32_t scale) {
  if (!options_.norm_io) throw std::invalid_argument("this group has no quantised outputs (Options::norm_io)");
  for (Lane& lane : lanes_) {
    detail::DeviceGuard guard(lane.device);
    for (const RankIo& io : lane.io)
      AR_CUDA_CHECK(cudaMemcpyAsync(const_cast<float*>(io.quant_scale), &scale, sizeof scale, cudaMemcpyHostToDevice,
                                    lane.stream));
    AR_CUDA_CHECK(cudaStreamSynchronize(lane.stream));
  }
}

void VirtualGroup::poison_outputs() {
  for (Lane& lane : lanes_) {
    detail::DeviceGuard guard(lane.device);
    detail::fill_words(lane.outputs, static_cast<std::uint64_t>(io_stride_) * lane.io.size() / 4, 0xFFFFFFFFu,
                       lane.stream);
    for (const RankIo& io : lane.io) {
      if (io.residual_out != nullptr)
        detail::fill_words(io.residual_out, static_cast<std::uint64_t>(io_stride_) / 4, 0xFFFFFFFFu, lane.stream);
      if (io.quant_out != nullptr)
        detail::fill_words(io.quant_out, static_cast<std::uint64_t>(io_stride_ + scale_stride_) / 4, 0xFFFFFFFFu,
                           lane.stream);
    }
    AR_CUDA_CHECK(cudaStreamSynchronize(lane.stream));
  }
}

void VirtualGroup::check_call(const Call& call, std::span<const int> ranks) {
  const std::int64_t shard = call.shape.bytes_per_rank();
  if (shard > io_stride_)
    throw std::invalid_argument(
        fmt::format("the call's {} bytes per rank exceed the group's {} bytes per rank", shard, io_stride_));
  if (call.norm && !options_.norm_io)
    throw std::invalid_argument("a fused call needs a group made with residuals and gammas (Options::norm_io)");
  if (call.norm && call.norm->quant != QuantMode::kNone) {
    const std::int64_t scales =
        scale_out_bytes(call.norm->quant, call.norm->scale_layout, call.shape.tokens, call.shape.hidden);
    if (scales > scale_stride_)
      throw std::invalid_argument(
          fmt::format("the call's {} bytes of scales exceed the group's {} bytes per rank", scales, scale_stride_));
  }
  for (int r : ranks) (void)find(r);  // a rank this group does not run is an error, not a silent skip
}

std::optional<AllReduceArguments> VirtualGroup::arguments(Lane& lane, const Call& call, std::span<const int> ranks) {
  AllReduceArguments a;
  a.shape = call.shape;
  a.strategy = call.strategy;
  a.profile = call.profile;
  a.launch_with_pdl = call.pdl;
  a.workspace = &workspace_->view();
  a.device = lane.device;
  a.timeout_ns = options_.timeout_ns;
  a.round_bytes = options_.round_bytes;
  a.direct_from_bytes = options_.direct_from_bytes;
  a.channel = lane.channel->view();
  a.norm = call.norm;
  if (ranks.empty()) {
    a.ranks = lane.io;
  } else {
    lane.subset.clear();
    for (const RankIo& io : lane.io)
      if (std::find(ranks.begin(), ranks.end(), io.rank) != ranks.end()) lane.subset.push_back(io);
    if (lane.subset.empty()) return std::nullopt;
    a.ranks = lane.subset;
  }
  if (call.norm && call.residual_in_place) {
    lane.in_place.assign(a.ranks.begin(), a.ranks.end());
    for (RankIo& io : lane.in_place) io.residual_out = const_cast<void*>(io.residual);
    a.ranks = lane.in_place;
  }
  return a;
}

Status VirtualGroup::can_run(const Call& call, std::span<const int> ranks) {
  check_call(call, ranks);
  for (Lane& lane : lanes_) {
    const auto a = arguments(lane, call, ranks);
    if (!a) continue;
    Status s = can_implement(*a);
    if (!s.ok()) {
      if (lanes_.size() > 1) s.message = fmt::format("GPU {}: {}", lane.device, s.message);
      return s;
    }
  }
  return Status{};
}

LaunchPlan VirtualGroup::plan(const Call& call, std::span<const int> ranks) {
  check_call(call, ranks);
  for (Lane& lane : lanes_)
    if (const auto a = arguments(lane, call, ranks)) return plan_launch(*a);
  throw std::invalid_argument("the call names no rank of this group");
}

void VirtualGroup::enqueue(const Call& call, std::span<const int> ranks) {
  check_call(call, ranks);
  for (Lane& lane : lanes_) enqueue_on(lane, call, ranks);
}

void VirtualGroup::enqueue_on(Lane& lane, const Call& call, std::span<const int> ranks) {
  std::optional<AllReduceArguments> a = arguments(lane, call, ranks);
  if (!a) return;
  if (!(call.norm && call.separate_norm)) {
    launch(*a, lane.stream);
    return;
  }
  // The plain all-reduce into each rank's scratch, then the norm kernel from there into the outputs.
  lane.separate.assign(a->ranks.begin(), a->ranks.end());
  lane.normalized.clear();
  for (RankIo& io : lane.separate) {
    lane.normalized.push_back(io.output);
    io.output = static_cast<std::uint8_t*>(io.residual_out) + 2 * io_stride_;  // the fourth norm buffer
  }
  a->ranks = lane.separate;
  a->norm.reset();
  launch(*a, lane.stream);
  launch_rms_norm(RmsNormArguments{.shape = call.shape,
                                   .resolved = resolve_strategy(call.strategy, call.shape),
                                   .profile = call.profile,
                                   .norm = *call.norm,
                                   .ranks = lane.separate,
                                   .normalized = lane.normalized,
                                   .device = lane.device,
                                   .launch_with_pdl = call.pdl},
                  lane.stream);
}

std::optional<WaitError> VirtualGroup::finish() {
  for (Lane& lane : lanes_) {
    detail::DeviceGuard guard(lane.device);
    AR_CUDA_CHECK(cudaStreamSynchronize(lane.stream));
  }
  // Every lane's channel is emptied; the first record (in lane order) is reported.
  std::optional<WaitError> first;
  for (Lane& lane : lanes_) {
    std::optional<WaitError> e = lane.channel->take();
    if (e && !first) first = e;
  }
  if (first && workspace_->holds_every_rank()) workspace_->reset();
  return first;
}

std::optional<WaitError> VirtualGroup::run(const Call& call, std::span<const int> ranks) {
  enqueue(call, ranks);
  return finish();
}

HostTensor VirtualGroup::download_from(int rank, const ProblemShape& shape, Buffer buffer) {
  HostTensor out(shape.dtype, {shape.tokens, shape.hidden});
  const auto [lane, io] = find(rank);
  const void* from = buffer == Buffer::kResidualOut ? io->residual_out
                     : buffer == Buffer::kResidual  ? io->residual
                                                    : io->output;
  if (from == nullptr) throw std::invalid_argument("this group has no residual or residual_out (Options::norm_io)");
  detail::DeviceGuard guard(lane->device);
  AR_CUDA_CHECK(cudaMemcpyAsync(out.bytes().data(), from, out.bytes().size(), cudaMemcpyDeviceToHost, lane->stream));
  AR_CUDA_CHECK(cudaStreamSynchronize(lane->stream));
  return out;
}

HostTensor VirtualGroup::download(int rank, const ProblemShape& shape) {
  return download_from(rank, shape, Buffer::kOutput);
}

HostTensor VirtualGroup::download_residual_out(int rank, const ProblemShape& shape) {
  return download_from(rank, shape, Buffer::kResidualOut);
}

HostTensor VirtualGroup::download_residual(int rank, const ProblemShape& shape) {
  return download_from(rank, shape, Buffer::kResidual);
}

QuantizedOutput VirtualGroup::download_quant(int rank, const ProblemShape& shape, QuantMode quant, ScaleLayout layout) {
  const auto [lane, io] = find(rank);
  if (io->quant_out == nullptr) throw std::invalid_argument("this group has no quantised outputs (Options::norm_io)");
  QuantizedOutput out;
  out.mode = quant;
  out.layout = layout;
  out.tokens = shape.tokens;
  out.hidden = shape.hidden;
  const std::int64_t elements = shape.tokens * shape.hidden;
  out.quant_out.resize(static_cast<std::size_t>(quant == QuantMode::kNvfp4 ? elements / 2 : elements));
  if (quant == QuantMode::kFp8Dynamic) out.token_scales.resize(static_cast<std::size_t>(shape.tokens));
  if (quant == QuantMode::kNvfp4)
    out.scale_out.resize(static_cast<std::size_t>(scale_bytes(layout, shape.tokens, shape.hidden)));
  detail::DeviceGuard guard(lane->device);
  if (quant != QuantMode::kNone)
    AR_CUDA_CHECK(cudaMemcpyAsync(out.quant_out.data(), io->quant_out, out.quant_out.size(), cudaMemcpyDeviceToHost,
                                  lane->stream));
  if (!out.token_scales.empty())
    AR_CUDA_CHECK(cudaMemcpyAsync(out.token_scales.data(), io->scale_out, 4 * out.token_scales.size(),
                                  cudaMemcpyDeviceToHost, lane->stream));
  if (!out.scale_out.empty())
    AR_CUDA_CHECK(cudaMemcpyAsync(out.scale_out.data(), io->scale_out, out.scale_out.size(), cudaMemcpyDeviceToHost,
                                  lane->stream));
  AR_CUDA_CHECK(cudaStreamSynchronize(lane->stream));
  return out;
}

void VirtualGroup::reset() { workspace_->reset(); }

double VirtualGroup::time_us(const Call& call, int warmup, int iterations, int graph_launches,
                             const std::function<void()>& before_timing) {
  if (iterations < 1) throw std::invalid_argument("time_us needs at least one iteration");
  check_call(call, {});  // once: the captured launches below build their arguments directly
  const auto finish_or_throw = [&] {
    if (auto e = finish()) throw std::runtime_error(describe_wait_error(*e));
  };
  detail::TimedWork work;
  for (const Lane& lane : lanes_) {
    work.devices.push_back(lane.device);
    work.streams.push_back(lane.stream);
  }
  work.launch = [&] { enqueue(call); };
  work.launch_on = [&](std::size_t l) {
    enqueue_on(lanes_[l], call, {});
  };
  // One graph per lane, captured one after the other: a lane's launch involves no other lane's stream.
  work.capture = detail::GraphCapture::kEachStream;
  work.synchronize = finish_or_throw;
  work.before_timing = before_timing;
  const double us = detail::time_per_iteration_us(work, warmup, iterations, graph_launches);
  finish_or_throw();  // a wait that gave up while timed
  return us;
}

}  // namespace ar::cuda
