#include "harness/job/call_check.h"

#include <future>
#include <ostream>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/io/sha256.h"
#include "harness/job/host_reference.h"

namespace ar {
namespace {

std::string flags_text(const LamportFlags& f) { return fmt::format("[{}]", fmt::join(f.words, " ")); }

}  // namespace

std::vector<std::string> digests_of(const std::vector<HostTensor>& outputs) {
  std::vector<std::future<std::string>> jobs;
  for (const HostTensor& t : outputs)
    jobs.push_back(std::async(std::launch::async, [&t] {
      return sha256_hex(std::string_view(reinterpret_cast<const char*>(t.bytes().data()), t.bytes().size()));
    }));
  std::vector<std::string> out;
  for (auto& j : jobs) out.push_back(j.get());
  return out;
}

namespace {

/// Adds each rank's comparison with `expected`, and with the first rank, to `report`.
void compare_ranks(const std::vector<int>& ranks, const std::vector<HostTensor>& outputs, const HostTensor& expected,
                   const OutputCheck& check, bool residual_out, CallReport& report) {
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    const BitDiff d = compare_fast(outputs[i], expected);
    report.elements += d.elements;
    report.mismatches += d.differing;
    if (d.differing && !report.first) {
      report.first = RankMismatch{ranks[i], d.first_index, d.first_a, d.first_b, residual_out};
      if (check.on_first_mismatch) check.on_first_mismatch(ranks[i], outputs[i]);
    }
    if (!residual_out && i > 0 && compare_fast(outputs[i], outputs[0]).differing) ++report.disagreeing;
  }
}

}  // namespace

void check_outputs(GpuRanks& group, const std::vector<int>& ranks, const ProblemShape& shape,
                   const HostTensor& expected, const OutputCheck& check, CallReport& report) {
  std::vector<HostTensor> outputs;
  for (int r : ranks) outputs.push_back(group.output(r, shape));
  compare_ranks(ranks, outputs, expected, check, false, report);
  if (check.digests) {
    const std::vector<std::string> d = digests_of(outputs);
    for (std::size_t i = 0; i < ranks.size(); ++i) report.digests[ranks[i]] = d[i];
  }
}

void check_residual_outs(GpuRanks& group, const std::vector<int>& ranks, const ProblemShape& shape,
                         const HostTensor& expected, CallReport& report) {
  std::vector<HostTensor> outputs;
  for (int r : ranks) outputs.push_back(group.residual_out(r, shape));
  compare_ranks(ranks, outputs, expected, OutputCheck{}, true, report);
}

void check_quant_outputs(GpuRanks& group, const std::vector<int>& ranks, const ProblemShape& shape,
                         const QuantizedOutput& expected, CallReport& report, std::ostream& err, int call_index) {
  bool described = false;
  for (int r : ranks) {
    const QuantDiff d = compare_quant(group.quant_output(r, shape, expected.mode, expected.layout), expected);
    report.elements += d.elements;
    report.mismatches += d.differing;
    if (d.differing && !described) {
      fmt::print(err, "call {}: rank {} {} ({} of the {} output differ)\n", call_index, r, d.first, d.differing,
                 quant_mode_name(expected.mode));
      described = true;
    }
  }
}

FlagsModel::FlagsModel(const std::vector<int>& ranks, std::int64_t buffer_bytes) {
  for (int r : ranks) model_[r] = initial_flags(static_cast<std::uint32_t>(buffer_bytes));
}

void FlagsModel::check(GpuRanks& group, const ClearRecord& record, int call_index, CallReport& report,
                       std::ostream& err) {
  for (auto& [rank, flags] : model_) {
    flags = advance_flags(flags, record);
    const LamportFlags seen = group.flags(rank);
    if (!(seen == flags)) {
      if (report.flags_bad.empty())
        fmt::print(err, "call {}: rank {} flags {} but the reference's update gives {}\n", call_index, rank,
                   flags_text(seen), flags_text(flags));
      report.flags_bad.push_back(rank);
    }
  }
}

MergedCall agree_on_call(Job& job, const CallReport& mine, int world) {
  std::vector<CallReport> reports;
  for (const std::string& text : job.gather(mine.to_json())) reports.push_back(CallReport::from_json(text));
  return merge_call_reports(reports, world);
}

}  // namespace ar
