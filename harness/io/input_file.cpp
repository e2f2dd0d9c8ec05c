#include "harness/io/input_file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/io/exit_codes.h"

namespace ar {

InputFile::InputFile(std::string path, std::string_view what)
    : path_(std::move(path)), what_(what), fd_(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)) {
  // On a regular file O_NONBLOCK changes nothing.
  if (fd_ < 0) throw UsageError(fmt::format("cannot open {} '{}' for reading: {}", what_, path_, std::strerror(errno)));
}

InputFile::~InputFile() { ::close(fd_); }

std::int64_t InputFile::regular_size() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    throw UsageError(fmt::format("cannot read {} '{}': {}", what_, path_, std::strerror(errno)));
  if (!S_ISREG(st.st_mode))
    throw UsageError(
        fmt::format("{} '{}' is not a regular file (a folder, FIFO or device): give a file", what_, path_));
  return st.st_size;
}

void InputFile::read_exactly(void* to, std::size_t n, std::int64_t offset) const {
  auto* p = static_cast<char*>(to);
  while (n > 0) {
    const ssize_t got = ::pread(fd_, p, n, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw UsageError(fmt::format("error while reading {} '{}': it ended early", what_, path_));
    p += got;
    n -= static_cast<std::size_t>(got);
    offset += got;
  }
}

std::string read_regular_file(const std::string& path, std::string_view what, std::int64_t max_bytes) {
  const InputFile file(path, what);
  const std::int64_t size = file.regular_size();
  if (size > max_bytes)
    throw UsageError(
        fmt::format("{} '{}' holds {} bytes, more than the {} such a file may hold", what, path, size, max_bytes));
  std::string bytes(static_cast<std::size_t>(size), '\0');
  file.read_exactly(bytes.data(), bytes.size(), 0);
  return bytes;
}

}  // namespace ar
