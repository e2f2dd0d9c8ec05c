// The strict .npy header parser: what numpy writes is read, anything else is refused with a message, and
// no input (random, mutated, or tens of KB long) crashes it or takes more than one pass.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "harness/io/npy_header.h"

using namespace ar;

namespace {

/// A valid dict with the given entries, in `order` (a permutation of 0, 1, 2), with the quoting, spacing and
/// trailing commas the random engine picks.
struct HeaderParts {
  std::string descr = "<f4";
  bool fortran = false;
  std::vector<std::int64_t> shape;
};

std::string random_space(std::mt19937_64& rng) {
  static const char kSpace[] = {' ', ' ', ' ', '\t', '\n'};
  std::string s;
  for (std::uint64_t n = rng() % 3; n > 0; --n) s.push_back(kSpace[rng() % sizeof(kSpace)]);
  return s;
}

std::string quoted(const std::string& s, std::mt19937_64& rng) { return rng() % 2 ? "'" + s + "'" : "\"" + s + "\""; }

std::string render(const HeaderParts& h, std::mt19937_64& rng) {
  std::vector<std::string> items;
  items.push_back(quoted("descr", rng) + random_space(rng) + ":" + random_space(rng) + quoted(h.descr, rng));
  items.push_back(quoted("fortran_order", rng) + ":" + random_space(rng) + (h.fortran ? "True" : "False"));
  std::string shape = "(";
  for (std::size_t i = 0; i < h.shape.size(); ++i) {
    shape += random_space(rng) + std::to_string(h.shape[i]) + random_space(rng);
    if (i + 1 < h.shape.size() || h.shape.size() == 1 || rng() % 2) shape += ",";
  }
  shape += random_space(rng) + ")";
  items.push_back(quoted("shape", rng) + ":" + random_space(rng) + shape);
  std::shuffle(items.begin(), items.end(), rng);
  std::string out = random_space(rng) + "{";
  for (std::size_t i = 0; i < items.size(); ++i)
    out += random_space(rng) + items[i] + (i + 1 < items.size() ? "," : "");
  if (rng() % 2) out += ",";
  out += random_space(rng) + "}" + std::string(rng() % 70, ' ') + "\n";
  return out;
}

HeaderParts random_parts(std::mt19937_64& rng) {
  static const char* kDescr[] = {"<f4", "<f2", "<u2", "|u1", ">i8"};
  HeaderParts h;
  h.descr = kDescr[rng() % 5];
  h.fortran = rng() % 2;
  for (std::uint64_t n = rng() % 5; n > 0; --n) {
    const int bits = 1 + static_cast<int>(rng() % 64);  // 1..64: a shift by 64 would be undefined
    h.shape.push_back(static_cast<std::int64_t>(rng() >> (64 - bits) >> 1));
  }
  return h;
}

void check_rejected(const std::string& dict) {
  const NpyHeaderResult r = parse_npy_header(dict);
  INFO(dict);
  CHECK_FALSE(r.header);
  CHECK_FALSE(r.error.empty());
}

}  // namespace

TEST_CASE("the header numpy writes is read", "[cpu]") {
  const NpyHeaderResult r = parse_npy_header("{'descr': '<u2', 'fortran_order': False, 'shape': (2, 4, 8), }       \n");
  REQUIRE(r.header);
  CHECK(r.header->descr == "<u2");
  CHECK_FALSE(r.header->fortran_order);
  CHECK(r.header->shape == std::vector<std::int64_t>{2, 4, 8});
  const NpyHeaderResult one = parse_npy_header("{'shape': (5,), 'fortran_order': True, 'descr': '<f4'}");
  REQUIRE(one.header);
  CHECK(one.header->shape == std::vector<std::int64_t>{5});
  CHECK(one.header->fortran_order);
  const NpyHeaderResult scalar = parse_npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': ()}");
  REQUIRE(scalar.header);
  CHECK(scalar.header->shape.empty());
}

TEST_CASE("a header that is not exactly a numpy dict is refused, naming the problem", "[cpu]") {
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (2**40, 8), }");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (1abc, 8), }");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 8), }");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (08, 8), }");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 8), }");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775808,), }");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (5), }");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (2,, 8), }");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': [2, 8], }");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 8), 'shape': (2, 8)}");
  check_rejected("{'descr': '<f4', 'descr': '<f2', 'fortran_order': False, 'shape': (2, 8)}");
  check_rejected("{'descr': '<f4', 'fortran_order': False}");
  check_rejected("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}");
  check_rejected("{'descr': '<\\x66', 'fortran_order': False, 'shape': (2,)}");
  check_rejected("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing");
  check_rejected("{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}");
  check_rejected("'descr': '<f4', 'fortran_order': False, 'shape': (2,)");
  check_rejected("");
  const NpyHeaderResult dup =
      parse_npy_header("{'shape': (2,), 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}");
  CHECK(dup.error.find("'shape' appears twice") != std::string::npos);
  const NpyHeaderResult big = parse_npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2**40,)}");
  CHECK(big.error.find("a shape entry is not a non-negative integer") != std::string::npos);
  CHECK(big.error.find("at byte 52") != std::string::npos);
}

