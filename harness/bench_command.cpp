// mnnvl-ar bench: nccl-tests style timing of the kernels (W virtual ranks on one GPU), every timed size
// verified bit for bit against reference/, with the machine's limits (launch overhead, copy bandwidth) and,
// where two or more GPUs are visible, NCCL's all-reduce measured in the same run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdlib>
#include <map>
#include <ostream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "harness/commands.h"
#include "harness/exit_codes.h"
#include "harness/gpu_backend.h"
#include "harness/gpu_check.h"
#include "harness/npy.h"
#include "harness/options.h"

namespace ar {
namespace {

/// "4K" -> 4096, "256M", "1G", "128" (bytes).
std::int64_t size_option(const std::string& name, const std::string& text) {
  if (text.empty()) throw UsageError(fmt::format("{}: empty size", name));
  std::int64_t scale = 1;
  std::string digits = text;
  switch (text.back()) {
    case 'K': case 'k': scale = std::int64_t(1) << 10; digits.pop_back(); break;
    case 'M': case 'm': scale = std::int64_t(1) << 20; digits.pop_back(); break;
    case 'G': case 'g': scale = std::int64_t(1) << 30; digits.pop_back(); break;
    default: break;
  }
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(digits, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != digits.size() || v <= 0)
    throw UsageError(fmt::format("{} '{}' is not a size (a positive number with an optional K, M or G)", name, text));
  return v * scale;
}

std::string size_text(std::int64_t bytes) {
  if (bytes % (std::int64_t(1) << 30) == 0) return fmt::format("{}G", bytes >> 30);
  if (bytes % (std::int64_t(1) << 20) == 0) return fmt::format("{}M", bytes >> 20);
  if (bytes % (std::int64_t(1) << 10) == 0) return fmt::format("{}K", bytes >> 10);
  return fmt::format("{}", bytes);
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}

struct BenchRow {
  int world = 0;
  std::int64_t bytes = 0;
  ProblemShape shape;
  Strategy requested = Strategy::kAuto;
  Strategy resolved = Strategy::kOneShot;
  double us = 0;
  double algbw = 0, busbw = 0;
  CallTraffic traffic;
  double traffic_gbps = 0, pct_copy = 0;
  std::int64_t wrong = -1;  ///< -1: not checked
  std::optional<double> nccl_us;
  std::string launch;
};

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

int bench_command(const CommandArgs& args, std::ostream& out, std::ostream& err) {
  std::string min_text, max_text, dtype_text, strategy_text, world_text, profile_text, json_path, nccl_lib;
  std::vector<std::string> labels;
  double factor = 2;
  int iters = 20, warmup = 5, graph = 0, check = 1, pdl = 1, device = 0;
  std::int64_t hidden = 4096, round_bytes = -1;
  std::uint64_t seed = 1;
  double timeout_ms = 10000;
  po::options_description options("options (nccl-tests names where they exist)");
  options.add_options()
      ("minbytes,b", po::value(&min_text)->default_value("4K"), "smallest size per rank (K, M, G suffixes)")
      ("maxbytes,e", po::value(&max_text)->default_value("256M"), "largest size per rank")
      ("stepfactor,f", po::value(&factor)->default_value(2), "multiply the size by this between rows")
      ("iters,n", po::value(&iters)->default_value(20), "timed calls per size")
      ("warmup_iters,w", po::value(&warmup)->default_value(5), "untimed calls before timing")
      ("cudagraph,G", po::value(&graph)->default_value(0),
       "0: eager launches; G > 0: capture the -n calls in one CUDA graph and replay it G times")
      ("datatype,d", po::value(&dtype_text)->default_value("bf16"), "bf16, fp16, fp32, a list, or all")
      ("strategy,s", po::value(&strategy_text)->default_value("all"), "oneshot, twoshot, auto, a list, or all")
      ("world,W", po::value(&world_text)->default_value("2"), "virtual ranks on the GPU, e.g. 2,8")
      ("profile,p", po::value(&profile_text)->default_value("flashinfer"), "flashinfer or ieee arithmetic")
      ("pdl", po::value(&pdl)->default_value(1), "launch_with_pdl (1 or 0)")
      ("hidden,D", po::value(&hidden)->default_value(4096), "D of the [N, D] shard; N = count / D (D = count if smaller)")
      ("check,c", po::value(&check)->default_value(1), "1: verify every timed size bit for bit (#wrong)")
      ("seed", po::value(&seed)->default_value(1), "seed of the full-mantissa random inputs")
      ("timeout-ms", po::value(&timeout_ms)->default_value(10000), "per device wait; 0 = forever")
      ("round-bytes", po::value(&round_bytes)->default_value(-1), "L2 budget of a round (tuning; -1 = default)")
      ("device", po::value(&device)->default_value(0), "CUDA device of the virtual ranks")
      ("nccl-lib", po::value(&nccl_lib)->default_value(""),
       "NCCL library for the baseline (default: $AR_NCCL_LIB, else libnccl.so.2); needs 2+ GPUs")
      ("label", po::value(&labels)->composing(), "KEY=VALUE recorded in the JSON (e.g. commit=abc123); repeatable")
      ("json,J", po::value(&json_path)->default_value(""), "write the results as JSON to this file");
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar bench [-b 4K] [-e 256M] [-f 2] [-n 20] [-w 5] [-G 0] [-d bf16] [-s all] [-W 2] [-J out.json]",
      "Times the all-reduce kernels with W virtual ranks on one GPU, nccl-tests style: one row per size and\n"
      "strategy with size (bytes per rank), count (elements per rank), type, strategy, time(us) (mean per call),\n"
      "algbw = size / time, busbw = algbw * 2(W-1)/W, and #wrong: after timing, every rank's output of the\n"
      "last call is compared bit for bit with reference/ (0 expected; -1 when --check 0). Two more columns read\n"
      "the time against this machine: traffic (GB/s), the bytes the call must move (SPEC section 5: input\n"
      "reads, Lamport stores and loads, clears, output writes, all ranks) over the time, and %copy, that over\n"
      "the device-to-device copy bandwidth measured at the start of the same run. The header also gives the\n"
      "launch overhead of an empty kernel, eager and in a CUDA graph. With two or more GPUs visible, NCCL's\n"
      "all-reduce (one rank per GPU, loaded at run time; NVLS forced off) is timed at each size too, and the\n"
      "nccl(us) and speedup columns appear; with one GPU NCCL is reported as not measured.\n\n"
      "examples:\n"
      "  mnnvl-ar bench -b 4K -e 64K -G 10 -d bf16 -s all -W 2          # small messages, graph replay\n"
      "  mnnvl-ar bench -b 4K -e 256M -f 4 -G 5 -d all -W 2,8 -J bench.json --label commit=$(git rev-parse HEAD)\n\n"
      "exit codes: 0 ok, 1 a timed size gave wrong bits or a wait timed out, 2 bad usage or no GPU"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;

  const std::int64_t min_bytes = size_option("-b", min_text), max_bytes = size_option("-e", max_text);
  if (min_bytes > max_bytes) throw UsageError(fmt::format("-b {} is larger than -e {}", min_text, max_text));
  if (!(factor > 1)) throw UsageError("-f must be greater than 1");
  if (iters < 1 || warmup < 0 || graph < 0) throw UsageError("-n must be >= 1, -w and -G >= 0");
  if (hidden <= 0) throw UsageError("-D must be positive");
  std::vector<DType> dtypes;
  for (const auto& d : dtype_text == "all" ? std::vector<std::string>{"bf16", "fp16", "fp32"} : split(dtype_text))
    dtypes.push_back(dtype_option(d));
  std::vector<Strategy> strategies;
  for (const auto& s : strategy_text == "all" ? std::vector<std::string>{"oneshot", "twoshot", "auto"} : split(strategy_text))
    strategies.push_back(strategy_option(s));
  std::vector<int> worlds;
  for (const auto& w : split(world_text)) {
    int v = 0;
    try {
      v = std::stoi(w);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("-W: '{}' is not a number", w));
    }
    if (!is_supported_world_size(v)) throw UsageError(fmt::format("-W: {} is not a supported world size", v));
    worlds.push_back(v);
  }
  const Profile profile = profile_option(profile_text);
  if (profile == Profile::kTrtllm) throw UsageError("-p trtllm is a reference-only model; the kernels run flashinfer and ieee");
  std::map<std::string, std::string> label_map;
  for (const auto& l : labels) {
    const auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError(fmt::format("--label '{}' is not KEY=VALUE", l));
    label_map[l.substr(0, eq)] = l.substr(eq + 1);
  }
  // The sizes, each a whole number of rows.
  std::vector<std::int64_t> sizes;
  for (double s = static_cast<double>(min_bytes); s <= static_cast<double>(max_bytes) * (1 + 1e-9); s *= factor) {
    const auto bytes = static_cast<std::int64_t>(std::llround(s));
    if (sizes.empty() || bytes != sizes.back()) sizes.push_back(bytes);
  }
  for (DType dt : dtypes)
    for (std::int64_t bytes : sizes) {
      const std::int64_t e = dtype_bytes(dt), count = bytes / e;
      const std::int64_t d = std::min(hidden, count);
      if (bytes % 16 != 0 || count % d != 0 || d % elements_per_pack(dt) != 0)
        throw UsageError(fmt::format("size {} of {} is not a whole number of rows of D = {} (and of 16-byte packs); "
                                     "choose sizes and -D that divide",
                                     bytes, dtype_name(dt), d));
    }

