// What happened in one simulated run, event by event, for people: Chrome trace-event JSON that Perfetto
// (ui.perfetto.dev) and chrome://tracing open, and the plain-text schedule a failure report prints.
//
// Layout of the JSON: one process per rank ("rank r"), one thread per CTA ("CTA c") plus a "memory" thread per
// rank on which deliveries into that rank's memory appear. Time is the step number, one microsecond per step:
// each operation is a one-step slice named after the operation (st_v4, ld_volatile_v4 with the words seen,
// clears, flag updates...), each launch a slice "call k oneshot" on its CTAs, and a failure a global instant.
// Simulation records into a TraceRecorder only for the runs the search replays to show a failure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/memory_model.h"

namespace ar::sim {

struct TraceEvent {
  enum class Kind : std::uint8_t { kOp, kDelivery, kLaunchBegin, kLaunchEnd, kFailure };
  Kind kind = Kind::kOp;
  std::uint64_t step = 0;
  int rank = 0;
  int cta = -1;  ///< -1: the rank's memory lane
  int call = -1;
  std::string name;    ///< the operation, or "call 2 oneshot"
  std::string detail;  ///< what it did, for people
  // Stores and deliveries only, for programs (tests) that inspect a run:
  int dest = -1;           ///< rank whose memory is written
  std::int64_t word = -1;  ///< first word written
  int words = 0;           ///< words written
  Ghost ghost;             ///< what was written (data of which call, clear, flags)
};

class TraceRecorder {
 public:
  /// Keeps at most `max_events`; later events are counted but dropped.
  explicit TraceRecorder(std::size_t max_events = 2'000'000) : max_events_(max_events) {}

  void record(TraceEvent e);
  const std::vector<TraceEvent>& events() const { return events_; }
  std::size_t dropped() const { return dropped_; }

  /// The Chrome trace-event JSON document. `title` goes into its metadata.
  std::string chrome_json(const std::string& title, int world_size) const;

  /// The last `count` events as text lines "step 41  r1 CTA 0  call 2  ld_volatile_v4  ..." (deliveries show
  /// as "r1 memory").
  std::vector<std::string> text_lines(std::size_t count) const;

 private:
  std::size_t max_events_;
  std::size_t dropped_ = 0;
  std::vector<TraceEvent> events_;
};

}  // namespace ar::sim
