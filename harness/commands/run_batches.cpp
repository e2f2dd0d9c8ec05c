#include "harness/commands/run_batches.h"

#include <algorithm>
#include <ostream>
#include <set>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/io/exit_codes.h"
#include "harness/io/golden_cases.h"
#include "reference/fused_rms_norm.h"

namespace ar {
namespace {

/// The batch sizes of a config: 1..8, 2^k and 3 * 2^(k-1), and every range's last N and the next, within
/// max_tokens and the byte bound.
std::vector<std::int64_t> batch_sizes(std::int64_t most, const std::vector<TokenRange>& ranges) {
  std::set<std::int64_t> sizes;
  for (std::int64_t n = 1; n <= 8; ++n) sizes.insert(n);
  for (std::int64_t p = 8; p <= most; p *= 2) {
    sizes.insert(p);
    sizes.insert(p + p / 2);
  }
  for (const TokenRange& r : ranges) {
    sizes.insert(r.last);
    sizes.insert(r.last + 1);
  }
  sizes.insert(most);
  std::vector<std::int64_t> out;
  for (std::int64_t n : sizes)
    if (n >= 1 && n <= most) out.push_back(n);
  return out;
}

/// The largest N of a config: max_tokens, the byte bound, and what the kernels' workspace and the model allow.
std::int64_t largest_batch(const BatchQuestion& q, const BatchSettings& b) {
  const std::int64_t row_bytes = std::int64_t{q.world_size} * q.hidden * dtype_bytes(q.dtype);
  std::int64_t most = std::min(b.max_tokens, std::max<std::int64_t>(1, b.max_input_bytes / row_bytes));
  while (most > 1) {
    const ProblemShape shape{q.world_size, most, q.hidden, q.dtype};
    if (!validate_shape(shape) && !check_fits_workspace(q.strategy, shape, kMaxBufferBytes)) break;
    most /= 2;
  }
  return most;
}

TokenInputs probe(const BatchQuestion& q, const HostTensor& gamma, HostTensor input, std::uint64_t seed,
                  std::string source) {
  TokenInputs in;
  in.input = std::move(input);
  if (q.fused) {
    in.residual = random_input(q.dtype, 1, 1, q.hidden, seed ^ 0x5EEDull, 4).reshaped({1, q.hidden});
    in.gamma = gamma;
  }
  in.source = std::move(source);
  return in;
}

std::uint64_t config_seed(const RunSettings& s, const BatchQuestion& q) {
  return s.seed * 1000003ull + static_cast<std::uint64_t>(q.world_size) * 131ull +
         static_cast<std::uint64_t>(q.dtype) * 17ull + static_cast<std::uint64_t>(q.strategy) * 5ull +
         static_cast<std::uint64_t>(q.profile) * 3ull + (q.fused ? 1ull : 0ull) +
         static_cast<std::uint64_t>(q.quant.mode) * 7ull;
}

BatchConfig make_config(const RunSettings& s, const BatchSettings& b, const BatchQuestion& q) {
  BatchConfig c;
  c.question = q;
  const std::int64_t most = largest_batch(q, b);
  c.ranges = token_ranges(q, most);
  if (!c.ranges.empty() && c.ranges.back().last < most)
    throw UsageError(fmt::format("--batches: the model refuses N = {} at W = {}, D = {}, {}",
                                 c.ranges.back().last + 1, q.world_size, q.hidden, dtype_name(q.dtype)));
  c.sizes = batch_sizes(most, c.ranges);
  const std::uint64_t seed = config_seed(s, q);
  if (q.fused) c.gamma = random_input(q.dtype, 1, 1, q.hidden, seed ^ 0x6A33Aull, 1).reshaped({q.hidden});
  c.probes.push_back(probe(q, c.gamma, random_input(q.dtype, q.world_size, 1, q.hidden, seed, 12), seed,
                           fmt::format("random_input(seed={})", seed)));
  c.probes.push_back(probe(q, c.gamma, adversarial_input(q.dtype, q.world_size, 1, q.hidden, seed + 1), seed + 1,
                           fmt::format("adversarial_input(seed={})", seed + 1)));
  if (q.dtype != DType::kFp16)
    c.probes.push_back(
        probe(q, c.gamma, flushed_negative_sum_token(q.dtype, q.world_size, q.hidden), seed + 2, "sums flushed to -0"));
  // A witness of every boundary: candidates adversarial and random rows in turn, with the config's gamma.
  const TokenInputSource source = [&](int i) {
    const std::uint64_t k = seed + 100 + static_cast<std::uint64_t>(i);
    HostTensor x = i % 2 == 0 ? adversarial_input(q.dtype, q.world_size, 1, q.hidden, k)
                              : random_input(q.dtype, q.world_size, 1, q.hidden, k, 12);
    return probe(q, c.gamma, std::move(x), k,
                 fmt::format("{}_input(seed={})", i % 2 == 0 ? "adversarial" : "random", k));
  };
  for (std::size_t r = 0; r + 1 < c.ranges.size(); ++r) {
    Witness w = find_witness(q, c.ranges[r].path, c.ranges[r + 1].path, source, b.witness_tries);
    if (w.found) {
      w.inputs.source += fmt::format(" (witness of N = {} -> {})", c.ranges[r].last, c.ranges[r].last + 1);
      c.probes.push_back(std::move(w.inputs));
    }
  }
  return c;
}

}  // namespace

BatchPlan plan_batches(const RunSettings& s, const BatchSettings& b, int world) {
  BatchPlan plan;
  for (DType dt : s.dtypes)
    for (Profile profile : s.profiles)
      for (Strategy st : b.strategies)
        for (const BatchKind& kind : b.kinds) {
          BatchQuestion q{.world_size = world, .hidden = s.hidden, .dtype = dt, .strategy = st, .profile = profile};
          q.fused = kind.fused;
          q.quant = QuantOptions{kind.quant, s.quant_scale, ScaleLayout::kSwizzled128x4};
          if (kind.quant != QuantMode::kNone) try {
              validate_quant(q.quant, dt, s.hidden);
            } catch (const std::invalid_argument& e) {
              throw UsageError(fmt::format("--batch-kinds {} with {}, D = {}: {}", batch_kind_name(kind), dtype_name(dt),
                                           s.hidden, e.what()));
            }
          if (kind.fused) {
            q.sm_count = s.sms > 0 ? s.sms : kDefaultSmCount;
            q.epsilon = s.epsilon.value_or(default_epsilon(dt));
            q.weight_bias = s.weight_bias;
          }
          plan.configs.push_back(make_config(s, b, q));
          const std::size_t config = plan.configs.size() - 1;
          const BatchConfig& c = plan.configs.back();
          const int probes = static_cast<int>(c.probes.size());
          for (std::int64_t n : c.sizes) {
            // N < probes: several calls of N, each with the next N probes; else one, the probes spread over it.
            for (int first = 0; first < probes; first += static_cast<int>(std::min<std::int64_t>(n, probes))) {
              BatchCall call{config, n, {}};
              const int count = static_cast<int>(std::min<std::int64_t>(n, probes - first));
              for (int k = 0; k < count; ++k)
                call.placed.emplace_back(first + k, n >= probes ? k * (n / probes) + (n / probes) / 2 : k);
              plan.calls.push_back(std::move(call));
            }
          }
        }
  for (std::size_t i = 0; i < plan.calls.size(); ++i) {
    const BatchCall& bc = plan.calls[i];
    const BatchQuestion& q = plan.configs[bc.config].question;
    PlannedCall p;
    p.label = fmt::format("batch{}", bc.config + 1);
    p.call = GpuCall{ProblemShape{q.world_size, bc.tokens, q.hidden, q.dtype}, q.strategy, q.profile,
                     s.pdls.empty() ? true : s.pdls[i % s.pdls.size()]};
    p.expect = q.profile;
    p.resolved = resolve_strategy(q.strategy, p.call.shape);
    p.seed = config_seed(s, q) + static_cast<std::uint64_t>(i) * 7919ull;
    if (q.fused)
      p.call.norm = GpuNorm{q.epsilon, q.weight_bias, q.sm_count, false, q.quant.mode, q.quant.layout, q.quant.scale};
    plan.planned.push_back(std::move(p));
  }
  return plan;
}

void fill_batch_call(const BatchPlan& plan, std::size_t i, PlannedCall& call) {
  const BatchCall& bc = plan.calls[i];
  const BatchConfig& c = plan.configs[bc.config];
  const BatchQuestion& q = c.question;
  const std::int64_t n = bc.tokens, width = q.hidden;
  HostTensor x = random_input(q.dtype, q.world_size, n, width, call.seed, 12);
  std::optional<HostTensor> residual;
  if (q.fused) residual = random_input(q.dtype, 1, n, width, call.seed ^ 0x5EEDull, 4).reshaped({n, width});
  for (const auto& [k, row] : bc.placed) {
    const TokenInputs& p = c.probes[static_cast<std::size_t>(k)];
    for (int r = 0; r < q.world_size; ++r)
      for (std::int64_t d = 0; d < width; ++d) x.set_bits((r * n + row) * width + d, p.input.bits(r * width + d));
    if (residual)
      for (std::int64_t d = 0; d < width; ++d) residual->set_bits(row * width + d, p.residual.bits(d));
  }
  call.input = std::move(x);
  if (residual) call.norm = PlannedNorm{std::move(*residual), c.gamma, std::nullopt};
}

std::string_view batch_kind_name(const BatchKind& k) {
  if (!k.fused) return "plain";
  return k.quant == QuantMode::kNone ? "fused" : quant_mode_name(k.quant);
}

void BatchObservations::record_quant(std::size_t i, const QuantizedOutput& output) {
  const BatchCall& bc = plan_.calls[i];
  for (const auto& [k, row] : bc.placed) rows_[{bc.config, k}].emplace_back(bc.tokens, quant_row_words(output, row));
}

void BatchObservations::record(std::size_t i, const HostTensor& output) {
  const BatchCall& bc = plan_.calls[i];
  const std::int64_t width = plan_.configs[bc.config].question.hidden;
  for (const auto& [k, row] : bc.placed) {
    std::vector<std::uint32_t> bits(static_cast<std::size_t>(width));
    for (std::int64_t d = 0; d < width; ++d) bits[static_cast<std::size_t>(d)] = output.bits(row * width + d);
    rows_[{bc.config, k}].emplace_back(bc.tokens, std::move(bits));
  }
}

std::vector<BatchObservations::Verdict> BatchObservations::verdicts() const {
  std::vector<Verdict> out;
  for (const auto& [key, seen] : rows_) {
    const BatchConfig& c = plan_.configs[key.first];
    const TokenInputs& p = c.probes[static_cast<std::size_t>(key.second)];
    Verdict v;
    v.config = key.first;
    v.probe = key.second;
    v.batches = static_cast<int>(seen.size());
    // The model's row of this probe in a batch of N: the path of N decides it (tests/reference prove that
    // this equals the probe's row of the whole call's model).
    std::vector<std::vector<std::uint32_t>> model;
    std::map<std::int64_t, std::vector<std::uint32_t>> by_tokens;
    for (const auto& [n, bits] : seen) {
      auto it = by_tokens.find(n);
      if (it == by_tokens.end()) {
        const TokenPath path = token_path(c.question, n);
        std::vector<std::uint32_t> b;
        if (c.question.quant.mode != QuantMode::kNone) {
          b = token_quant_words(c.question, path, p);
        } else {
          const HostTensor row = token_output(c.question, path, p);
          b.resize(static_cast<std::size_t>(row.size()));
          for (std::int64_t d = 0; d < row.size(); ++d) b[static_cast<std::size_t>(d)] = row.bits(d);
        }
        it = by_tokens.emplace(n, std::move(b)).first;
      }
      model.push_back(it->second);
    }
    std::set<std::vector<std::uint32_t>> gpu_set, model_set;
    for (std::size_t a = 0; a < seen.size(); ++a) {
      gpu_set.insert(seen[a].second);
      model_set.insert(model[a]);
      for (std::size_t b = a + 1; b < seen.size(); ++b) {
        const bool gpu_same = seen[a].second == seen[b].second, model_same = model[a] == model[b];
        if (gpu_same == model_same) continue;
        if (v.pairs_disagreeing++ == 0)
          v.first_disagreement = fmt::format("N = {} and N = {}: the GPU gives {} bits, the model {}", seen[a].first,
                                             seen[b].first, gpu_same ? "the same" : "different",
                                             model_same ? "the same" : "different");
      }
    }
    v.gpu_distinct = static_cast<int>(gpu_set.size());
    v.model_distinct = static_cast<int>(model_set.size());
    out.push_back(v);
  }
  return out;
}

std::vector<BatchSummary> summarize_batches(const BatchPlan& plan, const std::vector<BatchObservations::Verdict>& v) {
  std::vector<BatchSummary> out;
  for (std::size_t ci = 0; ci < plan.configs.size(); ++ci) {
    const BatchConfig& c = plan.configs[ci];
    const BatchQuestion& q = c.question;
    BatchSummary b{.world = q.world_size,
                   .dtype = q.dtype,
                   .profile = q.profile,
                   .strategy = q.strategy,
                   .fused = q.fused,
                   .quant = q.quant.mode,
                   .sm_count = q.fused ? q.sm_count : 0,
                   .hidden = q.hidden,
                   .max_tokens = c.sizes.back(),
                   .batch_sizes = static_cast<int>(c.sizes.size()),
                   .boundaries = static_cast<int>(c.ranges.size()) - 1};
    for (const auto& x : v) {
      if (x.config != ci) continue;
      ++b.probes;
      b.gpu_distinct = std::max(b.gpu_distinct, x.gpu_distinct);
      b.model_distinct = std::max(b.model_distinct, x.model_distinct);
      b.pairs_disagreeing += x.pairs_disagreeing;
    }
    b.ok = b.probes > 0 && b.pairs_disagreeing == 0 && (q.profile != Profile::kInvariant || b.gpu_distinct == 1);
    out.push_back(b);
  }
  return out;
}

bool print_batch_report(std::ostream& out, const BatchPlan& plan, const std::vector<BatchObservations::Verdict>& v) {
  const std::vector<BatchSummary> summaries = summarize_batches(plan, v);
  bool ok = true;
  fmt::print(out, "\n# batch invariance: each probe's rows compared across the batches it was placed in\n");
  fmt::print(out, "{:>3} {:>5} {:>10} {:>8} {:>11} {:>4} {:>10} {:>12} {:>7} {:>9} {:>11} {:>9}\n", "W", "type",
             "profile", "strategy", "kind", "SMs", "N", "boundaries", "probes", "gpu bits", "model bits", "disagree");
  for (std::size_t ci = 0; ci < summaries.size(); ++ci) {
    const BatchSummary& b = summaries[ci];
    ok = ok && b.ok;
    fmt::print(out, "{:>3} {:>5} {:>10} {:>8} {:>11} {:>4} {:>10} {:>12} {:>7} {:>9} {:>11} {:>9}\n", b.world,
               dtype_name(b.dtype), profile_name(b.profile), strategy_name(b.strategy),
               batch_kind_name(BatchKind{b.fused, b.quant}),
               b.fused ? std::to_string(b.sm_count) : "-", fmt::format("1..{}", b.max_tokens), b.boundaries,
               b.probes, b.gpu_distinct, b.model_distinct, b.pairs_disagreeing);
    for (const auto& x : v)
      if (x.config == ci && !x.first_disagreement.empty()) {
        fmt::print(out, "    first disagreement: probe {} ({}): {}\n", x.probe,
                   plan.configs[ci].probes[static_cast<std::size_t>(x.probe)].source, x.first_disagreement);
        break;
      }
  }
  fmt::print(out, "# batch invariance: {}\n",
             ok ? "every probe's bits changed across batches exactly where the model's paths change (and never "
                  "under the invariant profile)"
                : "DIFFERENCES (see above)");
  return ok;
}

}  // namespace ar
