// The rendezvous handshake under attack, on loopback: ranks are threads of this process, and the attacker
// is the test itself speaking the wire format by hand: a listener that took rank 0's port without the
// token, a peer with a wrong or replayed proof, a man in the middle that relays a genuine handshake and
// then changes, injects, replays or reflects frames. Every read is bounded, so a wrong outcome fails
// instead of hanging.
#include <catch2/catch.hpp>

#include <array>
#include <future>
#include <memory>
#include <optional>
#include <thread>

#include "harness/job/asio.h"

#include "harness/job/rendezvous.h"
#include "harness/job/wire_format.h"
#include "tests/support/launcher_env.h"

using namespace ar;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Long and unlike anything else on the wire, so finding it in captured bytes cannot be a coincidence.
const std::string kToken = "tok-7f3a9c1e5b2d4f60-the-job's-secret";

RendezvousOptions options_for(int rank, int world, std::uint16_t port, std::chrono::milliseconds timeout = 5000ms) {
  RendezvousOptions o;
  o.rank = rank;
  o.world_size = world;
  o.port = port;
  o.token = kToken;
  o.timeout = timeout;
  o.program_version = "test";
  return o;
}

/// One end of a connection that the test drives by hand. It keeps every byte that arrived, so a test can
/// check what the other side revealed.
class RawPeer {
 public:
  explicit RawPeer(std::shared_ptr<asio::io_context> io) : io_(std::move(io)), socket_(*io_) {}

  /// Connects to 127.0.0.1:`port`, retrying while nothing listens there yet.
  static std::unique_ptr<RawPeer> connect(std::uint16_t port, std::chrono::milliseconds timeout = 3000ms) {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      auto peer = std::make_unique<RawPeer>(std::make_shared<asio::io_context>());
      boost::system::error_code ec;
      const tcp::endpoint there{asio::ip::make_address("127.0.0.1"), port};
      peer->socket_.connect(there, ec);
      if (!ec && peer->socket_.local_endpoint(ec) != there) return peer;  // not a connection to itself
      std::this_thread::sleep_for(20ms);
    }
    FAIL("nothing listened on port " << port);
    return nullptr;
  }

  tcp::socket& socket() { return socket_; }
  void send(const wire::Frame& f) { send_bytes(wire::encode(f)); }
  void send_bytes(const std::string& bytes) {
    boost::system::error_code ignored;
    asio::write(socket_, asio::buffer(bytes), ignored);
  }
  /// The next frame, or nothing when none came within `timeout`, the connection closed or the stream is bad.
  std::optional<wire::Frame> read(std::chrono::milliseconds timeout = 3000ms) {
    const auto until = Clock::now() + timeout;
    while (true) {
      if (auto f = decoder_.next()) return f;
      if (decoder_.failed() || !read_chunk(until)) return std::nullopt;
    }
  }
  /// Reads until the other end closes (true) or `timeout` passes (false).
  bool wait_closed(std::chrono::milliseconds timeout = 3000ms) {
    const auto until = Clock::now() + timeout;
    while (!closed_)
      if (!read_chunk(until)) return closed_;
    return true;
  }
  const std::string& received() const { return received_; }
  void close() {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  bool read_chunk(Clock::time_point until) {
    std::array<char, 4096> chunk{};
    bool done = false;
    std::size_t n = 0;
    boost::system::error_code ec;
    socket_.async_read_some(asio::buffer(chunk), [&](boost::system::error_code e, std::size_t k) {
      ec = e;
      n = k;
      done = true;
    });
    io_->restart();
    while (!done && io_->run_one_until(until) > 0) {
    }
    if (!done) {
      boost::system::error_code ignored;
      socket_.cancel(ignored);
      io_->restart();
      io_->run();  // the cancelled read's handler
      return false;
    }
    if (ec) {
      closed_ = true;
      return false;
    }
    received_.append(chunk.data(), n);
    decoder_.feed(std::string_view(chunk.data(), n));
    return true;
  }

  std::shared_ptr<asio::io_context> io_;
  tcp::socket socket_;
  wire::FrameDecoder decoder_;
  std::string received_;
  bool closed_ = false;
};

