#include "harness/io/golden_manifest.h"

#include <fmt/format.h>

#include "harness/io/npy.h"
#include "harness/io/sha256.h"
#include "reference/all_reduce.h"

namespace ar {

GoldenSet build_golden_set() {
  GoldenSet set;
  nlohmann::json cases = nlohmann::json::array();
  for (const GoldenCase& c : golden_cases()) {
    const ProblemShape shape = shape_of_input(c.input);
    const std::string input_file = c.name + ".in.npy";
    std::string input_bytes = encode_npy(c.input);
    nlohmann::json entry{{"name", c.name},
                         {"kind", c.kind},
                         {"description", c.description},
                         {"seed", c.seed},
                         {"dtype", dtype_name(shape.dtype)},
                         {"npy_dtype", dtype_info(shape.dtype).npy_descr},
                         {"world_size", shape.world_size},
                         {"tokens", shape.tokens},
                         {"hidden", shape.hidden},
                         {"auto", strategy_name(resolve_strategy(Strategy::kAuto, shape))},
                         {"input", {{"file", input_file}, {"sha256", sha256_hex(input_bytes)}}}};
    set.files.emplace_back(input_file, std::move(input_bytes));
    // One file per distinct output; identical outputs of other (strategy, profile) pairs point to it.
    nlohmann::json outputs = nlohmann::json::object();
    std::vector<std::pair<std::string, std::string>> written;  // sha -> file
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
      for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kTrtllm}) {
        std::string bytes = encode_npy(reference_all_reduce(c.input, s, p));
        const std::string sha = sha256_hex(bytes);
        std::string file;
        for (const auto& [known_sha, known_file] : written)
          if (known_sha == sha) file = known_file;
        if (file.empty()) {
          file = fmt::format("{}.{}.{}.npy", c.name, strategy_name(s), profile_name(p));
          written.emplace_back(sha, file);
          set.files.emplace_back(file, std::move(bytes));
        }
        outputs[fmt::format("{}/{}", strategy_name(s), profile_name(p))] = {{"file", file}, {"sha256", sha}};
      }
    }
    entry["outputs"] = outputs;
    cases.push_back(entry);
  }
  set.manifest = {{"format", 1},
                  {"generator", "mnnvl-ar data"},
                  {"note", "inputs are [W, N, D]; outputs [N, D]; bf16 is stored as raw <u2 bits"},
                  {"cases", cases}};
  return set;
}

}  // namespace ar
