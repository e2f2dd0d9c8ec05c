#include "harness/io/golden_manifest.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/io/exit_codes.h"
#include "harness/io/input_file.h"
#include "harness/io/npy.h"
#include "harness/io/quant_files.h"
#include "harness/io/sha256.h"
#include "reference/all_reduce.h"
#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "reference/fused_launch.h"
#include "reference/tensor.h"

namespace ar {
namespace {

/// The manifest layout golden_set.cpp writes and this file reads.
constexpr int kFormat = 1;
/// Larger token or hidden counts are refused before they are multiplied.
constexpr std::uint64_t kMaxExtent = std::uint64_t(1) << 40;
/// The SM counts a fused case may name, as `--sms` takes them.
constexpr std::uint64_t kMaxSmCount = 1024;

}  // namespace

std::string golden_output_key(Strategy strategy, Profile profile) {
  return fmt::format("{}/{}", strategy_name(strategy), profile_name(profile));
}

namespace {

/// Reads the fields of the manifest's JSON objects; every refusal names the manifest and where in it.
class ManifestReader {
 public:
  explicit ManifestReader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void refuse(std::string_view where, std::string_view problem) const {
    throw UsageError(fmt::format("{}: {}{}", path_, where.empty() ? "" : fmt::format("{}: ", where), problem));
  }

  const nlohmann::json& field(const nlohmann::json& object, const char* key, std::string_view where) const {
    const auto it = object.find(key);
    if (it == object.end()) refuse(where, fmt::format("field '{}' is missing", key));
    return *it;
  }

  const nlohmann::json& object_field(const nlohmann::json& object, const char* key, std::string_view where) const {
    const nlohmann::json& j = field(object, key, where);
    if (!j.is_object()) refuse(where, fmt::format("field '{}' must be an object, not {}", key, j.type_name()));
    return j;
  }

  std::string string_field(const nlohmann::json& object, const char* key, std::string_view where) const {
    const nlohmann::json& j = field(object, key, where);
    if (!j.is_string()) refuse(where, fmt::format("field '{}' must be a string, not {}", key, j.dump()));
    return j.get<std::string>();
  }

  std::uint64_t unsigned_field(const nlohmann::json& object, const char* key, std::string_view where) const {
    const nlohmann::json& j = field(object, key, where);
    if (!j.is_number_unsigned())
      refuse(where, fmt::format("field '{}' must be a non-negative integer, not {}", key, j.dump()));
    return j.get<std::uint64_t>();
  }

  /// An fp32 parameter: `key` (a number, the value) and `key`_bits (its fp32 bits), which must agree and be
  /// finite.
  std::uint32_t fp32_field(const nlohmann::json& object, const char* key, std::string_view where) const {
    const std::string bits_key = fmt::format("{}_bits", key);
    const std::uint64_t bits = unsigned_field(object, bits_key.c_str(), where);
    if (bits > 0xFFFFFFFFu) refuse(where, fmt::format("field '{}' {} is not 32 bits", bits_key, bits));
    const auto b = static_cast<std::uint32_t>(bits);
    if (is_inf(b, kFp32Format) || is_nan(b, kFp32Format))
      refuse(where, fmt::format("field '{}' {:#010x} is not a finite fp32", bits_key, b));
    const nlohmann::json& value = field(object, key, where);
    if (!value.is_number() || fp32_from_double(value.get<double>()) != b ||
        to_double(b, DType::kFp32) != value.get<double>())
      refuse(where, fmt::format("field '{}' {} is not the fp32 {:#010x} of '{}'", key, value.dump(), b, bits_key));
    return b;
  }

  /// {file, sha256}: the file name is required, the digest optional.
  GoldenFile file_field(const nlohmann::json& object, const char* key, std::string_view where) const {
    const nlohmann::json& j = object_field(object, key, where);
    const std::string inner = fmt::format("{}: {}", where, key);
    GoldenFile f{string_field(j, "file", inner), ""};
    if (f.file.empty() || f.file.find('/') != std::string::npos)
      refuse(inner, fmt::format("file '{}' must be a plain file name inside the folder", f.file));
    if (j.contains("sha256")) f.sha256 = string_field(j, "sha256", inner);
    return f;
  }

