// mnnvl_ar._cuda: our kernels behind the package's GPU API (python/mnnvl_ar/gpu.py). One process is one rank:
// a Workspace holds its Lamport buffers and maps every peer's, whose handles the Python side exchanges (a
// torch.distributed group or our rendezvous, and AF_UNIX descriptor passing); a call launches this rank's
// kernel on the caller's stream, tensors given as device pointers. Loaded only when the GPU API is used, so
// `import mnnvl_ar` needs no CUDA. No multicast; every wait is bounded, and a wait that gave up is raised
// naming the ranks.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "cuda/all_reduce.h"
#include "cuda/device.h"
#include "cuda/wait_channel.h"
#include "cuda/workspace.h"
#include "harness/commands/fused_inputs.h"
#include "harness/commands/option_names.h"
#include "harness/io/exit_codes.h"
#include "python/src/errors.h"
#include "reference/fused_rms_norm.h"
#include "reference/workspace.h"

namespace nb = nanobind;

namespace ar::python {
namespace {

/// The workspace's handle exchange, done by Python: `exchange(handle_type, [(rank, allocation_bytes, fd)])`
/// returns every rank's tuple (descriptors valid in this process, kept open by the Python side until the
/// workspace is built), `barrier()` returns once every process called it.
class PythonExchange final : public cuda::PeerExchange {
 public:
  PythonExchange(nb::callable exchange, nb::callable barrier)
      : exchange_(std::move(exchange)), barrier_(std::move(barrier)) {}

  std::vector<cuda::ShareableHandle> exchange(cuda::HandleType type,
                                              std::span<const cuda::ShareableHandle> mine) override {
    if (type != cuda::HandleType::kPosixFd)
      throw std::runtime_error("the Python package exchanges POSIX file descriptors only");
    nb::gil_scoped_acquire locked;
    nb::list out;
    for (const cuda::ShareableHandle& h : mine) out.append(nb::make_tuple(h.rank, h.allocation_bytes, h.fd));
    nb::object all = exchange_(std::string(cuda::handle_type_name(type)), out);
    std::vector<cuda::ShareableHandle> handles;
    for (nb::handle item : all) {
      auto [rank, bytes, fd] = nb::cast<std::tuple<int, std::int64_t, int>>(item);
      cuda::ShareableHandle h;
      h.rank = rank;
      h.allocation_bytes = bytes;
      h.fd = fd;
      handles.push_back(h);
    }
    return handles;
  }

  void barrier() override {
    nb::gil_scoped_acquire locked;
    barrier_();
  }

 private:
  nb::callable exchange_, barrier_;
};

/// One rank's workspace: the Lamport buffers (every peer's mapped) and the channel its waits report to.
class RankWorkspace {
 public:
  RankWorkspace(int world_size, int rank, int device, std::optional<std::int64_t> buffer_bytes, double timeout_s,
                nb::callable exchange, nb::callable barrier)
      : rank_(rank), device_(device) {
    if (!is_supported_world_size(world_size))
      throw UsageError(fmt::format("world size {} is not supported (supported: {})", world_size, world_sizes_text()));
    if (rank < 0 || rank >= world_size)
      throw UsageError(fmt::format("rank {} is outside a world of {}", rank, world_size));
    if (!(timeout_s > 0) || timeout_s > 3600)
      throw UsageError(fmt::format("timeout_s {} is outside (0, 3600]", timeout_s));
    timeout_ns_ = static_cast<std::uint64_t>(timeout_s * 1e9);
    const BufferRequest request = request_buffer_bytes({world_size, 1, 8, DType::kBf16}, buffer_bytes);
    if (request.error) throw UsageError(fmt::format("buffer_size_in_bytes: {}", *request.error));
    // The workspace keeps the exchange: its reset() ends with the exchange's barrier.
    peers_ = std::make_unique<PythonExchange>(std::move(exchange), std::move(barrier));
    cuda::Workspace::Options o;
    o.world_size = world_size;
    o.buffer_bytes_request = request.bytes;
    o.device = device;
    o.rank_devices.assign(static_cast<std::size_t>(world_size), device);
    o.local_ranks = {rank};
    o.handle_type = cuda::HandleType::kPosixFd;
    o.exchange = peers_.get();
    {
      // Construction waits for the peers (the exchange re-acquires the GIL to call Python).
      nb::gil_scoped_release unlocked;
      workspace_ = std::make_unique<cuda::Workspace>(o);
      channel_ = std::make_unique<cuda::WaitChannel>(device);
    }
    sm_count_ = cuda::device_info(device).sm_count;  // FlashInfer's launch follows the GPU's own
  }

  int world_size() const { return workspace_->world_size(); }
  int rank() const { return rank_; }
  int device() const { return device_; }
  std::int64_t buffer_bytes() const { return workspace_->buffer_bytes(); }

  /// Raises RuntimeError naming the ranks when a wait of an earlier call gave up (then the workspace must be
  /// reset by every rank before the next call).
  void raise_timeout() {
    // No wait gave up: one read of mapped host memory (take() blocks only when there is a record).
    const std::optional<cuda::WaitError> e = channel_->take();
    if (e) {
      broken_ = true;
      throw std::runtime_error(cuda::describe_wait_error(*e) +
                               " The workspace's flags are out of step: every rank must call reset().");
    }
  }

