#include "harness/job/handle_choice.h"

#include <map>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/io/exit_codes.h"

namespace ar {
namespace {

/// Everything that keeps fabric handles from one rank, in one sentence (empty when nothing does).
std::string fabric_obstacles(const SharingFacts& f, bool include_imex) {
  std::vector<std::string> why;
  if (auto rule = fabric_rule_refusal(f)) why.push_back(*rule);
  if (f.fabric_trial_made && !f.fabric_trial_error.empty())
    why.push_back(fmt::format("a trial allocation failed: {}", f.fabric_trial_error));
  if (include_imex && !why.empty()) {
    if (!f.imex_directory)
      why.push_back("no IMEX channel device (/dev/nvidia-caps-imex-channels does not exist: no IMEX daemon)");
    else if (f.imex_channels == 0)
      why.push_back("/dev/nvidia-caps-imex-channels has no channel this process can open");
  }
  return fmt::format("{}", fmt::join(why, "; "));
}

}  // namespace

std::string ranks_text(const std::vector<int>& ranks) {
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < ranks.size();) {
    std::size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    parts.push_back(j == i ? std::to_string(ranks[i]) : fmt::format("{}-{}", ranks[i], ranks[j]));
    i = j + 1;
  }
  return fmt::format("{} {}", ranks.size() == 1 ? "rank" : "ranks", fmt::join(parts, ", "));
}

HandleRequest handle_request_option(const std::string& text) {
  if (text == "auto") return HandleRequest::kAuto;
  if (text == "posix") return HandleRequest::kPosix;
  if (text == "fabric") return HandleRequest::kFabric;
  throw UsageError(fmt::format("--handles '{}': choose auto, posix or fabric", text));
}

std::string_view handle_request_name(HandleRequest r) {
  switch (r) {
    case HandleRequest::kPosix: return "posix";
    case HandleRequest::kFabric: return "fabric";
    case HandleRequest::kAuto: break;
  }
  return "auto";
}

std::string_view handle_kind_name(HandleKind k) { return k == HandleKind::kFabric ? "fabric" : "posix"; }

std::string_view fabric_state_name(int state) {
  switch (state) {
    case 0: return "not supported";
    case 1: return "not started";
    case 2: return "in progress";
    case 3: return "completed";
    default: return "unknown";
  }
}

std::string SharingFacts::to_json() const {
  return nlohmann::json{{"rank", rank},
                        {"host", host},
                        {"host_id", host_id},
                        {"device", device},
                        {"posix_supported", posix_supported},
                        {"fabric_attribute", fabric_attribute},
                        {"nvml_error", nvml_error},
                        {"fabric_state", fabric_state},
                        {"fabric_status", fabric_status},
                        {"fabric_status_text", fabric_status_text},
                        {"cluster_uuid_nonzero", cluster_uuid_nonzero},
                        {"imex_directory", imex_directory},
                        {"imex_channels", imex_channels},
                        {"fabric_trial_made", fabric_trial_made},
                        {"fabric_trial_error", fabric_trial_error}}
      .dump();
}

SharingFacts SharingFacts::from_json(const std::string& text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    SharingFacts f;
    f.rank = j.at("rank").get<int>();
    f.host = j.at("host").get<std::string>();
    f.host_id = j.at("host_id").get<std::string>();
    f.device = j.at("device").get<int>();
    f.posix_supported = j.at("posix_supported").get<bool>();
    f.fabric_attribute = j.at("fabric_attribute").get<bool>();
    f.nvml_error = j.at("nvml_error").get<std::string>();
    f.fabric_state = j.at("fabric_state").get<int>();
    f.fabric_status = j.at("fabric_status").get<int>();
    f.fabric_status_text = j.at("fabric_status_text").get<std::string>();
    f.cluster_uuid_nonzero = j.at("cluster_uuid_nonzero").get<bool>();
    f.imex_directory = j.at("imex_directory").get<bool>();
    f.imex_channels = j.at("imex_channels").get<int>();
    f.fabric_trial_made = j.at("fabric_trial_made").get<bool>();
    f.fabric_trial_error = j.at("fabric_trial_error").get<std::string>();
    return f;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("malformed sharing facts from a peer: {}", e.what()));
  }
}

