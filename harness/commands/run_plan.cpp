#include "harness/commands/run_plan.h"

#include <algorithm>

#include <fmt/format.h>

#include "harness/io/exit_codes.h"
#include "harness/io/golden_cases.h"
#include "harness/io/golden_manifest.h"
#include "harness/io/npy.h"
#include "harness/job/gpu_job.h"
#include "harness/job/host_reference.h"
#include "harness/job/job.h"
#include "reference/all_reduce.h"
#include "reference/fused_quant.h"
#include "reference/fused_rms_norm.h"
#include "reference/workspace.h"

namespace ar {
namespace {

/// Golden cases from `dir`'s manifest, filtered by world size and dtype before any file is read.
std::vector<PlannedCall> golden_calls(const std::string& dir, int world, DType dtype, Profile profile, bool pdl,
                                      std::optional<Profile> expect) {
  GoldenManifest manifest;
  try {
    manifest = read_golden_manifest(dir);
  } catch (const UsageError& e) {
    throw UsageError(
        fmt::format("--inputs golden: {} (give --data DIR, or regenerate it with `mnnvl-ar data`)", e.what()));
  }
  std::vector<PlannedCall> calls;
  for (const GoldenManifestCase& c : manifest.cases) {
    if (c.shape.world_size != world || c.shape.dtype != dtype) continue;
    const HostTensor input = manifest.load_input(c);
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto})
      calls.push_back({c.name, GpuCall{c.shape, s, profile, pdl}, expect.value_or(profile),
                       resolve_strategy(s, c.shape), input,
                       manifest.load_expected(c, s, expect.value_or(profile)),
                       c.seed});
  }
  // The fused cases: each launches for its own SM count, whatever the GPU's (a trtllm expectation has none).
  for (const GoldenManifestCase& c : manifest.fused_cases) {
    if (c.shape.world_size != world || c.shape.dtype != dtype || expect == Profile::kTrtllm) continue;
    const HostTensor input = manifest.load_input(c);
    PlannedNorm norm{manifest.load_residual(c), manifest.load_gamma(c), std::nullopt};
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto}) {
      PlannedCall& call =
          calls.emplace_back(PlannedCall{c.name, GpuCall{c.shape, s, profile, pdl}, expect.value_or(profile),
                                         resolve_strategy(s, c.shape), input, std::nullopt, c.seed});
      call.call.norm = GpuNorm{c.fused->epsilon, c.fused->weight_bias, c.fused->sm_count, false};
      GoldenFusedExpected e = manifest.load_expected_fused(c, s, expect.value_or(profile));
      norm.expected = FusedExpectation{std::move(e.normalized), std::move(e.residual_out)};
      call.norm = norm;
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

/// A fused call's residual (of the input's kind: the adversarial one holds -0s, subnormals and large values)
/// and gamma (full mantissas near 1), seeded from the call's seed.
PlannedNorm make_norm_inputs(InputKind kind, const ProblemShape& shape, std::uint64_t seed) {
  const std::uint64_t residual_seed = seed ^ 0x5EED0000'00000001ull, gamma_seed = seed ^ 0x5EED0000'00000002ull;
  return {make_input(kind, shape.dtype, 1, shape.tokens, shape.hidden, residual_seed)
              .reshaped({shape.tokens, shape.hidden}),
          random_input(shape.dtype, 1, 1, shape.hidden, gamma_seed, 1).reshaped({shape.hidden})};
}

GpuNorm gpu_norm(const RunSettings& s, const ResolvedCall& rc) {
  return GpuNorm{s.epsilon.value_or(default_epsilon(rc.shape.dtype)), s.weight_bias, s.sms, false, rc.quant,
                 rc.layout, s.quant_scale};
}

/// The sequence's calls at `world` with `dtype` as the default, each a shape the kernels can address (what
/// check_fits_workspace allows on the largest workspace); throws UsageError naming the first that is not.
std::vector<ResolvedCall> checked_calls(const RunSettings& s, int world, DType dtype) {
  std::vector<ResolvedCall> resolved;
  try {
    resolved = resolve_calls(s.specs, world, CallDefaults{s.tokens, s.hidden, dtype});
  } catch (const CallSequenceError& e) {
    throw UsageError(fmt::format("--calls at W = {}: {}", world, e.what()));
  }
  for (std::size_t i = 0; i < resolved.size(); ++i) {
    const ResolvedCall& rc = resolved[i];
    const auto refuse = [&](const std::string& why) {
      return UsageError(fmt::format("--calls at W = {}: call {} ({} N={} D={} {}{}): {}", world, i + 1,
                                    strategy_name(rc.requested), rc.shape.tokens, rc.shape.hidden,
                                    dtype_name(rc.shape.dtype),
                                    rc.quant != QuantMode::kNone ? fmt::format(" {}", quant_mode_name(rc.quant))
                                    : rc.fused                   ? std::string(" fused")
                                                                 : std::string(),
                                    why));
    };
    if (auto why = check_fits_workspace(rc.requested, rc.shape, kMaxBufferBytes)) throw refuse(*why);
    if (!rc.fused) continue;
    if (s.expect == Profile::kTrtllm)
      throw refuse("the fused norm is modelled for flashinfer, ieee and invariant, not trtllm");
    // Every launch the profiles ask for: FlashInfer's for flashinfer and ieee, the invariant one.
    for (Profile p : s.profiles) try {
        (void)norm_launch_for(s.expect.value_or(p), rc.strategy(), rc.shape.tokens, rc.shape.hidden, rc.shape.dtype,
                              s.sms > 0 ? s.sms : kDefaultSmCount);
      } catch (const std::invalid_argument& e) {
        throw refuse(fmt::format("{} refuses it: {}",
                                 s.expect.value_or(p) == Profile::kInvariant ? "the invariant launch"
                                                                             : "FlashInfer's fused kernel",
                                 e.what()));
      }
  }
  return resolved;
}

}  // namespace