/// A port the test holds before any rank starts: a stand-in for a process that took rank 0's port first,
/// or the front of a man in the middle.
class RawListener {
 public:
  RawListener()
      : io_(std::make_shared<asio::io_context>()), acceptor_(*io_, {asio::ip::make_address("127.0.0.1"), 0}) {}
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::unique_ptr<RawPeer> accept(std::chrono::milliseconds timeout = 3000ms) {
    auto peer = std::make_unique<RawPeer>(io_);
    bool done = false;
    boost::system::error_code ec;
    acceptor_.async_accept(peer->socket(), [&](boost::system::error_code e) {
      ec = e;
      done = true;
    });
    io_->restart();
    const auto until = Clock::now() + timeout;
    while (!done && io_->run_one_until(until) > 0) {
    }
    if (!done) {
      boost::system::error_code ignored;
      acceptor_.cancel(ignored);
      io_->restart();
      io_->run();
    }
    REQUIRE(done);
    REQUIRE_FALSE(ec);
    return peer;
  }
  /// Whether a connection is waiting to be accepted (checked without waiting long).
  bool has_pending_connection() {
    acceptor_.non_blocking(true);
    tcp::socket socket(*io_);
    boost::system::error_code ec;
    acceptor_.accept(socket, ec);
    acceptor_.non_blocking(false);
    return !ec;
  }

 private:
  std::shared_ptr<asio::io_context> io_;
  tcp::acceptor acceptor_;
};

/// A rank on a thread of its own: its result, or "error: " and what it threw.
std::future<std::string> start_rank(RendezvousOptions o, int gathers = 1) {
  return std::async(std::launch::async, [o, gathers]() -> std::string {
    try {
      Rendezvous rv(o);
      std::string seen;
      for (int g = 0; g < gathers; ++g)
        seen += wire::encode_list(rv.all_gather("plan of rank " + std::to_string(o.rank)));
      return "joined: " + seen;
    } catch (const std::exception& e) {
      return std::string("error: ") + e.what();
    }
  });
}

std::string take(std::future<std::string>& f) {
  REQUIRE(f.wait_for(15s) == std::future_status::ready);
  return f.get();
}
std::string take(std::future<std::string>&& f) { return take(f); }

/// Every frame in `bytes` (what one side sent), decoded.
std::vector<wire::Frame> frames_in(const std::string& bytes) {
  wire::FrameDecoder d;
  d.feed(bytes);
  std::vector<wire::Frame> out;
  while (auto f = d.next()) out.push_back(*f);
  CHECK_FALSE(d.failed());
  return out;
}

bool contains_token(const std::string& bytes) { return bytes.find(kToken) != std::string::npos; }

wire::Frame challenge(const std::string& nonce) { return {wire::FrameType::kChallenge, 0, 0, nonce, {}}; }

std::string bytes_of(char c, std::size_t n) { return std::string(n, c); }

/// A hello from "rank 1" with a proof made up by someone who does not know the token.
std::string made_up_hello(const std::string& world, const std::string& version) {
  return wire::encode_list({"1", world, version, bytes_of('n', wire::kNonceBytes), bytes_of('p', wire::kTagBytes)});
}

}  // namespace

TEST_CASE("auth: genuine jobs of 2, 3 and 4 ranks join and gather", "[cpu]") {
  for (int world = 2; world <= 4; ++world) {
    const auto port = test::free_port();
    std::vector<std::future<std::string>> ranks;
    for (int r = 0; r < world; ++r) ranks.push_back(start_rank(options_for(r, world, port), 2));
    std::vector<std::string> results;
    for (auto& f : ranks) results.push_back(take(f));
    INFO("W = " << world << ": " << results[0]);
    REQUIRE_THAT(results[0], Catch::StartsWith("joined: "));
    for (const auto& r : results) CHECK(r == results[0]);
    CHECK_THAT(results[0], Catch::Contains("plan of rank " + std::to_string(world - 1)));
  }
}

