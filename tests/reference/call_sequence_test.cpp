// Tests of the call-sequence grammar (reference/call_sequence.h), shared by `sim --calls` and `run --calls`.
#include "reference/call_sequence.h"

#include <catch2/catch.hpp>

namespace ar {
namespace {

TEST_CASE("parse_call_sequence reads strategies and per-call parameters", "[cpu]") {
  const auto calls = parse_call_sequence("oneshot:N=4, twoshot:N=64:D=256 ,auto:N=11:dtype=fp32,oneshot");
  REQUIRE(calls.size() == 4);
  CHECK(calls[0] == CallSpec{Strategy::kOneShot, 4, std::nullopt, std::nullopt});
  CHECK(calls[1] == CallSpec{Strategy::kTwoShot, 64, 256, std::nullopt});
  CHECK(calls[2] == CallSpec{Strategy::kAuto, 11, std::nullopt, DType::kFp32});
  CHECK(calls[3] == CallSpec{Strategy::kOneShot, std::nullopt, std::nullopt, std::nullopt});
}

TEST_CASE("parse_call_sequence names the malformed call", "[cpu]") {
  const auto message = [](const char* text) {
    try {
      parse_call_sequence(text);
    } catch (const CallSequenceError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
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

}  // namespace
}  // namespace ar
