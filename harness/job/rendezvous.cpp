#include "harness/job/rendezvous.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "harness/job/asio.h"
#include <fmt/format.h>

#include "harness/job/wire_format.h"

namespace ar {
namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Constant-time comparison, so a refused peer learns nothing from the timing.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string hello_payload(const RendezvousOptions& o) {
  return wire::encode_list({o.token, std::to_string(o.rank), std::to_string(o.world_size), o.program_version});
}

}  // namespace

/// One connection: a socket and the decoder of what arrives on it.
struct Link {
  explicit Link(asio::io_context& io) : socket(io) {}
  tcp::socket socket;
  wire::FrameDecoder decoder;
  std::array<char, 4096> chunk{};
  int peer = -1;  // rank at the other end, once known
};

struct Rendezvous::Impl {
  RendezvousOptions options;
  asio::io_context io;
  std::vector<std::unique_ptr<Link>> links;  // rank 0: one per peer rank (index = rank); others: [0] = rank 0
  std::uint32_t sequence = 0;

  Clock::time_point deadline() const { return Clock::now() + options.timeout; }

  // Runs the io_context until `done()` or `until`; at the deadline, cancels `pending` (their handlers then
  // run with operation_aborted) and returns false.
  bool run_until(const std::function<bool()>& done, Clock::time_point until,
                 const std::vector<tcp::socket*>& pending) {
    io.restart();
    while (!done()) {
      if (io.run_one_until(until) == 0 && Clock::now() >= until) {
        for (tcp::socket* socket : pending) {
          boost::system::error_code ignored;
          socket->cancel(ignored);
        }
        io.restart();
        io.poll();
        return done();
      }
    }
    return true;
  }

  void send(Link& link, wire::FrameType type, const std::string& payload) {
    const std::string bytes = wire::encode({type, static_cast<std::uint32_t>(options.rank), sequence, payload});
    boost::system::error_code ec;
    asio::write(link.socket, asio::buffer(bytes), ec);
    if (ec) throw RendezvousError(fmt::format("rank {}: cannot send to {}: {}", options.rank, describe(link), ec.message()));
  }

  std::string describe(const Link& link) const {
    return link.peer >= 0 ? fmt::format("rank {}", link.peer) : std::string("a connecting peer");
  }