TEST_CASE("auth: a rank with a wrong token is refused and named, and every rank ends within the timeout", "[cpu]") {
  const auto port = test::free_port();
  const auto start = Clock::now();
  auto r0 = start_rank(options_for(0, 3, port, 1500ms));
  auto r1 = start_rank(options_for(1, 3, port, 1500ms));
  auto wrong = options_for(2, 3, port, 1500ms);
  wrong.token = "a guess";
  auto r2 = start_rank(wrong);
  const std::string a = take(r0), b = take(r1), c = take(r2);
  INFO("rank 0: " << a << "\nrank 1: " << b << "\nrank 2: " << c);
  CHECK(Clock::now() - start < 4s);
  CHECK_THAT(c, Catch::Contains("rank 2: rank 0 at 127.0.0.1:" + std::to_string(port) +
                                " refused this process: "
                                "rank 2 presented a proof that does not match the job's token"));
  CHECK_THAT(a, Catch::Contains("waiting for rank 2 to join") &&
                    Catch::Contains("1 connection refused; last: rank 2 presented a proof that does not match"));
  // Rank 1 had joined: rank 0 tells it why the job stops. On a loaded machine rank 1's own wait (the same
  // length) may end first; either way it ends within the timeout, with an error.
  CHECK_THAT(b, (Catch::Contains("stopped by rank 0") && Catch::Contains("waiting for rank 2 to join")) ||
                    Catch::Contains("timed out after"));
}

TEST_CASE("auth: a listener without the token that took rank 0's port is refused and learns nothing", "[cpu]") {
  RawListener fake;  // bound before rank 1 starts, as a process that got the port first would be
  const std::string rank0 = "rank 0 at 127.0.0.1:" + std::to_string(fake.port());
  const std::string forged_plan = wire::encode_list({"plan of the fake", "run this"});
  const std::string fake_nonce = bytes_of('N', wire::kNonceBytes);
  const auto start = Clock::now();
  auto rank1 = start_rank(options_for(1, 2, fake.port(), 5000ms));
  auto link = fake.accept();

  std::string expected;
  std::size_t frames_from_rank1 = 1;  // the hello, answered by the fake
  SECTION("a welcome with a made-up proof, and a forged plan right behind it") {
    link->send(challenge(fake_nonce));
    REQUIRE(link->read());
    link->send_bytes(wire::encode({wire::FrameType::kWelcome, 0, 0, bytes_of('P', wire::kTagBytes), {}}) +
                     wire::encode({wire::FrameType::kGathered, 0, 1, forged_plan, bytes_of('T', wire::kTagBytes)}));
    expected = rank0 + " did not prove it knows the job's token: it may not be this job's rank 0";
  }
  SECTION("a forged plan where the welcome belongs") {
    link->send(challenge(fake_nonce));
    REQUIRE(link->read());
    link->send({wire::FrameType::kGathered, 0, 1, forged_plan, bytes_of('T', wire::kTagBytes)});
    expected = rank0 +
               " sent a 'gathered values' message before it proved it knows the job's token: it may not "
               "be this job's rank 0; nothing in it was used";
  }
  SECTION("an abort before any challenge") {
    link->send({wire::FrameType::kAbort, 0, 0, "stop", bytes_of('T', wire::kTagBytes)});
    expected = rank0 + " sent a 'abort' message before it proved";
    frames_from_rank1 = 0;
  }
  SECTION("a refusal that would rewrite the terminal") {
    link->send({wire::FrameType::kRefused, 0, 0, "\x1b[2Jall is well\r", {}});
    expected = rank0 + " refused this process: ?[2Jall is well?";
    frames_from_rank1 = 0;
  }
  SECTION("a second challenge where the welcome belongs") {
    link->send(challenge(fake_nonce));
    REQUIRE(link->read());
    link->send(challenge(fake_nonce));
    expected = rank0 + " answered the hello with a 'challenge' message: it may not be this job's rank 0";
  }
  const std::string outcome = take(rank1);
  INFO(outcome);
  // Rank 1 acted on nothing the fake sent: its rendezvous never formed, so no plan was gathered.
  CHECK_THAT(outcome, Catch::StartsWith("error: rank 1: ") && Catch::Contains(expected));
  CHECK_THAT(outcome, !Catch::Contains("plan of the fake"));
  CHECK(Clock::now() - start < 4s);  // refused at once, not at the timeout
  // What the fake got: at most the hello, then the connection closed; never the token.
  CHECK(link->wait_closed());
  const std::vector<wire::Frame> sent = frames_in(link->received());
  REQUIRE(sent.size() == frames_from_rank1);
  CHECK_FALSE(contains_token(link->received()));
  if (frames_from_rank1 == 1) {
    CHECK(sent[0].type == wire::FrameType::kHello);
    const auto fields = wire::decode_list(sent[0].payload, 5);
    REQUIRE(fields);
    REQUIRE(fields->size() == 5);
    CHECK((*fields)[0] == "1");
    CHECK((*fields)[1] == "2");
    CHECK((*fields)[3].size() == wire::kNonceBytes);
    CHECK((*fields)[4].size() == wire::kTagBytes);  // an HMAC over the fake's nonce, nothing else secret
    for (const std::string& field : *fields) CHECK_FALSE(contains_token(field));
  }
}

