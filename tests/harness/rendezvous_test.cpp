// The rendezvous on loopback, with ranks as threads of this process: all-gather, barrier, agreement on the
// plan, and every way a job goes wrong (wrong token, a peer that never comes, one that dies, garbage).
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <thread>

#include "harness/job/asio.h"
#include "harness/job/rendezvous.h"
#include "harness/job/wire_format.h"
#include "tests/support/launcher_env.h"

using namespace ar;
using namespace std::chrono_literals;

namespace {

RendezvousOptions options_for(int rank, int world, std::uint16_t port, std::chrono::milliseconds timeout = 5000ms) {
  RendezvousOptions o;
  o.rank = rank;
  o.world_size = world;
  o.port = port;
  o.token = "secret";
  o.timeout = timeout;
  o.program_version = "test";
  return o;
}

// Runs `body(rank)` on `world` threads; returns each rank's result or error text.
template <class Body>
std::vector<std::string> run_ranks(int world, Body body) {
  std::vector<std::future<std::string>> futures;
  for (int r = 0; r < world; ++r)
    futures.push_back(std::async(std::launch::async, [r, &body]() -> std::string {
      try {
        return body(r);
      } catch (const std::exception& e) {
        return std::string("error: ") + e.what();
      }
    }));
  std::vector<std::string> out;
  for (auto& f : futures) out.push_back(f.get());
  return out;
}

}  // namespace

TEST_CASE("all-gather and agreement across 4 ranks", "[cpu]") {
  const auto port = test::free_port();
  const auto results = run_ranks(4, [port](int r) {
    Rendezvous rv(options_for(r, 4, port));
    const auto all = rv.all_gather("from " + std::to_string(r));
    rv.barrier();
    rv.agree("call sequence", "oneshot N=4\ntwoshot N=64\n");
    const auto again = rv.all_gather(std::string(1000, char('a' + r)));
    return all[0] + "," + all[3] + "," + std::to_string(again[2].size()) + again[2].substr(0, 1);
  });
  for (const auto& r : results) CHECK(r == "from 0,from 3,1000c");
}

TEST_CASE("a different plan on one rank stops every rank with a message naming it", "[cpu]") {
  const auto port = test::free_port();
  const auto results = run_ranks(3, [port](int r) {
    Rendezvous rv(options_for(r, 3, port));
    rv.agree("call sequence", r == 2 ? "oneshot N=4\ntwoshot N=65\n" : "oneshot N=4\ntwoshot N=64\n");
    return std::string("launched");
  });
  for (const auto& r : results) {
    CHECK_THAT(r, Catch::Contains("rank 2 has 'twoshot N=65' where rank 0 has 'twoshot N=64'"));
    CHECK_THAT(r, Catch::Contains("nothing was launched"));
  }
}

TEST_CASE("a wrong token is refused", "[cpu]") {
  const auto port = test::free_port();
  const auto results = run_ranks(2, [port](int r) {
    auto o = options_for(r, 2, port, 1500ms);
    if (r == 1) o.token = "guess";
    Rendezvous rv(o);
    return std::string("joined");
  });
  CHECK_THAT(results[1], Catch::Contains("refused this process: rank 1 presented a proof that does not match the "
                                         "job's token"));
  CHECK_THAT(results[0], Catch::Contains("timed out") && Catch::Contains("rank 1") &&
                             Catch::Contains("1 connection refused; last: rank 1 presented a proof"));
}

TEST_CASE("a peer that never arrives ends in a timeout naming it", "[cpu]") {
  const auto port = test::free_port();
  const auto start = std::chrono::steady_clock::now();
  const auto results = run_ranks(3, [port](int r) {
    if (r == 2) return std::string("never started");
    Rendezvous rv(options_for(r, 3, port, 800ms));
    return std::string("joined");
  });
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK_THAT(results[0], Catch::Contains("waiting for rank 2 to join"));
}

TEST_CASE("rank 0 that never listens ends in a timeout on the others", "[cpu]") {
  const auto port = test::free_port();
  CHECK_THROWS_WITH(Rendezvous(options_for(1, 2, port, 500ms)),
                    Catch::Contains("timed out") && Catch::Contains("connecting to rank 0"));
}

TEST_CASE("a rank that dies mid-run is named to the others", "[cpu]") {
  const auto port = test::free_port();
  const auto results = run_ranks(3, [port](int r) {
    auto rv = std::make_unique<Rendezvous>(options_for(r, 3, port, 3000ms));
    rv->barrier();
    if (r == 1) {
      rv.reset();  // closes its connection, as a crashed process would
      return std::string("died");
    }
    rv->barrier();
    return std::string("passed");
  });
  CHECK_THAT(results[0], Catch::Contains("rank 1 closed its connection"));
  CHECK_THAT(results[2], Catch::Contains("stopped by rank 0") && Catch::Contains("rank 1 closed its connection"));
}

TEST_CASE("garbage on the rendezvous port is refused, the job still forms", "[cpu]") {
  const auto port = test::free_port();
  std::atomic<bool> sent{false};
  std::thread intruder([&] {
    boost::asio::io_context io;
    for (int attempt = 0; attempt < 100 && !sent; ++attempt) {
      try {
        boost::asio::ip::tcp::socket s(io);
        s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
        const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        boost::asio::write(s, boost::asio::buffer(junk));
        sent = true;
        std::array<char, 256> reply{};
        boost::system::error_code ec;
        s.read_some(boost::asio::buffer(reply), ec);  // the refusal, then EOF
      } catch (const std::exception&) {
        std::this_thread::sleep_for(10ms);
      }
    }
  });
  const auto results = run_ranks(2, [port, &sent](int r) {
    if (r == 1)
      while (!sent) std::this_thread::sleep_for(5ms);
    Rendezvous rv(options_for(r, 2, port, 3000ms));
    return rv.all_gather(std::to_string(r))[1];
  });
  intruder.join();
  CHECK(results[0] == "1");
  CHECK(results[1] == "1");
}
