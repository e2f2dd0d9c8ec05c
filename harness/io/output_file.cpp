#include "harness/io/output_file.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/io/exit_codes.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

fs::path folder_of(const std::string& path) {
  const fs::path p(path);
  return p.has_parent_path() ? p.parent_path() : fs::path(".");
}

std::string errno_text() { return std::strerror(errno); }

/// A name in `folder` no one can have guessed: the unnamed file is linked there for an instant before it is
/// renamed over the target (link() cannot replace a file). It carries the writer's pid, so that a name left
/// by a writer killed in that instant is recognised and removed by the next write to the same target.
std::string fresh_name(const fs::path& folder, const std::string& target_name) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return (folder / fmt::format(".{}.{}.{:016x}.partial", target_name, ::getpid(), rng())).string();
}

/// Removes the names fresh_name gave for `target_name` whose writer is no longer running.
void remove_stale_partials(const fs::path& folder, const std::string& target_name) {
  const std::string prefix = "." + target_name + ".";
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(folder, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() <= prefix.size() + 8 || name.compare(0, prefix.size(), prefix) != 0 || !name.ends_with(".partial"))
      continue;
    const std::string rest = name.substr(prefix.size());
    const pid_t pid = static_cast<pid_t>(std::strtol(rest.c_str(), nullptr, 10));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) ::unlink(e.path().c_str());
  }
}

/// A new name is durable only once its folder is synced too.
void sync_folder_of(const std::string& path) {
  const int dir = ::open(folder_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    (void)::fsync(dir);
    ::close(dir);
  }
}

/// check_output_path without its trial file: what a target and its folder must be, at the start (before
/// OutputFile makes its own unnamed file there) and again at commit, when only a link or rename is left, which
/// needs no new file (a trial then could fail on a folder out of inodes, after the work).
void check_target(const std::string& path) {
  if (path.empty()) throw UsageError("an output path is empty");
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode))
      throw UsageError(
          fmt::format("cannot write '{}': it is a symbolic link (write to the file it points to, or "
                      "remove the link)",
                      path));
    if (!S_ISREG(st.st_mode))
      throw UsageError(
          fmt::format("cannot write '{}': it exists and is not a regular file (a folder, device or "
                      "FIFO)",
                      path));
  } else if (errno != ENOENT) {
    throw UsageError(fmt::format("cannot write '{}': {}", path, errno_text()));
  }
  const fs::path folder = folder_of(path);
  struct stat dir {};
  if (::stat(folder.c_str(), &dir) != 0 || !S_ISDIR(dir.st_mode))
    throw UsageError(fmt::format("cannot write '{}': the folder '{}' does not exist", path, folder.string()));
  if (::access(folder.c_str(), W_OK | X_OK) != 0)
    throw UsageError(fmt::format("cannot write '{}': the folder '{}' is not writable", path, folder.string()));
}

}  // namespace

