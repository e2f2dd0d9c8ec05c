// The golden manifest (data/manifest.json): for every golden case its seed, shape, input file and the
// expected output of every strategy and profile, each file with its sha256; for every fused case (a list of
// its own, "fused_cases") the residual, gamma, epsilon, weight bias and SM count too, and the expected
// normalised and residual outputs of both strategies under the flashinfer and ieee profiles; for every
// quantised case ("quant_cases") the fused part's inputs and, per quantisation, the codes and scales of both
// strategies under flashinfer, ieee and invariant. `mnnvl-ar data`
// writes it (build_golden_set); read_golden_manifest is its one reader, for the tests and the GPU
// `run --inputs golden`.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/io/golden_cases.h"
#include "reference/fused_quant.h"
#include "reference/fused_rms_norm.h"
#include "reference/strategy.h"
#include "reference/tensor.h"

namespace ar {

/// The manifest's name inside a golden folder.
inline constexpr std::string_view kGoldenManifestFile = "manifest.json";

/// "oneshot/flashinfer": how the manifest keys the expected output of one strategy and profile.
std::string golden_output_key(Strategy strategy, Profile profile);

/// Files of one generated golden set: name -> bytes, plus the manifest JSON naming them.
struct GoldenSet {
  std::vector<std::pair<std::string, std::string>> files;  ///< file name -> contents (.npy bytes)
  nlohmann::json manifest;
};

/// Builds every golden case's input and expected outputs in memory.
GoldenSet build_golden_set();

/// One file the manifest names.
struct GoldenFile {
  std::string file;    ///< its name inside the golden folder
  std::string sha256;  ///< lowercase hex of its bytes; empty where the manifest records none
};

/// The strategy (ONESHOT or TWOSHOT, never AUTO) and profile of one expected output.
struct GoldenOutput {
  Strategy strategy = Strategy::kOneShot;
  Profile profile = Profile::kFlashInfer;
  auto operator<=>(const GoldenOutput&) const = default;
};

/// The two files of one fused output, both [N, D].
struct GoldenFusedFiles {
  GoldenFile normalized;
  GoldenFile residual_out;
};

/// The fused part of a case: what the fused call takes besides the input, and what it must return.
struct GoldenFused {
  GoldenFile residual;            ///< [N, D]
  GoldenFile gamma;               ///< [D]
  std::uint32_t epsilon = 0;      ///< fp32 bits, as the kernel holds it
  std::uint32_t weight_bias = 0;  ///< fp32 bits
  /// The SM count the launch shape is computed for (norm_launch): the sum-of-squares tree, and so the
  /// normalised bits, follow it. A GPU run must launch for this count, not the device's.
  int sm_count = kDefaultSmCount;
  /// Every (strategy, profile) the manifest lists: ONESHOT and TWOSHOT under flashinfer and ieee.
  std::map<GoldenOutput, GoldenFusedFiles> outputs;

  /// The options reference_fused_rms_norm reproduces an output with: `strategy` and `profile` as given (AUTO
  /// stays AUTO and resolves by the shape), and the case's epsilon, weight bias and SM count.
  FusedOptions options(Strategy strategy, Profile profile) const;
};

/// The files of one quantised output.
struct GoldenQuantFiles {
  GoldenFile quant_out;                 ///< uint8 [N, D] (FP8) or [N, D / 2] (NVFP4)
  std::optional<GoldenFile> scale_out;  ///< fp8-dynamic fp32 [N, 1], NVFP4 uint8 (harness/io/quant_files.h)
};

/// One quantisation of a quantised case, and what it must give.
struct GoldenQuant {
  std::string name;      ///< unique within its case, e.g. "nvfp4-swizzled-g1"
  QuantOptions options;  ///< mode, scale (fp32 bits; 1 for fp8-dynamic, which reads none) and layout
  /// Every (strategy, profile) the manifest lists: ONESHOT and TWOSHOT under flashinfer, ieee and invariant.
  std::map<GoldenOutput, GoldenQuantFiles> outputs;
};

/// One case of the manifest, typed.
struct GoldenManifestCase {
  std::string name;  ///< unique within the manifest (both lists), e.g. "random_bf16_w16"
  std::string kind;  ///< "exact", "random" or "edge"
  std::string description;
  std::uint64_t seed = 0;  ///< the generator seed (0 for hand-written edge scenarios)
  ProblemShape shape;      ///< W, N, D and dtype: the input is [W, N, D], every output [N, D]
  GoldenFile input;
  std::map<GoldenOutput, GoldenFile> outputs;  ///< the all-reduce's outputs; empty for a fused case
  std::optional<GoldenFused> fused;  ///< set for the fused cases, and for the quantised ones (without outputs)
  std::vector<GoldenQuant> quant;    ///< set for the quantised cases only
};

/// A fused case's expected outputs, loaded.
struct GoldenFusedExpected {
  HostTensor normalized;    ///< [N, D]
  HostTensor residual_out;  ///< [N, D]
};

/// A golden folder's manifest, read and checked. The load functions read the files it names from `dir`.
struct GoldenManifest {
  std::string dir;                              ///< the folder, as given to read_golden_manifest
  std::string path;                             ///< `dir`/manifest.json, as error messages name it
  std::vector<GoldenManifestCase> cases;        ///< the all-reduce cases
  std::vector<GoldenManifestCase> fused_cases;  ///< the fused cases, each with `fused` set
  std::vector<GoldenManifestCase> quant_cases;  ///< the quantised cases, each with `fused` (no outputs) and `quant`

