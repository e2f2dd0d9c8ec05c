#include "harness/commands/run_plan.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/io/exit_codes.h"
#include "harness/io/golden_cases.h"
#include "harness/io/npy.h"
#include "harness/job/gpu_job.h"
#include "harness/job/job.h"
#include "reference/all_reduce.h"

namespace ar {
namespace {

/// Golden cases from `dir`/manifest.json, filtered by world size and dtype.
std::vector<PlannedCall> golden_calls(const std::string& dir, const std::vector<int>& worlds,
                                      const std::vector<DType>& dtypes, Profile profile, bool pdl,
                                      std::optional<Profile> expect) {
  const std::filesystem::path manifest_path = std::filesystem::path(dir) / "manifest.json";
  std::ifstream in(manifest_path);
  if (!in)
    throw UsageError(fmt::format("--inputs golden: cannot read {} (give --data DIR, or regenerate it with `mnnvl-ar "
                                 "data`)",
                                 manifest_path.string()));
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw UsageError(fmt::format("{} is not valid JSON: {}", manifest_path.string(), e.what()));
  }
  std::vector<PlannedCall> calls;
  for (const auto& c : manifest.at("cases")) {
    const int world = c.at("world_size").get<int>();
    const auto dtype = parse_dtype(c.at("dtype").get<std::string>());
    if (!dtype) throw UsageError(fmt::format("{}: case {} has an unknown dtype", manifest_path.string(), c.at("name").dump()));
    if (std::find(worlds.begin(), worlds.end(), world) == worlds.end()) continue;
    if (std::find(dtypes.begin(), dtypes.end(), *dtype) == dtypes.end()) continue;
    const std::string name = c.at("name").get<std::string>();
    const HostTensor input = read_npy((std::filesystem::path(dir) / c.at("input").at("file").get<std::string>()).string(), *dtype);
    const ProblemShape shape = shape_of_input(input);
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto}) {
      const Strategy resolved = resolve_strategy(s, shape);
      const std::string key = fmt::format("{}/{}", strategy_name(resolved), profile_name(expect.value_or(profile)));
      const HostTensor expected =
          read_npy((std::filesystem::path(dir) / c.at("outputs").at(key).at("file").get<std::string>()).string(), *dtype);
      calls.push_back({name, GpuCall{shape, s, profile, pdl}, expect.value_or(profile), resolved, input, expected,
                       c.at("seed").get<std::uint64_t>()});
    }
  }
  return calls;
}

HostTensor make_input(InputKind kind, DType dtype, int world, std::int64_t tokens, std::int64_t hidden,
                      std::uint64_t seed) {
  switch (kind) {
    case InputKind::kRandom: return random_input(dtype, world, tokens, hidden, seed, 12);
    case InputKind::kExact: return exact_input(dtype, world, tokens, hidden, seed);
    case InputKind::kAdversarial:
    case InputKind::kGolden: break;
  }
  return adversarial_input(dtype, world, tokens, hidden, seed);
}

}  // namespace

InputKind input_kind_option(const std::string& name) {
  if (name == "random") return InputKind::kRandom;
  if (name == "adversarial") return InputKind::kAdversarial;
  if (name == "exact") return InputKind::kExact;
  if (name == "golden") return InputKind::kGolden;
  throw UsageError(fmt::format("unknown --inputs '{}' (choose random, adversarial, exact or golden)", name));
}

std::vector<PlannedCall> plan_calls(const RunSettings& s, int world) {
  std::vector<PlannedCall> planned;
  std::uint64_t call_seed = s.seed;
  for (DType dt : s.dtypes)
    for (Profile p : s.profiles)
      for (bool pdl : s.pdls) {
        if (s.kind == InputKind::kGolden) {
          auto g = golden_calls(s.data_dir, {world}, {dt}, p, pdl, s.expect);
          for (auto& c : g) planned.push_back(std::move(c));
          continue;
        }
        std::vector<ResolvedCall> resolved;
        try {
          resolved = resolve_calls(s.specs, world, CallDefaults{s.tokens, s.hidden, dt});
        } catch (const CallSequenceError& e) {
          throw UsageError(fmt::format("--calls at W = {}: {}", world, e.what()));
        }
        for (int rep = 0; rep < s.repeat; ++rep)
          for (const ResolvedCall& rc : resolved) {
            ++call_seed;
            planned.push_back({"seq", GpuCall{rc.shape, rc.requested, p, pdl}, s.expect.value_or(p),
                               rc.strategy(),
                               make_input(s.kind, rc.shape.dtype, world, rc.shape.tokens, rc.shape.hidden, call_seed),
                               std::nullopt, call_seed});
          }
      }
  return planned;
}

std::string describe_plan(const Job& job, const RunSettings& s, int world, HandleKind handles,
                          const std::vector<PlannedCall>& planned) {
  std::string plan = fmt::format("program mnnvl-ar {}\ncommand run\nprocesses {}\nworld size {}\nhandles {}\n",
                                 MNNVL_AR_VERSION, job.processes(), world, handle_kind_name(handles));
  plan += fmt::format("inputs {} seed {}\ntimeout-ms {}\nround-bytes {}\nomit-rank {}\ndigests {}\n", s.inputs_text,
                      s.seed, s.timeout_ms, s.round_bytes, s.omit_rank, s.digests || job.multi_process());
  for (std::size_t i = 0; i < planned.size(); ++i)
    plan += plan_line(static_cast<int>(i) + 1, planned[i].label, planned[i].call, planned[i].call.strategy,
                      planned[i].expect, planned[i].seed) +
            "\n";
  return plan;
}

}  // namespace ar
