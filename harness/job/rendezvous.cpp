#include "harness/job/rendezvous.h"

#include <cstdlib>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include "harness/job/asio.h"

#include "harness/io/exit_codes.h"
#include "harness/job/rendezvous_auth.h"
#include "harness/job/wire_format.h"

namespace ar {
namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// How long a connection may take to send its hello (at most; half the rendezvous timeout when that is
// shorter): a slow or silent connection is dropped after this, so it cannot hold the real ranks queued
// behind it for longer.
constexpr std::chrono::seconds kHelloTimeout{5};

// A reason from a peer that has not proved itself, fit for a terminal: control bytes (escape sequences
// that could rewrite what the user sees) become '?'.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
  return out;
}

// Whether a connection's two ends are one socket. While nothing listens on a port of the OS's ephemeral
// range, a connect to it can be given that very port as its own end (TCP's simultaneous open) and succeed:
// this rank would then wait out its timeout for a challenge from itself instead of trying again.
bool connected_to_itself(const tcp::socket& socket) {
  boost::system::error_code a, b;
  const tcp::endpoint local = socket.local_endpoint(a), remote = socket.remote_endpoint(b);
  return !a && !b && local == remote;
}

constexpr const char* kTokenHint = "every process needs the same MNNVL_AR_TOKEN, MNNVL_AR_TOKEN_FILE or --token-file";

}  // namespace

/// One connection: a socket, the decoder of what arrives on it, and once the handshake has proved the
/// peer, the keys and counters that authenticate every frame after it.
struct Link {
  explicit Link(asio::io_context& io) : socket(io), decoder(wire::kMaxHandshakePayloadBytes) {}
  tcp::socket socket;
  wire::FrameDecoder decoder;
  std::array<char, 4096> chunk{};
  int peer = -1;  // rank at the other end, once known
  bool authenticated = false;
  std::string send_key, receive_key;
  std::uint64_t sent = 0, received = 0;  // frames so far in each direction: the counter each tag covers

  void authenticate(std::string send, std::string receive) {
    send_key = std::move(send);
    receive_key = std::move(receive);
    authenticated = true;
    decoder.set_max_payload(wire::kMaxPayloadBytes);
  }
};

struct Rendezvous::Impl {
  RendezvousOptions options;
  asio::io_context io;
  std::vector<std::unique_ptr<Link>> links;  // rank 0: one per peer rank (index = rank); others: [0] = rank 0
  std::uint32_t sequence = 0;

  Clock::time_point deadline() const { return Clock::now() + options.timeout; }

  // How a rank names rank 0 before it has proved itself: whoever answers at the address may be another
  // process.
  std::string root_endpoint() const { return fmt::format("rank 0 at {}:{}", options.address, options.port); }

