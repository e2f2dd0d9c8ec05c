#include "sim/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <utility>

namespace ar::sim {
namespace {

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

}  // namespace

void TraceRecorder::record(TraceEvent e) {
  if (events_.size() >= max_events_) {
    ++dropped_;
    return;
  }
  events_.push_back(std::move(e));
}

std::string TraceRecorder::chrome_json(const std::string& title, int world_size) const {
  std::string out;
  out.reserve(events_.size() * 160 + 1024);
  out += "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"title\":\"" + escape(title) +
         "\",\"dropped_events\":" + std::to_string(dropped_) + "},\"traceEvents\":[\n";
  bool first = true;
  const auto add = [&](const std::string& e) {
    if (!first) out += ",\n";
    first = false;
    out += e;
  };
  // Names for the lanes: a process per rank, a thread per CTA seen, plus the memory lane.
  std::set<std::pair<int, int>> lanes;
  for (const TraceEvent& e : events_) lanes.insert({e.rank, lane_tid(e.cta)});
  for (int r = 0; r < world_size; ++r) {
    add(fmt::format(R"({{"name":"process_name","ph":"M","pid":{},"tid":0,"args":{{"name":"rank {}"}}}})", r, r));
    add(fmt::format(R"({{"name":"process_sort_index","ph":"M","pid":{},"tid":0,"args":{{"sort_index":{}}}}})", r, r));
  }
  for (const auto& [rank, tid] : lanes) {
    add(fmt::format(R"({{"name":"thread_name","ph":"M","pid":{},"tid":{},"args":{{"name":"{}"}}}})", rank, tid,
                    tid == 0 ? std::string("memory (deliveries)") : fmt::format("CTA {}", tid - 1)));
    add(fmt::format(R"({{"name":"thread_sort_index","ph":"M","pid":{},"tid":{},"args":{{"sort_index":{}}}}})", rank,
                    tid, tid));
  }
  for (const TraceEvent& e : events_) {
    const int tid = lane_tid(e.cta);
    switch (e.kind) {
      case TraceEvent::Kind::kOp:
      case TraceEvent::Kind::kDelivery:
        add(fmt::format(R"({{"name":"{}","cat":"{}","ph":"X","ts":{},"dur":1,"pid":{},"tid":{},)"
                        R"("args":{{"call":{},"step":{},"detail":"{}"}}}})",
                        escape(e.name), e.kind == TraceEvent::Kind::kOp ? "op" : "delivery", e.step, e.rank, tid,
                        e.call, e.step, escape(e.detail)));
        break;
      case TraceEvent::Kind::kLaunchBegin:
        add(fmt::format(R"({{"name":"{}","cat":"launch","ph":"B","ts":{},"pid":{},"tid":{},"args":{{"shape":"{}"}}}})",
                        escape(e.name), e.step, e.rank, tid, escape(e.detail)));
        break;
      case TraceEvent::Kind::kLaunchEnd:
        add(fmt::format(R"({{"ph":"E","ts":{},"pid":{},"tid":{}}})", e.step, e.rank, tid));  // after its last op
        break;
      case TraceEvent::Kind::kFailure:
        add(fmt::format(R"({{"name":"FAILURE: {}","cat":"failure","ph":"i","s":"g","ts":{},"pid":{},"tid":{},)"
                        R"("args":{{"detail":"{}"}}}})",
                        escape(e.name), e.step + 1, e.rank, tid, escape(e.detail)));
        break;
    }
  }
  out += "\n]}\n";
  return out;
}

std::vector<std::string> TraceRecorder::text_lines(std::size_t count) const {
  std::vector<std::string> lines;
  std::size_t begin = 0;
  std::size_t shown = 0;
  // Count back over the events worth showing (operations, deliveries, failures).
  for (std::size_t i = events_.size(); i-- > 0;) {
    const TraceEvent::Kind k = events_[i].kind;
    if (k == TraceEvent::Kind::kLaunchBegin || k == TraceEvent::Kind::kLaunchEnd) continue;
    begin = i;
    if (++shown == count) break;
  }
  for (std::size_t i = begin; i < events_.size(); ++i) {
    const TraceEvent& e = events_[i];
    if (e.kind == TraceEvent::Kind::kLaunchBegin || e.kind == TraceEvent::Kind::kLaunchEnd) continue;
    const std::string who = e.cta < 0 ? fmt::format("r{} memory", e.rank) : fmt::format("r{} CTA {}", e.rank, e.cta);
    if (e.kind == TraceEvent::Kind::kFailure) {
      lines.push_back(fmt::format("step {:>6}  FAILURE {}", e.step, e.name));
      continue;
    }
    lines.push_back(fmt::format("step {:>6}  {:<12} call {:<2} {:<24} {}", e.step, who, e.call, e.name, e.detail));
  }
  return lines;
}

}  // namespace ar::sim
