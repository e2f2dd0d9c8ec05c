// Tests of the call-sequence grammar (reference/call_sequence.h), shared by `sim --calls` and `run --calls`.
#include "reference/call_sequence.h"

#include <catch2/catch.hpp>

#include <limits>
#include <string>

#include <fmt/format.h>

namespace ar {
namespace {

/// What parse_call_sequence says of `text`: its error message, or "no error".
std::string message(const char* text) {
  try {
    parse_call_sequence(text);
  } catch (const CallSequenceError& e) {
    return std::string(e.what());
  }
  return std::string("no error");
}

TEST_CASE("parse_call_sequence reads strategies and per-call parameters", "[cpu]") {
  const auto calls = parse_call_sequence("oneshot:N=4, twoshot:N=64:D=256 ,auto:N=11:dtype=fp32,oneshot");
  REQUIRE(calls.size() == 4);
  CHECK(calls[0] == CallSpec{Strategy::kOneShot, 4, std::nullopt, std::nullopt});
  CHECK(calls[1] == CallSpec{Strategy::kTwoShot, 64, 256, std::nullopt});
  CHECK(calls[2] == CallSpec{Strategy::kAuto, 11, std::nullopt, DType::kFp32});
  CHECK(calls[3] == CallSpec{Strategy::kOneShot, std::nullopt, std::nullopt, std::nullopt});
}

TEST_CASE("parse_call_sequence names the malformed call", "[cpu]") {
  CHECK_THAT(message(""), Catch::Contains("empty"));
  CHECK_THAT(message("oneshot,,twoshot"), Catch::Contains("call 2"));
  CHECK_THAT(message("oneshot:N=4,threeshot"), Catch::Contains("unknown strategy 'threeshot'"));
  CHECK_THAT(message("oneshot:N=0"), Catch::Contains("N must be an integer >= 1, got '0'"));
  CHECK_THAT(message("oneshot:N=x"), Catch::Contains("got 'x'"));
  CHECK_THAT(message("oneshot:N=4:N=5"), Catch::Contains("N is given twice"));
  CHECK_THAT(message("oneshot:W=4"), Catch::Contains("unknown parameter 'W'"));
  CHECK_THAT(message("oneshot:dtype=int8"), Catch::Contains("unknown dtype 'int8'"));
  CHECK_THAT(message("oneshot:N4"), Catch::Contains("not KEY=VALUE"));
}

TEST_CASE("resolve_calls fills defaults and validates shapes", "[cpu]") {
  const CallDefaults defaults{3, 16, DType::kBf16};
  const auto calls = resolve_calls(parse_call_sequence("oneshot,twoshot:N=5:D=8:dtype=fp32"), 4, defaults);
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].shape.tokens == 3);
  CHECK(calls[0].shape.hidden == 16);
  CHECK(calls[1].shape.dtype == DType::kFp32);
  CHECK(calls[1].strategy() == Strategy::kTwoShot);
  CHECK_THROWS_WITH(resolve_calls(parse_call_sequence("oneshot:D=12"), 4, defaults),
                    Catch::Contains("call 1") && Catch::Contains("not a multiple of 8"));
  CHECK_THROWS_AS(resolve_calls(parse_call_sequence("oneshot"), 3, defaults), CallSequenceError);
}

TEST_CASE("format_call_sequence round-trips", "[cpu]") {
  const CallDefaults defaults{2, 16, DType::kBf16};
  const auto calls = resolve_calls(parse_call_sequence("auto:N=7,twoshot:dtype=fp16"), 8, defaults);
  const std::string text = format_call_sequence(calls);
  CHECK(text == "auto:N=7:D=16:dtype=bf16,twoshot:N=2:D=16:dtype=fp16");
  const auto again = resolve_calls(parse_call_sequence(text), 8, defaults);
  REQUIRE(again.size() == calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    CHECK(again[i].requested == calls[i].requested);
    CHECK(again[i].shape.tokens == calls[i].shape.tokens);
    CHECK(again[i].shape.hidden == calls[i].shape.hidden);
    CHECK(again[i].shape.dtype == calls[i].shape.dtype);
  }
}

