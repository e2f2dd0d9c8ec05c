#include "harness/job/call_report.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ar {

std::string CallReport::to_json() const {
  nlohmann::json j{
      {"elements", elements}, {"mismatches", mismatches}, {"disagreeing", disagreeing}, {"flags_bad", flags_bad}};
  if (first)
    j["first"] = {{"rank", first->rank},
                  {"index", first->index},
                  {"gpu", first->gpu},
                  {"expected", first->expected},
                  {"residual_out", first->residual_out}};
  nlohmann::json d = nlohmann::json::object();
  for (const auto& [rank, digest] : digests) d[std::to_string(rank)] = digest;
  j["digests"] = d;
  if (timeout)
    j["timeout"] = {
        {"message", timeout->message}, {"rank", timeout->rank}, {"peer", timeout->peer}, {"call", timeout->call}};
  return j.dump();
}

CallReport CallReport::from_json(const std::string& text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    CallReport r;
    r.elements = j.at("elements").get<std::int64_t>();
    r.mismatches = j.at("mismatches").get<std::int64_t>();
    r.disagreeing = j.at("disagreeing").get<int>();
    r.flags_bad = j.at("flags_bad").get<std::vector<int>>();
    if (j.contains("first")) {
      const auto& f = j.at("first");
      r.first = RankMismatch{f.at("rank").get<int>(), f.at("index").get<std::int64_t>(),
                             f.at("gpu").get<std::uint32_t>(), f.at("expected").get<std::uint32_t>(),
                             f.at("residual_out").get<bool>()};
    }
    for (const auto& [rank, digest] : j.at("digests").items()) r.digests[std::stoi(rank)] = digest.get<std::string>();
    if (j.contains("timeout")) {
      const auto& t = j.at("timeout");
      r.timeout = GpuTimeout{t.at("message").get<std::string>(), t.at("rank").get<int>(), t.at("peer").get<int>(),
                             t.at("call").get<std::uint32_t>()};
    }
    return r;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("malformed call report from a peer: {}", e.what()));
  }
}

MergedCall merge_call_reports(std::span<const CallReport> reports, int world) {
  MergedCall m;
  std::map<int, std::string> digests;
  int local_disagreeing = 0;
  for (const CallReport& r : reports) {
    m.elements += r.elements;
    m.mismatches += r.mismatches;
    if (r.first && (!m.first || r.first->rank < m.first->rank)) m.first = r.first;
    local_disagreeing += r.disagreeing;
    digests.insert(r.digests.begin(), r.digests.end());
    m.flags_bad.insert(m.flags_bad.end(), r.flags_bad.begin(), r.flags_bad.end());
    if (r.timeout && !m.timeout) m.timeout = r.timeout;
  }
  std::sort(m.flags_bad.begin(), m.flags_bad.end());
  if (static_cast<int>(digests.size()) == world && digests.begin()->first == 0 &&
      digests.rbegin()->first == world - 1) {
    for (const auto& [rank, digest] : digests) {
      m.digests.push_back(digest);
      if (digest != digests.at(0)) ++m.ranks_disagreeing;
    }
  } else {
    m.ranks_disagreeing = local_disagreeing;
  }
  return m;
}

}  // namespace ar