  // Starts reading one frame from `link` into `out` (or an error into `error`).
  void read_frame(Link& link, std::optional<wire::Frame>& out, std::optional<std::string>& error) {
    if (auto f = link.decoder.next()) {
      out = std::move(f);
      return;
    }
    if (link.decoder.failed()) {
      error = fmt::format("malformed message from {}: {}", describe(link), *link.decoder.error());
      return;
    }
    link.socket.async_read_some(asio::buffer(link.chunk), [this, &link, &out, &error](boost::system::error_code ec,
                                                                                     std::size_t n) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        error = ec == asio::error::eof
                    ? fmt::format("{} closed its connection (did it exit or crash?)", describe(link))
                    : fmt::format("connection to {} failed: {}", describe(link), ec.message());
        return;
      }
      link.decoder.feed(std::string_view(link.chunk.data(), n));
      read_frame(link, out, error);
    });
  }

  // Reads one frame from each of `targets` (concurrently), within the timeout.
  std::vector<wire::Frame> read_from(const std::vector<Link*>& targets, const std::string& waiting_for) {
    std::vector<std::optional<wire::Frame>> frames(targets.size());
    std::vector<std::optional<std::string>> errors(targets.size());
    std::vector<tcp::socket*> sockets;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      read_frame(*targets[i], frames[i], errors[i]);
      sockets.push_back(&targets[i]->socket);
    }
    const bool finished = run_until(
        [&] {
          for (std::size_t i = 0; i < targets.size(); ++i)
            if (errors[i]) return true;
          for (auto& f : frames)
            if (!f) return false;
          return true;
        },
        deadline(), sockets);
    for (std::size_t i = 0; i < targets.size(); ++i)
      if (errors[i]) throw RendezvousError(fmt::format("rank {}: {}", options.rank, *errors[i]));
    if (!finished) {
      std::vector<std::string> missing;
      for (std::size_t i = 0; i < targets.size(); ++i)
        if (!frames[i]) missing.push_back(describe(*targets[i]));
      throw RendezvousError(fmt::format("rank {}: timed out after {} ms waiting for {} from {}", options.rank,
                                        options.timeout.count(), waiting_for, fmt::join(missing, ", ")));
    }
    std::vector<wire::Frame> out;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (frames[i]->type == wire::FrameType::kAbort)
        throw RendezvousError(fmt::format("rank {}: the job was stopped by rank {}: {}", options.rank,
                                          frames[i]->sender, frames[i]->payload));
      out.push_back(std::move(*frames[i]));
    }
    return out;
  }

  void accept_all() {
    tcp::resolver resolver(io);
    boost::system::error_code ec;
    const auto endpoints = resolver.resolve(options.address, std::to_string(options.port), ec);
    if (ec || endpoints.empty())
      throw RendezvousError(fmt::format("rank 0: cannot resolve rendezvous address '{}': {}", options.address, ec.message()));
    tcp::acceptor acceptor(io);
    const tcp::endpoint endpoint = *endpoints.begin();
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      throw RendezvousError(fmt::format("rank 0: cannot listen on {}:{}: {} (is the port in use?)", options.address,
                                        options.port, ec.message()));
    links.resize(options.world_size);
    int joined = 1, refused = 0;
    std::string last_refusal;
    const auto until = deadline();
    while (joined < options.world_size) {
      auto link = std::make_unique<Link>(io);
      bool accepted = false;
      bool finished = false;
      acceptor.async_accept(link->socket, [&](boost::system::error_code e) {
        accepted = !e;
        finished = true;
      });
      if (!run_until([&] { return finished; }, until, {}) || !accepted) {
        acceptor.cancel(ec);
        io.restart();
        io.poll();
        std::vector<int> missing;
        for (int r = 1; r < options.world_size; ++r)
          if (!links[r]) missing.push_back(r);
        throw RendezvousError(fmt::format(
            "rank 0: timed out after {} ms waiting for rank{} {} to join on {}:{}{}", options.timeout.count(),
            missing.size() > 1 ? "s" : "", fmt::join(missing, ", "), options.address, options.port,
            refused ? fmt::format(" ({} connection{} refused; last: {})", refused, refused > 1 ? "s" : "", last_refusal)
                    : std::string()));
      }
      // Handshake: one hello within the timeout, else drop the connection and keep waiting for real peers.
      std::optional<wire::Frame> hello;
      std::optional<std::string> error;
      read_frame(*link, hello, error);
      const bool got = run_until([&] { return hello.has_value() || error.has_value(); },
                                 std::min(until, Clock::now() + std::chrono::seconds(5)), {&link->socket});
      const auto refuse = [&](const std::string& reason) {
        ++refused;
        last_refusal = reason;
        boost::system::error_code ignored;
        const std::string bytes = wire::encode({wire::FrameType::kRefused, 0, 0, reason});
        asio::write(link->socket, asio::buffer(bytes), ignored);
        link->socket.close(ignored);
      };
      if (!got || error || hello->type != wire::FrameType::kHello) {
        refuse(error ? *error : "expected a hello message first");
        continue;
      }
      const auto fields = wire::decode_list(hello->payload, 4);
      if (!fields || fields->size() != 4) {
        refuse("malformed hello message");
        continue;
      }
      const std::string& token = (*fields)[0];
      const int peer_rank = std::atoi((*fields)[1].c_str());
      const int peer_world = std::atoi((*fields)[2].c_str());
      if (!same_secret(token, options.token)) {
        refuse("the shared token does not match (set the same MNNVL_AR_TOKEN or MNNVL_AR_TOKEN_FILE on every rank)");
        continue;
      }
      if (peer_world != options.world_size) {
        refuse(fmt::format("world size {} differs from rank 0's {}", peer_world, options.world_size));
        continue;
      }
      if (peer_rank < 1 || peer_rank >= options.world_size || links[peer_rank]) {
        refuse(fmt::format("rank {} is out of range or already joined", (*fields)[1]));
        continue;
      }
      if ((*fields)[3] != options.program_version) {
        refuse(fmt::format("program version '{}' differs from rank 0's '{}'", (*fields)[3], options.program_version));
        continue;
      }
      link->peer = peer_rank;
      send(*link, wire::FrameType::kWelcome, "");
      links[peer_rank] = std::move(link);
      ++joined;
    }
  }

  void connect_to_root() {
    tcp::resolver resolver(io);
    const auto until = deadline();
    std::string last_error = "no attempt";
    while (Clock::now() < until) {
      boost::system::error_code ec;
      const auto endpoints = resolver.resolve(options.address, std::to_string(options.port), ec);
      if (!ec) {
        links.clear();
        links.push_back(std::make_unique<Link>(io));
        Link& root = *links[0];
        root.peer = 0;
        bool finished = false;
        asio::async_connect(root.socket, endpoints, [&](boost::system::error_code e, const tcp::endpoint&) {
          ec = e;
          finished = true;
        });
        if (!run_until([&] { return finished; }, until, {&root.socket})) break;
        if (!ec) {
          send(root, wire::FrameType::kHello, hello_payload(options));
          const wire::Frame reply = read_single(root, "the answer to its hello");
          if (reply.type == wire::FrameType::kRefused)
            throw RendezvousError(fmt::format("rank {}: rank 0 refused this process: {}", options.rank, reply.payload));
          if (reply.type != wire::FrameType::kWelcome)
            throw RendezvousError(fmt::format("rank {}: unexpected answer from rank 0", options.rank));
          return;
        }
      }
      last_error = ec.message();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // rank 0 may not be listening yet
    }
    throw RendezvousError(fmt::format("rank {}: timed out after {} ms connecting to rank 0 at {}:{} (last error: {})",
                                      options.rank, options.timeout.count(), options.address, options.port, last_error));
  }

  wire::Frame read_single(Link& link, const std::string& waiting_for) {
    auto frames = read_from({&link}, waiting_for);
    return std::move(frames[0]);
  }
};

