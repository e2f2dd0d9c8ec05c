#include "tests/support/launcher_env.h"

#include <fmt/format.h>

#include <memory>
#include <mutex>
#include <vector>

#include "harness/job/asio.h"

namespace ar::test {

std::uint16_t free_port() {
  namespace asio = boost::asio;
  static asio::io_context io;
  static std::mutex mutex;
  static std::vector<std::unique_ptr<asio::ip::tcp::socket>> held;  // until the process ends
  const std::lock_guard<std::mutex> lock(mutex);
  auto socket = std::make_unique<asio::ip::tcp::socket>(io, asio::ip::tcp::v4());
  socket->set_option(asio::socket_base::reuse_address(true));
  socket->bind({asio::ip::make_address("127.0.0.1"), 0});
  const std::uint16_t port = socket->local_endpoint().port();
  held.push_back(std::move(socket));
  return port;
}

std::string torchrun_environment(int rank, int world, std::uint16_t port) {
  return fmt::format(
      "RANK={0} LOCAL_RANK={0} WORLD_SIZE={1} LOCAL_WORLD_SIZE={1} MASTER_ADDR=127.0.0.1 "
      "MASTER_PORT={2}",
      rank, world, port);
}

}  // namespace ar::test
