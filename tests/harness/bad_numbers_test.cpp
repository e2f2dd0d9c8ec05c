// Every number on the command line is read whole and in range: "2abc" is not 2, "-5" is not a seed, "nan"
// is not a timeout, and a sweep that would make millions of sizes is refused before anything is made.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "test_support.h"

using namespace ar;
using test::run;

namespace {

struct NumericOption {
  std::vector<std::string> command;  ///< the command and any arguments it needs besides the option
  std::string option;
  bool integer = true;
  bool is_unsigned = false;
};

// The numeric options of every command (a bad value must be refused before anything else happens).
const std::vector<NumericOption> kOptions = {
    {{"run"}, "--seed", true, true},
    {{"run"}, "--repeat"},
    {{"run"}, "--timeout-ms", false},
    {{"run"}, "--omit-rank"},
    {{"run"}, "--device"},
    {{"run"}, "--round-bytes"},
    {{"run"}, "--direct-from"},
    {{"run"}, "--tokens"},
    {{"run"}, "--hidden"},
    {{"bench"}, "--iters"},
    {{"bench"}, "--warmup_iters"},
    {{"bench"}, "--cudagraph"},
    {{"bench"}, "--stepfactor", false},
    {{"bench"}, "--hidden"},
    {{"bench"}, "--seed", true, true},
    {{"bench"}, "--timeout-ms", false},
    {{"bench"}, "--pdl"},
    {{"bench"}, "--direct-from"},
    {{"probe"}, "--timeout-ms", false},
    {{"probe"}, "--device"},
    {{"compare"}, "--world-size"},
    {{"compare"}, "--tokens"},
    {{"compare"}, "--hidden"},
    {{"compare"}, "--seed", true, true},
    {{"explain", "-i", "x.npy", "-c", "0"}, "--token"},
    {{"explain", "-i", "x.npy", "-t", "0"}, "--col"},
    {{"explain", "-i", "x.npy", "-t", "0", "-c", "0"}, "--eps", false},
    {{"explain", "-i", "x.npy", "-t", "0", "-c", "0"}, "--weight-bias", false},
    {{"explain", "-i", "x.npy", "-t", "0", "-c", "0"}, "--sms"},
    {{"reference", "-i", "x.npy", "-o", "y.npy"}, "--eps", false},
    {{"reference", "-i", "x.npy", "-o", "y.npy"}, "--weight-bias", false},
    {{"reference", "-i", "x.npy", "-o", "y.npy"}, "--sms"},
    {{"sim"}, "--world-size"},
    {{"sim"}, "--seed", true, true},
    {{"sim"}, "--runs"},
    {{"sim"}, "--tokens"},
};

const std::vector<std::string> kBadEverywhere = {"",     "2x",  "x2",  " 2",   "2 ",    "-",
                                                 "0x10", "nan", "inf", "-inf", "1e999", "2,5"};
const std::vector<std::string> kBadIntegers = {"1.5", "1e3", "3.0", "99999999999999999999999"};

}  // namespace

TEST_CASE("a malformed or out-of-range number is refused with a message naming the option", "[cpu]") {
  int cases = 0;
  for (const NumericOption& o : kOptions) {
    std::vector<std::string> bad = kBadEverywhere;
    if (o.integer) bad.insert(bad.end(), kBadIntegers.begin(), kBadIntegers.end());
    if (o.is_unsigned) bad.push_back("-5");
    for (const std::string& value : bad) {
      std::vector<std::string> args = o.command;
      args.push_back(o.option);
      args.push_back(value);
      const test::CliResult r = run(args);
      INFO(args[0] << " " << o.option << " '" << value << "': " << r.err);
      CHECK(r.code == 2);
      CHECK_THAT(r.err, Catch::Contains(o.option) || Catch::Contains("error"));
      ++cases;
    }
  }
  CHECK(cases > 400);
}

TEST_CASE("the issue's numbers: 2abc, 2x, -5, nan", "[cpu]") {
  CHECK_THAT(run({"run", "--world", "2abc"}).err, Catch::Contains("'2abc' is not a number"));
  CHECK_THAT(run({"bench", "-W", "2x"}).err, Catch::Contains("'2x' is not a number"));
  CHECK_THAT(run({"run", "--seed", "-5"}).err, Catch::Contains("--seed '-5' is not a whole number"));
  CHECK_THAT(run({"run", "--timeout-ms", "nan"}).err, Catch::Contains("'nan' is not a finite number"));
  CHECK_THAT(run({"probe", "--timeout-ms", "nan"}).err, Catch::Contains("'nan' is not a finite number"));
  for (const char* command : {"run", "bench", "probe"}) {
    INFO(command);
    CHECK_THAT(run({command, "--timeout-ms", "1e23"}).err, Catch::Contains("longer than a day"));
    CHECK_THAT(run({command, "--timeout-ms", "-1"}).err, Catch::Contains("--timeout-ms must be"));
  }
}

TEST_CASE("a size sweep is bounded before anything is made", "[cpu]") {
  for (const char* f : {"1.0000001", "1.000000001", "1.0000000000000002"}) {
    const auto start = std::chrono::steady_clock::now();
    const test::CliResult r = run({"bench", "-f", f});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    INFO(f << ": " << r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("at most 1000 are allowed"));
    CHECK(s < 1.0);  // answered at once, not after building a list
  }
}
