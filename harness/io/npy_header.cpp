#include "harness/io/npy_header.h"

#include <limits>

#include <fmt/format.h>

namespace ar {
namespace {

/// A cursor over the dict with the few token readers its grammar needs.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  std::size_t at() const { return at_; }
  bool done() const { return at_ == text_.size(); }
  void skip_space() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r'))
      ++at_;
  }
  bool take(char c) {
    skip_space();
    if (at_ < text_.size() && text_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skip_space();
    return at_ < text_.size() && text_[at_] == c;
  }
  /// A quoted string without escapes: 'abc' or "abc".
  std::optional<std::string> string() {
    skip_space();
    if (at_ >= text_.size() || (text_[at_] != '\'' && text_[at_] != '"')) return std::nullopt;
    const char quote = text_[at_];
    const std::size_t end = text_.find(quote, at_ + 1);
    if (end == std::string_view::npos) return std::nullopt;
    const std::string_view body = text_.substr(at_ + 1, end - at_ - 1);
    // No escapes, and no control characters: a NUL would cut short every message that quotes the string.
    for (const char ch : body)
      if (ch == '\\' || static_cast<unsigned char>(ch) < 0x20 || ch == '\x7F') return std::nullopt;
    at_ = end + 1;
    return std::string(body);
  }
  /// A bare word: True, False.
  std::string_view word() {
    skip_space();
    const std::size_t start = at_;
    while (at_ < text_.size() && ((text_[at_] >= 'A' && text_[at_] <= 'Z') || (text_[at_] >= 'a' && text_[at_] <= 'z')))
      ++at_;
    return text_.substr(start, at_ - start);
  }
  /// A non-negative decimal integer as Python writes it (no sign, no leading zero, no suffix), in int64.
  std::optional<std::int64_t> integer() {
    skip_space();
    const std::size_t start = at_;
    std::int64_t v = 0;
    while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') {
      const int digit = text_[at_] - '0';
      if (v > (std::numeric_limits<std::int64_t>::max() - digit) / 10) return std::nullopt;
      v = v * 10 + digit;
      ++at_;
    }
    const std::size_t digits = at_ - start;
    if (digits == 0 || (digits > 1 && text_[start] == '0')) return std::nullopt;
    return v;
  }

 private:
  std::string_view text_;
  std::size_t at_ = 0;
};

NpyHeaderResult fail(const Cursor& c, std::string_view what) {
  return {std::nullopt, fmt::format("{} at byte {} of the header", what, c.at())};
}

}  // namespace

NpyPreambleResult parse_npy_preamble(std::string_view b) {
  if (b.size() < 10 || b.substr(0, 6) != std::string_view("\x93NUMPY", 6))
    return {std::nullopt, "not a .npy file (no \\x93NUMPY magic)"};
  NpyPreamble p;
  p.major = static_cast<unsigned char>(b[6]);
  const int minor = static_cast<unsigned char>(b[7]);
  if (p.major < 1 || p.major > 3 || minor != 0)
    return {std::nullopt,
            fmt::format(".npy format version {}.{} is not supported (1.0, 2.0 and 3.0 are)", p.major, minor)};
  const std::size_t length_bytes = p.major == 1 ? 2 : 4;
  if (b.size() < 8 + length_bytes) return {std::nullopt, "truncated inside its .npy preamble"};
  for (std::size_t i = 0; i < length_bytes; ++i)
    p.header_bytes |= std::size_t(static_cast<unsigned char>(b[8 + i])) << (8 * i);
  p.header_start = 8 + length_bytes;
  if (p.header_bytes > kMaxNpyHeaderBytes)
    return {std::nullopt, fmt::format("its .npy header claims {} bytes, more than the {} this reader accepts",
                                      p.header_bytes, kMaxNpyHeaderBytes)};
  return {p, ""};
}

NpyHeaderResult parse_npy_header(std::string_view dict) {
  Cursor c(dict);
  if (!c.take('{')) return fail(c, "the header is not a dict (no '{')");
  NpyHeader h;
  bool seen_descr = false, seen_order = false, seen_shape = false;
  while (!c.peek('}')) {
    const std::size_t key_at = c.at();
    const auto key = c.string();
    if (!key) return fail(c, "expected a quoted key or '}'");
    if (!c.take(':')) return fail(c, fmt::format("expected ':' after '{}'", *key));
    if (*key == "descr") {
      if (seen_descr) return {std::nullopt, fmt::format("the key 'descr' appears twice (byte {})", key_at)};
      seen_descr = true;
      const auto v = c.string();
      if (!v) return fail(c, "'descr' is not a quoted string");
      h.descr = *v;
    } else if (*key == "fortran_order") {
      if (seen_order) return {std::nullopt, fmt::format("the key 'fortran_order' appears twice (byte {})", key_at)};
      seen_order = true;
      const std::string_view w = c.word();
      if (w != "True" && w != "False") return fail(c, "'fortran_order' is neither True nor False");
      h.fortran_order = w == "True";
    } else if (*key == "shape") {
      if (seen_shape) return {std::nullopt, fmt::format("the key 'shape' appears twice (byte {})", key_at)};
      seen_shape = true;
      if (!c.take('(')) return fail(c, "'shape' is not a tuple");
      bool trailing_comma = false;
      while (!c.peek(')')) {
        const auto v = c.integer();
        if (!v || (!c.peek(',') && !c.peek(')')))
          return fail(c, "a shape entry is not a non-negative integer that fits in 64 bits");
        h.shape.push_back(*v);
        trailing_comma = c.take(',');
        if (!trailing_comma) break;
      }
      if (!c.take(')')) return fail(c, "the shape tuple is not closed with ')'");
      // Python reads "(5)" as the number 5, not a tuple: numpy writes "(5,)".
      if (h.shape.size() == 1 && !trailing_comma) return fail(c, "a one-entry shape must be written '(n,)'");
    } else {
      return {std::nullopt, fmt::format("unexpected key '{}' (byte {}): a .npy header holds 'descr', "
                                        "'fortran_order' and 'shape' only",
                                        *key, key_at)};
    }
    if (!c.take(',')) break;
  }
  if (!c.take('}')) return fail(c, "expected ',' or '}'");
  c.skip_space();
  if (!c.done()) return fail(c, "unexpected bytes after the dict");
  if (!seen_descr || !seen_order || !seen_shape)
    return {std::nullopt, fmt::format("the header lacks {}", !seen_descr   ? "'descr'"
                                                             : !seen_order ? "'fortran_order'"
                                                                           : "'shape'")};
  return {h, ""};
}

}  // namespace ar