TEST_CASE("auth: what a rank sends an unproven listener cannot be replayed, even for the same challenge", "[cpu]") {
  // Two sessions with one fake nonce: the rank's fresh nonce makes each proof new.
  std::vector<std::vector<std::string>> hellos;
  for (int session = 0; session < 2; ++session) {
    RawListener fake;
    auto rank1 = start_rank(options_for(1, 2, fake.port(), 3000ms));
    auto link = fake.accept();
    link->send(challenge(bytes_of('N', wire::kNonceBytes)));
    const auto hello = link->read();
    REQUIRE(hello);
    link->close();
    CHECK_THAT(take(rank1), Catch::Contains("closed its connection"));
    hellos.push_back(wire::decode_list(hello->payload, 5).value());
  }
  CHECK(hellos[0][3] != hellos[1][3]);  // nonces
  CHECK(hellos[0][4] != hellos[1][4]);  // proofs
}

TEST_CASE("auth: a genuine rank's proof replayed to the real rank 0 is refused", "[cpu]") {
  // Session 1: a fake listener harvests a genuine rank 1's hello.
  std::optional<wire::Frame> harvested;
  {
    RawListener fake;
    auto rank1 = start_rank(options_for(1, 2, fake.port(), 3000ms));
    auto link = fake.accept();
    link->send(challenge(bytes_of('N', wire::kNonceBytes)));
    harvested = link->read();
    link->close();
    take(rank1);
  }
  REQUIRE(harvested);
  // Session 2: the real rank 0. Its challenge is fresh, so the harvested proof does not answer it; and it
  // gives the impostor nothing but its nonce and the refusal (no proof of its own, nothing about the job).
  const auto port = test::free_port();
  auto rank0 = start_rank(options_for(0, 2, port, 5000ms));
  auto impostor = RawPeer::connect(port);
  const auto real_challenge = impostor->read();
  REQUIRE(real_challenge);
  CHECK(real_challenge->type == wire::FrameType::kChallenge);
  CHECK(real_challenge->payload != bytes_of('N', wire::kNonceBytes));
  impostor->send(*harvested);
  const auto answer = impostor->read();
  REQUIRE(answer);
  CHECK(answer->type == wire::FrameType::kRefused);
  CHECK_THAT(answer->payload, Catch::StartsWith("rank 1 presented a proof that does not match the job's token"));
  CHECK(impostor->wait_closed());
  const std::vector<wire::Frame> got = frames_in(impostor->received());
  CHECK(got.size() == 2);  // the challenge and the refusal
  CHECK_FALSE(contains_token(impostor->received()));
  // The job still forms with the genuine rank 1.
  auto rank1 = start_rank(options_for(1, 2, port, 5000ms));
  CHECK_THAT(take(rank0), Catch::StartsWith("joined: "));
  CHECK_THAT(take(rank1), Catch::StartsWith("joined: "));
}

