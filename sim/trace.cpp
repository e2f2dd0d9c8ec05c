#include "sim/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace ar::sim {
namespace {

/// A streaming recorder hands the sink pieces of about this size: one write per event would cost a system
/// call per event when the sink is a file.
constexpr std::size_t kFlushBytes = 64 * 1024;

/// JSON string escaping for the few characters our details can contain.
std::string escape(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20)
          out += fmt::format("\\u{:04x}", static_cast<int>(ch));
        else
          out += ch;
    }
  }
  return out;
}

/// Thread id of a lane: 0 is the rank's memory (deliveries), CTA c is c + 1.
int lane_tid(int cta) { return cta < 0 ? 0 : cta + 1; }

/// Launches are slices in the JSON but no steps of the schedule a failure report prints.
bool shows_in_schedule(TraceEvent::Kind k) {
  return k != TraceEvent::Kind::kLaunchBegin && k != TraceEvent::Kind::kLaunchEnd;
}

/// Appends one element of the traceEvents array, after the separator the elements before it need.
void add_element(std::string& out, bool& first, std::string_view element) {
  if (!first) out += ",\n";
  first = false;
  out += element;
}

/// The start of the document: the display unit (Perfetto reads it only there) and a process per rank.
void append_head(std::string& out, bool& first, int world_size) {
  out += "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  for (int r = 0; r < world_size; ++r) {
    add_element(
        out, first,
        fmt::format(R"({{"name":"process_name","ph":"M","pid":{},"tid":0,"args":{{"name":"rank {}"}}}})", r, r));
    add_element(
        out, first,
        fmt::format(R"({{"name":"process_sort_index","ph":"M","pid":{},"tid":0,"args":{{"sort_index":{}}}}})", r, r));
  }
}

std::string event_element(const TraceEvent& e) {
  const int tid = lane_tid(e.cta);
  switch (e.kind) {
    case TraceEvent::Kind::kOp:
    case TraceEvent::Kind::kDelivery:
      return fmt::format(R"({{"name":"{}","cat":"{}","ph":"X","ts":{},"dur":1,"pid":{},"tid":{},)"
                         R"("args":{{"call":{},"step":{},"detail":"{}"}}}})",
                         escape(e.name), e.kind == TraceEvent::Kind::kOp ? "op" : "delivery", e.step, e.rank, tid,
                         e.call, e.step, escape(e.detail));
    case TraceEvent::Kind::kLaunchBegin:
      return fmt::format(R"({{"name":"{}","cat":"launch","ph":"B","ts":{},"pid":{},"tid":{},"args":{{"shape":"{}"}}}})",
                         escape(e.name), e.step, e.rank, tid, escape(e.detail));
    case TraceEvent::Kind::kLaunchEnd:
      return fmt::format(R"({{"ph":"E","ts":{},"pid":{},"tid":{}}})", e.step, e.rank, tid);  // after its last op
    case TraceEvent::Kind::kFailure:
      return fmt::format(R"({{"name":"FAILURE: {}","cat":"failure","ph":"i","s":"g","ts":{},"pid":{},"tid":{},)"
                         R"("args":{{"detail":"{}"}}}})",
                         escape(e.name), e.step + 1, e.rank, tid, escape(e.detail));
  }
  return {};
}

/// The end of the document: names for the lanes the events used (a thread per CTA seen, plus the memory
/// lane), then the title and how many events were left out.
void append_tail(std::string& out, bool& first, const std::set<std::pair<int, int>>& lanes, const std::string& title,
                 std::size_t dropped) {
  for (const auto& [rank, tid] : lanes) {
    add_element(out, first,
                fmt::format(R"({{"name":"thread_name","ph":"M","pid":{},"tid":{},"args":{{"name":"{}"}}}})", rank, tid,
                            tid == 0 ? std::string("memory (deliveries)") : fmt::format("CTA {}", tid - 1)));
    add_element(out, first,
                fmt::format(R"({{"name":"thread_sort_index","ph":"M","pid":{},"tid":{},"args":{{"sort_index":{}}}}})",
                            rank, tid, tid));
  }
  out +=
      "\n],\"otherData\":{\"title\":\"" + escape(title) + "\",\"dropped_events\":" + std::to_string(dropped) + "}}\n";
}

}  // namespace