  /// The fields every case has; `where` becomes "list[index] (name)" for the messages that follow.
  GoldenManifestCase read_common(const nlohmann::json& c, const char* list, std::size_t index,
                                 std::string& where) const {
    where = fmt::format("{}[{}]", list, index);
    if (!c.is_object()) refuse(where, fmt::format("must be an object, not {}", c.type_name()));
    GoldenManifestCase out;
    out.name = string_field(c, "name", where);
    where += fmt::format(" ({})", out.name);
    out.kind = string_field(c, "kind", where);
    if (out.kind != "exact" && out.kind != "random" && out.kind != "edge")
      refuse(where, fmt::format("kind '{}' is not exact, random or edge", out.kind));
    out.description = string_field(c, "description", where);
    out.seed = unsigned_field(c, "seed", where);
    const std::string dtype = string_field(c, "dtype", where);
    const auto parsed = parse_dtype(dtype);
    if (!parsed) refuse(where, fmt::format("unknown dtype '{}' (bf16, fp16 or fp32)", dtype));
    const std::uint64_t world = unsigned_field(c, "world_size", where);
    if (world > 64 || !is_supported_world_size(static_cast<int>(world)))
      refuse(where, fmt::format("world_size {} is not supported ({})", world, world_sizes_text()));
    const std::uint64_t tokens = unsigned_field(c, "tokens", where), hidden = unsigned_field(c, "hidden", where);
    if (tokens > kMaxExtent || hidden > kMaxExtent)
      refuse(where, fmt::format("tokens {} or hidden {} is out of range", tokens, hidden));
    out.shape = ProblemShape{static_cast<int>(world), static_cast<std::int64_t>(tokens),
                             static_cast<std::int64_t>(hidden), *parsed};
    if (const auto why = validate_shape(out.shape)) refuse(where, *why);
    out.input = file_field(c, "input", where);
    return out;
  }

  /// An output key: "<strategy>/<profile>", ONESHOT or TWOSHOT.
  GoldenOutput output_key(const std::string& key, std::string_view where) const {
    const auto slash = key.find('/');
    const auto strategy = parse_strategy(key.substr(0, slash));
    const auto profile = parse_profile(slash == std::string::npos ? std::string() : key.substr(slash + 1));
    if (!strategy || *strategy == Strategy::kAuto || !profile || golden_output_key(*strategy, *profile) != key)
      refuse(where, fmt::format("output key '{}' is not <strategy>/<profile> (oneshot or twoshot / flashinfer, "
                                "ieee, trtllm or invariant)",
                                key));
    return {*strategy, *profile};
  }

  GoldenManifestCase read_case(const nlohmann::json& c, std::size_t index) const {
    std::string where;
    GoldenManifestCase out = read_common(c, "cases", index, where);
    const nlohmann::json& outputs = object_field(c, "outputs", where);
    for (const auto& [key, entry] : outputs.items())
      out.outputs[output_key(key, where)] = file_field(outputs, key.c_str(), where + ": outputs");
    return out;
  }

  /// The fused part's inputs and parameters (`where` ends in ": fused"); its outputs are the caller's.
  GoldenFused read_fused_inputs(const nlohmann::json& j, const std::string& where) const {
    GoldenFused f;
    f.residual = file_field(j, "residual", where);
    f.gamma = file_field(j, "gamma", where);
    f.epsilon = fp32_field(j, "eps", where);
    f.weight_bias = fp32_field(j, "weight_bias", where);
    const std::uint64_t sms = unsigned_field(j, "sm_count", where);
    if (sms < 1 || sms > kMaxSmCount) refuse(where, fmt::format("sm_count {} is outside [1, {}]", sms, kMaxSmCount));
    f.sm_count = static_cast<int>(sms);
    return f;
  }

  /// A fused output key: no trtllm, and a shape FlashInfer launches the norm for under it.
  GoldenOutput fused_output_key(const std::string& key, const GoldenManifestCase& c, int sm_count,
                                const std::string& where) const {
    const GoldenOutput o = output_key(key, where);
    if (o.profile == Profile::kTrtllm)
      refuse(where,
             fmt::format("output key '{}': the fused norm has flashinfer, ieee and invariant outputs only", key));
    try {
      (void)norm_launch_for(o.profile, o.strategy, c.shape.tokens, c.shape.hidden, c.shape.dtype, sm_count);
    } catch (const std::invalid_argument& e) {
      refuse(fmt::format("{}: outputs: {}", where, key),
             fmt::format("FlashInfer launches no fused norm for this shape on {} SMs: {}", sm_count, e.what()));
    }
    return o;
  }

