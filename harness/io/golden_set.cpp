// build_golden_set: every golden case's files and the manifest that names them (golden_manifest.h).
#include <fmt/format.h>

#include "harness/io/golden_manifest.h"
#include "harness/io/npy.h"
#include "harness/io/quant_files.h"
#include "harness/io/sha256.h"
#include "reference/all_reduce.h"
#include "reference/float_bits.h"

namespace ar {
namespace {

/// The manifest layout this file writes (golden_manifest.cpp reads it).
constexpr int kFormat = 1;

/// The fields every case has: name, kind, seed, shape and input file.
nlohmann::json case_entry(const GoldenCase& c, const ProblemShape& shape, const nlohmann::json& input) {
  return {{"name", c.name},
          {"kind", c.kind},
          {"description", c.description},
          {"seed", c.seed},
          {"dtype", dtype_name(shape.dtype)},
          {"npy_dtype", dtype_info(shape.dtype).npy_descr},
          {"world_size", shape.world_size},
          {"tokens", shape.tokens},
          {"hidden", shape.hidden},
          {"auto", strategy_name(resolve_strategy(Strategy::kAuto, shape))},
          {"input", input}};
}

/// Files of the set with one copy of each content: a second file of the same bytes points to the first.
class FileTable {
 public:
  explicit FileTable(GoldenSet& set) : set_(set) {}

  nlohmann::json add(const std::string& name, std::string bytes) {
    const std::string sha = sha256_hex(bytes);
    for (const auto& [known_sha, known_file] : written_)
      if (known_sha == sha) return {{"file", known_file}, {"sha256", sha}};
    written_.emplace_back(sha, name);
    set_.files.emplace_back(name, std::move(bytes));
    return {{"file", name}, {"sha256", sha}};
  }

 private:
  GoldenSet& set_;
  std::vector<std::pair<std::string, std::string>> written_;  // sha -> file
};

nlohmann::json all_reduce_entry(const GoldenCase& c, GoldenSet& set) {
  const ProblemShape shape = shape_of_input(c.input);
  set.files.emplace_back(c.name + ".in.npy", encode_npy(c.input));
  nlohmann::json entry =
      case_entry(c, shape, {{"file", set.files.back().first}, {"sha256", sha256_hex(set.files.back().second)}});
  // One file per distinct output of the case; identical outputs of other (strategy, profile) pairs point to it.
  FileTable outputs_table(set);
  nlohmann::json outputs = nlohmann::json::object();
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
    for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kTrtllm, Profile::kInvariant})
      outputs[golden_output_key(s, p)] =
          outputs_table.add(fmt::format("{}.{}.{}.npy", c.name, strategy_name(s), profile_name(p)),
                            encode_npy(reference_all_reduce(c.input, s, p)));
  entry["outputs"] = outputs;
  return entry;
}

nlohmann::json launch_entry(const NormLaunch& l) {
  return {{"cluster_launch", l.cluster_launch},
          {"cluster_size", l.cluster_size()},
          {"block_size", l.block_size()},
          {"loads_per_thread", l.loads_per_thread()}};
}

/// The fused part's inputs and parameters (no outputs): residual, gamma, eps, weight bias, SM count and, for
/// information, each strategy's launch.
nlohmann::json fused_inputs_entry(const GoldenCase& c, const ProblemShape& shape, FileTable& files) {
  const GoldenFusedInputs& f = *c.fused;
  nlohmann::json fused{{"residual", files.add(c.name + ".residual.npy", encode_npy(f.residual))},
                       {"gamma", files.add(c.name + ".gamma.npy", encode_npy(f.gamma))},
                       {"eps", to_double(f.epsilon, DType::kFp32)},
                       {"eps_bits", f.epsilon},
                       {"weight_bias", to_double(f.weight_bias, DType::kFp32)},
                       {"weight_bias_bits", f.weight_bias},
                       {"sm_count", f.sm_count}};
  nlohmann::json launches = nlohmann::json::object();
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
    launches[std::string(strategy_name(s))] =
        launch_entry(norm_launch(s, shape.tokens, shape.hidden, shape.dtype, f.sm_count));
  fused["launch"] = launches;
  return fused;
}

