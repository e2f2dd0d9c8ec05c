// mnnvl_ar.Rendezvous: the CLI's authenticated rendezvous (harness/job/rendezvous.h) for Python processes that
// have no torch.distributed group. What the caller leaves out comes from the launcher's variables as the CLI
// reads them (detect_launch) and the token from $MNNVL_AR_TOKEN or $MNNVL_AR_TOKEN_FILE (token_from_environment).
// Every blocking call runs without the GIL, one at a time, and is bounded by the timeout; its failures are
// the C++ messages, raised as RuntimeError (a peer, the network) or ValueError (the caller's settings).
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include "harness/io/exit_codes.h"
#include "harness/job/launcher_env.h"
#include "harness/job/rendezvous.h"
#include "harness/job/rendezvous_auth.h"
#include "harness/job/wire_format.h"
#include "python/src/bindings.h"

namespace nb = nanobind;

namespace ar::python {
namespace {

// A week: longer than any wait a job means, and far from where a deadline would overflow the clock.
constexpr double kMaxTimeoutSeconds = 7 * 24 * 3600.0;

// What the Python caller passed; None is what the launcher's variables say.
struct RendezvousRequest {
  std::optional<int> rank, world_size;
  std::optional<std::string> address;
  std::optional<int> port;
  std::optional<std::string> token;
  double timeout_s = 30.0;
};

// Where the options came from, for the object's properties and repr.
struct ResolvedRendezvous {
  RendezvousOptions options;
  std::string launcher;  ///< detect_launch's name, or "arguments" when the caller gave rank and world size
};

ResolvedRendezvous resolve(const RendezvousRequest& r, const EnvLookup& env) {
  if (!std::isfinite(r.timeout_s) || r.timeout_s <= 0 || r.timeout_s > kMaxTimeoutSeconds)
    throw UsageError(fmt::format("timeout_s={} must be a positive number of seconds, at most {:.0f} (a week)",
                                 r.timeout_s, kMaxTimeoutSeconds));
  if (r.port && (*r.port < 1 || *r.port > 65535))
    throw UsageError(fmt::format("port={} is not a TCP port (1 to 65535)", *r.port));
  const bool everything_given = r.rank && r.world_size && r.address && r.port;
  // Read only when something is missing, so a caller who names everything is not held to the variables.
  const LaunchInfo launch = everything_given ? LaunchInfo{} : detect_launch(env);

  // A world of several with no launcher and no rank= would make every such process rank 0 (the second then
  // fails to listen, far from the cause).
  if (!r.rank && r.world_size && *r.world_size > 1 && launch.launcher == "single")
    throw UsageError(fmt::format("world_size={} without rank=, and no launcher variable says which rank this process is: "
                                 "pass rank= (0 to {}) or start the processes under a launcher",
                                 *r.world_size, *r.world_size - 1));
  if (r.address && r.address->find('\0') != std::string::npos)
    throw UsageError("address= holds a NUL character: give a host name or IP address");
  ResolvedRendezvous out;
  RendezvousOptions& o = out.options;
  o.rank = r.rank.value_or(launch.rank);
  o.world_size = r.world_size.value_or(launch.world_size);
  out.launcher = r.rank && r.world_size ? "arguments" : launch.launcher;
  if (o.world_size < 1) throw UsageError(fmt::format("world_size={} must be at least 1", o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size)
    throw UsageError(
        fmt::format("rank {} is outside a world of {} (ranks are 0 to {})", o.rank, o.world_size, o.world_size - 1));
  o.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(r.timeout_s * 1000.0)));
  // Processes of the CLI and of the package speak the same frames but not the same plans: never one job.
  o.program_version = "python " MNNVL_AR_VERSION;
  if (o.world_size == 1) return out;  // a process alone meets nobody: no address, port or token