  // Runs the io_context until `done()` or `until`; at the deadline, cancels `pending` (their handlers then
  // run with operation_aborted) and returns false.
  bool run_until(const std::function<bool()>& done, Clock::time_point until, const std::vector<tcp::socket*>& pending) {
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

  // Sends one frame; a frame after the handshake gets its tag (the link's send key over the next counter).
  void send(Link& link, wire::FrameType type, const std::string& payload) {
    wire::Frame frame{type, static_cast<std::uint32_t>(options.rank), sequence, payload, {}};
    if (wire::is_authenticated(type)) {
      if (!link.authenticated)
        throw std::logic_error(
            fmt::format("a {} message to {} before the handshake", wire::type_name(type), describe(link)));
      frame.tag = auth::frame_tag(link.send_key, frame, link.sent++);
    }
    const std::string bytes = wire::encode(frame);
    boost::system::error_code ec;
    asio::write(link.socket, asio::buffer(bytes), ec);
    if (ec)
      throw RendezvousError(fmt::format("rank {}: cannot send to {}: {}", options.rank, describe(link), ec.message()));
  }

  std::string describe(const Link& link) const {
    if (link.peer < 0) return "a connecting peer";
    if (link.peer == 0 && !link.authenticated) return root_endpoint();
    return fmt::format("rank {}", link.peer);
  }

  // Whether a frame that arrived may be used: before the handshake only handshake messages (nothing else
  // from an unproven peer is looked at), after it only frames whose tag checks out under the link's
  // receive key and counter. Returns why not.
  std::optional<std::string> check_frame(Link& link, const wire::Frame& frame) {
    if (!link.authenticated) {
      if (!wire::is_authenticated(frame.type)) return std::nullopt;
      return fmt::format("{} sent a '{}' message before it proved it knows the job's token{}; nothing in it was used",
                         describe(link), wire::type_name(frame.type),
                         link.peer == 0 ? ": it may not be this job's rank 0" : "");
    }
    if (!wire::is_authenticated(frame.type))
      return fmt::format("{} sent a '{}' message after the handshake", describe(link), wire::type_name(frame.type));
    const std::string expected = auth::frame_tag(link.receive_key, frame, link.received);
    if (!auth::same_mac(frame.tag, expected))
      return fmt::format(
          "a '{}' message from {} failed its authentication check (changed, replayed or injected on "
          "the way?); nothing in it was used",
          wire::type_name(frame.type), describe(link));
    ++link.received;
    return std::nullopt;
  }

  // Starts reading one frame from `link` into `out` (or an error into `error`).
  void read_frame(Link& link, std::optional<wire::Frame>& out, std::optional<std::string>& error) {
    if (auto f = link.decoder.next()) {
      if (auto problem = check_frame(link, *f))
        error = std::move(problem);
      else
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
        error = ec == asio::error::eof ? fmt::format("{} closed its connection (did it exit or crash?)", describe(link))
                                       : fmt::format("connection to {} failed: {}", describe(link), ec.message());
        return;
      }
      link.decoder.feed(std::string_view(link.chunk.data(), n));
      read_frame(link, out, error);
    });
  }

  // Reads one frame from each of `targets` (concurrently) until `until`.
  std::vector<wire::Frame> read_from(const std::vector<Link*>& targets, const std::string& waiting_for,
                                     Clock::time_point until) {
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
        until, sockets);
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
        throw RendezvousError(fmt::format("rank {}: the job was stopped by {}: {}", options.rank, describe(*targets[i]),
                                          frames[i]->payload));
      out.push_back(std::move(*frames[i]));
    }
    return out;
  }
  std::vector<wire::Frame> read_from(const std::vector<Link*>& targets, const std::string& waiting_for) {
    return read_from(targets, waiting_for, deadline());
  }

  wire::Frame read_single(Link& link, const std::string& waiting_for) {
    auto frames = read_from({&link}, waiting_for);
    return std::move(frames[0]);
  }

  // Tells every proved peer to stop, each on its own (one that is gone does not keep the others uninformed).
  void abort_links(const std::string& reason) noexcept {
    for (auto& l : links) {
      if (!l || !l->authenticated || !l->socket.is_open()) continue;
      try {
        send(*l, wire::FrameType::kAbort, reason);
      } catch (...) {
      }
    }
  }

  // Rank 0's side of one connection's handshake. Returns the refusal, or nothing once the peer has proved
  // it knows the token and fits this job (then it is in `links`).
  //
  // Rank 0 gives an unproven peer nothing but its nonce and, for a wrong proof, the refusal: its own
  // proof, the job's world size, its version and which ranks have joined come only after the peer's proof
  // checks out, so a process without the token learns nothing about the job.
  std::optional<std::string> admit(std::unique_ptr<Link> link, Clock::time_point until) {
    auth::Session session;
    session.root_nonce = auth::fresh_nonce();
    try {
      send(*link, wire::FrameType::kChallenge, session.root_nonce);
    } catch (const RendezvousError&) {
      return std::string("the connection closed before the handshake");
    }
    std::optional<wire::Frame> hello;
    std::optional<std::string> error;
    read_frame(*link, hello, error);
    const auto hello_time = std::min<Clock::duration>(kHelloTimeout, options.timeout / 2);
    const bool got = run_until([&] { return hello.has_value() || error.has_value(); },
                               std::min(until, Clock::now() + hello_time), {&link->socket});
    const auto refuse = [&](const std::string& reason) {
      boost::system::error_code ignored;
      const std::string bytes = wire::encode({wire::FrameType::kRefused, 0, 0, reason, {}});
      asio::write(link->socket, asio::buffer(bytes), ignored);
      link->socket.close(ignored);
      return reason;
    };
    if (error) return refuse(*error);
    if (!got)
      return refuse(fmt::format("no hello within {} ms",
                                std::chrono::duration_cast<std::chrono::milliseconds>(hello_time).count()));
    if (hello->type != wire::FrameType::kHello) return refuse("expected a hello message first");
    std::optional<auth::Hello> claimed = auth::decode_hello(hello->payload);
    if (!claimed) return refuse("malformed hello message");
    session.rank_nonce = claimed->nonce;
    session.rank = claimed->rank;
    session.world_size = claimed->world_size;
    session.program_version = claimed->program_version;
    const int peer_rank = claimed->rank;
    // The proof covers the rank, world size and version the peer claims, so it is checked over those first
    // and they are compared with this job's only once the peer has shown it holds the token.
    if (!auth::same_mac(claimed->proof, auth::rank_proof(options.token, session)))
      return refuse(
          fmt::format("rank {} presented a proof that does not match the job's token: {}", peer_rank, kTokenHint));
    if (session.world_size != options.world_size)
      return refuse(fmt::format("world size {} differs from rank 0's {}", session.world_size, options.world_size));
    if (peer_rank < 1 || peer_rank >= options.world_size || links[peer_rank])
      return refuse(fmt::format("rank {} is out of range or already joined", peer_rank));
    if (session.program_version != options.program_version)
      return refuse(fmt::format("program version '{}' differs from rank 0's '{}'", session.program_version,
                                options.program_version));
    link->peer = peer_rank;
    send(*link, wire::FrameType::kWelcome, auth::root_proof(options.token, session));
    link->authenticate(auth::root_to_rank_key(options.token, session), auth::rank_to_root_key(options.token, session));
    links[peer_rank] = std::move(link);
    return std::nullopt;
  }

  void accept_all() {
    tcp::resolver resolver(io);
    boost::system::error_code ec;
    const auto endpoints = resolver.resolve(options.address, std::to_string(options.port), ec);
    if (ec || endpoints.empty())
      throw RendezvousError(
          fmt::format("rank 0: cannot resolve rendezvous address '{}': {}", options.address, ec.message()));
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
        const std::string reason = fmt::format(
            "timed out after {} ms waiting for rank{} {} to join on {}:{}{}", options.timeout.count(),
            missing.size() > 1 ? "s" : "", fmt::join(missing, ", "), options.address, options.port,
            refused ? fmt::format(" ({} connection{} refused; last: {})", refused, refused > 1 ? "s" : "", last_refusal)
                    : std::string());
        abort_links(reason);  // the ranks that did join learn why at once, not at their own timeout
        throw RendezvousError("rank 0: " + reason);
      }
      if (auto refusal = admit(std::move(link), until)) {
        ++refused;
        last_refusal = std::move(*refusal);
        continue;
      }
      ++joined;
    }
  }

  // A rank's side of the handshake. It sends its hello (which reveals only an HMAC over the listener's
  // nonce and its own) and then accepts nothing but a proof from rank 0: until that checks out, nothing the
  // listener sends is acted on.
  //
  // A listener without the token (a process that took the port first) therefore gets the hello and
  // nothing else. That HMAC-SHA256 under a secret key neither reveals the token nor lets the listener
  // pass as this rank to the real rank 0, whose challenge is a fresh nonce; what remains is guessing a weak
  // token offline against it, which a random token of 128 bits or more (the --help text says how) rules out.
  void handshake_with_root(Link& root) {
    const std::string where = root_endpoint();
    const wire::Frame challenge = read_single(root, "the handshake's challenge");
    if (challenge.type == wire::FrameType::kRefused)
      throw RendezvousError(
          fmt::format("rank {}: {} refused this process: {}", options.rank, where, printable(challenge.payload)));
    if (challenge.type != wire::FrameType::kChallenge || challenge.payload.size() != wire::kNonceBytes)
      throw RendezvousError(
          fmt::format("rank {}: {} did not start the handshake (it sent a '{}' message where a "
                      "challenge belongs): it may not be this job's rank 0",
                      options.rank, where, wire::type_name(challenge.type)));
    auth::Session session;
    session.root_nonce = challenge.payload;
    session.rank_nonce = auth::fresh_nonce();
    session.rank = options.rank;
    session.world_size = options.world_size;
    session.program_version = options.program_version;
    send(root, wire::FrameType::kHello, auth::encode_hello(session, auth::rank_proof(options.token, session)));
    const wire::Frame reply = read_single(root, "the answer to its hello");
    // A refusal is not authenticated (a rank whose token is wrong could not check it anyway); it only
    // stops this rank, which a listener that holds the port can do by closing it just as well.
    if (reply.type == wire::FrameType::kRefused)
      throw RendezvousError(
          fmt::format("rank {}: {} refused this process: {}", options.rank, where, printable(reply.payload)));
    if (reply.type != wire::FrameType::kWelcome)
      throw RendezvousError(
          fmt::format("rank {}: {} answered the hello with a '{}' message: it may not be this job's "
                      "rank 0",
                      options.rank, where, wire::type_name(reply.type)));
    if (!auth::same_mac(reply.payload, auth::root_proof(options.token, session)))
      throw RendezvousError(fmt::format(
          "rank {}: {} did not prove it knows the job's token: it may not be this job's rank 0 (another process "
          "may hold the port, or rank 0 has another token: {}); nothing it sent was used",
          options.rank, where, kTokenHint));
    root.authenticate(auth::rank_to_root_key(options.token, session), auth::root_to_rank_key(options.token, session));
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
        if (!ec && connected_to_itself(root.socket)) ec = asio::error::connection_refused;
        if (!ec) {
          handshake_with_root(root);
          return;
        }
      }
      last_error = ec.message();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // rank 0 may not be listening yet
    }
    throw RendezvousError(fmt::format("rank {}: timed out after {} ms connecting to rank 0 at {}:{} (last error: {})",
                                      options.rank, options.timeout.count(), options.address, options.port,
                                      last_error));
  }
};

Rendezvous::Rendezvous(const RendezvousOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size)
    throw RendezvousError(fmt::format("rank {} is outside a world of {}", options.rank, options.world_size));
  if (options.world_size == 1) return;
  if (options.token.empty())
    throw RendezvousError(
        fmt::format("rank {}: no token to prove this process belongs to the job ({})", options.rank, kTokenHint));
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
      throw RendezvousError(
          fmt::format("rank {}: rank {} is at gather step {} but this rank is at {}: the ranks "
                      "are out of step",
                      s.options.rank, f.sender, f.sequence, s.sequence));
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
    throw RendezvousError(
        fmt::format("the ranks disagree on the {}: rank {} has '{}' where rank 0 has '{}' "
                    "(item {}); running would hang the GPUs, so nothing was launched",
                    what, r, lb, la, line));
  }
}

void Rendezvous::abort(const std::string& reason) noexcept { impl_->abort_links(reason); }

}  // namespace ar