  GoldenManifestCase read_fused_case(const nlohmann::json& c, std::size_t index) const {
    std::string where;
    GoldenManifestCase out = read_common(c, "fused_cases", index, where);
    const nlohmann::json& j = object_field(c, "fused", where);
    where += ": fused";
    GoldenFused f = read_fused_inputs(j, where);
    const nlohmann::json& outputs = object_field(j, "outputs", where);
    for (const auto& [key, entry] : outputs.items()) {
      const std::string inner = fmt::format("{}: outputs: {}", where, key);
      const nlohmann::json& files = object_field(outputs, key.c_str(), where + ": outputs");
      const GoldenOutput o = fused_output_key(key, out, f.sm_count, where);
      f.outputs[o] = {file_field(files, "normalized", inner), file_field(files, "residual_out", inner)};
    }
    out.fused = std::move(f);
    return out;
  }

  /// One quantisation of a quantised case; `where` names the case.
  GoldenQuant read_quant(const nlohmann::json& v, std::size_t index, const GoldenManifestCase& c,
                         const std::string& case_where) const {
    std::string where = fmt::format("{}: quant[{}]", case_where, index);
    if (!v.is_object()) refuse(where, fmt::format("must be an object, not {}", v.type_name()));
    GoldenQuant q;
    q.name = string_field(v, "name", where);
    where += fmt::format(" ({})", q.name);
    const std::string mode = string_field(v, "mode", where);
    const std::optional<QuantMode> parsed = parse_quant_mode(mode);
    if (!parsed || *parsed == QuantMode::kNone)
      refuse(where, fmt::format("mode '{}' is not fp8, fp8-dynamic or nvfp4", mode));
    q.options.mode = *parsed;
    if (q.options.mode == QuantMode::kFp8Dynamic) {
      if (v.contains("scale") || v.contains("scale_bits"))
        refuse(where, "fp8-dynamic takes no scale (each token's comes from its values)");
    } else {
      q.options.scale = fp32_field(v, "scale", where);
    }
    if (q.options.mode == QuantMode::kNvfp4) {
      const std::string layout = string_field(v, "layout", where);
      const std::optional<ScaleLayout> l = parse_scale_layout(layout);
      if (!l) refuse(where, fmt::format("layout '{}' is not swizzled or linear", layout));
      q.options.layout = *l;
    } else if (v.contains("layout")) {
      refuse(where, fmt::format("a layout belongs to nvfp4's block scales; {} has none", mode));
    }
    try {
      validate_quant(q.options, c.shape.dtype, c.shape.hidden);
    } catch (const std::invalid_argument& e) {
      refuse(where, e.what());
    }
    const nlohmann::json& outputs = object_field(v, "outputs", where);
    for (const auto& [key, entry] : outputs.items()) {
      const std::string inner = fmt::format("{}: outputs: {}", where, key);
      const nlohmann::json& files = object_field(outputs, key.c_str(), where + ": outputs");
      const GoldenOutput o = fused_output_key(key, c, c.fused->sm_count, where);
      GoldenQuantFiles read{file_field(files, "quant_out", inner), std::nullopt};
      if (has_scale_out(q.options.mode))
        read.scale_out = file_field(files, "scale_out", inner);
      else if (files.contains("scale_out"))
        refuse(inner, fmt::format("{} has no scale_out", mode));
      q.outputs[o] = std::move(read);
    }
    return q;
  }

  GoldenManifestCase read_quant_case(const nlohmann::json& c, std::size_t index) const {
    std::string where;
    GoldenManifestCase out = read_common(c, "quant_cases", index, where);
    out.fused = read_fused_inputs(object_field(c, "fused", where), where + ": fused");
    const nlohmann::json& variants = field(c, "quant", where);
    if (!variants.is_array())
      refuse(where, fmt::format("field 'quant' must be an array, not {}", variants.type_name()));
    std::set<std::string> names;
    for (std::size_t i = 0; i < variants.size(); ++i) {
      GoldenQuant q = read_quant(variants[i], i, out, where);
      if (!names.insert(q.name).second)
        refuse(fmt::format("{}: quant[{}]", where, i), fmt::format("a second quantisation named {}", q.name));
      out.quant.push_back(std::move(q));
    }
    return out;
  }

