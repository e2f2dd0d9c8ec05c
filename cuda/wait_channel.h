// Where kernels report a wait that gave up: one WaitError record in mapped host memory and one abort word in
// device memory, owned here and shared by every launch that names this channel.
#pragma once

#include <optional>
#include <string>

#include "cuda/params.h"

namespace ar::cuda {

/// The device addresses a launch writes to (trivially copyable).
struct WaitChannelView {
  WaitError* record = nullptr;  ///< device alias of the mapped host record
  std::uint32_t* abort_flag = nullptr;
};

class WaitChannel {
 public:
  explicit WaitChannel(int device);
  ~WaitChannel();
  WaitChannel(const WaitChannel&) = delete;
  WaitChannel& operator=(const WaitChannel&) = delete;

  WaitChannelView view() const { return view_; }

  /// The record, if a wait gave up since the last take(); then clears record and abort word (blocking; call
  /// after the launches have completed).
  std::optional<WaitError> take();

 private:
  int device_;
  WaitError* host_ = nullptr;
  WaitChannelView view_;
};

/// One paragraph for people: who waited for what, for how long, and what the slot held.
std::string describe_wait_error(const WaitError& e);

}  // namespace ar::cuda
