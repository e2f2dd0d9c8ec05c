// mnnvl-ar invariance: which batch sizes N can change a token's bits (SPEC section 14), from the model
// (reference/batch_invariance.h): the ranges of N with one path, and at every boundary a witness token whose
// bits differ across it, with where the two computations part.
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "harness/commands/commands.h"
#include "harness/commands/fused_options.h"
#include "harness/commands/options.h"
#include "harness/io/exit_codes.h"
#include "harness/io/golden_cases.h"
#include "harness/io/output_file.h"
#include "reference/batch_invariance.h"
#include "reference/explain.h"
#include "reference/fused_rms_norm.h"

namespace ar {
namespace {

constexpr std::int64_t kMaxTokens = 1 << 20;

/// Candidate tokens: for bf16 and fp32 first a row whose sums flush to -0, then adversarial rows (the edge
/// cases that separate orders) and full-mantissa random rows in turn; for the fused call a residual and a
/// gamma too.
TokenInputSource witness_source(const BatchQuestion& q, std::uint64_t seed) {
  const bool edge_first = q.dtype != DType::kFp16;
  return [q, seed, edge_first](int i) {
    TokenInputs in;
    const int k = edge_first ? i - 1 : i;
    const bool adversarial = k % 2 == 0;
    const std::uint64_t s = seed + static_cast<std::uint64_t>(k / 2);
    if (k < 0) {
      in.input = flushed_negative_sum_token(q.dtype, q.world_size, q.hidden);
      in.source = "the last two ranks -1.5 * 2^-126 and 2^-126, the others +0, in every element (a sum flushed to -0)";
    } else {
      in.input = adversarial ? adversarial_input(q.dtype, q.world_size, 1, q.hidden, s)
                             : random_input(q.dtype, q.world_size, 1, q.hidden, s, 12);
      in.source = fmt::format("{}_input(W={}, N=1, D={}, seed={})", adversarial ? "adversarial" : "random",
                              q.world_size, q.hidden, s);
    }
    if (q.fused) {
      in.residual = random_input(q.dtype, 1, 1, q.hidden, s ^ 0x5EEDull, 4).reshaped({1, q.hidden});
      in.gamma = random_input(q.dtype, 1, 1, q.hidden, s ^ 0x6A33Aull, 1).reshaped({q.hidden});
      in.source += fmt::format(", residual random seed {}, gamma random seed {}", s ^ 0x5EEDull, s ^ 0x6A33Aull);
    }
    return in;
  };
}

struct Boundary {
  std::int64_t last = 0;  ///< the last N of the range before it
  Witness witness;
};

/// What holds at a boundary, in one sentence.
std::string verdict(const BatchQuestion& q, const TokenRange& a, const TokenRange& b, const Witness& w) {
  if (differ_only_in_zero_sign(a.path, b.path))
    return w.found ? "only the sign of a zero result can change (a flushed negative sum: -0 against +0)"
                   : "only the sign of a zero result could change, and no candidate showed even that";
  if (!w.found) return fmt::format("the path changes, but none of {} candidate tokens changed", w.tried);
  if (w.zero_sign_only) return "tokens can change, and the witness changes only the sign of zeros";
  return q.fused && a.path.strategy == b.path.strategy ? "tokens can change (the sum-of-squares tree changes)"
                                                       : "tokens can change";
}

nlohmann::json path_json(const TokenPath& p) {
  nlohmann::json j{{"strategy", strategy_name(p.strategy)}, {"order", describe(p.order)}};
  if (p.launch)
    j["tree"] = {{"block_size", p.launch->block_size()},
                 {"cluster_size", p.launch->cluster_size()},
                 {"loads_per_thread", p.launch->loads_per_thread()},
                 {"cluster_launch", p.launch->cluster_launch}};
  return j;
}

std::string report_json(const BatchQuestion& q, std::int64_t max_tokens, const std::vector<TokenRange>& ranges,
                        const std::vector<Boundary>& boundaries) {
  nlohmann::json j{{"command", "invariance"},
                   {"world_size", q.world_size},
                   {"hidden", q.hidden},
                   {"dtype", dtype_name(q.dtype)},
                   {"strategy", strategy_name(q.strategy)},
                   {"profile", profile_name(q.profile)},
                   {"fused", q.fused},
                   {"max_tokens", max_tokens}};
  if (q.fused) j["sm_count"] = q.sm_count;
  j["ranges"] = nlohmann::json::array();
  for (const TokenRange& r : ranges) {
    nlohmann::json range{{"first", r.first}, {"last", r.last}, {"path", path_json(r.path)}};
    for (const auto& [from, s] : r.strategy_switches)
      range["strategy_switches"].push_back({{"from", from}, {"strategy", strategy_name(s)}});
    j["ranges"].push_back(range);
  }
  j["boundaries"] = nlohmann::json::array();
  for (std::size_t i = 0; i < boundaries.size(); ++i) {
    const Witness& w = boundaries[i].witness;
    nlohmann::json b{{"between", {boundaries[i].last, boundaries[i].last + 1}},
                     {"verdict", verdict(q, ranges[i], ranges[i + 1], w)},
                     {"witness_found", w.found},
                     {"candidates_tried", w.tried}};
    if (w.found)
      b["witness"] = {{"input", w.inputs.source},
                      {"element", w.index},
                      {"before_bits", w.before},
                      {"after_bits", w.after},
                      {"zero_sign_only", w.zero_sign_only},
                      {"parts", w.parts}};
    j["boundaries"].push_back(b);
  }
  j["boundary_count"] = boundaries.size();
  return j.dump(1) + "\n";
}

void print_report(std::ostream& out, const BatchQuestion& q, std::int64_t max_tokens,
                  const std::vector<TokenRange>& ranges, const std::vector<Boundary>& boundaries) {
  fmt::print(out, "{} call, W = {}, D = {}, {}, {}, {}{}: N = 1..{}\n\n", q.fused ? "fused" : "plain", q.world_size,
             q.hidden, dtype_name(q.dtype), strategy_name(q.strategy), profile_name(q.profile),
             q.fused ? fmt::format(", {} SMs", q.sm_count) : "", ranges.empty() ? 0 : ranges.back().last);
  fmt::print(out, "{:>8} {:>8}  {}\n", "N from", "to", "path (a token's bits cannot change inside a range)");
  for (const TokenRange& r : ranges) fmt::print(out, "{:>8} {:>8}  {}\n", r.first, r.last, r.describe());
  if (!ranges.empty() && ranges.back().last < max_tokens)
    fmt::print(out, "{:>8}     ...   no call from here on: the model refuses N = {}\n", ranges.back().last + 1,
               ranges.back().last + 1);
  if (boundaries.empty()) {
    fmt::print(out, "\none path for every N: a token's bits never depend on the batch size here\n");
    return;
  }
  for (std::size_t i = 0; i < boundaries.size(); ++i) {
    const Boundary& b = boundaries[i];
    const Witness& w = b.witness;
    fmt::print(out, "\nN = {} -> {}: {}\n", b.last, b.last + 1, verdict(q, ranges[i], ranges[i + 1], w));
    if (!w.found) continue;
    fmt::print(out, "  witness: {}\n  element {}: {} at N = {}, {} at N = {}\n", w.inputs.source, w.index,
               format_value(w.before, q.dtype), b.last, format_value(w.after, q.dtype), b.last + 1);
    if (!w.parts.empty()) fmt::print(out, "  {}\n", w.parts);
  }
}

}  // namespace

int invariance_command(const CommandArgs& args, std::ostream& out, std::ostream&) {
  BatchQuestion q;
  std::string dtype_text, strategy_text, profile_text, json_path;
  std::int64_t max_tokens = 16384;
  std::uint64_t seed = 1;
  int tries = 1000;
  double eps = 0, weight_bias = 0;
  po::options_description options("options");
  // clang-format off
  options.add_options()
      ("world,w", po::value(&q.world_size)->default_value(8), "world size W")
      ("hidden", po::value(&q.hidden)->default_value(4096), "hidden size D")
      ("dtype,d", po::value(&dtype_text)->default_value("bf16"), "bf16, fp16 or fp32")
      ("strategy,s", po::value(&strategy_text)->default_value("auto"), "oneshot, twoshot or auto")
      ("profile,p", po::value(&profile_text)->default_value("flashinfer"), "flashinfer, ieee, invariant, or trtllm (plain only)")
      ("fused", "the fused all-reduce + residual add + RMSNorm instead of the plain all-reduce")
      ("sms", po::value(&q.sm_count)->default_value(kDefaultSmCount), "fused: the GPU's SM count (its launch, and tree)")
      ("eps", po::value(&eps), "fused: epsilon (default torch.finfo(dtype).eps)")
      ("weight-bias", po::value(&weight_bias)->default_value(0), "fused: added to gamma")
      ("max-tokens,N", po::value(&max_tokens)->default_value(16384), "largest batch size N to go over")
      ("tries", po::value(&tries)->default_value(1000), "candidate tokens tried for each boundary's witness")
      ("seed", po::value(&seed)->default_value(1), "seed of the first candidate token")
      ("json", po::value(&json_path)->default_value(""), "also write the report as JSON to this file");
  // clang-format on
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar invariance [-w 8] [--hidden 4096] [-d bf16] [-s auto] [-p flashinfer] [--fused [--sms 132]] "
      "[-N 16384] [--json FILE]",
      "Goes over every batch size N = 1..N_max of one call (W, D, dtype, strategy, profile; plain or fused,\n"
      "with the SM count whose launch the fused call follows) and splits them into ranges with one path: the\n"
      "strategy (AUTO picks it by N), the reduction order, and for the fused call the launch's sum-of-squares\n"
      "tree and the multiplication order. Inside a range a token's output bits cannot depend on the rest of the\n"
      "batch. At every boundary it searches for a witness: one token (adversarial, then random rows) whose bits\n"
      "differ on the two sides, computed by the reference, with where the two computations part; and it says\n"
      "what holds there (for example that at W <= 8 AUTO's switch changes only the sign of a zero).\n\n"
      "examples:\n"
      "  mnnvl-ar invariance -w 8 --hidden 4096 -d bf16                # plain AUTO: one boundary, zero sign only\n"
      "  mnnvl-ar invariance -w 16 --hidden 4096                       # plain AUTO at W = 16: real changes\n"
      "  mnnvl-ar invariance -w 2 --hidden 8192 --fused --sms 132 --json inv.json   # the fused trees\n"
      "  mnnvl-ar invariance -w 16 --hidden 8192 --fused -p invariant  # one path for every N\n\n"
      "exit codes: 0 no token can change with N, 1 some can (boundaries found), 2 bad usage"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;
  if (!json_path.empty()) check_output_path(json_path);
  q.dtype = dtype_option(dtype_text);
  q.strategy = strategy_option(strategy_text);
  q.profile = profile_option(profile_text);
  q.fused = vm.count("fused") > 0;
  if (std::find(kWorldSizes.begin(), kWorldSizes.end(), q.world_size) == kWorldSizes.end())
    throw UsageError(fmt::format("-w {} is not a supported world size", q.world_size));
  if (q.hidden <= 0) throw UsageError("--hidden must be positive");
  if (max_tokens < 1 || max_tokens > kMaxTokens)
    throw UsageError(fmt::format("-N {} is outside [1, {}]", max_tokens, kMaxTokens));
  if (tries < 1 || tries > 100000) throw UsageError(fmt::format("--tries {} is outside [1, 100000]", tries));
  if (q.fused) {
    check_fused_profile(q.profile);
    check_sm_count("--sms", q.sm_count);
    q.epsilon = vm.count("eps") ? fp32_parameter("eps", eps) : default_epsilon(q.dtype);
    q.weight_bias = fp32_parameter("weight-bias", weight_bias);
  } else if (vm.count("eps") || !vm["weight-bias"].defaulted() || !vm["sms"].defaulted()) {
    throw UsageError("--sms, --eps and --weight-bias belong to the fused call: give --fused too");
  }
  try {
    (void)token_path(q, 1);
  } catch (const std::invalid_argument& e) {
    throw UsageError(fmt::format("W = {}, D = {}, {}: {}", q.world_size, q.hidden, dtype_name(q.dtype), e.what()));
  }

  const std::vector<TokenRange> ranges = token_ranges(q, max_tokens);
  std::vector<Boundary> boundaries;
  for (std::size_t i = 0; i + 1 < ranges.size(); ++i)
    boundaries.push_back(
        {ranges[i].last, find_witness(q, ranges[i].path, ranges[i + 1].path, witness_source(q, seed), tries)});
  print_report(out, q, max_tokens, ranges, boundaries);
  if (!json_path.empty()) write_file_atomically(json_path, report_json(q, max_tokens, ranges, boundaries));
  return boundaries.empty() ? kExitOk : kExitDifference;
}

}  // namespace ar
