// mnnvl-ar mufu --check: proves the CPU model of the GPU's approximate rsqrt, rcp and div (reference/mufu.h)
// against the GPU at hand, on every input; --capture measures a GPU's tables for a new model
// (harness/job/mufu_check.h does the work of both).
#include <algorithm>
#include <filesystem>
#include <map>
#include <ostream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "harness/commands/commands.h"
#include "harness/commands/options.h"
#include "harness/io/exit_codes.h"
#include "harness/io/output_file.h"
#include "harness/job/gpu_backend.h"
#include "harness/job/mufu_check.h"
#include "reference/mufu.h"

namespace ar {
namespace {

/// Results per GPU call: 2^28 words is 1 GiB of device memory and as much pinned host memory.
constexpr std::uint64_t kChunk = std::uint64_t{1} << 28;

std::string hex(std::uint32_t bits) { return fmt::format("0x{:08x}", bits); }

bool unary(const MufuSweepSpec& spec) {
  return spec.op == MufuOp::kRsqrt || spec.op == MufuOp::kRsqrtNoFtz || spec.op == MufuOp::kRcp ||
         spec.op == MufuOp::kE4m3 || spec.op == MufuOp::kE2m1;
}

std::string describe_difference(const MufuSweepSpec& spec, const MufuDifference& d) {
  const MufuOperands o = mufu_operands(spec, d.input);
  const std::string operands =
      unary(spec) ? fmt::format("x = {}", hex(o.a)) : fmt::format("a = {}, b = {}", hex(o.a), hex(o.b));
  return fmt::format("{} with {}: hardware {}, model {}", mufu_sweep_name(spec), operands, hex(d.hardware),
                     hex(d.model));
}

nlohmann::json sweep_json(const MufuSweepResult& r) {
  nlohmann::json first = nlohmann::json::array();
  for (const MufuDifference& d : r.first) {
    const MufuOperands o = mufu_operands(r.spec, d.input);
    nlohmann::json row =
        unary(r.spec) ? nlohmann::json{{"x", hex(o.a)}} : nlohmann::json{{"a", hex(o.a)}, {"b", hex(o.b)}};
    row["hardware"] = hex(d.hardware);
    row["model"] = hex(d.model);
    first.push_back(row);
  }
  return {{"sweep", mufu_sweep_name(r.spec)},
          {"inputs", r.inputs},
          {"differ", r.differ},
          {"seconds", r.seconds},
          {"first_differences", first}};
}

struct MufuSettings {
  int device = 0;
  std::uint64_t stride = 1;
  unsigned threads = 0;
  std::string json_path;
  std::string capture_dir;
};

/// The GPU backend and the chosen device, or nullptr when there is no GPU (the reason printed).
std::unique_ptr<GpuBackend> open_backend(const MufuSettings& s, std::ostream& out, std::ostream& err) {
  auto backend = make_gpu_backend();
  if (auto why = backend->unavailable()) {
    fmt::print(err, "mnnvl-ar mufu: no GPU: {}\n", *why);
    return nullptr;
  }
  const int count = backend->device_count();
  if (s.device >= count)
    throw UsageError(fmt::format("--device {}: this process sees {} GPU{}", s.device, count, count == 1 ? "" : "s"));
  const GpuDevice gpu = backend->device(s.device);
  fmt::print(out, "GPU {}: {} (compute capability {}, {} SMs), driver {}, CUDA {}\n", gpu.ordinal, gpu.name,
             gpu.compute_capability, gpu.sm_count, gpu.driver.empty() ? "unknown" : gpu.driver, gpu.cuda_driver);
  return backend;
}

/// Counts per delta, and the entries that differ from the built-in table.
void describe_capture(std::string_view name, const std::vector<std::int8_t>& captured, int (*built_in)(std::uint32_t),
                      int low, int high, std::ostream& out) {
  std::map<int, std::uint64_t> counts;
  std::uint64_t differ = 0;
  for (std::uint32_t i = 0; i < captured.size(); ++i) {
    ++counts[captured[i]];
    differ += captured[i] != built_in(i);
  }
  std::vector<std::string> parts;
  for (const auto& [delta, n] : counts) parts.push_back(fmt::format("{}: {}", delta, n));
  const bool fits = counts.begin()->first >= low && counts.rbegin()->first <= high;
  fmt::print(out, "{}: deltas {}; {}; {}\n", name, fmt::join(parts, ", "),
             differ == 0 ? std::string("identical to the built-in table")
                         : fmt::format("{} entries differ from the built-in table", differ),
             fits ? fmt::format("the packed format holds them ({}..{})", low, high)
                  : fmt::format("OUTSIDE the packed format's {}..{}", low, high));
}

int capture_mufu(const MufuSettings& s, std::ostream& out, std::ostream& err) {
  namespace fs = std::filesystem;
  const std::vector<std::string> paths{(fs::path(s.capture_dir) / "rsqrt_delta.i8").string(),
                                       (fs::path(s.capture_dir) / "rcp_delta.i8").string()};
  OutputSet files(paths);  // checks both paths before the GPU work
  const auto backend = open_backend(s, out, err);
  if (!backend) return kExitUsage;
  const MufuCapture c = capture_mufu_tables(*backend->open_mufu_sweep(s.device, kRsqrtDeltaEntries));
  describe_capture("rsqrt", c.rsqrt, rsqrt_delta, -2, 1, out);
  describe_capture("rcp", c.rcp, rcp_delta, -1, 1, out);
  files.file(0).write({reinterpret_cast<const char*>(c.rsqrt.data()), c.rsqrt.size()});
  files.file(1).write({reinterpret_cast<const char*>(c.rcp.data()), c.rcp.size()});
  files.commit();
  fmt::print(out, "wrote {} and {} (pack them with scripts/pack_mufu_tables.py, see docs/mufu.md)\n", paths[0],
             paths[1]);
  return kExitOk;
}

int check_mufu(const MufuSettings& s, std::ostream& out, std::ostream& err) {
  const auto backend = open_backend(s, out, err);
  if (!backend) return kExitUsage;
  const GpuDevice gpu = backend->device(s.device);
  const MufuCheckOptions options{s.stride, s.threads};
  fmt::print(out, "model: reference/mufu.h, tables rsqrt_delta.bin {} and rcp_delta.bin {}\n",
             rsqrt_delta_table_sha256(), rcp_delta_table_sha256());
  const std::uint64_t per_sweep = ((std::uint64_t{1} << 32) + s.stride - 1) / s.stride;
  fmt::print(out, "{} per sweep, compared on {} host thread{}\n\n",
             s.stride == 1 ? std::string("every input")
                           : fmt::format("the inputs 0, {0}, 2 x {0}, ... ({1})", s.stride, per_sweep),
             options.threads, options.threads == 1 ? "" : "s");
  fmt::print(out, "{:<40} {:>12} {:>10} {:>9}\n", "sweep", "inputs", "differ", "seconds");

  const auto sweep = backend->open_mufu_sweep(s.device, std::min(kChunk, per_sweep));
  std::vector<MufuSweepResult> results;
  std::uint64_t inputs = 0, differ = 0;
  double seconds = 0;
  for (const MufuSweepSpec& spec : mufu_check_sweeps()) {
    results.push_back(run_mufu_sweep(*sweep, spec, options));
    const MufuSweepResult& r = results.back();
    fmt::print(out, "{:<40} {:>12} {:>10} {:>9.1f}\n", mufu_sweep_name(spec), r.inputs, r.differ, r.seconds);
    out.flush();
    inputs += r.inputs;
    differ += r.differ;
    seconds += r.seconds;
  }
  if (differ == 0) {
    fmt::print(out, "\nthe model equals this GPU on all {} inputs ({:.1f} s)\n", inputs, seconds);
  } else {
    fmt::print(out, "\nthe model differs from this GPU on {} of {} inputs ({:.1f} s); the first differences:\n", differ,
               inputs, seconds);
    for (const MufuSweepResult& r : results)
      for (const MufuDifference& d : r.first) fmt::print(out, "  {}\n", describe_difference(r.spec, d));
  }

  if (!s.json_path.empty()) {
    nlohmann::json sweeps = nlohmann::json::array();
    for (const MufuSweepResult& r : results) sweeps.push_back(sweep_json(r));
    const nlohmann::json report{
        {"command", "mufu --check"},
        {"version", MNNVL_AR_VERSION},
        {"gpu",
         {{"ordinal", gpu.ordinal},
          {"name", gpu.name},
          {"compute_capability", gpu.compute_capability},
          {"sm_count", gpu.sm_count},
          {"driver", gpu.driver},
          {"cuda_driver", gpu.cuda_driver},
          {"cuda_runtime", gpu.cuda_runtime},
          {"pci_bus_id", gpu.pci_bus_id}}},
        {"tables", {{"rsqrt_delta.bin", rsqrt_delta_table_sha256()}, {"rcp_delta.bin", rcp_delta_table_sha256()}}},
        {"stride", s.stride},
        {"host_threads", options.threads},
        {"sweeps", sweeps},
        {"inputs", inputs},
        {"differ", differ},
        {"seconds", seconds},
        {"equal", differ == 0}};
    write_file_atomically(s.json_path, report.dump(2) + "\n");
  }
  return differ == 0 ? kExitOk : kExitDifference;
}

}  // namespace

int mufu_command(const CommandArgs& args, std::ostream& out, std::ostream& err) {
  MufuSettings s;
  po::options_description options("options");
  // clang-format off
  options.add_options()
      ("check", "compare the model with this GPU on every input (the one thing this command does)")
      ("device", po::value(&s.device)->default_value(0), "the GPU to check")
      ("stride", po::value(&s.stride)->default_value(1),
       "check only the inputs 0, S, 2S, ... (a quick look; 1: every input)")
      ("threads", po::value(&s.threads)->default_value(0), "host threads comparing (0: one per core)")
      ("json", po::value(&s.json_path)->default_value(""), "also write the result as JSON to this file")
      ("capture", po::value(&s.capture_dir),
       "instead of checking, measure this GPU's tables into DIR/rsqrt_delta.i8 and DIR/rcp_delta.i8");
  // clang-format on
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar mufu --check [--device N] [--json FILE] [--stride S]      mnnvl-ar mufu --capture DIR",
      "The fused residual-add + RMSNorm computes rsqrt.approx.ftz.f32(div.approx.ftz.f32(sum, D) + eps). Those\n"
      "MUFU results are not documented; reference/mufu.h models them from tables measured on a GPU\n"
      "(docs/mufu.md). This command proves that model on the GPU at hand: the GPU computes rsqrt.approx and\n"
      "rcp.approx on all 2^32 inputs, div.approx for every a against each of 15 divisors (FlashInfer's hidden\n"
      "sizes among them), and for every b with a hashed a; the host compares every result with the model,\n"
      "bit for bit, NaNs included, on all its cores. It prints the GPU, one line per sweep with its count of\n"
      "differences and time, and the first differences with their inputs, hardware and model bits in hex.\n"
      "A full check takes a few minutes on a 16-core host; most of it is the host's side.\n"
      "--capture DIR measures a GPU's tables instead (one int8 delta per entry, as the built-in tables were\n"
      "measured), says how they differ from the built-in ones, and writes them for scripts/pack_mufu_tables.py.\n\n"
      "examples:\n"
      "  mnnvl-ar mufu --check                        # every input, GPU 0\n"
      "  mnnvl-ar mufu --check --stride 65537         # a quick look (65536 inputs per sweep)\n"
      "  mnnvl-ar mufu --check --device 3 --json m.json\n"
      "  mnnvl-ar mufu --capture /tmp/capture          # a new GPU's tables\n\n"
      "exit codes: 0 the model equals the GPU on every input checked, 1 a difference (printed), 2 bad usage,\n"
      "no GPU, a build without the CUDA layer, or a GPU error"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;
  if (vm.count("check") && vm.count("capture")) throw UsageError("--check and --capture: choose one");
  if (!vm.count("check") && !vm.count("capture"))
    throw UsageError("nothing to do: pass --check (see mnnvl-ar mufu --help)");
  if (s.device < 0) throw UsageError(fmt::format("--device {}: a GPU ordinal is 0 or more", s.device));
  if (s.stride < 1 || s.stride > (std::uint64_t{1} << 32))
    throw UsageError(fmt::format("--stride {}: choose 1 to 2^32", s.stride));
  if (s.threads == 0) s.threads = std::max(1u, std::thread::hardware_concurrency());
  if (!s.json_path.empty()) check_output_path(s.json_path);  // before the work, so a typo costs nothing
  try {
    return vm.count("capture") ? capture_mufu(s, out, err) : check_mufu(s, out, err);
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {  // the CUDA layer's errors (no memory for the buffers, a failed launch)
    fmt::print(err, "mnnvl-ar mufu: the GPU could not run the check: {}\n", e.what());
    return kExitUsage;
  }
}

}  // namespace ar