  o.address = r.address.value_or(launch.address);
  o.port = r.port ? static_cast<std::uint16_t>(*r.port) : launch.port;  // past torchrun's own store (detect_launch)
  if (o.address.empty() || o.port == 0)
    throw UsageError(
        fmt::format("this process is rank {} of {} ({}), but nothing says where rank 0 listens: set MASTER_ADDR and "
                    "MASTER_PORT (rank 0's host and a free port) or pass address= and port=",
                    o.rank, o.world_size, out.launcher));
  o.token = r.token ? *r.token : token_from_environment();
  if (o.token.empty())
    throw UsageError(missing_token_message(o.rank, o.world_size, out.launcher, "pass token="));
  return out;
}

/// The Python object: the rendezvous while open, and what it was made with. Calls take turns on a mutex,
/// taken after the GIL is released, so a thread waiting for its turn never holds the GIL.
class PythonRendezvous {
 public:
  explicit PythonRendezvous(ResolvedRendezvous resolved) : launcher_(std::move(resolved.launcher)) {
    options_ = resolved.options;
    options_.token.clear();  // the Rendezvous keeps its own copy; this one is only for the properties
    rendezvous_ = std::make_unique<Rendezvous>(resolved.options);
  }

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  std::string address() const { return options_.world_size > 1 ? options_.address : std::string(); }
  int port() const { return options_.world_size > 1 ? options_.port : 0; }
  double timeout_s() const { return static_cast<double>(options_.timeout.count()) / 1000.0; }
  const std::string& launcher() const { return launcher_; }
  bool closed() const { return closed_; }

  std::vector<std::string> all_gather(const std::string& mine) {
    std::lock_guard<std::mutex> turn(mutex_);
    Rendezvous& r = open();
    // rank 0 sends every contribution back in one frame, which must fit the wire format's limit.
    const std::size_t most = (wire::kMaxPayloadBytes - 4) / static_cast<std::size_t>(options_.world_size) - 4;
    if (mine.size() > most) {
      const std::string reason = fmt::format(
          "rank {} offered {} bytes to all_gather; at world size {} each rank may offer at most {} (the "
          "rendezvous carries small values: names, handles, plans)",
          options_.rank, mine.size(), options_.world_size, most);
      r.abort(reason);  // the peers learn why now instead of at their timeout
      throw UsageError(reason);
    }
    return r.all_gather(mine);
  }

  void barrier() {
    std::lock_guard<std::mutex> turn(mutex_);
    open().barrier();
  }

  void abort(const std::string& reason) {
    std::lock_guard<std::mutex> turn(mutex_);
    if (rendezvous_) rendezvous_->abort(reason);
  }

  void close() {
    std::lock_guard<std::mutex> turn(mutex_);
    rendezvous_.reset();
    closed_ = true;
  }

 private:
  Rendezvous& open() {
    if (!rendezvous_) throw std::runtime_error(fmt::format("rank {}: this Rendezvous is closed", options_.rank));
    return *rendezvous_;
  }

  RendezvousOptions options_;
  std::string launcher_;
  std::mutex mutex_;
  std::unique_ptr<Rendezvous> rendezvous_;
  std::atomic<bool> closed_{false};  // read by the properties while a call may be closing
};

constexpr const char* kClassDoc = R"(The processes of one job, met over TCP: all_gather and barrier, no torch needed.

Rendezvous(rank=None, world_size=None, address=None, port=None, token=None, timeout_s=30.0) blocks until
every rank has joined (rank 0 listens, the others connect). Every argument left None comes from the
launcher's variables, as the mnnvl-ar command reads them: torchrun (RANK, WORLD_SIZE), Slurm, Open MPI or
PMI for the rank and world size; MASTER_ADDR for rank 0's address; the token from MNNVL_AR_TOKEN, else the
first line of the file MNNVL_AR_TOKEN_FILE. Without any launcher variable the process is a world of one.

The port: port= when given, else MASTER_PORT, except under torchrun when its agent serves its own store
on MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True): then MASTER_PORT + 1. A torch.distributed store
started by init_process_group also listens on MASTER_PORT; to run both in one job, pass port= (the same
free port on every rank).

The token is a secret every rank must share (e.g. export MNNVL_AR_TOKEN=$(openssl rand -hex 16)); it never
travels: the ranks prove to each other that they know it, and every message carries an HMAC. A job of
several processes refuses to start without one.

