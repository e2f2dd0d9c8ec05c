// Size arithmetic on numbers that come from outside (a file's shape, a command-line N or D): every sum
// and product is checked, so a shape such as (2, 2**62, 8) is refused by name instead of wrapping to a
// small size that a later loop overruns. Use these wherever a size is computed from such numbers.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>

namespace ar {

/// a * b for non-negative a and b, or nullopt when it exceeds INT64_MAX (or an operand is negative).
constexpr std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// a + b for non-negative a and b, or nullopt when it exceeds INT64_MAX (or an operand is negative).
constexpr std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// The product of `factors` (1 for none), or nullopt when a factor is negative or the product exceeds
/// INT64_MAX. A zero factor does not hide an overflow of the others: (0, 2**40, 2**40) is refused too,
/// since a caller that later drops the zero would wrap.
constexpr std::optional<std::int64_t> checked_product(std::span<const std::int64_t> factors) {
  std::int64_t p = 1;
  for (std::int64_t f : factors) {
    if (f == 0) continue;
    const auto next = checked_mul(p, f);
    if (!next) return std::nullopt;
    p = *next;
  }
  for (std::int64_t f : factors)
    if (f == 0) return 0;
  return p;
}

constexpr std::optional<std::int64_t> checked_product(std::initializer_list<std::int64_t> factors) {
  return checked_product(std::span<const std::int64_t>(factors.begin(), factors.size()));
}

/// x rounded up to a multiple of `to` for non-negative x and positive `to`, or nullopt when that exceeds
/// INT64_MAX (or x < 0, to <= 0). The usual (x + to - 1) / to * to wraps already near INT64_MAX.
constexpr std::optional<std::int64_t> checked_round_up(std::int64_t x, std::int64_t to) {
  if (x < 0 || to <= 0) return std::nullopt;
  const std::int64_t remainder = x % to;
  if (remainder == 0) return x;
  return checked_add(x, to - remainder);
}

}  // namespace ar