/// A fused case: its files go through the table the fused cases share, so cases of one input (other SM
/// counts, another weight bias) point to the same files.
nlohmann::json fused_entry(const GoldenCase& c, FileTable& files) {
  const ProblemShape shape = shape_of_input(c.input);
  const GoldenFusedInputs& f = *c.fused;
  nlohmann::json entry = case_entry(c, shape, files.add(c.name + ".in.npy", encode_npy(c.input)));
  nlohmann::json fused = fused_inputs_entry(c, shape, files);
  nlohmann::json outputs = nlohmann::json::object();
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
    for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant}) {
      const FusedOptions o{
          .strategy = s, .profile = p, .sm_count = f.sm_count, .epsilon = f.epsilon, .weight_bias = f.weight_bias};
      const FusedResult r = reference_fused_rms_norm(c.input, f.residual, f.gamma, o);
      const std::string stem = fmt::format("{}.{}.{}", c.name, strategy_name(s), profile_name(p));
      outputs[golden_output_key(s, p)] = {
          {"normalized", files.add(stem + ".normalized.npy", encode_npy(r.normalized))},
          {"residual_out", files.add(stem + ".residual_out.npy", encode_npy(r.residual_out))}};
    }
  }
  fused["outputs"] = outputs;
  entry["fused"] = fused;
  return entry;
}

/// A quantised case: the fused part's inputs, and per quantisation the codes (and scales) of both strategies
/// under flashinfer, ieee and invariant. Identical files are stored once across the quantised cases.
nlohmann::json quant_entry(const GoldenCase& c, FileTable& files) {
  const ProblemShape shape = shape_of_input(c.input);
  const GoldenFusedInputs& f = *c.fused;
  nlohmann::json entry = case_entry(c, shape, files.add(c.name + ".in.npy", encode_npy(c.input)));
  entry["fused"] = fused_inputs_entry(c, shape, files);
  nlohmann::json variants = nlohmann::json::array();
  for (const GoldenQuantVariant& v : c.quant) {
    const QuantOptions& q = v.options;
    nlohmann::json variant{{"name", v.name}, {"mode", quant_mode_name(q.mode)}};
    if (q.mode != QuantMode::kFp8Dynamic) {
      variant["scale"] = to_double(q.scale, DType::kFp32);
      variant["scale_bits"] = q.scale;
    }
    if (q.mode == QuantMode::kNvfp4) variant["layout"] = scale_layout_name(q.layout);
    nlohmann::json outputs = nlohmann::json::object();
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
      for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant}) {
        const FusedOptions o{
            .strategy = s, .profile = p, .sm_count = f.sm_count, .epsilon = f.epsilon, .weight_bias = f.weight_bias};
        const QuantizedOutput r = reference_fused_quant(c.input, f.residual, f.gamma, o, q).quant;
        const std::string stem = fmt::format("{}.{}.{}.{}", c.name, v.name, strategy_name(s), profile_name(p));
        nlohmann::json files_of{{"quant_out", files.add(stem + ".quant_out.npy", encode_quant_out(r))}};
        if (has_scale_out(q.mode)) files_of["scale_out"] = files.add(stem + ".scale_out.npy", encode_scale_out(r));
        outputs[golden_output_key(s, p)] = files_of;
      }
    variant["outputs"] = outputs;
    variants.push_back(variant);
  }
  entry["quant"] = variants;
  return entry;
}

}  // namespace

GoldenSet build_golden_set() {
  GoldenSet set;
  nlohmann::json cases = nlohmann::json::array(), fused_cases = nlohmann::json::array();
  for (const GoldenCase& c : golden_cases()) cases.push_back(all_reduce_entry(c, set));
  FileTable fused_files(set);
  for (const GoldenCase& c : golden_fused_cases()) fused_cases.push_back(fused_entry(c, fused_files));
  nlohmann::json quant_cases = nlohmann::json::array();
  FileTable quant_files(set);
  for (const GoldenCase& c : golden_quant_cases()) quant_cases.push_back(quant_entry(c, quant_files));
  set.manifest = {{"format", kFormat},
                  {"generator", "mnnvl-ar data"},
                  {"note",
                   "inputs are [W, N, D]; outputs [N, D]; bf16 is stored as raw <u2 bits; fused cases add a "
                   "residual [N, D] and gamma [D], and list normalized and residual_out per strategy/profile (flashinfer, "
                   "ieee, invariant); quant_cases add the quantised outputs (uint8 codes, scales) of each "
                   "quantisation per strategy/profile"},
                  {"cases", cases},
                  {"fused_cases", fused_cases},
                  {"quant_cases", quant_cases}};
  return set;
}

}  // namespace ar