TEST_CASE("a valid header padded with tens of KB of spaces is read in one pass", "[cpu]") {
  const std::string dict = "{'descr': '<f4', " + std::string(40000, ' ') + "'fortran_order': False, 'shape': (3, " +
                           std::string(30000, ' ') + "16)}" + std::string(60000, ' ') + "\n";
  const NpyHeaderResult r = parse_npy_header(dict);
  REQUIRE(r.header);
  CHECK(r.header->shape == std::vector<std::int64_t>{3, 16});
}

TEST_CASE("the preamble: versions 1.0, 2.0, 3.0 and their header lengths", "[cpu]") {
  const NpyPreambleResult v1 = parse_npy_preamble(std::string("\x93NUMPY\x01\x00\x76\x00", 10));
  REQUIRE(v1.preamble);
  CHECK(v1.preamble->header_start == 10);
  CHECK(v1.preamble->header_bytes == 0x76);
  const NpyPreambleResult v3 = parse_npy_preamble(std::string("\x93NUMPY\x03\x00\x00\x01\x02\x00", 12));
  REQUIRE(v3.preamble);
  CHECK(v3.preamble->header_start == 12);
  CHECK(v3.preamble->header_bytes == 0x020100);
  CHECK_FALSE(parse_npy_preamble(std::string("\x93NUMPY\x04\x00\x10\x00", 10)).preamble);
  CHECK_FALSE(parse_npy_preamble(std::string("\x93NUMPY\x01\x01\x10\x00", 10)).preamble);
  CHECK_FALSE(parse_npy_preamble(std::string("\x93NUMPY\x02\x00\x10\x00", 10)).preamble);          // truncated length
  CHECK_FALSE(parse_npy_preamble(std::string("\x93NUMPY\x02\x00\xFF\xFF\xFF\xFF", 12)).preamble);  // > the limit
  CHECK_FALSE(parse_npy_preamble("PK\x03\x04 not numpy").preamble);
}

TEST_CASE("fuzz: 20,000 random, mutated and garbage headers", "[cpu]") {
  std::mt19937_64 rng(20261201);
  int accepted = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    const HeaderParts parts = random_parts(rng);
    std::string dict = render(parts, rng);
    const int kind = i % 4;
    if (kind == 0) {
      // Valid: read back exactly.
      const NpyHeaderResult r = parse_npy_header(dict);
      INFO(dict);
      REQUIRE(r.header);
      CHECK(r.header->descr == parts.descr);
      CHECK(r.header->fortran_order == parts.fortran);
      CHECK(r.header->shape == parts.shape);
      ++accepted;
      continue;
    }
    if (kind == 1) {  // a few bytes flipped, inserted or removed
      for (std::uint64_t n = 1 + rng() % 3; n > 0 && !dict.empty(); --n) {
        const std::size_t at = rng() % dict.size();
        switch (rng() % 3) {
          case 0: dict[at] = static_cast<char>(rng()); break;
          case 1: dict.insert(at, 1, "{}(),:'\"0123456789 -*xTF"[rng() % 24]); break;
          default: dict.erase(at, 1); break;
        }
      }
    } else if (kind == 2) {  // truncated
      dict.resize(rng() % (dict.size() + 1));
    } else {  // garbage
      dict.assign(rng() % 200, '\0');
      for (char& c : dict) c = static_cast<char>(rng());
    }
    const NpyHeaderResult r = parse_npy_header(dict);
    // Whatever it says must be consistent: a header and no error, or an error and no header; an accepted
    // header is one the grammar allows (the keys are known, so re-rendering it parses to the same values).
    CHECK(r.header.has_value() == r.error.empty());
    if (r.header) {
      ++accepted;
      HeaderParts again{r.header->descr, r.header->fortran_order, r.header->shape};
      if (again.descr.find_first_of("'\"\\\n") != std::string::npos) continue;  // not re-renderable as is
      const NpyHeaderResult twice = parse_npy_header(render(again, rng));
      REQUIRE(twice.header);
      CHECK(twice.header->shape == r.header->shape);
    } else {
      ++refused;
    }
  }
  CHECK(accepted >= 5000);
  CHECK(refused >= 10000);
}
