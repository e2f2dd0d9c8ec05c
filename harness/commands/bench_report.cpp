#include "harness/commands/bench_report.h"

#include <ctime>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "harness/commands/list_options.h"

namespace ar {

void BenchRow::derive(double copy_gbps) {
  algbw = static_cast<double>(bytes) / (us * 1e3);
  busbw = algbw * 2.0 * (world - 1) / world;
  traffic = call_traffic(resolved, shape, direct);
  traffic_gbps = static_cast<double>(traffic.total()) / (us * 1e3);
  pct_copy = copy_gbps > 0 ? 100.0 * traffic_gbps / copy_gbps : NAN;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void print_bench_device(std::ostream& out, const GpuDevice& dev) {
  fmt::print(out, "# mnnvl-ar bench on {} (sm_{}, {} SMs, {:.0f} GiB), driver {} (CUDA {}), runtime {}\n", dev.name,
             dev.compute_capability, dev.sm_count, static_cast<double>(dev.memory_bytes) / (1 << 30),
             dev.driver.empty() ? "?" : dev.driver, dev.cuda_driver, dev.cuda_runtime);
}

void print_bench_settings(std::ostream& out, const BenchSettings& s, const BenchPlace& place) {
  fmt::print(out, "# launch overhead (empty kernel): eager {:.2f} us, CUDA graph {:.2f} us per launch\n",
             place.limits.launch_eager_us, place.limits.launch_graph_us);
  fmt::print(out, "# device-to-device copy: {:.0f} GB/s (bytes read + written, {} copy)\n", place.limits.copy_gbps,
             size_text(place.limits.copy_bytes));
  fmt::print(out, "# NCCL: {}\n", place.nccl);
  std::string profiles;
  for (Profile p : s.profiles) profiles += (profiles.empty() ? "" : ", ") + std::string(profile_name(p));
  fmt::print(
      out, "# {} mode, {} iterations{}, {} warm-up, profile{} {}, PDL {}, D = {}{}\n",
      s.graph > 0 ? "CUDA-graph" : "eager", s.iters, s.graph > 0 ? fmt::format(" x {} graph launches", s.graph) : "",
      s.warmup, s.profiles.size() > 1 ? "s" : "", profiles, s.pdl ? "on" : "off", s.hidden,
      s.direct_from_bytes > 0
          ? fmt::format(", plain TWOSHOT calls from {} a rank on the direct path", size_text(s.direct_from_bytes))
          : "");
}

namespace {

/// The strategy column: 8 wide, or 16 for "twoshot (direct)" in a run with --direct-from.
std::string strategy_column(const std::string& text, bool direct) {
  return direct ? fmt::format("{:>16}", text) : fmt::format("{:>8}", text);
}

}  // namespace

std::string bench_table_header(bool nccl, bool fused, bool profiles, const std::vector<QuantMode>& quant, bool direct) {
  std::string quant_columns;
  for (QuantMode m : quant) quant_columns += fmt::format(" {:>16}", fmt::format("{}(us)", quant_mode_name(m)));
  if (!quant.empty()) quant_columns += fmt::format(" {:>8}", "q#wrong");
  return fmt::format("{:>3} {:>10} {:>12} {:>5} {}{} {:>10} {:>11} {:>11} {:>13} {:>6} {:>7}{}{}", "W", "size", "count",
                     "type", profiles ? fmt::format("{:>10} ", "profile") : "", strategy_column("strategy", direct),
                     "time(us)", "algbw(GB/s)", "busbw(GB/s)", "traffic(GB/s)", "%copy", "#wrong",
                     nccl ? fmt::format(" {:>9} {:>7}", "nccl(us)", "speedup") : "",
                     fused ? fmt::format(" {:>9} {:>11} {:>8} {:>9} {:>7}", "fused(us)", "ar+norm(us)", "fused-ar",
                                         "sep/fused", "#wrong")
                           : "") +
         quant_columns;
}

namespace {

/// The --fused columns: both times, the fused call's cost over the plain all-reduce (us), how many times
/// faster it is than the two kernels, and the wrong elements of both.
std::string fused_columns(const BenchRow& r) {
  if (!r.fused_us) return "";
  const double separate = r.separate_us.value_or(NAN);
  const std::int64_t wrong = r.fused_wrong < 0 ? -1 : r.fused_wrong + std::max<std::int64_t>(r.separate_wrong, 0);
  return fmt::format(" {:>9.2f} {:>11.2f} {:>8.2f} {:>9.2f} {:>7}", *r.fused_us, separate, *r.fused_us - r.us,
                     separate / *r.fused_us, wrong);
}

/// The --quant columns: each mode's time, then the wrong codes, scales and outputs of all of them.
std::string quant_columns(const BenchRow& r) {
  if (r.quant.empty()) return "";
  std::string text;
  std::int64_t wrong = 0;
  for (const QuantTiming& q : r.quant) {
    text += fmt::format(" {:>16.2f}", q.us);
    wrong = q.wrong < 0 || wrong < 0 ? -1 : wrong + q.wrong;
  }
  return text + fmt::format(" {:>8}", wrong);
}

}  // namespace

void print_bench_row(std::ostream& out, const BenchRow& r, bool profiles, bool direct) {
  fmt::print(out, "{:>3} {:>10} {:>12} {:>5} {}{} {:>10.2f} {:>11.2f} {:>11.2f} {:>13.1f} {:>6.1f} {:>7}{}{}{}\n",
             r.world, r.bytes, r.bytes / dtype_bytes(r.shape.dtype), dtype_name(r.shape.dtype),
             profiles ? fmt::format("{:>10} ", profile_name(r.profile)) : "",
             strategy_column(fmt::format("{}{}", strategy_name(r.requested), r.direct ? " (direct)" : ""), direct),
             r.us, r.algbw, r.busbw, r.traffic_gbps, r.pct_copy, r.wrong,
             r.nccl_us ? fmt::format(" {:>9.2f} {:>7.2f}", *r.nccl_us, *r.nccl_us / r.us) : "", fused_columns(r),
             quant_columns(r));
}

std::string bench_json(const BenchSettings& s, const BenchPlace& place, const std::vector<BenchRow>& rows,
                       const std::string& date) {
  const GpuDevice& dev = place.device;
  nlohmann::json j;
  j["command"] = "bench";
  j["date"] = date;
  j["labels"] = s.labels;
  j["device"] = {{"name", dev.name},
                 {"compute_capability", dev.compute_capability},
                 {"sms", dev.sm_count},
                 {"memory_bytes", dev.memory_bytes},
                 {"l2_bytes", dev.l2_bytes},
                 {"clock_mhz", dev.clock_mhz},
                 {"driver", dev.driver},
                 {"cuda_driver", dev.cuda_driver},
                 {"cuda_runtime", dev.cuda_runtime},
                 {"gpus_visible", dev.device_count}};
  j["job"] = {{"processes", place.processes},
              {"launcher", place.launcher},
              {"handles", place.handles},
              {"gpu_shared", place.gpu_shared},
              {"gpus", place.gpus}};
  j["settings"] = {{"mode", s.graph > 0 ? "graph" : "eager"},
                   {"graph_launches", s.graph},
                   {"iters", s.iters},
                   {"warmup", s.warmup},
                   {"profile", profile_name(s.profiles.front())},
                   {"profiles", [&] {
                      std::vector<std::string> names;
                      for (Profile p : s.profiles) names.emplace_back(profile_name(p));
                      return names;
                    }()},
                   {"pdl", s.pdl != 0},
                   {"hidden", s.hidden},
                   {"seed", s.seed},
                   {"check", s.check != 0},
                   {"fused", s.fused},
                   {"direct_from_bytes", s.direct_from_bytes},
                   {"quant", [&] {
                      std::vector<std::string> names;
                      for (QuantMode m : s.quant) names.emplace_back(quant_mode_name(m));
                      return names;
                    }()}};
  j["limits"] = {{"launch_eager_us", place.limits.launch_eager_us},
                 {"launch_graph_us", place.limits.launch_graph_us},
                 {"copy_gbps", place.limits.copy_gbps},
                 {"copy_bytes", place.limits.copy_bytes}};
  j["nccl"] = place.nccl;
  j["rows"] = nlohmann::json::array();
  for (const BenchRow& r : rows) {
    nlohmann::json row{{"world_size", r.world},
                       {"size", r.bytes},
                       {"count", r.bytes / dtype_bytes(r.shape.dtype)},
                       {"type", dtype_name(r.shape.dtype)},
                       {"strategy", strategy_name(r.requested)},
                       {"resolved", strategy_name(r.resolved)},
                       {"direct", r.direct},
                       {"profile", profile_name(r.profile)},
                       {"tokens", r.shape.tokens},
                       {"hidden", r.shape.hidden},
                       {"time_us", r.us},
                       {"algbw_gbps", r.algbw},
                       {"busbw_gbps", r.busbw},
                       {"traffic_bytes", r.traffic.total()},
                       {"traffic_gbps", r.traffic_gbps},
                       {"pct_copy", r.pct_copy},
                       {"wrong", r.wrong},
                       {"launch", r.launch}};
    if (r.nccl_us) {
      row["nccl_us"] = *r.nccl_us;
      row["speedup_vs_nccl"] = *r.nccl_us / r.us;
    }
    if (r.fused_us) {
      row["fused_us"] = *r.fused_us;
      row["fused_wrong"] = r.fused_wrong;
      row["ar_then_norm_us"] = r.separate_us.value_or(NAN);
      row["ar_then_norm_wrong"] = r.separate_wrong;
      row["fused_minus_ar_us"] = *r.fused_us - r.us;
      row["fused_over_ar"] = *r.fused_us / r.us;
    }
    for (const QuantTiming& q : r.quant) {
      nlohmann::json& m = row["quant"][std::string(quant_mode_name(q.mode))];
      m["time_us"] = q.us;
      m["wrong"] = q.wrong;
      if (r.fused_us) m["minus_fused_us"] = q.us - *r.fused_us;
    }
    j["rows"].push_back(row);
  }
  return j.dump(1) + "\n";
}

}  // namespace ar