TEST_CASE("auth: an unproven peer learns nothing about the job before its proof checks out", "[cpu]") {
  const auto port = test::free_port();
  auto rank0 = start_rank(options_for(0, 2, port, 5000ms));
  // A peer claiming another world size and version, with a made-up proof: the refusal is about the proof
  // only, so it does not learn the job's world size or version.
  auto impostor = RawPeer::connect(port);
  const auto nonce = impostor->read();
  REQUIRE(nonce);
  impostor->send({wire::FrameType::kHello, 1, 0, made_up_hello("7", "other"), {}});
  const auto answer = impostor->read();
  REQUIRE(answer);
  CHECK(answer->type == wire::FrameType::kRefused);
  CHECK_THAT(answer->payload, Catch::Contains("proof") && !Catch::Contains("world size") &&
                                  !Catch::Contains("version") && !Catch::Contains("2"));
  auto rank1 = start_rank(options_for(1, 2, port, 5000ms));
  CHECK_THAT(take(rank0), Catch::StartsWith("joined: "));
  CHECK_THAT(take(rank1), Catch::StartsWith("joined: "));
}

TEST_CASE("auth: a proved peer of another world size or version is refused with the difference", "[cpu]") {
  const auto port = test::free_port();
  auto rank0 = start_rank(options_for(0, 2, port, 1500ms));
  auto other_world = options_for(1, 3, port, 1500ms);
  CHECK_THAT(take(start_rank(other_world)), Catch::Contains("refused this process: world size 3 differs from "
                                                            "rank 0's 2"));
  auto other_version = options_for(1, 2, port, 1500ms);
  other_version.program_version = "older";
  CHECK_THAT(take(start_rank(other_version)), Catch::Contains("program version 'older' differs from rank 0's 'test'"));
  CHECK_THAT(take(rank0), Catch::Contains("2 connections refused"));
}

namespace {

/// A man in the middle between a genuine rank 1 (which connects to the relay) and a genuine rank 0: it
/// forwards the handshake untouched, keeping every byte, and then the frames the test asks for.
struct Relay {
  RawListener front;
  std::unique_ptr<RawPeer> to_rank1, to_rank0;
  void connect(std::uint16_t rank0_port) {
    to_rank1 = front.accept();
    to_rank0 = RawPeer::connect(rank0_port);
  }
  wire::Frame from_rank0() {
    auto f = to_rank0->read();
    REQUIRE(f);
    return *f;
  }
  wire::Frame from_rank1() {
    auto f = to_rank1->read();
    REQUIRE(f);
    return *f;
  }
  /// Challenge, hello and welcome, as they were sent.
  std::vector<wire::Frame> handshake() {
    std::vector<wire::Frame> seen{from_rank0()};
    to_rank1->send(seen.back());
    seen.push_back(from_rank1());
    to_rank0->send(seen.back());
    seen.push_back(from_rank0());
    to_rank1->send(seen.back());
    return seen;
  }
  void close() {
    to_rank1->close();
    to_rank0->close();
  }
};

}  // namespace

