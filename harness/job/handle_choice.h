// Which shareable handles a multi-process job exports its workspace memory as (SPEC section 8), decided
// from what every rank found, so that all ranks reach the same decision:
//   - FABRIC when, on every rank, the device attribute says fabric handles are supported, NVML reports
//     fabric state >= COMPLETED (registration successful) with a non-zero cluster UUID, and a trial
//     fabric allocation succeeds (the driver refuses one without an IMEX channel: "operation not permitted");
//   - otherwise POSIX file descriptors when all ranks are on one host (they travel over AF_UNIX sockets),
//     with the reasons fabric handles were not possible;
//   - otherwise nothing: ranks on several hosts cannot share memory without fabric handles.
// Pure functions over plain facts: the CPU tests check every branch.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ar {

enum class HandleRequest { kAuto, kPosix, kFabric };
/// "auto", "posix", "fabric"; throws UsageError otherwise.
HandleRequest handle_request_option(const std::string& text);
std::string_view handle_request_name(HandleRequest r);

enum class HandleKind { kPosix, kFabric };
std::string_view handle_kind_name(HandleKind k);  ///< "posix", "fabric"

/// What one rank found about sharing its memory.
struct SharingFacts {
  int rank = 0;
  std::string host;     ///< host name, for messages
  std::string host_id;  ///< equal on two ranks exactly when they run on the same machine
  int device = 0;
  bool posix_supported = false;   ///< device attribute
  bool fabric_attribute = false;  ///< device attribute CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED
  std::string nvml_error;         ///< why NVML gave no fabric facts (empty when it did)
  int fabric_state = -1;          ///< NVML: 0 not supported, 1 not started, 2 in progress, 3 completed
  int fabric_status = -1;         ///< NVML registration status (0 = success), once completed
  std::string fabric_status_text;
  bool cluster_uuid_nonzero = false;
  bool imex_directory = false;  ///< /dev/nvidia-caps-imex-channels exists
  int imex_channels = 0;        ///< channels this process can open
  bool fabric_trial_made = false;
  std::string fabric_trial_error;  ///< empty: the trial allocation succeeded (or none was made)

  std::string to_json() const;
  /// Throws std::runtime_error on malformed text (a peer's contribution).
  static SharingFacts from_json(const std::string& text);
};

std::string_view fabric_state_name(int state);

/// SPEC section 8's rule for one rank (attribute, fabric state, registration status, cluster UUID):
/// nullopt when it allows fabric handles, else why not.
std::optional<std::string> fabric_rule_refusal(const SharingFacts& f);

/// Whether the ranks should make a trial fabric allocation before deciding: `auto` when the rule allows
/// fabric on every rank, `fabric` whenever every device claims support (so a refusal is shown as the
/// driver words it), never for `posix`.
bool should_try_fabric(HandleRequest request, std::span<const SharingFacts> ranks);

struct HandleDecision {
  std::optional<HandleKind> kind;  ///< nullopt: the job cannot share memory; refuse
  bool one_host = true;
  std::vector<std::string> fabric_refusals;  ///< why fabric handles are not used ("rank 0, 1: ...")
  std::string summary;                       ///< one paragraph: the choice and why
};

HandleDecision choose_handles(HandleRequest request, std::span<const SharingFacts> ranks);

/// "rank 2", "ranks 0-3", "ranks 0, 2, 5-7" (ascending ranks), for messages.
std::string ranks_text(const std::vector<int>& ranks);

}  // namespace ar
