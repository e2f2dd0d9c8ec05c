// Whether memory can be shared through fabric handles (CU_MEM_HANDLE_TYPE_FABRIC) here, beyond what the
// device attribute claims: the IMEX channel devices the driver needs for them, and a trial allocation that
// shows whether the driver really allows one. No multicast object is ever created.
//
// Plain C++: no CUDA headers needed by callers.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ar::cuda {

/// A trial cuMemCreate of one granule with CU_MEM_HANDLE_TYPE_FABRIC on `device`, released at once.
/// nullopt when it succeeds; otherwise what the driver said, e.g.
/// "CUDA_ERROR_NOT_PERMITTED (operation not permitted)". Never throws.
std::optional<std::string> try_fabric_allocation(int device);

/// The IMEX channels this process can open (/dev/nvidia-caps-imex-channels/channelN): fabric handles need
/// one; without an IMEX daemon and channel the driver refuses them.
struct ImexChannels {
  bool directory = false;             ///< /dev/nvidia-caps-imex-channels exists
  std::vector<std::string> channels;  ///< "channel0", ... readable and writable by this process
  bool driver_registered = false;     ///< /proc/devices lists nvidia-caps-imex-channels
};
ImexChannels imex_channels();

}  // namespace ar::cuda