TEST_CASE("auth: a relayed genuine handshake carries no token, and a frame replayed to a later session is refused",
          "[cpu]") {
  // Session 1, through the relay: it records rank 0's challenge and its proof.
  const auto port = test::free_port();
  Relay relay;
  auto rank0 = start_rank(options_for(0, 2, port, 5000ms));
  auto rank1 = start_rank(options_for(1, 2, relay.front.port(), 5000ms));
  relay.connect(port);
  const std::vector<wire::Frame> recorded = relay.handshake();
  relay.to_rank0->send(relay.from_rank1());  // the all-gather, both ways
  relay.to_rank1->send(relay.from_rank0());
  CHECK_THAT(take(rank0), Catch::StartsWith("joined: "));
  CHECK_THAT(take(rank1), Catch::StartsWith("joined: "));
  relay.to_rank1->wait_closed();
  relay.to_rank0->wait_closed();
  CHECK_FALSE(contains_token(relay.to_rank0->received()));
  CHECK_FALSE(contains_token(relay.to_rank1->received()));

  // Session 2: a fake rank 0 sends rank 1 the recorded challenge (rank 0's very nonce) and then the recorded
  // proof. Rank 1's nonce is fresh, so the proof does not answer it.
  RawListener fake;
  auto again = start_rank(options_for(1, 2, fake.port(), 5000ms));
  auto link = fake.accept();
  link->send(recorded[0]);
  REQUIRE(link->read());
  link->send(recorded[2]);
  CHECK_THAT(take(again), Catch::Contains("did not prove it knows the job's token"));
}

TEST_CASE("auth: after a genuine handshake, a changed, injected, replayed or reflected frame is refused", "[cpu]") {
  const auto port = test::free_port();
  Relay relay;
  auto rank0 = start_rank(options_for(0, 2, port, 3000ms), 2);
  auto rank1 = start_rank(options_for(1, 2, relay.front.port(), 3000ms), 2);
  relay.connect(port);
  relay.handshake();
  const wire::Frame gather = relay.from_rank1();
  relay.to_rank0->send(gather);
  wire::Frame gathered = relay.from_rank0();
  std::string what;
  bool rank0_finishes = false;  // whether rank 0 saw all it needed before the relay was closed
  SECTION("one byte of rank 0's plan changed") {
    gathered.payload.back() ^= 1;
    relay.to_rank1->send(gathered);
    what = "'gathered values' message from rank 0";
  }
  SECTION("a forged plan injected before rank 0's") {
    relay.to_rank1->send(
        {wire::FrameType::kGathered, 0, 1, wire::encode_list({"forged", "plan"}), bytes_of('T', wire::kTagBytes)});
    what = "'gathered values' message from rank 0";
  }
  SECTION("an abort injected in rank 0's name") {
    relay.to_rank1->send({wire::FrameType::kAbort, 0, 1, "stop", bytes_of('T', wire::kTagBytes)});
    what = "'abort' message from rank 0";
  }
  SECTION("rank 0's first plan replayed in place of its second") {
    relay.to_rank1->send(gathered);
    relay.to_rank0->send(relay.from_rank1());
    (void)relay.from_rank0();  // the genuine second one, dropped
    relay.to_rank1->send(gathered);
    what = "'gathered values' message from rank 0";
    rank0_finishes = true;
  }
  SECTION("rank 1's own contribution reflected back to it") {
    wire::Frame reflected = gather;
    reflected.type = wire::FrameType::kGathered;  // the tag stays rank 1's, made with the other direction's key
    relay.to_rank1->send(reflected);
    what = "'gathered values' message from rank 0";
  }
  SECTION("rank 1's contribution changed on its way to rank 0") {
    // Rank 0 already took the genuine first one; the second is altered.
    relay.to_rank1->send(gathered);
    wire::Frame second = relay.from_rank1();
    second.payload += "!";
    relay.to_rank0->send(second);
    const std::string outcome = take(rank0);
    INFO(outcome);
    CHECK_THAT(outcome, Catch::Contains("'all-gather contribution' message from rank 1 failed its authentication "
                                        "check") &&
                            Catch::Contains("nothing in it was used"));
    relay.close();
    CHECK_THAT(take(rank1), Catch::StartsWith("error: "));
    return;
  }
  const std::string outcome = take(rank1);
  INFO(outcome);
  CHECK_THAT(outcome,
             Catch::Contains(what + " failed its authentication check") && Catch::Contains("nothing in it was used"));
  CHECK_THAT(outcome, !Catch::Contains("forged"));
  relay.close();
  CHECK_THAT(take(rank0), Catch::StartsWith(rank0_finishes ? "joined: " : "error: "));
}

