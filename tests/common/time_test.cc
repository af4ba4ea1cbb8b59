#include "common/time.h"

#include <date/tz.h>
#include <gtest/gtest.h>

#include <string>

namespace batchd {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

const date::time_zone* Zone(std::string_view name) {
  auto zone = LookupZone(name);
  EXPECT_TRUE(zone.ok()) << zone.status().message();
  return zone.ok() ? *zone : *LookupZone("UTC");
}

// ParseInstant in `zone`, shown in UTC so expectations are unambiguous.
std::string ParsedUtc(std::string_view text, std::string_view zone = "UTC") {
  auto t = ParseInstant(text, Zone(zone));
  if (!t.ok()) return "error: " + t.status().message();
  return FormatIsoUtc(*t);
}

std::string ParseError(std::string_view text, std::string_view zone = "UTC") {
  auto t = ParseInstant(text, Zone(zone));
  if (t.ok()) return "(parsed as " + FormatIsoUtc(*t) + ")";
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  return t.status().message();
}

std::string Expected(std::string_view text) {
  return "invalid time '" + std::string(text) +
         "': expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or with an offset (Z, +02:00)";
}

SysSeconds Utc(std::string_view text) {
  auto t = ParseInstant(text, Zone("UTC"));
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? *t : SysSeconds{};
}

// ---------------------------------------------------------------------------------------
// LookupZone

TEST(TimeTest, LooksUpIanaZones) {
  for (const char* name : {"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"}) {
    auto zone = LookupZone(name);
    ASSERT_TRUE(zone.ok()) << name;
    EXPECT_NE(*zone, nullptr);
  }
  EXPECT_EQ(*LookupZone("Europe/Berlin"), *LookupZone("Europe/Berlin"));
}

TEST(TimeTest, UnknownZoneIsAnError) {
  auto zone = LookupZone("Mars/Olympus_Mons");
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(zone.status().message(), "unknown time zone 'Mars/Olympus_Mons'");
  EXPECT_EQ(LookupZone("").status().message(), "unknown time zone ''");
  EXPECT_EQ(LookupZone("europe/berlin").status().message(), "unknown time zone 'europe/berlin'");
}

// ---------------------------------------------------------------------------------------
// ParseInstant: the accepted forms

TEST(TimeTest, DateAloneIsMidnightInTheZone) {
  EXPECT_EQ(ParsedUtc("2026-03-29", "UTC"), "2026-03-29T00:00:00Z");
  EXPECT_EQ(ParsedUtc("2026-03-29", "Europe/Berlin"), "2026-03-28T23:00:00Z");
  EXPECT_EQ(ParsedUtc("2026-07-01", "Europe/Berlin"), "2026-06-30T22:00:00Z");
  EXPECT_EQ(ParsedUtc("2026-07-01", "America/New_York"), "2026-07-01T04:00:00Z");
}

TEST(TimeTest, DateWhoseMidnightIsSkippedIsTheFirstInstantAfterTheGap) {
  // Santiago springs forward at midnight: 2026-09-06 starts at 01:00 -03.
  EXPECT_EQ(ParsedUtc("2026-09-06", "America/Santiago"), "2026-09-06T04:00:00Z");
}

TEST(TimeTest, WallTimeIsReadInTheZone) {
  EXPECT_EQ(ParsedUtc("2026-01-15T09:30", "Europe/Berlin"), "2026-01-15T08:30:00Z");
  EXPECT_EQ(ParsedUtc("2026-01-15T09:30:15", "Europe/Berlin"), "2026-01-15T08:30:15Z");
  EXPECT_EQ(ParsedUtc("2026-01-15 09:30:15", "Europe/Berlin"), "2026-01-15T08:30:15Z");
  EXPECT_EQ(ParsedUtc("2026-01-15t09:30", "America/New_York"), "2026-01-15T14:30:00Z");
  EXPECT_EQ(ParsedUtc("2026-01-15T09:30", "Asia/Kolkata"), "2026-01-15T04:00:00Z");
}

TEST(TimeTest, OffsetMakesTheInstantAbsolute) {
  for (const char* zone : {"UTC", "Europe/Berlin", "America/New_York"}) {
    EXPECT_EQ(ParsedUtc("2026-03-29T02:30:00Z", zone), "2026-03-29T02:30:00Z");
    EXPECT_EQ(ParsedUtc("2026-03-29T02:30z", zone), "2026-03-29T02:30:00Z");
    EXPECT_EQ(ParsedUtc("2026-03-29T03:00:00+02:00", zone), "2026-03-29T01:00:00Z");
    EXPECT_EQ(ParsedUtc("2026-03-29T03:00-05:00", zone), "2026-03-29T08:00:00Z");
    EXPECT_EQ(ParsedUtc("2026-03-29T03:00:00+05:30", zone), "2026-03-28T21:30:00Z");
    EXPECT_EQ(ParsedUtc("2026-03-29T03:00:00+00:00", zone), "2026-03-29T03:00:00Z");
    EXPECT_EQ(ParsedUtc("2026-03-29T03:00:00-00:00", zone), "2026-03-29T03:00:00Z");
  }
}

TEST(TimeTest, SurroundingSpaceIsIgnored) { EXPECT_EQ(ParsedUtc("  2026-03-29T03:00Z \n"), "2026-03-29T03:00:00Z"); }

TEST(TimeTest, LeapDayAndCalendarEdges) {
  EXPECT_EQ(ParsedUtc("2028-02-29"), "2028-02-29T00:00:00Z");
  EXPECT_EQ(ParsedUtc("2000-02-29"), "2000-02-29T00:00:00Z");
  EXPECT_EQ(ParsedUtc("1969-12-31T23:59:59Z"), "1969-12-31T23:59:59Z");
  EXPECT_EQ(Utc("1969-12-31T23:59:59Z").time_since_epoch().count(), -1);
  EXPECT_EQ(Utc("1970-01-01").time_since_epoch().count(), 0);
  EXPECT_EQ(ParsedUtc("0001-01-01T00:00:00Z"), "0001-01-01T00:00:00Z");
  EXPECT_EQ(ParsedUtc("9999-12-31T23:59:59Z"), "9999-12-31T23:59:59Z");
}

// ---------------------------------------------------------------------------------------
// ParseInstant: DST resolution (same rule as schedules)

TEST(TimeTest, WallTimeInSpringForwardGapIsTheFirstInstantAfterTheGap) {
  EXPECT_EQ(ParsedUtc("2026-03-29T02:00", "Europe/Berlin"), "2026-03-29T01:00:00Z");
  EXPECT_EQ(ParsedUtc("2026-03-29T02:30", "Europe/Berlin"), "2026-03-29T01:00:00Z");
  EXPECT_EQ(ParsedUtc("2026-03-29T02:59:59", "Europe/Berlin"), "2026-03-29T01:00:00Z");
  EXPECT_EQ(ParsedUtc("2026-03-29T03:00", "Europe/Berlin"), "2026-03-29T01:00:00Z");
  EXPECT_EQ(ParsedUtc("2026-03-29T01:59:59", "Europe/Berlin"), "2026-03-29T00:59:59Z");
  EXPECT_EQ(ParsedUtc("2026-03-08T02:30", "America/New_York"), "2026-03-08T07:00:00Z");
  // Lord Howe's gap is half an hour: 02:00-02:30.
  EXPECT_EQ(ParsedUtc("2026-10-04T02:15", "Australia/Lord_Howe"), "2026-10-03T15:30:00Z");
}

TEST(TimeTest, AmbiguousWallTimeIsItsFirstOccurrence) {
  EXPECT_EQ(ParsedUtc("2026-10-25T02:30", "Europe/Berlin"), "2026-10-25T00:30:00Z");
  EXPECT_EQ(ParsedUtc("2026-10-25T02:00", "Europe/Berlin"), "2026-10-25T00:00:00Z");
  EXPECT_EQ(ParsedUtc("2026-10-25T03:00", "Europe/Berlin"), "2026-10-25T02:00:00Z");
  EXPECT_EQ(ParsedUtc("2026-11-01T01:30", "America/New_York"), "2026-11-01T05:30:00Z");
  EXPECT_EQ(ParsedUtc("2026-04-05T01:45", "Australia/Lord_Howe"), "2026-04-04T14:45:00Z");
  // An offset picks either occurrence explicitly.
  EXPECT_EQ(ParsedUtc("2026-10-25T02:30+02:00", "Europe/Berlin"), "2026-10-25T00:30:00Z");
  EXPECT_EQ(ParsedUtc("2026-10-25T02:30+01:00", "Europe/Berlin"), "2026-10-25T01:30:00Z");
}

TEST(TimeTest, ResolveWallTimeAppliesTheScheduleRule) {
  const date::time_zone* berlin = Zone("Europe/Berlin");
  auto wall = [](int y, unsigned m, unsigned d, int h, int mi) {
    return date::local_days{date::year(y) / m / d} + hours(h) + minutes(mi);
  };
  EXPECT_EQ(FormatIsoUtc(ResolveWallTime(wall(2026, 3, 29, 2, 30), berlin)), "2026-03-29T01:00:00Z");
  EXPECT_EQ(FormatIsoUtc(ResolveWallTime(wall(2026, 10, 25, 2, 30), berlin)), "2026-10-25T00:30:00Z");
  EXPECT_EQ(FormatIsoUtc(ResolveWallTime(wall(2026, 6, 1, 12, 0), berlin)), "2026-06-01T10:00:00Z");
}

// ---------------------------------------------------------------------------------------
// ParseInstant: errors, word for word

TEST(TimeTest, MalformedTimesAreRefusedWithTheAcceptedForms) {
  for (const char* bad : {"", "now", "2026-13-01", "2026-00-10", "2026-03-00", "2026-03-32", "2026-3-1", "26-03-01",
                          "2026/03/01", "20260301", "2026-03-29T", "2026-03-29T12", "2026-03-29T1:00",
                          "2026-03-29T24:00", "2026-03-29T12:60", "2026-03-29T12:00:60", "2026-03-29T12:00:5",
                          "2026-03-29T12:00:00.5Z", "2026-03-29T12:00:00+2", "2026-03-29T12:00:00+0200",
                          "2026-03-29T12:00:00+24:00", "2026-03-29T12:00:00+02:60", "2026-03-29T12:00:00 Z",
                          "2026-03-29T12:00:00Zx", "2026-03-29Z", "2026-03-29+02:00", "2026-03-29T12:00 CET",
                          "2026-03-29x12:00", "-2026-03-29"}) {
    EXPECT_EQ(ParseError(bad), Expected(bad)) << "input: '" << bad << "'";
  }
}

TEST(TimeTest, ErrorNamesTheExampleWordForWord) {
  EXPECT_EQ(ParseError("2026-13-01"),
            "invalid time '2026-13-01': expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or with an offset (Z, +02:00)");
}

TEST(TimeTest, DayThatDoesNotExistInTheMonthIsNamed) {
  EXPECT_EQ(ParseError("2026-02-29"), "invalid time '2026-02-29': there is no day 29 in February 2026");
  EXPECT_EQ(ParseError("2026-02-30T10:00Z"), "invalid time '2026-02-30T10:00Z': there is no day 30 in February 2026");
  EXPECT_EQ(ParseError("2026-04-31"), "invalid time '2026-04-31': there is no day 31 in April 2026");
  EXPECT_EQ(ParseError("2100-02-29"), "invalid time '2100-02-29': there is no day 29 in February 2100");
}

// ---------------------------------------------------------------------------------------
// Formatting

TEST(TimeTest, FormatIsoShowsTheZonesOffsetAtThatInstant) {
  EXPECT_EQ(FormatIso(Utc("2026-03-29T01:00:00Z"), Zone("Europe/Berlin")), "2026-03-29T03:00:00+02:00");
  EXPECT_EQ(FormatIso(Utc("2026-03-29T00:59:59Z"), Zone("Europe/Berlin")), "2026-03-29T01:59:59+01:00");
  EXPECT_EQ(FormatIso(Utc("2026-10-25T00:30:00Z"), Zone("Europe/Berlin")), "2026-10-25T02:30:00+02:00");
  EXPECT_EQ(FormatIso(Utc("2026-10-25T01:30:00Z"), Zone("Europe/Berlin")), "2026-10-25T02:30:00+01:00");
  EXPECT_EQ(FormatIso(Utc("2026-07-04T16:00:00Z"), Zone("America/New_York")), "2026-07-04T12:00:00-04:00");
  EXPECT_EQ(FormatIso(Utc("2026-01-15T04:00:00Z"), Zone("Asia/Kolkata")), "2026-01-15T09:30:00+05:30");
  EXPECT_EQ(FormatIso(Utc("2026-07-01T00:00:00Z"), Zone("Australia/Lord_Howe")), "2026-07-01T10:30:00+10:30");
  EXPECT_EQ(FormatIso(Utc("2026-01-01T00:00:00Z"), Zone("Australia/Lord_Howe")), "2026-01-01T11:00:00+11:00");
  EXPECT_EQ(FormatIso(Utc("2026-01-01T00:00:00Z"), Zone("Pacific/Chatham")), "2026-01-01T13:45:00+13:45");
}

TEST(TimeTest, FormatIsoInUtcUsesPlusZero) {
  EXPECT_EQ(FormatIso(Utc("2026-03-29T01:00:00Z"), Zone("UTC")), "2026-03-29T01:00:00+00:00");
}

TEST(TimeTest, FormatIsoShowsSecondsOfHistoricOffsets) {
  // Berlin kept local mean time (+00:53:28) until 1893; minutes alone would name another instant.
  EXPECT_EQ(FormatIso(Utc("1880-01-01T00:00:00Z"), Zone("Europe/Berlin")), "1880-01-01T00:53:28+00:53:28");
}

TEST(TimeTest, FormatIsoUtc) {
  EXPECT_EQ(FormatIsoUtc(Utc("2026-03-29T01:00:00Z")), "2026-03-29T01:00:00Z");
  EXPECT_EQ(FormatIsoUtc(SysSeconds{}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatIsoUtc(SysSeconds{seconds(-1)}), "1969-12-31T23:59:59Z");
}

TEST(TimeTest, FormatDateIsTheCalendarDateInTheZone) {
  EXPECT_EQ(FormatDate(Utc("2026-03-28T23:30:00Z"), Zone("Europe/Berlin")), "2026-03-29");
  EXPECT_EQ(FormatDate(Utc("2026-03-28T23:30:00Z"), Zone("UTC")), "2026-03-28");
  EXPECT_EQ(FormatDate(Utc("2026-03-29T03:30:00Z"), Zone("America/New_York")), "2026-03-28");
}

TEST(TimeTest, FormatIsoParsesBackToTheSameInstant) {
  for (const char* zone_name : {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"}) {
    const date::time_zone* zone = Zone(zone_name);
    // Both passes of every repeated hour in 2026 survive the round trip: the offset decides.
    for (SysSeconds t = Utc("2026-01-01T00:00:00Z"); t < Utc("2027-01-01T00:00:00Z"); t += minutes(17) + seconds(3)) {
      auto back = ParseInstant(FormatIso(t, zone), Zone("UTC"));
      ASSERT_TRUE(back.ok()) << FormatIso(t, zone);
      ASSERT_EQ(*back, t) << FormatIso(t, zone);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Clock

TEST(TimeTest, SystemClockFollowsTheSystemTime) {
  const Clock& clock = SystemClock::Instance();
  EXPECT_EQ(&SystemClock::Instance(), &SystemClock::Instance());
  auto before = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  SysMillis now = clock.Now();
  auto after = std::chrono::system_clock::now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
}

}  // namespace
}  // namespace batchd
