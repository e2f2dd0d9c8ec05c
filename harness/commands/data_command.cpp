// mnnvl-ar data: writes (or, with --check, verifies) the golden cases of data/.
#include <filesystem>
#include <ostream>
#include <set>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "harness/commands/commands.h"
#include "harness/commands/options.h"
#include "harness/io/exit_codes.h"
#include "harness/io/golden_manifest.h"
#include "harness/io/input_file.h"
#include "harness/io/npy.h"

namespace ar {
namespace {

/// Whether the file at `p` holds exactly `want`; a missing file, or one that is not a regular file, differs.
bool holds(const std::filesystem::path& p, const std::string& want) {
  try {
    return read_regular_file(p.string(), "golden file", static_cast<std::int64_t>(want.size())) == want;
  } catch (const UsageError&) {
    return false;  // missing, unreadable, not a regular file, or larger than the file it should be
  }
}

}  // namespace

int data_command(const CommandArgs& args, std::ostream& out, std::ostream& err) {
  std::string dir;
  po::options_description options("options");
  // clang-format off
  options.add_options()("out,o", po::value(&dir)->default_value("data"), "folder of the golden set")(
      "check", "regenerate in memory and compare with the folder's files; exit 1 on any difference");
  // clang-format on
  po::variables_map vm;
  const CommandHelp help{
      "mnnvl-ar data [--out DIR] [--check]",
      "Regenerates the golden cases: seeded inputs ([W, N, D] .npy) of three kinds (exact small integers,\n"
      "full-mantissa random values, SPEC section 10 edge scenarios) and the reference output of every\n"
      "strategy and profile, plus manifest.json with the seed, shape and sha256 of every file. The fused\n"
      "cases add a residual, gamma, eps, weight bias and SM count, and the normalised and residual outputs of\n"
      "both strategies under flashinfer, ieee and invariant; the quantised cases the codes and scales of FP8,\n"
      "dynamic FP8 and NVFP4 (both layouts) after the fused call (data/README.md).\n"
      "Inputs are functions of (seed, element index), so the files come out the same byte for byte.\n\n"
      "examples:\n  mnnvl-ar data --check          verify data/ against the generator and reference\n"
      "  mnnvl-ar data --out /tmp/gold  write a fresh copy\n\n"
      "exit codes: 0 ok (or --check found data/ identical), 1 --check found a difference, 2 bad usage"};
  if (auto code = parse_command_line(args, options, {}, help, vm, out)) return *code;

  const GoldenSet set = build_golden_set();
  const std::string manifest = set.manifest.dump(2) + "\n";
  namespace fs = std::filesystem;
  if (vm.count("check")) {
    // A folder that is not there is a wrong --out, not a golden set whose every file differs.
    if (!fs::is_directory(dir))
      throw UsageError(fmt::format("--out '{}' is not a folder: nothing to check (write one with `mnnvl-ar data --out "
                                   "{}`)",
                                   dir, dir));
    int differences = 0;
    const auto check = [&](const std::string& name, const std::string& want) {
      if (holds(fs::path(dir) / name, want)) return;
      ++differences;
      fmt::print(err, "differs: {}\n", (fs::path(dir) / name).string());
    };
    // A .npy file the generator no longer writes is stale: no case points to it, so nothing checks its bits.
    std::set<std::string> written;
    for (const auto& [name, bytes] : set.files) {
      check(name, bytes);
      written.insert(name);
    }
    check(std::string(kGoldenManifestFile), manifest);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.path().extension() != ".npy" || written.count(name)) continue;
      ++differences;
      fmt::print(err, "stale (no case writes it): {}\n", entry.path().string());
    }
    fmt::print(out, "{} files checked in {}: {}\n", set.files.size() + 1, dir,
               differences ? fmt::format("{} differ", differences) : std::string("all identical"));
    return differences ? kExitDifference : kExitOk;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UsageError(fmt::format("cannot create folder '{}': {}", dir, ec.message()));
  // All or nothing: every file written and synced unnamed first, then linked into place (OutputSet).
  std::vector<std::string> paths;
  for (const auto& [name, bytes] : set.files) paths.push_back((fs::path(dir) / name).string());
  paths.push_back((fs::path(dir) / kGoldenManifestFile).string());
  OutputSet outputs(paths);
  for (std::size_t i = 0; i < set.files.size(); ++i) outputs.file(i).write(set.files[i].second);
  outputs.file(set.files.size()).write(manifest);
  outputs.commit();
  fmt::print(out, "wrote {} golden cases, {} fused, {} quantised ({} files) and {} to {}\n",
             set.manifest["cases"].size(), set.manifest["fused_cases"].size(), set.manifest["quant_cases"].size(),
             set.files.size(), kGoldenManifestFile, dir);
  return kExitOk;
}

}  // namespace ar