  /// `dir`/`f.file`.
  std::string file_path(const GoldenFile& f) const;

  /// The expected output of `c` under `strategy` (AUTO resolved by the case's shape) and `profile`.
  /// Throws UsageError naming the manifest and the case when the manifest lists none (a fused case lists
  /// none: see expected_fused_files).
  const GoldenFile& expected_file(const GoldenManifestCase& c, Strategy strategy, Profile profile) const;

  /// The case's [W, N, D] input. Throws UsageError naming the file when it is missing or not a .npy file, when
  /// its bytes do not have the manifest's sha256, or when its dtype or shape is not the case's.
  HostTensor load_input(const GoldenManifestCase& c) const;

  /// The case's expected [N, D] output under `strategy` and `profile` (as expected_file), checked like the
  /// input.
  HostTensor load_expected(const GoldenManifestCase& c, Strategy strategy, Profile profile) const;

  /// A fused case's expected files under `strategy` (AUTO resolved by the case's shape) and `profile`.
  /// Throws UsageError naming the manifest and the case when `c` is no fused case or lists no such output.
  const GoldenFusedFiles& expected_fused_files(const GoldenManifestCase& c, Strategy strategy, Profile profile) const;

  /// A fused case's [N, D] residual and [D] gamma, checked like the input.
  HostTensor load_residual(const GoldenManifestCase& c) const;
  HostTensor load_gamma(const GoldenManifestCase& c) const;

  /// A fused case's expected outputs under `strategy` and `profile` (as expected_fused_files), checked like
  /// the input.
  GoldenFusedExpected load_expected_fused(const GoldenManifestCase& c, Strategy strategy, Profile profile) const;

  /// A quantised case's expected files for quantisation `q` (one of `c.quant`) under `strategy` (AUTO resolved
  /// by the case's shape) and `profile`. Throws UsageError naming the manifest and the case when it lists none.
  const GoldenQuantFiles& expected_quant_files(const GoldenManifestCase& c, const GoldenQuant& q, Strategy strategy,
                                               Profile profile) const;

  /// The quantised output itself (as quantize_fused returns it), its files checked against their sha256 and
  /// the case's N and D.
  QuantizedOutput load_expected_quant(const GoldenManifestCase& c, const GoldenQuant& q, Strategy strategy,
                                      Profile profile) const;
};

/// Reads `dir`/manifest.json. Throws UsageError with a message naming the file and the problem when it is
/// missing or unreadable, not valid JSON, not format 1, or when a field is missing or has the wrong type or
/// an unsupported value (unknown dtype, unsupported shape, an output key that is not "<strategy>/<profile>",
/// two cases of one name; for a fused case also an epsilon or weight bias that is not a finite fp32 or
/// disagrees with its bits, an SM count outside 1..1024, a trtllm output, a shape FlashInfer launches no
/// fused norm for; for a quantised case also an unknown mode or layout, a scale that is missing, given to
/// fp8-dynamic or not a finite fp32, a quantisation the model refuses for the dtype or D, two quantisations
/// of one name, a scale_out missing or given where the mode has none). The "fused_cases" and "quant_cases"
/// lists are optional. Reads only the manifest: the files it names are checked when they are loaded.
GoldenManifest read_golden_manifest(const std::string& dir);

}  // namespace ar