TEST_CASE("a call marked fused is the fused residual-add + RMSNorm call: unmarked calls stay plain", "[cpu]") {
  const auto calls = parse_call_sequence("oneshot:N=4:fused, twoshot: fused :D=32,auto:N=3");
  REQUIRE(calls.size() == 3);
  CHECK(calls[0] == CallSpec{Strategy::kOneShot, 4, std::nullopt, std::nullopt, true});
  CHECK(calls[1] == CallSpec{Strategy::kTwoShot, std::nullopt, 32, std::nullopt, true});
  CHECK(calls[2] == CallSpec{Strategy::kAuto, 3, std::nullopt, std::nullopt, false});
  CHECK_FALSE(calls[2].fused);
  // The flag is a word of its own: no value, at most once, and not a strategy.
  CHECK_THAT(message("twoshot:fused:fused"), Catch::Contains("call 1") && Catch::Contains("fused is given twice"));
  CHECK_THAT(message("oneshot:fused=1"), Catch::Contains("unknown parameter 'fused'"));
  CHECK_THAT(message("oneshot:Fused"), Catch::Contains("the flag fused"));
  CHECK_THAT(message("fused:N=2"), Catch::Contains("unknown strategy 'fused'"));
  // Resolved and written back, the flag survives; the strategy rule is the plain call's.
  const auto resolved = resolve_calls(parse_call_sequence("auto:N=7:fused,twoshot:N=2"), 8, CallDefaults{});
  REQUIRE(resolved.size() == 2);
  CHECK(resolved[0].fused);
  CHECK_FALSE(resolved[1].fused);
  CHECK(resolved[0].strategy() == resolve_strategy(Strategy::kAuto, resolved[0].shape));
  const std::string text = format_call_sequence(resolved);
  CHECK(text == "auto:N=7:D=16:dtype=bf16:fused,twoshot:N=2:D=16:dtype=bf16");
  const auto again = resolve_calls(parse_call_sequence(text), 8, CallDefaults{});
  CHECK(again[0].fused);
  CHECK_FALSE(again[1].fused);
}

TEST_CASE("quant= makes a call the quantised fused call, layout= its NVFP4 scale layout", "[cpu]") {
  const auto calls = parse_call_sequence("oneshot:N=4:quant=fp8,twoshot:D=64:fused:quant=nvfp4:layout=linear");
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].quant == QuantMode::kFp8);
  CHECK_FALSE(calls[0].fused);  // as written; resolving makes it fused
  CHECK(calls[1].layout == ScaleLayout::kLinear);
  CHECK_THAT(message("oneshot:quant=fp4"), Catch::Contains("unknown quant mode 'fp4'"));
  CHECK_THAT(message("oneshot:quant=none"), Catch::Contains("unknown quant mode 'none'"));
  CHECK_THAT(message("oneshot:quant=fp8:quant=fp8"), Catch::Contains("quant is given twice"));
  CHECK_THAT(message("oneshot:fused:layout=linear"), Catch::Contains("needs quant=nvfp4"));
  CHECK_THAT(message("oneshot:quant=nvfp4:layout=8x4"), Catch::Contains("unknown scale layout '8x4'"));
  const auto resolved = resolve_calls(calls, 2, CallDefaults{1, 32, DType::kBf16});
  CHECK(resolved[0].fused);
  CHECK(resolved[0].quant == QuantMode::kFp8);
  const std::string text = format_call_sequence(resolved);
  CHECK(text == "oneshot:N=4:D=32:dtype=bf16:fused:quant=fp8,twoshot:N=1:D=64:dtype=bf16:fused:quant=nvfp4:layout=linear");
  CHECK(resolve_calls(parse_call_sequence(text), 2, CallDefaults{})[1].layout == ScaleLayout::kLinear);
  // What the model refuses is refused here, naming the call.
  CHECK_THROWS_WITH(resolve_calls(parse_call_sequence("auto:D=24:quant=nvfp4"), 2, CallDefaults{}),
                    Catch::Contains("call 1") && Catch::Contains("divisible by 16"));
  CHECK_THROWS_WITH(resolve_calls(parse_call_sequence("auto:dtype=fp32:quant=nvfp4"), 2, CallDefaults{}),
                    Catch::Contains("bf16 or fp16"));
}

std::string parse_error(const std::string& text) {
  try {
    parse_call_sequence(text);
  } catch (const CallSequenceError& e) {
    return e.what();
  }
  return "no error";
}

std::string resolve_error(const std::string& text, int world) {
  try {
    resolve_calls(parse_call_sequence(text), world, CallDefaults{});
  } catch (const CallSequenceError& e) {
    return e.what();
  }
  return "no error";
}

