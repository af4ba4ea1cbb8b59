#include "common/duration.h"

#include <gtest/gtest.h>

#include <string>

namespace batchd {
namespace {

using namespace std::chrono_literals;

std::string DurationError(std::string_view text) {
  auto d = ParseDuration(text);
  if (d.ok()) return "(parsed as " + std::to_string(d->count()) + "ms)";
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  return d.status().message();
}

std::string Expected(std::string_view text) {
  return "invalid duration '" + std::string(text) +
         "': expected a number with a unit ms, s, m, h or d (e.g. 500ms, 10s, 5m, 2h, 1d), or a bare number of "
         "seconds";
}

Millis Parsed(std::string_view text) {
  auto d = ParseDuration(text);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status().message();
  return d.ok() ? *d : Millis(-1);
}

TEST(DurationTest, ParsesEachUnit) {
  EXPECT_EQ(Parsed("500ms"), 500ms);
  EXPECT_EQ(Parsed("10s"), 10s);
  EXPECT_EQ(Parsed("5m"), 5min);
  EXPECT_EQ(Parsed("2h"), 2h);
  EXPECT_EQ(Parsed("1d"), 24h);
}

TEST(DurationTest, BareNumberIsSeconds) {
  EXPECT_EQ(Parsed("30"), 30s);
  EXPECT_EQ(Parsed("1.5"), 1500ms);
  EXPECT_EQ(Parsed("0"), 0ms);
  EXPECT_EQ(Parsed(".5"), 500ms);
  EXPECT_EQ(Parsed("5."), 5s);
}

TEST(DurationTest, FractionsWithUnits) {
  EXPECT_EQ(Parsed("1.5s"), 1500ms);
  EXPECT_EQ(Parsed("0.25m"), 15s);
  EXPECT_EQ(Parsed("1.5h"), 90min);
  EXPECT_EQ(Parsed("0.5d"), 12h);
  EXPECT_EQ(Parsed("2.5ms"), 3ms);  // rounded to the millisecond
}

TEST(DurationTest, LeadingZerosAndSurroundingSpaceAreAccepted) {
  EXPECT_EQ(Parsed("007s"), 7s);
  EXPECT_EQ(Parsed("  10s\t"), 10s);
}

TEST(DurationTest, LargeButFiniteValues) {
  EXPECT_EQ(Parsed("365d"), 365 * 24h);
  EXPECT_EQ(Parsed("10000d"), 10000 * 24h);
}

TEST(DurationTest, RefusesBadInputWithTheExpectedForms) {
  for (const char* bad : {"", "   ", "s", "ms", "abc", "-5s", "-1", "+5s", "5 s", "10sec", "1w", "5M", "5S", "1e3",
                          "1.2.3", "..5", "nan", "inf", "5s5", "1h30m", "0x10"}) {
    EXPECT_EQ(DurationError(bad), Expected(bad)) << "input: '" << bad << "'";
  }
}

TEST(DurationTest, RefusesAbsurdlyLargeValues) {
  EXPECT_EQ(DurationError("99999999999999999999d"), Expected("99999999999999999999d"));
  std::string huge(400, '9');
  EXPECT_EQ(DurationError(huge), Expected(huge));
}

TEST(DurationTest, ErrorQuotesTheTextAsGiven) {
  EXPECT_EQ(DurationError(" 5x "),
            "invalid duration ' 5x ': expected a number with a unit ms, s, m, h or d (e.g. 500ms, 10s, 5m, 2h, 1d), "
            "or a bare number of seconds");
}

TEST(DurationTest, FormatsCompactly) {
  EXPECT_EQ(FormatDuration(0ms), "0s");
  EXPECT_EQ(FormatDuration(250ms), "250ms");
  EXPECT_EQ(FormatDuration(999ms), "999ms");
  EXPECT_EQ(FormatDuration(1s), "1s");
  EXPECT_EQ(FormatDuration(10s), "10s");
  EXPECT_EQ(FormatDuration(1min), "1m");
  EXPECT_EQ(FormatDuration(61s), "1m1s");
  EXPECT_EQ(FormatDuration(90min), "1h30m");
  EXPECT_EQ(FormatDuration(2h), "2h");
  EXPECT_EQ(FormatDuration(24h), "1d");
  EXPECT_EQ(FormatDuration(24h + 2h + 3min + 4s), "1d2h3m4s");
  EXPECT_EQ(FormatDuration(48h + 5s), "2d5s");
}

TEST(DurationTest, FormatsMillisecondsBelowAnHour) {
  EXPECT_EQ(FormatDuration(1500ms), "1.5s");
  EXPECT_EQ(FormatDuration(1050ms), "1.05s");
  EXPECT_EQ(FormatDuration(1001ms), "1.001s");
  EXPECT_EQ(FormatDuration(61500ms), "1m1.5s");
  EXPECT_EQ(FormatDuration(60500ms), "1m0.5s");
  EXPECT_EQ(FormatDuration(59999ms), "59.999s");
}

TEST(DurationTest, DropsMillisecondsFromAnHourUp) {
  EXPECT_EQ(FormatDuration(1h + 500ms), "1h");
  EXPECT_EQ(FormatDuration(1h + 1500ms), "1h1s");
  EXPECT_EQ(FormatDuration(24h + 999ms), "1d");
}

TEST(DurationTest, FormatsNegativeDurations) {
  EXPECT_EQ(FormatDuration(-500ms), "-500ms");
  EXPECT_EQ(FormatDuration(-1500ms), "-1.5s");
  EXPECT_EQ(FormatDuration(-90min), "-1h30m");
}

TEST(DurationTest, FormattedDurationsParseBackWhenSingleUnit) {
  for (Millis d : {Millis(250), Millis(10'000), Millis(60'000), Millis(7'200'000), Millis(86'400'000),
                   Millis(1'500)}) {
    EXPECT_EQ(Parsed(FormatDuration(d)), d) << FormatDuration(d);
  }
}

}  // namespace
}  // namespace batchd