  auto backend = make_gpu_backend();
  if (auto why = backend->unavailable()) {
    fmt::print(err, "mnnvl-ar bench: no GPU: {}\n", *why);
    return kExitUsage;
  }
  const GpuDevice dev = backend->device(device);
  fmt::print(err, "measuring launch overhead and copy bandwidth...\n");
  const GpuLimits limits = backend->measure_limits(device, std::int64_t(1) << 30);

  std::unique_ptr<NcclAllReduce> nccl;
  std::string nccl_note;
  if (dev.device_count >= 2) {
    std::string lib = nccl_lib;
    if (lib.empty()) {
      const char* env = std::getenv("AR_NCCL_LIB");
      lib = env ? env : "libnccl.so.2";
    }
    try {
      nccl = backend->open_nccl(lib);
      nccl_note = fmt::format("NCCL {} over {} GPUs (one rank each), {}", nccl->version(), nccl->ranks(), lib);
    } catch (const std::exception& e) {
      nccl_note = fmt::format("not measured: {}", e.what());
    }
  } else {
    nccl_note = "not measured (needs 2+ GPUs; this machine shows 1)";
  }

  fmt::print(out, "# mnnvl-ar bench on {} (sm_{}, {} SMs, {:.0f} GiB), driver {} (CUDA {}), runtime {}\n", dev.name,
             dev.compute_capability, dev.sm_count, static_cast<double>(dev.memory_bytes) / (1 << 30),
             dev.driver.empty() ? "?" : dev.driver, dev.cuda_driver, dev.cuda_runtime);
  fmt::print(out, "# launch overhead (empty kernel): eager {:.2f} us, CUDA graph {:.2f} us per launch\n",
             limits.launch_eager_us, limits.launch_graph_us);
  fmt::print(out, "# device-to-device copy: {:.0f} GB/s (bytes read + written, {} copy)\n", limits.copy_gbps,
             size_text(limits.copy_bytes));
  fmt::print(out, "# NCCL: {}\n", nccl_note);
  fmt::print(out, "# {} mode, {} iterations{}, {} warm-up, profile {}, PDL {}, D = {}\n",
             graph > 0 ? "CUDA-graph" : "eager", iters, graph > 0 ? fmt::format(" x {} graph launches", graph) : "",
             warmup, profile_name(profile), pdl ? "on" : "off", hidden);

