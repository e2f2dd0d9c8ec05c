// Writing outputs so that nothing half-done is ever seen: a file is written unnamed (O_TMPFILE in the
// target's folder) and linked into place only when complete and synced, so a crash, a SIGKILL or a full
// disk at any moment leaves the old file or the whole new one. (A kill in the instant between naming the
// synced file `.<target>.<pid>.<random>.partial` and renaming it over the target leaves that hidden copy
// beside the old target; the next write of the target removes it.) Targets are checked before the work that
// produces them starts, so an hour of simulation is never lost to a typo, and a target that exists but is
// not a regular file (a device node, a FIFO, a folder, a symbolic link) is refused rather than replaced or
// written through.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ar {

/// Throws UsageError naming the problem when `path` cannot be written: its folder is missing, not writable or
/// takes no new file (one unnamed file is made there and dropped to find out), or it exists and is not a
/// regular file. Call before starting the work whose result it takes.
void check_output_path(const std::string& path);

/// Whether `a` and `b` name one file: the same absolute path once `.`, `..` and the symbolic links of its
/// existing part are resolved, or two hard links of one existing file. Two outputs of one call, or an output
/// and an input, must not (the second write would replace the first, or the input).
bool same_file(const std::string& a, const std::string& b);

/// Makes `dir` (and its parents) when missing. Throws UsageError naming the problem when it exists and is not
/// a folder, cannot be made, or is not writable. Call before the work whose files go into it.
void prepare_output_folder(const std::string& dir);

/// One output being written. Nothing appears at `path` before commit(); a destroyed, uncommitted file leaves
/// no trace (it has no name).
class OutputFile {
 public:
  /// Checks `path` (check_output_path) and opens an unnamed file in its folder. Throws UsageError.
  explicit OutputFile(std::string path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  const std::string& path() const { return path_; }
  /// Appends `bytes`. Throws UsageError (disk full, I/O error).
  void write(std::string_view bytes);
  /// Drops everything written so far; the file stays unnamed and empty, for a writer that must start over
  /// (a streamed trace whose run is no longer the one to show). Throws UsageError.
  void discard_contents();
  /// Syncs the data and puts the file at its path, replacing an old regular file there. Throws UsageError.
  void commit();

 private:
  friend class OutputSet;
  /// The first half of commit, the half that can fail for want of space or of the folder: syncs the data and
  /// links the file at a hidden name beside its target. commit() then only renames it. Throws UsageError.
  void stage();
  /// Removes the hidden name of a staged file that is not to be committed.
  void unstage() noexcept;

  std::string path_;
  int fd_ = -1;
  std::string staged_;  ///< the hidden name while staged
  bool committed_ = false;
};

/// Writes `contents` to `path` through an OutputFile.
void write_file_atomically(const std::string& path, std::string_view contents);

/// Several outputs that belong together (`data --out`, `sim --trace` with `--json-out`): all are written
/// and synced unnamed first, then each is linked at a hidden name beside its target, and only when all of
/// them are, and every target is still a regular file or absent, are they renamed into place one after the
/// other. A failure while writing, syncing or linking any of them (a full disk, a folder removed meanwhile)
/// changes none of the targets; only a crash inside the renames (a few system calls, no data written) can
/// leave some targets new and others old.
class OutputSet {
 public:
  /// Checks every path (check_output_path) before anything is written, and that no two name one file
  /// (same_file). `labels`, when given, say what named each path (an option, as "--output"), for the message
  /// of two that name one file. Throws UsageError.
  explicit OutputSet(const std::vector<std::string>& paths, const std::vector<std::string>& labels = {});
  OutputFile& file(std::size_t i) { return *files_.at(i); }
  /// Commits every file, in order, or none when any cannot be staged. Throws UsageError naming the file.
  void commit();

 private:
  std::vector<std::unique_ptr<OutputFile>> files_;
};

}  // namespace ar
