// What happened in one simulated run, event by event, for people: Chrome trace-event JSON that Perfetto
// (ui.perfetto.dev) and chrome://tracing open, and the plain-text schedule a failure report prints.
//
// Layout of the JSON: one process per rank ("rank r"), one thread per CTA ("CTA c") plus a "memory" thread per
// rank on which deliveries into that rank's memory appear. Time is the step number, one microsecond per step:
// each operation is a one-step slice named after the operation (st_v4, ld_volatile_v4 with the words seen,
// clears, flag updates...), each launch a slice "call k oneshot" on its CTAs, and a failure a global instant.
//
// The document is written in the order a run produces it, so that it can stream to disk as the run goes: the
// ranks' names, then one event a line as recorded, then what is known only at the end (the names of the CTA
// and memory lanes seen, and "otherData" with the title and the count of events left out). Perfetto takes
// metadata events wherever they stand in the array (they carry no time) and reads "otherData" after it;
// "displayTimeUnit" stays at the very start, the only place Perfetto looks for it.
//
// A recorder either keeps every event in memory (tests that inspect a run) or streams the document into a
// TraceSink (`mnnvl-ar sim --trace`), keeping only the last few events for the failure report's schedule.
// The search records only the run it shows (a failure's replay, or the first run when all pass); tests record
// runs to inspect them.
#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <string_view>
#include <utility>
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

/// Where a streamed trace goes: the JSON document, in pieces, in order. sim/ knows nothing of files; the
/// program that wants the trace on disk supplies a sink that writes one.
class TraceSink {
 public:
  virtual ~TraceSink() = default;
  /// Drops everything written so far: the next write begins a new document (another run is to be shown).
  virtual void restart() = 0;
  /// Appends `text` to the document.
  virtual void write(std::string_view text) = 0;
};

/// A sink that keeps the document as a string (tests, and programs that want a small trace in memory).
class StringTraceSink final : public TraceSink {
 public:
  void restart() override { text.clear(); }
  void write(std::string_view piece) override { text += piece; }
  std::string text;
};

/// Events a trace holds at most; later ones are counted and left out, except the failure, which is always
/// kept. A size guard: a livelocked run of a large configuration may take billions of steps, and a JSON trace
/// of 2M events (about 350 MB) is already near what Perfetto's UI opens.
inline constexpr std::size_t kTraceEventCap = 2'000'000;
/// Events a recorder keeps for text_lines by default.
inline constexpr std::size_t kRecentTraceEvents = 256;

class TraceRecorder {
 public:
  /// Keeps every event in memory, at most `max_events` of them (later ones are counted but dropped), and the
  /// last `recent_events` operations, deliveries and failures for text_lines. max_events = 0 keeps only those.
  explicit TraceRecorder(std::size_t max_events = kTraceEventCap, std::size_t recent_events = kRecentTraceEvents);

  /// Streams: starts `sink`'s document over and writes each event to it as it is recorded (through a small
  /// buffer), at most `max_events` of them; keeps in memory only the last `recent_events` for text_lines and
  /// the set of lanes seen. `title` goes into the metadata. Call finish() once the run has ended.
  TraceRecorder(TraceSink& sink, std::string title, int world_size, std::size_t max_events = kTraceEventCap,
                std::size_t recent_events = kRecentTraceEvents);

  // One writer per document: a copy of a streaming recorder would write the same events twice.
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;
  TraceRecorder(TraceRecorder&&) = default;
  TraceRecorder& operator=(TraceRecorder&&) = default;

  void record(TraceEvent e);

  /// Streaming: writes the rest of the document (the lanes, the title, the count left out) and hands all of it
  /// to the sink. The first call does it; later ones do nothing. Without it the sink holds a partial document.
  void finish();

  bool streaming() const { return sink_ != nullptr; }
  /// The events kept, in order. Only a recorder that keeps events in memory has them: a streaming recorder
  /// throws std::logic_error.
  const std::vector<TraceEvent>& events() const;
  /// Events in the trace: kept in memory, or written to the sink.
  std::size_t traced() const { return traced_; }
  /// Events past `max_events`, counted but not in the trace.
  std::size_t dropped() const { return dropped_; }
  /// Events held in memory now: those kept plus the recent ones for text_lines. A streaming recorder holds at
  /// most `recent_events`, however long the run.
  std::size_t resident() const { return events_.size() + recent_.size(); }

  /// The Chrome trace-event JSON document of the events kept, byte for byte what a streaming recorder that saw
  /// the same events writes. `title` goes into its metadata. Throws std::logic_error when streaming.
  std::string chrome_json(const std::string& title, int world_size) const;

  /// The last `count` events (at most `recent_events`) as text lines "step 41  r1 CTA 0  call 2
  /// ld_volatile_v4  ..." (deliveries show as "r1 memory"); launches are left out.
  std::vector<std::string> text_lines(std::size_t count) const;

 private:
  void stream(const TraceEvent& e);
  void flush();

  std::size_t max_events_;
  std::size_t recent_capacity_;
  std::size_t traced_ = 0;
  std::size_t dropped_ = 0;
  std::vector<TraceEvent> events_;  ///< in memory only
  std::deque<TraceEvent> recent_;   ///< the last operations, deliveries and failures, kept or dropped
  // Streaming only.
  TraceSink* sink_ = nullptr;
  std::string title_;
  std::set<std::pair<int, int>> lanes_;  ///< (rank, thread id) of the events written
  std::string pending_;                  ///< written but not yet handed to the sink
  bool first_element_ = true;            ///< nothing in the traceEvents array yet (no separator needed)
  bool finished_ = false;
};

}  // namespace ar::sim