  std::vector<BenchRow> rows;
  bool failed = false;
  const std::size_t total = worlds.size() * dtypes.size() * sizes.size() * strategies.size();
  std::size_t done = 0;
  const std::string header = fmt::format(
      "{:>3} {:>10} {:>12} {:>5} {:>8} {:>10} {:>11} {:>11} {:>13} {:>6} {:>7}{}", "W", "size", "count", "type",
      "strategy", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "traffic(GB/s)", "%copy", "#wrong",
      nccl ? fmt::format(" {:>9} {:>7}", "nccl(us)", "speedup") : "");
  for (int world : worlds) {
    std::int64_t buffer = kBufferAlignment, io = 16;
    for (DType dt : dtypes)
      for (std::int64_t bytes : sizes) {
        const std::int64_t count = bytes / dtype_bytes(dt), d = std::min(hidden, count);
        const ProblemShape s{world, count / d, d, dt};
        for (Strategy st : strategies) buffer = std::max(buffer, required_buffer_bytes(st, s));
        io = std::max(io, bytes);
      }
    const BufferRequest request = request_buffer_bytes({world, 1, 8, DType::kBf16}, buffer);
    if (request.error) throw UsageError(fmt::format("W = {}: {}", world, *request.error));
    auto group = backend->open({device, world, request.bytes, io, static_cast<std::uint64_t>(timeout_ms * 1e6), round_bytes});
    fmt::print(out, "\n{}\n", header);
    for (DType dt : dtypes)
      for (std::int64_t bytes : sizes) {
        const std::int64_t count = bytes / dtype_bytes(dt), d = std::min(hidden, count);
        const ProblemShape shape{world, count / d, d, dt};
        const HostTensor input = seeded_random_input(dt, world, shape.tokens, shape.hidden, seed + bytes, 12);
        group->upload(input);
        std::map<Strategy, HostTensor> references;  // by resolved strategy
        std::optional<double> nccl_us;
        if (nccl) nccl_us = nccl->time_us(bytes, dt, warmup, iters);
        for (Strategy st : strategies) {
          BenchRow row;
          row.world = world;
          row.bytes = bytes;
          row.shape = shape;
          row.requested = st;
          row.resolved = resolve_strategy(st, shape);
          const GpuCall call{shape, st, profile, pdl != 0};
          if (auto why = group->cannot_run(call)) throw UsageError(fmt::format("{} at {}: {}", strategy_name(st), bytes, *why));
          row.launch = group->launch_shape(call);
          ++done;
          fmt::print(err, "[{}/{}] W={} {} {} {}: {}\n", done, total, world, dtype_name(dt), size_text(bytes),
                     strategy_name(st), row.launch);
          try {
            row.us = group->time_us(call, warmup, iters, graph);
          } catch (const std::runtime_error& e) {
            fmt::print(err, "timeout: {}\n", e.what());
            failed = true;
            row.us = NAN;
          }
          row.algbw = static_cast<double>(bytes) / (row.us * 1e3);
          row.busbw = row.algbw * 2.0 * (world - 1) / world;
          row.traffic = call_traffic(row.resolved, shape);
          row.traffic_gbps = static_cast<double>(row.traffic.total()) / (row.us * 1e3);
          row.pct_copy = 100.0 * row.traffic_gbps / limits.copy_gbps;
          row.nccl_us = nccl_us;
          if (check && !std::isnan(row.us)) {
            auto it = references.find(row.resolved);
            if (it == references.end())
              it = references.emplace(row.resolved, parallel_reference(input, row.resolved, profile)).first;
            row.wrong = 0;
            for (int r = 0; r < world; ++r) row.wrong += compare_fast(group->output(r, shape), it->second).differing;
            if (row.wrong) failed = true;
          }
          fmt::print(out, "{:>3} {:>10} {:>12} {:>5} {:>8} {:>10.2f} {:>11.2f} {:>11.2f} {:>13.1f} {:>6.1f} {:>7}{}\n",
                     world, bytes, count, dtype_name(dt), strategy_name(st), row.us, row.algbw, row.busbw,
                     row.traffic_gbps, row.pct_copy, row.wrong,
                     nccl ? fmt::format(" {:>9.2f} {:>7.2f}", *nccl_us, *nccl_us / row.us) : "");
          out.flush();
          rows.push_back(std::move(row));
        }
      }
  }