Rendezvous::Rendezvous(const RendezvousOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size)
    throw RendezvousError(fmt::format("rank {} is outside a world of {}", options.rank, options.world_size));
  if (options.world_size == 1) return;
  if (options.rank == 0)
    impl_->accept_all();
  else
    impl_->connect_to_root();
}

Rendezvous::~Rendezvous() = default;
int Rendezvous::rank() const { return impl_->options.rank; }
int Rendezvous::world_size() const { return impl_->options.world_size; }

std::vector<std::string> Rendezvous::all_gather(const std::string& mine) {
  Impl& s = *impl_;
  const int world = s.options.world_size;
  ++s.sequence;
  if (world == 1) return {mine};
  const auto check_sequence = [&](const wire::Frame& f) {
    if (f.sequence != s.sequence)
      throw RendezvousError(fmt::format("rank {}: rank {} is at gather step {} but this rank is at {}: the ranks "
                                        "are out of step", s.options.rank, f.sender, f.sequence, s.sequence));
  };
  if (s.options.rank != 0) {
    s.send(*s.links[0], wire::FrameType::kGather, mine);
    const wire::Frame reply = s.read_single(*s.links[0], "the gathered values");
    check_sequence(reply);
    auto all = wire::decode_list(reply.payload, static_cast<std::size_t>(world));
    if (reply.type != wire::FrameType::kGathered || !all || static_cast<int>(all->size()) != world)
      throw RendezvousError(fmt::format("rank {}: malformed all-gather reply from rank 0", s.options.rank));
    return *all;
  }
  std::vector<Link*> peers;
  for (int r = 1; r < world; ++r) peers.push_back(s.links[r].get());
  std::vector<wire::Frame> frames;
  try {
    frames = s.read_from(peers, "all-gather contributions");
  } catch (const RendezvousError& e) {
    const std::string own_prefix = "rank 0: ";
    std::string reason = e.what();
    if (reason.rfind(own_prefix, 0) == 0) reason.erase(0, own_prefix.size());
    abort(reason);  // tell the others why, so they do not wait out their timeout
    throw;
  }
  std::vector<std::string> all{mine};
  for (auto& f : frames) {
    check_sequence(f);
    all.push_back(std::move(f.payload));
  }
  const std::string payload = wire::encode_list(all);
  for (int r = 1; r < world; ++r) s.send(*s.links[r], wire::FrameType::kGathered, payload);
  return all;
}

void Rendezvous::barrier() { (void)all_gather(""); }

void Rendezvous::agree(const std::string& what, const std::string& description) {
  const std::vector<std::string> all = all_gather(description);
  for (int r = 1; r < static_cast<int>(all.size()); ++r) {
    if (all[r] == all[0]) continue;
    std::istringstream a(all[0]), b(all[r]);
    std::string la, lb;
    int line = 0;
    while (true) {
      const bool ga = static_cast<bool>(std::getline(a, la)), gb = static_cast<bool>(std::getline(b, lb));
      ++line;
      if (!ga && !gb) break;
      if (!ga) la = "(nothing)";
      if (!gb) lb = "(nothing)";
      if (la != lb) break;
    }
    throw RendezvousError(fmt::format("the ranks disagree on the {}: rank {} has '{}' where rank 0 has '{}' "
                                      "(item {}); running would hang the GPUs, so nothing was launched",
                                      what, r, lb, la, line));
  }
}

void Rendezvous::abort(const std::string& reason) noexcept {
  try {
    for (auto& l : impl_->links)
      if (l && l->socket.is_open()) impl_->send(*l, wire::FrameType::kAbort, reason);
  } catch (...) {
  }
}

std::string token_from_environment() {
  if (const char* t = std::getenv("MNNVL_AR_TOKEN")) return t;
  if (const char* path = std::getenv("MNNVL_AR_TOKEN_FILE")) {
    std::ifstream in(path);
    std::string token;
    std::getline(in, token);
    return token;
  }
  return {};
}

}  // namespace ar