void check_output_path(const std::string& path) {
  check_target(path);
  // OutputFile makes the file unnamed in its folder; whether the folder takes one shows only by trying (a
  // pseudo file system such as /proc passes the access test), and the unnamed file leaves no trace.
  const fs::path folder = folder_of(path);
  const int probe = ::open(folder.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (probe < 0)
    throw UsageError(
        fmt::format("cannot write '{}': cannot create a file in the folder '{}' ({})", path, folder.string(), errno_text()));
  ::close(probe);
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec_a, ec_b;
  const fs::path ca = fs::weakly_canonical(fs::absolute(a, ec_a), ec_a);
  const fs::path cb = fs::weakly_canonical(fs::absolute(b, ec_b), ec_b);
  if (!ec_a && !ec_b && ca == cb) return true;
  std::error_code ec;
  return fs::exists(a, ec) && fs::exists(b, ec) && fs::equivalent(a, b, ec) && !ec;
}

void prepare_output_folder(const std::string& dir) {
  if (dir.empty()) throw UsageError("an output folder is empty");
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    throw UsageError(fmt::format("cannot write into '{}': it exists and is not a folder", dir));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UsageError(fmt::format("cannot write into '{}': {}", dir, ec.message()));
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw UsageError(fmt::format("cannot write into '{}': the folder is not writable", dir));
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  check_target(path_);  // its own unnamed file, just below, is the folder's trial
  fd_ = ::open(folder_of(path_).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw UsageError(fmt::format("cannot write '{}': cannot create a file in its folder ({})", path_, errno_text()));
  // O_TMPFILE ignores the umask's effect on a later link; give the file the mode a plain create would.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  (void)::fchmod(fd_, 0666 & ~mask);
}

OutputFile::~OutputFile() {
  if (!committed_) unstage();
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::write(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw UsageError(fmt::format("cannot write '{}': {} (disk full?)", path_, errno_text()));
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void OutputFile::discard_contents() {
  if (committed_ || !staged_.empty())
    throw std::logic_error(fmt::format("output '{}': contents discarded after it was staged or committed", path_));
  if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0)
    throw UsageError(fmt::format("cannot write '{}': {}", path_, errno_text()));
}

void OutputFile::stage() {
  if (committed_ || !staged_.empty()) return;
  if (::fsync(fd_) != 0) throw UsageError(fmt::format("cannot write '{}': {}", path_, errno_text()));
  remove_stale_partials(folder_of(path_), fs::path(path_).filename().string());
  const std::string temp = fresh_name(folder_of(path_), fs::path(path_).filename().string());
  const std::string proc = fmt::format("/proc/self/fd/{}", fd_);
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, temp.c_str(), AT_SYMLINK_FOLLOW) != 0)
    throw UsageError(fmt::format("cannot write '{}': {}", path_, errno_text()));
  staged_ = temp;
}

void OutputFile::unstage() noexcept {
  if (staged_.empty()) return;
  ::unlink(staged_.c_str());
  staged_.clear();
}

void OutputFile::commit() {
  if (committed_) return;
  if (!staged_.empty()) {
    // Staged by an OutputSet: the data and a name in the folder exist; only the rename is left.
    check_target(path_);  // still a regular file or absent, not replaced by a link or device meanwhile
    if (::rename(staged_.c_str(), path_.c_str()) != 0) {
      const std::string why = errno_text();
      unstage();
      throw UsageError(fmt::format("cannot write '{}': {}", path_, why));
    }
    staged_.clear();
    sync_folder_of(path_);
    committed_ = true;
    return;
  }
  if (::fsync(fd_) != 0) throw UsageError(fmt::format("cannot write '{}': {}", path_, errno_text()));
  const std::string proc = fmt::format("/proc/self/fd/{}", fd_);
  // A new target: link the finished file at its name, one atomic step. An existing one: link it at a fresh
  // name beside the target and rename that over it (rename replaces atomically; link cannot).
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path_.c_str(), AT_SYMLINK_FOLLOW) != 0) {
    if (errno != EEXIST) throw UsageError(fmt::format("cannot write '{}': {}", path_, errno_text()));
    check_target(path_);  // still a regular file, not replaced by a link or device meanwhile
    remove_stale_partials(folder_of(path_), fs::path(path_).filename().string());
    const std::string temp = fresh_name(folder_of(path_), fs::path(path_).filename().string());
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, temp.c_str(), AT_SYMLINK_FOLLOW) != 0)
      throw UsageError(fmt::format("cannot write '{}': {}", path_, errno_text()));
    if (::rename(temp.c_str(), path_.c_str()) != 0) {
      const std::string why = errno_text();
      ::unlink(temp.c_str());
      throw UsageError(fmt::format("cannot write '{}': {}", path_, why));
    }
  }
  sync_folder_of(path_);
  committed_ = true;
}

void write_file_atomically(const std::string& path, std::string_view contents) {
  OutputFile f(path);
  f.write(contents);
  f.commit();
}

OutputSet::OutputSet(const std::vector<std::string>& paths, const std::vector<std::string>& labels) {
  if (!labels.empty() && labels.size() != paths.size()) throw std::logic_error("OutputSet: one label a path");
  for (const std::string& p : paths) check_target(p);  // each OutputFile's own unnamed file is its folder's trial
  for (std::size_t i = 0; i < paths.size(); ++i)
    for (std::size_t j = i + 1; j < paths.size(); ++j)
      if (same_file(paths[i], paths[j]))
        throw UsageError(
            labels.empty()
                ? fmt::format("'{}' and '{}' name the same file: each output needs its own", paths[i], paths[j])
                : fmt::format("{} and {} both name '{}': each output needs a file of its own", labels[i], labels[j],
                              paths[i]));
  for (const std::string& p : paths) files_.push_back(std::make_unique<OutputFile>(p));
}

void OutputSet::commit() {
  // Everything that can fail (space, a folder removed, a target replaced by a folder or a link) is tried for
  // every file before the first target changes; what is left, the renames, cannot fail for those reasons.
  std::size_t staged = 0;
  try {
    for (; staged < files_.size(); ++staged) files_[staged]->stage();
    for (const auto& f : files_) check_target(f->path());
  } catch (...) {
    for (std::size_t i = 0; i < staged; ++i) files_[i]->unstage();
    throw;
  }
  for (auto& f : files_) f->commit();
}

}  // namespace ar
