// The files `mnnvl-ar sim` writes (--trace, --json-out): checked and opened before the search, so a typo
// costs no simulation; the trace streamed into its unnamed file as the shown run goes on; both put in place
// after the verdict is printed, both or neither.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/io/exit_codes.h"
#include "harness/io/output_file.h"
#include "sim/trace.h"

namespace ar {

/// `sim --trace`: the trace streams into its unnamed output file while the shown run goes on. A write that fails
/// (a full disk) must not stop the search, whose verdict matters more than its trace: the first error is kept,
/// later writes are skipped, and the outputs are then not committed.
class TraceFileSink final : public sim::TraceSink {
 public:
  explicit TraceFileSink(OutputFile& file) : file_(file) {}

  void restart() override {
    error_.reset();
    try {
      file_.discard_contents();
    } catch (const UsageError& e) {
      error_ = e.what();
    }
  }
  void write(std::string_view text) override {
    if (error_) return;
    try {
      file_.write(text);
    } catch (const UsageError& e) {
      error_ = e.what();
    }
  }
  /// Why the trace could not be written, when it could not.
  const std::optional<std::string>& error() const { return error_; }

 private:
  OutputFile& file_;
  std::optional<std::string> error_;
};

/// --trace and --json-out. Both paths are checked, and their unnamed files opened, before the search starts, so
/// that a typo costs no simulation; the files are committed after the verdict is printed, both or neither.
class SimOutputs {
 public:
  SimOutputs(const std::string& trace_path, const std::string& json_path) {
    if (!trace_path.empty()) paths_.push_back(trace_path);
    if (!json_path.empty()) paths_.push_back(json_path);
    if (paths_.empty()) return;
    files_.emplace(paths_);  // throws UsageError naming a bad path
    if (!trace_path.empty()) trace_.emplace(files_->file(0));
    if (!json_path.empty()) json_ = &files_->file(paths_.size() - 1);
  }

  /// Where the search streams the trace; null without --trace.
  sim::TraceSink* trace_sink() { return trace_ ? &*trace_ : nullptr; }

  /// Writes the JSON result into its file (a no-op without --json-out).
  void write_json(const std::string& text) {
    if (!json_ || error_) return;
    try {
      json_->write(text);
    } catch (const UsageError& e) {
      error_ = e.what();
    }
  }

  /// Puts every output in place, or none. Returns why not, naming the file, when they could not be written.
  std::optional<std::string> commit() {
    if (!files_) return std::nullopt;
    if (trace_ && trace_->error()) return trace_->error();
    if (error_) return error_;
    try {
      files_->commit();
    } catch (const UsageError& e) {
      return e.what();
    }
    return std::nullopt;
  }

  bool several() const { return paths_.size() > 1; }

 private:
  std::vector<std::string> paths_;
  std::optional<OutputSet> files_;
  std::optional<TraceFileSink> trace_;
  OutputFile* json_ = nullptr;
  std::optional<std::string> error_;  ///< the JSON file's write error
};

}  // namespace ar
