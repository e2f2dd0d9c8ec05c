#include "tests/support/launcher_env.h"

#include <fmt/format.h>

#include "harness/job/asio.h"

namespace ar::test {

std::uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

std::string torchrun_environment(int rank, int world, std::uint16_t port) {
  return fmt::format(
      "RANK={0} LOCAL_RANK={0} WORLD_SIZE={1} LOCAL_WORLD_SIZE={1} MASTER_ADDR=127.0.0.1 "
      "MASTER_PORT={2}",
      rank, world, port);
}

}  // namespace ar::test