 private:
  std::string path_;
};

// A manifest is a few KiB; a golden file is an input tensor with its .npy header.
constexpr std::int64_t kMaxManifestBytes = std::int64_t{64} << 20;
constexpr std::int64_t kMaxGoldenFileBytes = kMaxTensorBytes + (std::int64_t{1} << 20);

/// Refuses the golden file `f` (`path`) when its bytes do not have the sha256 the manifest records.
void check_sha256(const std::string& manifest_path, const std::string& path, const GoldenFile& f) {
  if (f.sha256.empty()) return;
  const std::string sha = sha256_hex(read_regular_file(path, "golden file", kMaxGoldenFileBytes));
  if (sha != f.sha256)
    throw UsageError(
        fmt::format("{} has sha256 {}, but {} records {} (regenerate the folder with `mnnvl-ar "
                    "data`)",
                    path, sha, manifest_path, f.sha256));
}

/// Reads the golden file `f` (`path`) as `dtype`, checked against its sha256 and `shape`.
HostTensor load_checked(const std::string& manifest_path, const std::string& path, const GoldenFile& f, DType dtype,
                        const std::vector<std::int64_t>& shape) {
  check_sha256(manifest_path, path, f);
  HostTensor t = read_npy(path, dtype);
  if (t.shape() != shape)
    throw UsageError(fmt::format("{} has shape [{}], but {} gives its case the shape [{}]", path,
                                 fmt::join(t.shape(), ", "), manifest_path, fmt::join(shape, ", ")));
  return t;
}

}  // namespace

std::string GoldenManifest::file_path(const GoldenFile& f) const {
  return (std::filesystem::path(dir) / f.file).string();
}

const GoldenFile& GoldenManifest::expected_file(const GoldenManifestCase& c, Strategy strategy, Profile profile) const {
  const GoldenOutput key{resolve_strategy(strategy, c.shape), profile};
  const auto it = c.outputs.find(key);
  if (it == c.outputs.end())
    throw UsageError(
        fmt::format("{}: case {} lists no output for {}", path, c.name, golden_output_key(key.strategy, key.profile)));
  return it->second;
}

HostTensor GoldenManifest::load_input(const GoldenManifestCase& c) const {
  return load_checked(path, file_path(c.input), c.input, c.shape.dtype,
                      {c.shape.world_size, c.shape.tokens, c.shape.hidden});
}

HostTensor GoldenManifest::load_expected(const GoldenManifestCase& c, Strategy strategy, Profile profile) const {
  const GoldenFile& f = expected_file(c, strategy, profile);
  return load_checked(path, file_path(f), f, c.shape.dtype, {c.shape.tokens, c.shape.hidden});
}

FusedOptions GoldenFused::options(Strategy strategy, Profile profile) const {
  return FusedOptions{
      .strategy = strategy, .profile = profile, .sm_count = sm_count, .epsilon = epsilon, .weight_bias = weight_bias};
}

const GoldenFusedFiles& GoldenManifest::expected_fused_files(const GoldenManifestCase& c, Strategy strategy,
                                                             Profile profile) const {
  if (!c.fused) throw UsageError(fmt::format("{}: case {} is no fused case", path, c.name));
  const GoldenOutput key{resolve_strategy(strategy, c.shape), profile};
  const auto it = c.fused->outputs.find(key);
  if (it == c.fused->outputs.end())
    throw UsageError(fmt::format("{}: fused case {} lists no output for {}", path, c.name,
                                 golden_output_key(key.strategy, key.profile)));
  return it->second;
}

HostTensor GoldenManifest::load_residual(const GoldenManifestCase& c) const {
  if (!c.fused) throw UsageError(fmt::format("{}: case {} is no fused case", path, c.name));
  return load_checked(path, file_path(c.fused->residual), c.fused->residual, c.shape.dtype,
                      {c.shape.tokens, c.shape.hidden});
}

HostTensor GoldenManifest::load_gamma(const GoldenManifestCase& c) const {
  if (!c.fused) throw UsageError(fmt::format("{}: case {} is no fused case", path, c.name));
  return load_checked(path, file_path(c.fused->gamma), c.fused->gamma, c.shape.dtype, {c.shape.hidden});
}

GoldenFusedExpected GoldenManifest::load_expected_fused(const GoldenManifestCase& c, Strategy strategy,
                                                        Profile profile) const {
  const GoldenFusedFiles& f = expected_fused_files(c, strategy, profile);
  const std::vector<std::int64_t> shape{c.shape.tokens, c.shape.hidden};
  return {load_checked(path, file_path(f.normalized), f.normalized, c.shape.dtype, shape),
          load_checked(path, file_path(f.residual_out), f.residual_out, c.shape.dtype, shape)};
}

const GoldenQuantFiles& GoldenManifest::expected_quant_files(const GoldenManifestCase& c, const GoldenQuant& q,
                                                             Strategy strategy, Profile profile) const {
  const GoldenOutput key{resolve_strategy(strategy, c.shape), profile};
  const auto it = q.outputs.find(key);
  if (it == q.outputs.end())
    throw UsageError(fmt::format("{}: quantised case {} lists no {} output for {}", path, c.name, q.name,
                                 golden_output_key(key.strategy, key.profile)));
  return it->second;
}

QuantizedOutput GoldenManifest::load_expected_quant(const GoldenManifestCase& c, const GoldenQuant& q,
                                                    Strategy strategy, Profile profile) const {
  const GoldenQuantFiles& f = expected_quant_files(c, q, strategy, profile);
  check_sha256(path, file_path(f.quant_out), f.quant_out);
  if (f.scale_out) check_sha256(path, file_path(*f.scale_out), *f.scale_out);
  QuantizedOutput out = read_quant_files(
      q.options.mode, q.options.layout, file_path(f.quant_out),
      f.scale_out ? std::optional<std::string>(file_path(*f.scale_out)) : std::nullopt, "quant_out", "scale_out");
  if (out.tokens != c.shape.tokens || out.hidden != c.shape.hidden)
    throw UsageError(fmt::format("{} holds N = {}, D = {}, but {} gives its case N = {}, D = {}",
                                 file_path(f.quant_out), out.tokens, out.hidden, path, c.shape.tokens, c.shape.hidden));
  return out;
}

GoldenManifest read_golden_manifest(const std::string& dir) {
  GoldenManifest m;
  m.dir = dir;
  m.path = (std::filesystem::path(dir) / kGoldenManifestFile).string();
  const std::string text = read_regular_file(m.path, "the golden manifest", kMaxManifestBytes);
  const ManifestReader reader(m.path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    reader.refuse("", fmt::format("not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) reader.refuse("", fmt::format("must hold a JSON object, not {}", j.type_name()));
  const std::uint64_t format = reader.unsigned_field(j, "format", "");
  if (format != kFormat)
    reader.refuse("", fmt::format("format {} is not the format {} this build reads", format, kFormat));
  const nlohmann::json& cases = reader.field(j, "cases", "");
  if (!cases.is_array()) reader.refuse("", fmt::format("field 'cases' must be an array, not {}", cases.type_name()));
  std::set<std::string> names;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    GoldenManifestCase c = reader.read_case(cases[i], i);
    if (!names.insert(c.name).second)
      reader.refuse(fmt::format("cases[{}]", i), fmt::format("a second case named {}", c.name));
    m.cases.push_back(std::move(c));
  }
  if (j.contains("fused_cases")) {
    const nlohmann::json& fused = j["fused_cases"];
    if (!fused.is_array())
      reader.refuse("", fmt::format("field 'fused_cases' must be an array, not {}", fused.type_name()));
    for (std::size_t i = 0; i < fused.size(); ++i) {
      GoldenManifestCase c = reader.read_fused_case(fused[i], i);
      if (!names.insert(c.name).second)
        reader.refuse(fmt::format("fused_cases[{}]", i), fmt::format("a second case named {}", c.name));
      m.fused_cases.push_back(std::move(c));
    }
  }
  if (j.contains("quant_cases")) {
    const nlohmann::json& quant = j["quant_cases"];
    if (!quant.is_array())
      reader.refuse("", fmt::format("field 'quant_cases' must be an array, not {}", quant.type_name()));
    for (std::size_t i = 0; i < quant.size(); ++i) {
      GoldenManifestCase c = reader.read_quant_case(quant[i], i);
      if (!names.insert(c.name).second)
        reader.refuse(fmt::format("quant_cases[{}]", i), fmt::format("a second case named {}", c.name));
      m.quant_cases.push_back(std::move(c));
    }
  }
  return m;
}

}  // namespace ar
