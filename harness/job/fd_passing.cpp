#include "harness/job/fd_passing.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace ar {
namespace {

constexpr int kTimeoutMs = 30000;

std::string errno_text() { return std::strerror(errno); }

// Abstract-namespace address (Linux): no file on disk, gone when the socket closes.
sockaddr_un abstract_address(const std::string& name, socklen_t& length) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t n = std::min(name.size(), sizeof(addr.sun_path) - 1);
  std::memcpy(addr.sun_path + 1, name.data(), n);
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  return addr;
}

void set_receive_timeout(int socket) {
  timeval tv{kTimeoutMs / 1000, 0};
  ::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// One byte of payload plus room for one descriptor: the message shape both sides use.
struct FdMessage {
  char byte = 'F';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};

  FdMessage() {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
  }
  FdMessage(const FdMessage&) = delete;  // msg points into this object
  FdMessage& operator=(const FdMessage&) = delete;
};

}  // namespace

void send_fd(int socket, int fd) {
  FdMessage m;
  cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (::sendmsg(socket, &m.msg, MSG_NOSIGNAL) != 1)
    throw RendezvousError(fmt::format("cannot pass a file descriptor to a peer: {}", errno_text()));
}

UniqueFd receive_fd(int socket) {
  FdMessage m;
  const ssize_t n = ::recvmsg(socket, &m.msg, MSG_CMSG_CLOEXEC);
  if (n == 0) throw RendezvousError("the peer closed the socket before passing its file descriptor");
  if (n < 0) throw RendezvousError(fmt::format("no file descriptor arrived from the peer: {}", errno_text()));
  cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  if (c == nullptr || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || (m.msg.msg_flags & MSG_CTRUNC))
    throw RendezvousError("the peer's message carried no file descriptor");
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return UniqueFd(fd);
}

std::vector<std::vector<UniqueFd>> exchange_fd_lists(Rendezvous& rendezvous, std::span<const int> mine,
                                                     const std::string& job) {
  const int me = rendezvous.rank(), world = rendezvous.world_size();
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener) throw RendezvousError(fmt::format("rank {}: cannot create a unix socket: {}", me, errno_text()));
  const std::string name = fmt::format("mnnvl-ar/{}/{}/{}", job, me, ::getpid());
  socklen_t length = 0;
  const sockaddr_un addr = abstract_address(name, length);
  if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), length) != 0 ||
      ::listen(listener.get(), world) != 0)
    throw RendezvousError(fmt::format("rank {}: cannot listen on unix socket '{}': {}", me, name, errno_text()));
  // Each process publishes its socket name and how many descriptors it passes.
  const std::vector<std::string> published = rendezvous.all_gather(fmt::format("{}\n{}", mine.size(), name));
  std::vector<std::string> names(world);
  std::vector<std::size_t> counts(world);
  for (int p = 0; p < world; ++p) {
    const std::size_t newline = published[p].find('\n');
    char* end = nullptr;
    const unsigned long n = std::strtoul(published[p].c_str(), &end, 10);
    if (newline == std::string::npos || end != published[p].c_str() + newline || n > 1024)
      throw RendezvousError(fmt::format("rank {}: malformed descriptor announcement from rank {}", me, p));
    counts[p] = n;
    names[p] = published[p].substr(newline + 1);
  }

  std::vector<std::vector<UniqueFd>> fds(world);
  for (int fd : mine) fds[me].emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  // Every rank takes its turn as the sender in rank order; the others connect to it and receive. The same
  // order everywhere means no two ranks wait on each other.
  for (int sender = 0; sender < world; ++sender) {
    if (sender == me) {
      for (int served = 0; served < world - 1; ++served) {
        pollfd p{listener.get(), POLLIN, 0};
        if (::poll(&p, 1, kTimeoutMs) != 1)
          throw RendezvousError(
              fmt::format("rank {}: timed out waiting for peers to fetch its file descriptors "
                          "({} of {} did)",
                          me, served, world - 1));
        UniqueFd peer(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!peer) throw RendezvousError(fmt::format("rank {}: accept failed: {}", me, errno_text()));
        for (int fd : mine) send_fd(peer.get(), fd);
      }
    } else {
      UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      socklen_t peer_length = 0;
      const sockaddr_un peer_addr = abstract_address(names[sender], peer_length);
      if (!s || ::connect(s.get(), reinterpret_cast<const sockaddr*>(&peer_addr), peer_length) != 0)
        throw RendezvousError(
            fmt::format("rank {}: cannot reach rank {}'s unix socket (is it on this host? POSIX "
                        "handles work within one host only): {}",
                        me, sender, errno_text()));
      set_receive_timeout(s.get());
      for (std::size_t i = 0; i < counts[sender]; ++i) fds[sender].push_back(receive_fd(s.get()));
    }
  }
  rendezvous.barrier();
  return fds;
}

std::vector<UniqueFd> exchange_fds(Rendezvous& rendezvous, int mine, const std::string& job) {
  const int one[] = {mine};
  std::vector<std::vector<UniqueFd>> lists = exchange_fd_lists(rendezvous, one, job);
  std::vector<UniqueFd> fds;
  for (int p = 0; p < rendezvous.world_size(); ++p) {
    if (lists[p].size() != 1)
      throw RendezvousError(fmt::format("rank {} passed {} descriptors, not one", p, lists[p].size()));
    fds.push_back(std::move(lists[p][0]));
  }
  return fds;
}

}  // namespace ar