Every wait is bounded by timeout_s. A peer that never arrives, dies, holds another token or disagrees
raises RuntimeError naming the rank; bad settings (a malformed variable, no token, no address) raise
ValueError before anything listens or connects. Calls release the GIL; calls from several threads take
turns. Use it as a context manager, or call close(): leaving the block on an exception first tells the
peers why, so they stop at once instead of at their timeout.)";

}  // namespace

void bind_rendezvous(nb::module_& m) {
  nb::class_<PythonRendezvous>(m, "Rendezvous", kClassDoc)
      .def(
          "__init__",
          [](PythonRendezvous* self, std::optional<int> rank, std::optional<int> world_size,
             std::optional<std::string> address, std::optional<int> port, std::optional<std::string> token,
             double timeout_s) {
            const ResolvedRendezvous resolved = resolve(
                {rank, world_size, std::move(address), port, std::move(token), timeout_s}, process_environment());
            nb::gil_scoped_release unlocked;  // joining waits for the peers
            new (self) PythonRendezvous(resolved);
          },
          nb::arg("rank").none() = nb::none(), nb::arg("world_size").none() = nb::none(),
          nb::arg("address").none() = nb::none(), nb::arg("port").none() = nb::none(),
          nb::arg("token").none() = nb::none(), nb::arg("timeout_s") = 30.0)
      .def_prop_ro("rank", &PythonRendezvous::rank, "This process's rank.")
      .def_prop_ro("world_size", &PythonRendezvous::world_size, "How many processes joined.")
      .def_prop_ro("address", &PythonRendezvous::address, "Rank 0's address ('' for a world of one).")
      .def_prop_ro("port", &PythonRendezvous::port, "The port rank 0 listens on (0 for a world of one).")
      .def_prop_ro("timeout_s", &PythonRendezvous::timeout_s, "The bound of every wait, in seconds.")
      .def_prop_ro("launcher", &PythonRendezvous::launcher,
                   "Where rank and world size came from: 'torchrun', 'slurm', 'openmpi', 'pmi', 'single' (no "
                   "launcher variables) or 'arguments'.")
      .def_prop_ro("closed", &PythonRendezvous::closed)
      .def(
          "all_gather",
          [](PythonRendezvous& self, nb::bytes mine) {
            std::string in(mine.c_str(), mine.size());
            std::vector<std::string> all;
            {
              nb::gil_scoped_release unlocked;
              all = self.all_gather(in);
            }
            nb::list out;
            for (const std::string& item : all) out.append(nb::bytes(item.data(), item.size()));
            return out;
          },
          nb::arg("mine"), "Every rank's bytes, in rank order, on every rank (each offers a small value).")
      .def("barrier", &PythonRendezvous::barrier, nb::call_guard<nb::gil_scoped_release>(),
           "Returns once every rank has called it.")
      .def("abort", &PythonRendezvous::abort, nb::arg("reason"), nb::call_guard<nb::gil_scoped_release>(),
           "Tells the peers to stop, with a reason (best effort, never raises).")
      .def("close", &PythonRendezvous::close, nb::call_guard<nb::gil_scoped_release>(),
           "Closes the connections; the peers' next wait then names this rank. Closing twice is harmless.")
      .def("__enter__", [](nb::handle self) { return nb::borrow(self); })
      .def(
          "__exit__",
          [](PythonRendezvous& self, nb::handle type, nb::handle value, nb::handle) {
            std::optional<std::string> reason;
            if (!type.is_none())
              reason = fmt::format("rank {} stopped: {}: {}", self.rank(), nb::str(type.attr("__name__")).c_str(),
                                   nb::str(value).c_str());
            nb::gil_scoped_release unlocked;
            if (reason) self.abort(*reason);
            self.close();
          },
          nb::arg("type").none(), nb::arg("value").none(), nb::arg("traceback").none())
      .def("__repr__", [](const PythonRendezvous& self) {
        return fmt::format("Rendezvous(rank={}, world_size={}, address='{}', port={}, launcher='{}'{})", self.rank(),
                           self.world_size(), self.address(), self.port(), self.launcher(),
                           self.closed() ? ", closed" : "");
      });
}

}  // namespace ar::python