  if (!json_path.empty()) {
    nlohmann::json j;
    j["command"] = "bench";
    j["date"] = utc_now();
    j["labels"] = label_map;
    j["device"] = {{"name", dev.name},         {"compute_capability", dev.compute_capability},
                   {"sms", dev.sm_count},       {"memory_bytes", dev.memory_bytes},
                   {"l2_bytes", dev.l2_bytes},  {"clock_mhz", dev.clock_mhz},
                   {"driver", dev.driver},      {"cuda_driver", dev.cuda_driver},
                   {"cuda_runtime", dev.cuda_runtime}, {"gpus_visible", dev.device_count}};
    j["settings"] = {{"mode", graph > 0 ? "graph" : "eager"}, {"graph_launches", graph}, {"iters", iters},
                     {"warmup", warmup}, {"profile", profile_name(profile)}, {"pdl", pdl != 0},
                     {"hidden", hidden}, {"seed", seed}, {"check", check != 0}};
    j["limits"] = {{"launch_eager_us", limits.launch_eager_us}, {"launch_graph_us", limits.launch_graph_us},
                   {"copy_gbps", limits.copy_gbps}, {"copy_bytes", limits.copy_bytes}};
    j["nccl"] = nccl_note;
    j["rows"] = nlohmann::json::array();
    for (const BenchRow& r : rows) {
      nlohmann::json row{{"world_size", r.world},
                         {"size", r.bytes},
                         {"count", r.bytes / dtype_bytes(r.shape.dtype)},
                         {"type", dtype_name(r.shape.dtype)},
                         {"strategy", strategy_name(r.requested)},
                         {"resolved", strategy_name(r.resolved)},
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
      if (r.nccl_us) row["nccl_us"] = *r.nccl_us;
      j["rows"].push_back(row);
    }
    write_file_atomically(json_path, j.dump(1) + "\n");
  }
  return failed ? kExitDifference : kExitOk;
}

}  // namespace ar