std::optional<std::string> fabric_rule_refusal(const SharingFacts& f) {
  if (!f.fabric_attribute)
    return std::string(
        "the GPU does not support fabric handles (CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED = 0)");
  if (!f.nvml_error.empty()) return fmt::format("NVML gives no fabric state ({})", f.nvml_error);
  if (f.fabric_state < 3)
    return fmt::format("NVML fabric state is '{}', not 'completed'", fabric_state_name(f.fabric_state));
  if (f.fabric_status != 0)
    return fmt::format("NVML fabric registration failed: {}",
                       f.fabric_status_text.empty() ? std::to_string(f.fabric_status) : f.fabric_status_text);
  if (!f.cluster_uuid_nonzero)
    return std::string(
        "NVML fabric state is 'completed' but the cluster UUID is all zeros (the GPU is in no NVLink "
        "domain)");
  return std::nullopt;
}

bool should_try_fabric(HandleRequest request, std::span<const SharingFacts> ranks) {
  if (request == HandleRequest::kPosix || ranks.empty()) return false;
  for (const SharingFacts& f : ranks) {
    if (!f.fabric_attribute) return false;
    if (request == HandleRequest::kAuto && fabric_rule_refusal(f)) return false;
  }
  return true;
}

HandleDecision choose_handles(HandleRequest request, std::span<const SharingFacts> ranks) {
  HandleDecision d;
  std::map<std::string, std::vector<int>> hosts;  // host name -> ranks, for messages
  std::set<std::string> host_ids;
  std::vector<int> no_posix;
  for (const SharingFacts& f : ranks) {
    hosts[f.host].push_back(f.rank);
    host_ids.insert(f.host_id);
    if (!f.posix_supported) no_posix.push_back(f.rank);
  }
  d.one_host = host_ids.size() <= 1;
  std::vector<std::string> host_parts;
  for (const auto& [name, on] : hosts) host_parts.push_back(fmt::format("{} on {}", ranks_text(on), name));
  const std::string where = fmt::format("{}", fmt::join(host_parts, "; "));

  // Why fabric handles are not possible, grouped by reason.
  std::map<std::string, std::vector<int>> by_reason;
  bool fabric_ok = !ranks.empty();
  for (const SharingFacts& f : ranks) {
    const bool trial_ok = f.fabric_trial_made && f.fabric_trial_error.empty();
    if (!fabric_rule_refusal(f) && trial_ok) continue;
    fabric_ok = false;
    std::string why = fabric_obstacles(f, /*include_imex=*/true);
    if (why.empty()) why = "no trial fabric allocation was made";
    by_reason[why].push_back(f.rank);
  }
  for (const auto& [why, on] : by_reason) d.fabric_refusals.push_back(fmt::format("{}: {}", ranks_text(on), why));
  const std::string refusals = fmt::format("{}", fmt::join(d.fabric_refusals, "; "));

  if (request == HandleRequest::kPosix) {
    if (!d.one_host) {
      d.summary = fmt::format(
          "--handles posix cannot serve this job: POSIX file descriptors pass between processes "
          "of one host only, and the ranks are on {} hosts ({})",
          hosts.size(), where);
    } else if (!no_posix.empty()) {
      d.summary = fmt::format(
          "--handles posix: {} cannot export POSIX file-descriptor handles "
          "(CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED = 0)",
          ranks_text(no_posix));
    } else {
      d.kind = HandleKind::kPosix;
      d.summary = fmt::format("POSIX file descriptors (--handles posix; all {} ranks on {})", ranks.size(),
                              hosts.begin()->first);
    }
    return d;
  }
  if (fabric_ok) {
    d.kind = HandleKind::kFabric;
    d.summary = fmt::format(
        "fabric handles: on every rank the GPU supports them, NVML reports the fabric "
        "registered with a cluster UUID, and a trial fabric allocation succeeded ({})",
        where);
    return d;
  }
  const std::string asked = request == HandleRequest::kFabric ? "--handles fabric was asked for, but " : "";
  if (d.one_host && no_posix.empty()) {
    d.kind = HandleKind::kPosix;
    d.summary = fmt::format(
        "POSIX file descriptors, all {} ranks being on one host ({}); {}fabric handles are not "
        "possible: {}",
        ranks.size(), hosts.begin()->first, asked, refusals);
    return d;
  }
  if (!d.one_host)
    d.summary = fmt::format(
        "the ranks cannot share memory: they are on {} hosts ({}), which needs fabric handles, "
        "and {}fabric handles are not possible: {}",
        hosts.size(), where, asked, refusals);
  else
    d.summary = fmt::format(
        "the ranks cannot share memory: {} cannot export POSIX file-descriptor handles, and "
        "{}fabric handles are not possible: {}",
        ranks_text(no_posix), asked, refusals);
  return d;
}

}  // namespace ar
