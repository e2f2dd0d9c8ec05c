// Reading inputs the user names (.npy files, the golden manifest, a token file) so that no path can make a
// command wait or read forever: only regular files are read (a FIFO, /dev/zero or a folder is refused with
// a message), and every read is bounded by the file's size or a limit the caller states.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ar {

/// An input file open for reading, closed on every path out. Opening never blocks (O_NONBLOCK: a FIFO no one
/// writes would otherwise hold the open forever); regular_size() then refuses anything but a regular file.
class InputFile {
 public:
  /// Opens `path`; `what` names it in messages ("golden file", ".npy input"). Throws UsageError.
  InputFile(std::string path, std::string_view what);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  /// The size of a regular file; anything else is refused (UsageError), since reading it could never end or
  /// would mean nothing.
  std::int64_t regular_size() const;
  /// Exactly `n` bytes at `offset` into `to`; a short read means the file changed or is truncated (UsageError).
  void read_exactly(void* to, std::size_t n, std::int64_t offset) const;

 private:
  std::string path_;
  std::string what_;
  int fd_;
};

/// The whole of the regular file `path`, refused (UsageError naming `what` and the path) when it is not a
/// regular file or holds more than `max_bytes`.
std::string read_regular_file(const std::string& path, std::string_view what, std::int64_t max_bytes);

}  // namespace ar
