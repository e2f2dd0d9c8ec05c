#include "harness/job/call_timing.h"

#include <algorithm>
#include <cmath>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/job/host_reference.h"
#include "harness/job/rendezvous.h"

namespace ar {
namespace {

/// What one process measured for one call, sent to every process.
struct ProcessTiming {
  double us = 0;  ///< NaN: a wait timed out
  std::int64_t wrong = 0;
  std::string to_text() const { return fmt::format("{} {}", std::isnan(us) ? -1.0 : us, wrong); }
  static ProcessTiming from_text(const std::string& t) {
    ProcessTiming r;
    std::istringstream in(t);
    if (!(in >> r.us >> r.wrong)) throw std::runtime_error("malformed bench row report from a peer");
    if (r.us < 0) r.us = NAN;
    return r;
  }
};

}  // namespace

TimedCall time_call(Job& job, GpuRanks& group, const GpuCall& call, const CallTiming& timing,
                    const std::function<ExpectedOutputs()>& expected, std::ostream& err) {
  ProcessTiming mine;
  bool synchronised = false;
  const auto barrier = [&] {
    job.rendezvous().barrier();
    synchronised = true;
  };
  try {
    mine.us = group.time_us(call, timing.warmup, timing.iterations, timing.graph_launches,
                            job.multi_process() ? std::function<void()>(barrier) : std::function<void()>());
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const RendezvousError*>(&e)) throw;
    fmt::print(err, "{}timeout: {}\n", job.multi_process() ? fmt::format("rank {}: ", job.rank()) : "", e.what());
    mine.us = NAN;
    if (job.multi_process() && !synchronised) job.rendezvous().barrier();  // stay in step with the others
  }
  if (timing.check && !std::isnan(mine.us)) {
    const ExpectedOutputs reference = expected();
    for (int r : group.local_ranks()) {
      mine.wrong += compare_fast(group.output(r, call.shape), *reference.output).differing;
      if (reference.residual_out)
        mine.wrong += compare_fast(group.residual_out(r, call.shape), *reference.residual_out).differing;
      if (reference.quant)
        mine.wrong +=
            compare_quant(group.quant_output(r, call.shape, reference.quant->mode, reference.quant->layout),
                          *reference.quant)
                .differing;
    }
  }
  // The slowest process's time and every process's wrong elements.
  TimedCall out{0, timing.check ? 0 : -1};
  for (const std::string& text : job.gather(mine.to_text())) {
    const ProcessTiming r = ProcessTiming::from_text(text);
    out.us = std::isnan(r.us) || std::isnan(out.us) ? NAN : std::max(out.us, r.us);
    if (timing.check) out.wrong += r.wrong;
  }
  return out;
}

}  // namespace ar
