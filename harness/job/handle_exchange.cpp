#include "harness/job/handle_exchange.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ar {
namespace {

std::string hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  for (std::uint8_t b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

std::array<std::uint8_t, cuda::kFabricHandleBytes> unhex(const std::string& text, int rank) {
  std::array<std::uint8_t, cuda::kFabricHandleBytes> out{};
  if (text.size() != 2 * out.size())
    throw RendezvousError(fmt::format("rank {} sent a fabric handle of {} hex digits", rank, text.size()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::string byte = text.substr(2 * i, 2);
    char* end = nullptr;
    out[i] = static_cast<std::uint8_t>(std::strtoul(byte.c_str(), &end, 16));
    if (end != byte.c_str() + 2) throw RendezvousError(fmt::format("rank {} sent a malformed fabric handle", rank));
  }
  return out;
}

}  // namespace

std::vector<cuda::ShareableHandle> RendezvousExchange::exchange(cuda::HandleType type,
                                                                std::span<const cuda::ShareableHandle> mine) {
  ++round_;
  received_.clear();
  // 1. Which ranks each process holds, their allocation sizes and (fabric) handle bytes.
  nlohmann::json announce = nlohmann::json::array();
  std::vector<int> my_fds;
  for (const cuda::ShareableHandle& h : mine) {
    announce.push_back({{"rank", h.rank},
                        {"bytes", h.allocation_bytes},
                        {"fabric", type == cuda::HandleType::kFabric ? hex(h.fabric) : std::string()}});
    if (type == cuda::HandleType::kPosixFd) my_fds.push_back(h.fd);
  }
  const std::vector<std::string> all = rendezvous_.all_gather(announce.dump());
  // 2. POSIX: the descriptors themselves, in each process's announced order.
  if (type == cuda::HandleType::kPosixFd)
    received_ = exchange_fd_lists(rendezvous_, my_fds, fmt::format("{}/{}", job_, round_));

  std::vector<cuda::ShareableHandle> by_rank;
  std::vector<bool> seen;
  for (std::size_t p = 0; p < all.size(); ++p) {
    nlohmann::json list;
    try {
      list = nlohmann::json::parse(all[p]);
    } catch (const std::exception& e) {
      throw RendezvousError(fmt::format("rank {} announced malformed handles: {}", p, e.what()));
    }
    if (!list.is_array() || (type == cuda::HandleType::kPosixFd && received_[p].size() != list.size()))
      throw RendezvousError(fmt::format("rank {} announced {} handles but passed {} descriptors", p, list.size(),
                                        type == cuda::HandleType::kPosixFd ? received_[p].size() : 0));
    for (std::size_t i = 0; i < list.size(); ++i) {
      cuda::ShareableHandle h;
      try {
        h.rank = list[i].at("rank").get<int>();
        h.allocation_bytes = list[i].at("bytes").get<std::int64_t>();
        if (type == cuda::HandleType::kFabric)
          h.fabric = unhex(list[i].at("fabric").get<std::string>(), static_cast<int>(p));
      } catch (const nlohmann::json::exception& e) {
        throw RendezvousError(fmt::format("rank {} announced malformed handles: {}", p, e.what()));
      }
      if (type == cuda::HandleType::kPosixFd) h.fd = received_[p][i].get();
      if (h.rank < 0 || h.rank >= 4096) throw RendezvousError(fmt::format("rank {} announced rank {}", p, h.rank));
      if (static_cast<std::size_t>(h.rank) >= by_rank.size()) {
        by_rank.resize(h.rank + 1);
        seen.resize(h.rank + 1, false);
      }
      if (seen[h.rank]) throw RendezvousError(fmt::format("two processes announced rank {}", h.rank));
      seen[h.rank] = true;
      by_rank[h.rank] = h;
    }
  }
  for (std::size_t r = 0; r < seen.size(); ++r)
    if (!seen[r]) throw RendezvousError(fmt::format("no process announced rank {}", r));
  return by_rank;
}

}  // namespace ar
