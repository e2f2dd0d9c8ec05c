// Descriptors passed over AF_UNIX with SCM_RIGHTS refer to the same open file: checked with memfds.
#include <catch2/catch.hpp>

#include <future>

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness/job/fd_passing.h"
#include "tests/support/launcher_env.h"

using namespace ar;

namespace {

std::string read_all(int fd) {
  std::string s(64, '\0');
  const ssize_t n = ::pread(fd, s.data(), s.size(), 0);
  s.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return s;
}

UniqueFd memfd_with(const std::string& text) {
  UniqueFd fd(::memfd_create("mnnvl-ar-test", MFD_CLOEXEC));
  REQUIRE(::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  return fd;
}

}  // namespace

TEST_CASE("send_fd / receive_fd over a socket pair", "[cpu]") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  UniqueFd a(pair[0]), b(pair[1]);
  const UniqueFd file = memfd_with("rank data");
  send_fd(a.get(), file.get());
  const UniqueFd got = receive_fd(b.get());
  CHECK(got.get() != file.get());
  CHECK(read_all(got.get()) == "rank data");
  a = UniqueFd();
  CHECK_THROWS_WITH(receive_fd(b.get()), Catch::Contains("closed the socket"));
}

TEST_CASE("exchange_fds gives every rank every other rank's descriptor", "[cpu]") {
  const auto port = test::free_port();
  constexpr int kWorld = 4;
  std::vector<std::future<std::vector<std::string>>> ranks;
  for (int r = 0; r < kWorld; ++r)
    ranks.push_back(std::async(std::launch::async, [r, port] {
      RendezvousOptions o;
      o.rank = r;
      o.world_size = kWorld;
      o.port = port;
      o.token = "t";
      o.timeout = std::chrono::milliseconds(5000);
      Rendezvous rv(o);
      const UniqueFd mine = memfd_with("buffer of rank " + std::to_string(r));
      const std::vector<UniqueFd> fds = exchange_fds(rv, mine.get(), "test" + std::to_string(port));
      std::vector<std::string> seen;
      for (const auto& fd : fds) seen.push_back(read_all(fd.get()));
      return seen;
    }));
  for (int r = 0; r < kWorld; ++r) {
    const auto seen = ranks[r].get();
    REQUIRE(seen.size() == kWorld);
    for (int p = 0; p < kWorld; ++p) CHECK(seen[p] == "buffer of rank " + std::to_string(p));
  }
}