TraceRecorder::TraceRecorder(std::size_t max_events, std::size_t recent_events)
    : max_events_(max_events), recent_capacity_(recent_events) {}

TraceRecorder::TraceRecorder(TraceSink& sink, std::string title, int world_size, std::size_t max_events,
                             std::size_t recent_events)
    : max_events_(max_events), recent_capacity_(recent_events), sink_(&sink), title_(std::move(title)) {
  // The sink may hold the document of a run shown before; this run's replaces it.
  sink_->restart();
  append_head(pending_, first_element_, world_size);
}

void TraceRecorder::record(TraceEvent e) {
  if (finished_) throw std::logic_error("sim: an event recorded into a finished trace");
  // The failure goes in past the cap: it is what the trace is for.
  const bool in_trace = traced_ < max_events_ || e.kind == TraceEvent::Kind::kFailure;
  if (in_trace) {
    ++traced_;
    if (sink_) {
      lanes_.insert({e.rank, lane_tid(e.cta)});
      add_element(pending_, first_element_, event_element(e));
      if (pending_.size() >= kFlushBytes) flush();
    }
  } else {
    ++dropped_;
  }
  const bool keep = in_trace && !sink_;
  if (recent_capacity_ > 0 && shows_in_schedule(e.kind)) {
    if (recent_.size() == recent_capacity_) recent_.pop_front();
    if (keep)
      recent_.push_back(e);
    else
      recent_.push_back(std::move(e));
  }
  if (keep) events_.push_back(std::move(e));  // not moved from above: that branch is taken only when !keep
}

void TraceRecorder::finish() {
  if (!sink_ || finished_) return;
  finished_ = true;
  append_tail(pending_, first_element_, lanes_, title_, dropped_);
  flush();
}

void TraceRecorder::flush() {
  if (pending_.empty()) return;
  sink_->write(pending_);
  pending_.clear();  // keeps its capacity: the buffer stays one allocation for the whole run
}

const std::vector<TraceEvent>& TraceRecorder::events() const {
  if (sink_) throw std::logic_error("sim: a streaming trace keeps no events (they went to its sink)");
  return events_;
}

std::string TraceRecorder::chrome_json(const std::string& title, int world_size) const {
  if (sink_) throw std::logic_error("sim: a streaming trace is rendered by its sink, not by chrome_json");
  std::string out;
  out.reserve(events_.size() * 160 + 1024);
  bool first = true;
  append_head(out, first, world_size);
  std::set<std::pair<int, int>> lanes;
  for (const TraceEvent& e : events_) {
    lanes.insert({e.rank, lane_tid(e.cta)});
    add_element(out, first, event_element(e));
  }
  append_tail(out, first, lanes, title, dropped_);
  return out;
}

std::vector<std::string> TraceRecorder::text_lines(std::size_t count) const {
  std::vector<std::string> lines;
  const std::size_t shown = std::min(count, recent_.size());
  for (std::size_t i = recent_.size() - shown; i < recent_.size(); ++i) {
    const TraceEvent& e = recent_[i];
    if (e.kind == TraceEvent::Kind::kFailure) {
      lines.push_back(fmt::format("step {:>6}  FAILURE {}", e.step, e.name));
      continue;
    }
    const std::string who = e.cta < 0 ? fmt::format("r{} memory", e.rank) : fmt::format("r{} CTA {}", e.rank, e.cta);
    lines.push_back(fmt::format("step {:>6}  {:<12} call {:<2} {:<24} {}", e.step, who, e.call, e.name, e.detail));
  }
  return lines;
}

}  // namespace ar::sim