TEST_CASE("N= and D= are whole numbers: no sign, no trailing junk, no other base or notation", "[cpu][grammar]") {
  for (const char* key : {"N", "D"})
    for (const char* value : {"-1", "0", "-0", "+4", "4x", "x4", "4.0", "1e3", "0x10", "4 4", "8k", "", "--8", "4_0"}) {
      const std::string call = fmt::format("oneshot:{}={}", key, value);
      INFO(call);
      CHECK_THAT(parse_error(call), Catch::Contains(fmt::format("{} must be an integer >= 1, got '{}'", key, value)));
    }
  // Whitespace around the value is the grammar's (around ':'), not part of the number.
  CHECK(parse_call_sequence("oneshot: N = 4 : D = 16")[0] == CallSpec{Strategy::kOneShot, 4, 16, std::nullopt});
}

TEST_CASE("N= and D= at the 64-bit boundary: INT64_MAX parses, one more does not", "[cpu][grammar]") {
  CHECK(parse_call_sequence("oneshot:N=9223372036854775807")[0].tokens == std::numeric_limits<std::int64_t>::max());
  CHECK(parse_call_sequence("oneshot:D=9223372036854775807")[0].hidden == std::numeric_limits<std::int64_t>::max());
  CHECK_THAT(parse_error("oneshot:N=9223372036854775808"),
             Catch::Contains("got '9223372036854775808', which does not fit 64 bits (at most 9223372036854775807)"));
  CHECK_THAT(parse_error("oneshot:D=99999999999999999999999"), Catch::Contains("does not fit 64 bits"));
  CHECK_THAT(parse_error("oneshot:N=-9223372036854775809"), Catch::Contains("N must be an integer >= 1"));
  // Parsed, but no shape: the product is named by resolve_calls.
  CHECK_THAT(resolve_error("oneshot:N=9223372036854775807:D=8", 2),
             Catch::Contains("call 1 (oneshot N=9223372036854775807 D=8 bf16)") &&
                 Catch::Contains("W x N x D x E = 2 x 9223372036854775807 x 8 x 2 bytes overflows 64 bits"));
  CHECK_THAT(resolve_error("oneshot:N=1:D=9223372036854775800", 2), Catch::Contains("overflows 64 bits"));
}

TEST_CASE("N= and D= at the 2^48-byte boundary, per dtype, and D in 16-byte packs", "[cpu][grammar]") {
  // W = 2, D = 8, bf16: 32 N bytes, so N = 2^43 is the last that fits.
  CHECK(resolve_error("oneshot:N=8796093022208:D=8", 2) == "no error");
  CHECK_THAT(resolve_error("oneshot:N=8796093022209:D=8", 2),
             Catch::Contains("2 x 8796093022209 x 8 x 2 = 281474976710688 bytes is more than"));
  // fp32, D = 8: 64 N bytes.
  CHECK(resolve_error("oneshot:N=4398046511104:D=8:dtype=fp32", 2) == "no error");
  CHECK_THAT(resolve_error("oneshot:N=4398046511105:D=8:dtype=fp32", 2), Catch::Contains("is more than"));
  // D at N = 1, W = 64, fp16: 128 D bytes.
  CHECK(resolve_error("twoshot:N=1:D=2199023255552:dtype=fp16", 64) == "no error");
  CHECK_THAT(resolve_error("twoshot:N=1:D=2199023255560:dtype=fp16", 64), Catch::Contains("is more than"));
  // D must be whole 16-byte packs: 8 bf16 or fp16 elements, 4 fp32.
  CHECK_THAT(resolve_error("oneshot:D=12", 2), Catch::Contains("D = 12 is not a multiple of 8"));
  CHECK_THAT(resolve_error("oneshot:D=4:dtype=fp16", 2), Catch::Contains("not a multiple of 8"));
  CHECK(resolve_error("oneshot:D=12:dtype=fp32", 2) == "no error");
  CHECK_THAT(resolve_error("oneshot:D=6:dtype=fp32", 2), Catch::Contains("not a multiple of 4"));
}

TEST_CASE("the issue's call oneshot:N=274177:D=538243370485768 is refused, naming the product", "[cpu][wrapping]") {
  // Unchecked, N x D x W x E wrapped to 64 bytes and the simulator reported a protocol failure.
  CHECK_THAT(resolve_error("oneshot:N=274177:D=538243370485768", 4),
             Catch::Contains("call 1 (oneshot N=274177 D=538243370485768 bf16)") &&
                 Catch::Contains("W x N x D x E = 4 x 274177 x 538243370485768 x 2 bytes overflows 64 bits"));
}

}  // namespace
}  // namespace ar