  void reset() {
    nb::gil_scoped_release unlocked;
    workspace_->reset();
    (void)channel_->take();  // the record of the wait that gave up, now answered
    broken_ = false;
  }

  /// Enqueues one call of this rank on `stream`. Pointers are device addresses of [N, D] tensors of `dtype`;
  /// residual, residual_out and gamma make it the fused call. Refuses, in this order, a pointer that is not
  /// 16-byte aligned (ValueError), a wait of an earlier call that gave up (raise_timeout's RuntimeError), and
  /// a workspace not reset since: the op's only call into the extension does every check a launch needs.
  void launch(std::uintptr_t input, std::uintptr_t output, std::int64_t tokens, std::int64_t hidden,
              const std::string& dtype, const std::string& strategy, bool launch_with_pdl, std::uintptr_t stream,
              std::uintptr_t residual, std::uintptr_t residual_out, std::uintptr_t gamma, std::optional<double> eps,
              double weight_bias, const std::string& profile) {
    if ((input | output | residual | residual_out | gamma) % 16 != 0)
      throw UsageError("every tensor of the call must be 16-byte aligned (the kernels move 16-byte packs)");
    raise_timeout();
    if (broken_) throw std::runtime_error("a wait of an earlier call gave up: every rank must call reset() first");
    cuda::RankIo io;
    io.rank = rank_;
    io.input = reinterpret_cast<const void*>(input);
    io.output = reinterpret_cast<void*>(output);
    cuda::AllReduceArguments args;
    args.shape = {world_size(), tokens, hidden, dtype_option(dtype)};
    args.strategy = strategy_option(strategy);
    args.profile = profile_option(profile);
    args.launch_with_pdl = launch_with_pdl;
    args.workspace = &workspace_->view();
    args.ranks = std::span<const cuda::RankIo>(&io, 1);
    args.device = device_;
    args.timeout_ns = timeout_ns_;
    args.channel = channel_->view();
    if (gamma != 0) {
      io.residual = reinterpret_cast<const void*>(residual);
      io.residual_out = reinterpret_cast<void*>(residual_out);
      io.gamma = reinterpret_cast<const void*>(gamma);
      const FusedOptions o =
          fused_options(args.shape.dtype, args.strategy, args.profile, sm_count_, eps, weight_bias, "sm_count");
      args.norm = cuda::NormArguments{.epsilon = o.epsilon, .weight_bias = o.weight_bias, .sm_count = o.sm_count};
    }
    // launch() refuses what cannot run (can_implement's message as std::invalid_argument: ValueError).
    cuda::launch(args, reinterpret_cast<cuda::Stream>(stream));
  }

  /// The SM count whose launch the fused call's summation tree follows (another GPU's, to reproduce it).
  void set_sm_count(int sms) {
    check_sm_count("sm_count", sms);
    sm_count_ = sms;
  }

 private:
  int rank_ = 0;
  int device_ = 0;
  std::uint64_t timeout_ns_ = cuda::kDefaultTimeoutNs;
  int sm_count_ = 0;
  bool broken_ = false;
  std::unique_ptr<PythonExchange> peers_;  // before workspace_: destroyed after it
  std::unique_ptr<cuda::Workspace> workspace_;
  std::unique_ptr<cuda::WaitChannel> channel_;
};

}  // namespace
}  // namespace ar::python

NB_MODULE(_cuda, m) {
  using ar::python::RankWorkspace;
  m.doc() = "Our CUDA kernels for one rank per process (use mnnvl_ar.gpu).";
  ar::python::raise_usage_errors_as_value_errors();
  nb::class_<RankWorkspace>(m, "RankWorkspace")
      .def(nb::init<int, int, int, std::optional<std::int64_t>, double, nb::callable, nb::callable>(),
           nb::arg("world_size"), nb::arg("rank"), nb::arg("device"), nb::arg("buffer_bytes").none(),
           nb::arg("timeout_s"), nb::arg("exchange"), nb::arg("barrier"))
      .def_prop_ro("world_size", &RankWorkspace::world_size)
      .def_prop_ro("rank", &RankWorkspace::rank)
      .def_prop_ro("device", &RankWorkspace::device)
      .def_prop_ro("buffer_bytes", &RankWorkspace::buffer_bytes)
      .def("raise_timeout", &RankWorkspace::raise_timeout)
      .def("reset", &RankWorkspace::reset)
      .def("set_sm_count", &RankWorkspace::set_sm_count)
      .def("launch", &RankWorkspace::launch, nb::arg("input"), nb::arg("output"), nb::arg("tokens"),
           nb::arg("hidden"), nb::arg("dtype"), nb::arg("strategy"), nb::arg("launch_with_pdl"), nb::arg("stream"),
           nb::arg("residual") = 0, nb::arg("residual_out") = 0, nb::arg("gamma") = 0,
           nb::arg("eps").none() = nb::none(), nb::arg("weight_bias") = 0.0, nb::arg("profile") = "flashinfer");
  m.def("sm_count", [](int device) { return ar::cuda::device_info(device).sm_count; }, nb::arg("device"));
}