TEST_CASE("auth: garbage, a huge length, a silent peer and a flood of bad connections do not stop the job", "[cpu]") {
  const auto port = test::free_port();
  const auto start = Clock::now();
  auto rank0 = start_rank(options_for(0, 2, port, 6000ms));
  std::vector<std::string> refusals;
  const auto refusal_to = [&](const std::string& bytes) {
    auto intruder = RawPeer::connect(port);
    REQUIRE(intruder->read());  // the challenge
    intruder->send_bytes(bytes);
    const auto answer = intruder->read();
    refusals.push_back(answer && answer->type == wire::FrameType::kRefused ? answer->payload : "(none)");
    CHECK(intruder->wait_closed());
  };
  refusal_to("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  // A header announcing a 1 MiB hello: refused from the header alone, before the payload is sent.
  std::string huge = wire::encode({wire::FrameType::kHello, 1, 0, "", {}});
  huge[12] = 0;
  huge[13] = 0;
  huge[14] = 0x10;
  refusal_to(huge.substr(0, wire::kHeaderBytes));
  // A silent peer is dropped after the hello time (half the timeout here), not at the job's timeout.
  {
    auto silent = RawPeer::connect(port);
    REQUIRE(silent->read());
    const auto answer = silent->read(4500ms);
    refusals.push_back(answer ? answer->payload : "(none)");
  }
  // A flood: many connections in a row that close at once or send a bad proof.
  for (int i = 0; i < 30; ++i) {
    auto intruder = RawPeer::connect(port);
    if (i % 2 == 0) {
      intruder->close();
      continue;
    }
    REQUIRE(intruder->read());
    intruder->send({wire::FrameType::kHello, 1, 0, made_up_hello("2", "test"), {}});
    REQUIRE(intruder->read());
  }
  auto rank1 = start_rank(options_for(1, 2, port, 6000ms));
  CHECK_THAT(take(rank0), Catch::StartsWith("joined: "));
  CHECK_THAT(take(rank1), Catch::StartsWith("joined: "));
  CHECK(Clock::now() - start < 6s);
  REQUIRE(refusals.size() == 3);
  CHECK_THAT(refusals[0], Catch::Contains("bad magic"));
  CHECK_THAT(refusals[1], Catch::Contains("outside the allowed 4..4100"));
  CHECK_THAT(refusals[2], Catch::Contains("no hello within 3000 ms"));
}

TEST_CASE("auth: a job of several processes with no token refuses before it listens or connects", "[cpu]") {
  RawListener would_be_rank0;
  for (int rank : {0, 1}) {
    auto o = options_for(rank, 2, would_be_rank0.port(), 1000ms);
    o.token.clear();
    // Rank 0 would have failed to listen on the port the test holds, with another message.
    CHECK_THROWS_WITH(Rendezvous(o), Catch::Contains("no token") && Catch::Contains("MNNVL_AR_TOKEN"));
  }
  CHECK_FALSE(would_be_rank0.has_pending_connection());  // rank 1 never connected
  auto alone = options_for(0, 1, 0);
  alone.token.clear();
  CHECK_NOTHROW(Rendezvous(alone));  // a job of one process needs none
}