void check_call_sizes(const RunSettings& s) {
  if (s.kind == InputKind::kGolden) return;
  for (int world : s.worlds)
    for (DType dt : s.dtypes) checked_calls(s, world, dt);
}

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
          auto g = golden_calls(s.data_dir, world, dt, p, pdl, s.expect);
          for (auto& c : g) planned.push_back(std::move(c));
          continue;
        }
        const std::vector<ResolvedCall> resolved = checked_calls(s, world, dt);
        for (int rep = 0; rep < s.repeat; ++rep)
          for (const ResolvedCall& rc : resolved) {
            ++call_seed;
            PlannedCall& c = planned.emplace_back(
                PlannedCall{"seq", GpuCall{rc.shape, rc.requested, p, pdl}, s.expect.value_or(p), rc.strategy(),
                            make_input(s.kind, rc.shape.dtype, world, rc.shape.tokens, rc.shape.hidden, call_seed),
                            std::nullopt, call_seed});
            if (rc.fused) {
              c.call.norm = gpu_norm(s, rc);
              c.norm = make_norm_inputs(s.kind, rc.shape, call_seed);
            }
          }
      }
  return planned;
}

FusedExpectation expected_fused_outputs(const PlannedCall& c) {
  if (c.norm->expected) return *c.norm->expected;
  const FusedOptions options = fused_options(*c.call.norm, c.resolved, c.expect);
  FusedResult r = parallel_fused_reference(c.input, c.norm->residual, c.norm->gamma, options);
  std::optional<QuantizedOutput> quant;
  if (c.call.norm->quant != QuantMode::kNone)
    quant = quantize_fused(r, c.norm->gamma, options,
                           QuantOptions{c.call.norm->quant, c.call.norm->quant_scale, c.call.norm->layout});
  return {std::move(r.normalized), std::move(r.residual_out), std::move(quant)};
}

bool takes_direct_path(const RunSettings& s, const PlannedCall& c) {
  return takes_direct_path(c.resolved, c.call.norm.has_value(), c.call.shape, s.direct_from_bytes);
}

std::string describe_plan(const Job& job, const RunSettings& s, int world, HandleKind handles,
                          const std::vector<PlannedCall>& planned) {
  std::string plan = fmt::format("program mnnvl-ar {}\ncommand run\nprocesses {}\nworld size {}\nhandles {}\n",
                                 MNNVL_AR_VERSION, job.processes(), world, handle_kind_name(handles));
  plan += fmt::format("inputs {} seed {}\ntimeout-ms {}\nround-bytes {}\ndirect-from {}\nomit-rank {}\ndigests {}\n",
                      s.inputs_text, s.seed, s.timeout_ms, s.round_bytes, s.direct_from_bytes, s.omit_rank,
                      s.digests || job.multi_process());
  for (std::size_t i = 0; i < planned.size(); ++i)
    plan += plan_line(static_cast<int>(i) + 1, planned[i].label, planned[i].call, planned[i].call.strategy,
                      planned[i].expect, planned[i].seed) +
            (takes_direct_path(s, planned[i]) ? " direct\n" : "\n");
  return plan;
}

}  // namespace ar
