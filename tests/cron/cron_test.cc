#include "cron/cron.h"

#include <date/tz.h>
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

namespace batchd::cron {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

const date::time_zone* Zone(std::string_view name) {
  auto zone = LookupZone(name);
  EXPECT_TRUE(zone.ok()) << zone.status().message();
  return zone.ok() ? *zone : *LookupZone("UTC");
}

// An instant written in ISO-8601; without an offset it is read in `zone`.
SysSeconds At(std::string_view text, std::string_view zone = "UTC") {
  auto t = ParseInstant(text, Zone(zone));
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? *t : SysSeconds{};
}

CronExpr MustParse(std::string_view text) {
  auto expr = CronExpr::Parse(text);
  EXPECT_TRUE(expr.ok()) << expr.status().message();
  return expr.ok() ? *expr : *CronExpr::Parse("* * * * *");
}

std::string ParseError(std::string_view text) {
  auto expr = CronExpr::Parse(text);
  if (expr.ok()) return "(parsed fine)";
  EXPECT_EQ(expr.status().code(), StatusCode::kInvalidArgument);
  return expr.status().message();
}

// The first `n` fire times strictly after `from`, formatted in `zone`.
std::vector<std::string> Fires(std::string_view expr_text, std::string_view zone_name, std::string_view from,
                               int n) {
  CronExpr expr = MustParse(expr_text);
  const date::time_zone* zone = Zone(zone_name);
  SysSeconds t = At(from, zone_name);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    auto next = expr.Next(t, zone);
    if (!next) {
      out.push_back("(none)");
      break;
    }
    EXPECT_GT(*next, t);
    out.push_back(FormatIso(*next, zone));
    t = *next;
  }
  return out;
}

std::vector<std::string> FiresUtc(std::string_view expr_text, std::string_view from, int n) {
  return Fires(expr_text, "UTC", from, n);
}

// The last `n` fire times strictly before `before`, newest first, formatted in `zone`.
std::vector<std::string> PrevFires(std::string_view expr_text, std::string_view zone_name, std::string_view before,
                                   int n) {
  CronExpr expr = MustParse(expr_text);
  const date::time_zone* zone = Zone(zone_name);
  SysSeconds t = At(before, zone_name);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    auto prev = expr.Prev(t, zone);
    if (!prev) {
      out.push_back("(none)");
      break;
    }
    EXPECT_LT(*prev, t);
    out.push_back(FormatIso(*prev, zone));
    t = *prev;
  }
  return out;
}

// Two expressions fire at the same instants over the next `n` fire times.
void ExpectSameSchedule(std::string_view a, std::string_view b, std::string_view from = "2026-01-01T00:00:00Z",
                        int n = 60) {
  EXPECT_EQ(FiresUtc(a, from, n), FiresUtc(b, from, n)) << a << " vs " << b;
}

using V = std::vector<std::string>;

// ---------------------------------------------------------------------------------------
// Field forms

TEST(CronTest, EveryMinuteFiresEachMinute) {
  EXPECT_EQ(FiresUtc("* * * * *", "2026-01-01T23:58:00Z", 3),
            (V{"2026-01-01T23:59:00+00:00", "2026-01-02T00:00:00+00:00", "2026-01-02T00:01:00+00:00"}));
}

TEST(CronTest, SingleValuesFireOncePerDay) {
  EXPECT_EQ(FiresUtc("30 14 * * *", "2026-01-01T00:00:00Z", 3),
            (V{"2026-01-01T14:30:00+00:00", "2026-01-02T14:30:00+00:00", "2026-01-03T14:30:00+00:00"}));
}

TEST(CronTest, ListFiresAtEachListedValue) {
  EXPECT_EQ(FiresUtc("0,15,45 * * * *", "2026-01-01T00:00:00Z", 4),
            (V{"2026-01-01T00:15:00+00:00", "2026-01-01T00:45:00+00:00", "2026-01-01T01:00:00+00:00",
               "2026-01-01T01:15:00+00:00"}));
}

TEST(CronTest, ListOrderAndDuplicatesDoNotMatter) {
  ExpectSameSchedule("45,0,15,15 * * * *", "0,15,45 * * * *");
}

TEST(CronTest, RangeIsInclusive) {
  EXPECT_EQ(FiresUtc("10-12 * * * *", "2026-01-01T00:00:00Z", 4),
            (V{"2026-01-01T00:10:00+00:00", "2026-01-01T00:11:00+00:00", "2026-01-01T00:12:00+00:00",
               "2026-01-01T01:10:00+00:00"}));
}

TEST(CronTest, SingleValueRangeIsThatValue) { ExpectSameSchedule("7-7 * * * *", "7 * * * *"); }

TEST(CronTest, StepOverStarStartsAtFieldMinimum) {
  EXPECT_EQ(FiresUtc("*/15 * * * *", "2026-01-01T00:00:00Z", 5),
            (V{"2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00", "2026-01-01T00:45:00+00:00",
               "2026-01-01T01:00:00+00:00", "2026-01-01T01:15:00+00:00"}));
  // Day-of-month starts at 1, month at 1.
  EXPECT_EQ(FiresUtc("0 0 */10 * *", "2026-01-01T00:00:00Z", 4),
            (V{"2026-01-11T00:00:00+00:00", "2026-01-21T00:00:00+00:00", "2026-01-31T00:00:00+00:00",
               "2026-02-01T00:00:00+00:00"}));
  EXPECT_EQ(FiresUtc("0 0 1 */5 *", "2026-01-01T00:00:00Z", 4),
            (V{"2026-06-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00",
               "2027-06-01T00:00:00+00:00"}));
}

TEST(CronTest, StepOverRange) {
  EXPECT_EQ(FiresUtc("1-30/5 * * * *", "2026-01-01T00:00:00Z", 7),
            (V{"2026-01-01T00:01:00+00:00", "2026-01-01T00:06:00+00:00", "2026-01-01T00:11:00+00:00",
               "2026-01-01T00:16:00+00:00", "2026-01-01T00:21:00+00:00", "2026-01-01T00:26:00+00:00",
               "2026-01-01T01:01:00+00:00"}));
}

TEST(CronTest, StepFromSingleValueRunsToFieldMaximum) {
  ExpectSameSchedule("5/10 * * * *", "5,15,25,35,45,55 * * * *");
  ExpectSameSchedule("0 20/2 * * *", "0 20,22 * * *");
  ExpectSameSchedule("0 0 25/3 * *", "0 0 25,28,31 * *");
}

TEST(CronTest, StepLargerThanRangeKeepsOnlyTheStart) {
  ExpectSameSchedule("*/90 * * * *", "0 * * * *");
  ExpectSameSchedule("0 0 */40 * *", "0 0 1 * *");
}

TEST(CronTest, StepOfOneIsEveryValue) { ExpectSameSchedule("*/1 * * * *", "* * * * *"); }

TEST(CronTest, MixedListOfRangesStepsAndValues) {
  ExpectSameSchedule("0-5/2,30,50-51 * * * *", "0,2,4,30,50,51 * * * *");
}

TEST(CronTest, HourField) {
  EXPECT_EQ(FiresUtc("0 */6 * * *", "2026-01-01T00:00:00Z", 4),
            (V{"2026-01-01T06:00:00+00:00", "2026-01-01T12:00:00+00:00", "2026-01-01T18:00:00+00:00",
               "2026-01-02T00:00:00+00:00"}));
  EXPECT_EQ(FiresUtc("59 23 * * *", "2026-12-31T23:59:00Z", 1), (V{"2027-01-01T23:59:00+00:00"}));
}

TEST(CronTest, LeadingZerosAreAccepted) { ExpectSameSchedule("05 08 01 01 00", "5 8 1 1 0"); }

TEST(CronTest, MonthField) {
  EXPECT_EQ(FiresUtc("0 0 1 3,9 *", "2026-01-01T00:00:00Z", 3),
            (V{"2026-03-01T00:00:00+00:00", "2026-09-01T00:00:00+00:00", "2027-03-01T00:00:00+00:00"}));
}

TEST(CronTest, MonthNamesAreCaseInsensitive) {
  ExpectSameSchedule("0 0 1 jan,Mar,DEC *", "0 0 1 1,3,12 *");
  ExpectSameSchedule("0 0 1 JAN-MAR *", "0 0 1 1-3 *");
  ExpectSameSchedule("0 0 1 feb-dec/2 *", "0 0 1 2,4,6,8,10,12 *");
  ExpectSameSchedule("0 0 1 jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec *", "0 0 1 * *");
}

TEST(CronTest, WeekdayNamesAreCaseInsensitive) {
  ExpectSameSchedule("0 9 * * MON-FRI", "0 9 * * 1-5");
  ExpectSameSchedule("0 9 * * sun,Mon,tue,WED,thu,fri,SAT", "0 9 * * *");
  // 2026-01-02 is a Friday.
  EXPECT_EQ(FiresUtc("0 9 * * MON-FRI", "2026-01-02T00:00:00Z", 3),
            (V{"2026-01-02T09:00:00+00:00", "2026-01-05T09:00:00+00:00", "2026-01-06T09:00:00+00:00"}));
}

TEST(CronTest, SundayIsZeroOrSeven) {
  ExpectSameSchedule("0 0 * * 0", "0 0 * * 7");
  ExpectSameSchedule("0 0 * * SUN", "0 0 * * 7");
  EXPECT_EQ(FiresUtc("0 0 * * 7", "2026-01-01T00:00:00Z", 2),
            (V{"2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"}));
}

TEST(CronTest, WeekdayRangeMayEndAtSevenOrSunday) {
  ExpectSameSchedule("0 0 * * 5-7", "0 0 * * 0,5,6");
  ExpectSameSchedule("0 0 * * FRI-SUN", "0 0 * * 0,5,6");
  ExpectSameSchedule("0 0 * * 5-0", "0 0 * * 0,5,6");
  ExpectSameSchedule("0 0 * * 0-7", "0 0 * * *");
}

TEST(CronTest, WeekdayStepsSpanZeroToSeven) {
  ExpectSameSchedule("0 0 * * */2", "0 0 * * 0,2,4,6");
  // 1/2 is 1-7/2 = Monday, Wednesday, Friday and Sunday (7), as croniter has it.
  ExpectSameSchedule("0 0 * * 1/2", "0 0 * * 0,1,3,5");
  ExpectSameSchedule("0 0 * * */7", "0 0 * * 0");
}

TEST(CronTest, SpacesAndTabsSeparateFieldsAndTextIsTrimmed) {
  ExpectSameSchedule("  0\t 9  *   * \t1-5 ", "0 9 * * 1-5");
  EXPECT_EQ(MustParse("  0\t 9  *   * \t1-5 ").text(), "0\t 9  *   * \t1-5");
}

// ---------------------------------------------------------------------------------------
// Macros

TEST(CronTest, MacrosMatchTheirExpansions) {
  ExpectSameSchedule("@yearly", "0 0 1 1 *", "2026-01-01T00:00:00Z", 5);
  ExpectSameSchedule("@annually", "0 0 1 1 *", "2026-01-01T00:00:00Z", 5);
  ExpectSameSchedule("@monthly", "0 0 1 * *");
  ExpectSameSchedule("@weekly", "0 0 * * 0");
  ExpectSameSchedule("@daily", "0 0 * * *");
  ExpectSameSchedule("@midnight", "0 0 * * *");
  ExpectSameSchedule("@hourly", "0 * * * *");
}

TEST(CronTest, MacrosFireAtTheExpectedTimes) {
  EXPECT_EQ(FiresUtc("@yearly", "2026-06-01T00:00:00Z", 2),
            (V{"2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"}));
  EXPECT_EQ(FiresUtc("@weekly", "2026-01-01T00:00:00Z", 1), (V{"2026-01-04T00:00:00+00:00"}));
  EXPECT_EQ(FiresUtc("@hourly", "2026-01-01T10:00:00Z", 1), (V{"2026-01-01T11:00:00+00:00"}));
}

TEST(CronTest, MacrosAreCaseInsensitiveAndKeepTheirText) {
  ExpectSameSchedule("@DAILY", "0 0 * * *");
  EXPECT_EQ(MustParse(" @daily ").text(), "@daily");
}

// ---------------------------------------------------------------------------------------
// Day-of-month and day-of-week (Vixie)

TEST(CronTest, BothDayFieldsRestrictedMatchEither) {
  // The 13th, and every Friday (2026-01-02 is a Friday, 2026-01-13 a Tuesday).
  EXPECT_EQ(FiresUtc("0 0 13 * FRI", "2026-01-01T00:00:00Z", 5),
            (V{"2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00", "2026-01-13T00:00:00+00:00",
               "2026-01-16T00:00:00+00:00", "2026-01-23T00:00:00+00:00"}));
  ExpectSameSchedule("0 0 1,15 * 1-5", "0 0 1,15 * 1-5");
}

TEST(CronTest, OnlyDayOfMonthRestrictedIgnoresWeekday) {
  EXPECT_EQ(FiresUtc("0 0 13 * *", "2026-01-01T00:00:00Z", 2),
            (V{"2026-01-13T00:00:00+00:00", "2026-02-13T00:00:00+00:00"}));
}

TEST(CronTest, OnlyDayOfWeekRestrictedIgnoresDayOfMonth) {
  EXPECT_EQ(FiresUtc("0 0 * * TUE", "2026-01-01T00:00:00Z", 2),
            (V{"2026-01-06T00:00:00+00:00", "2026-01-13T00:00:00+00:00"}));
}

TEST(CronTest, StarStepDayOfMonthCountsAsUnrestricted) {
  // Vixie's DOM_STAR: "*/2" begins with '*', so both fields must match: odd days that are
  // Mondays (croniter would fire on every odd day and every Monday).
  EXPECT_EQ(FiresUtc("0 0 */2 * MON", "2026-01-01T00:00:00Z", 4),
            (V{"2026-01-05T00:00:00+00:00", "2026-01-19T00:00:00+00:00", "2026-02-09T00:00:00+00:00",
               "2026-02-23T00:00:00+00:00"}));
}

TEST(CronTest, StarStepDayOfWeekCountsAsUnrestricted) {
  // Vixie's DOW_STAR: the 1st of the month, only when it is a Sunday, Tuesday, Thursday or
  // Saturday. 2026: Jan 1 Thu, Feb 1 Sun, Mar 1 Sun, Apr 1 Wed, May 1 Fri, Jun 1 Mon, Jul 1 Wed,
  // Aug 1 Sat.
  EXPECT_EQ(FiresUtc("0 0 1 * */2", "2025-12-31T00:00:00Z", 4),
            (V{"2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00",
               "2026-08-01T00:00:00+00:00"}));
}

TEST(CronTest, ExplicitFullRangesCountAsRestricted) {
  // "1-31" does not begin with '*': with a restricted weekday, either matches, i.e. every day.
  ExpectSameSchedule("0 0 1-31 * MON", "0 0 * * *");
}

// ---------------------------------------------------------------------------------------
// Calendar: leap years and month ends

TEST(CronTest, LeapDayFiresOnlyInLeapYears) {
  EXPECT_EQ(FiresUtc("0 0 29 2 *", "2026-01-01T00:00:00Z", 3),
            (V{"2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00", "2036-02-29T00:00:00+00:00"}));
}

TEST(CronTest, LeapDaySkips2100) {
  EXPECT_EQ(FiresUtc("0 0 29 2 *", "2096-03-01T00:00:00Z", 1), (V{"2104-02-29T00:00:00+00:00"}));
  EXPECT_EQ(FiresUtc("0 0 29 2 *", "2399-01-01T00:00:00Z", 1), (V{"2400-02-29T00:00:00+00:00"}));
  EXPECT_EQ(PrevFires("0 0 29 2 *", "UTC", "2104-01-01T00:00:00Z", 1), (V{"2096-02-29T00:00:00+00:00"}));
}

TEST(CronTest, LeapDayOrMondayFiresOnFebruaryMondays) {
  // Both day fields restricted: every Monday in February, and Feb 29.
  EXPECT_EQ(FiresUtc("0 0 29 2 1", "2026-03-01T00:00:00Z", 5),
            (V{"2027-02-01T00:00:00+00:00", "2027-02-08T00:00:00+00:00", "2027-02-15T00:00:00+00:00",
               "2027-02-22T00:00:00+00:00", "2028-02-07T00:00:00+00:00"}));
  EXPECT_EQ(FiresUtc("0 0 29 2 1", "2028-02-28T00:00:00Z", 1), (V{"2028-02-29T00:00:00+00:00"}));
}

TEST(CronTest, LeapDayThatMustBeASundayIsFoundDecadesAhead) {
  // "*/7" begins with '*', so Feb 29 must also be a Sunday: 2032, 2060, 2088, then (2100 not
  // being leap) 2128.
  EXPECT_EQ(FiresUtc("0 0 29 2 */7", "2026-01-01T00:00:00Z", 4),
            (V{"2032-02-29T00:00:00+00:00", "2060-02-29T00:00:00+00:00", "2088-02-29T00:00:00+00:00",
               "2128-02-29T00:00:00+00:00"}));
  EXPECT_EQ(PrevFires("0 0 29 2 */7", "UTC", "2128-01-01T00:00:00Z", 1), (V{"2088-02-29T00:00:00+00:00"}));
}

TEST(CronTest, ThirtyFirstFiresOnlyInLongMonths) {
  EXPECT_EQ(FiresUtc("0 0 31 * *", "2026-01-01T00:00:00Z", 8),
            (V{"2026-01-31T00:00:00+00:00", "2026-03-31T00:00:00+00:00", "2026-05-31T00:00:00+00:00",
               "2026-07-31T00:00:00+00:00", "2026-08-31T00:00:00+00:00", "2026-10-31T00:00:00+00:00",
               "2026-12-31T00:00:00+00:00", "2027-01-31T00:00:00+00:00"}));
}

TEST(CronTest, ThirtiethSkipsFebruary) {
  EXPECT_EQ(FiresUtc("0 0 30 * *", "2026-01-15T00:00:00Z", 2),
            (V{"2026-01-30T00:00:00+00:00", "2026-03-30T00:00:00+00:00"}));
}

TEST(CronTest, ThirtyFirstInSelectedMonthsSkipsShortOnes) {
  EXPECT_EQ(FiresUtc("0 0 31 2,4,5 *", "2026-01-01T00:00:00Z", 2),
            (V{"2026-05-31T00:00:00+00:00", "2027-05-31T00:00:00+00:00"}));
}

TEST(CronTest, DayListWithThirtyFirstStillFiresOnMarchFirst) {
  // Days 1, 11, 21, 31: February has no 31st, and the next fire after Feb 21 is Mar 1.
  EXPECT_EQ(FiresUtc("0 0 */10 * *", "2026-02-20T00:00:00Z", 3),
            (V{"2026-02-21T00:00:00+00:00", "2026-03-01T00:00:00+00:00", "2026-03-11T00:00:00+00:00"}));
  EXPECT_EQ(FiresUtc("0 0 1,31 * *", "2028-02-01T00:00:00Z", 1), (V{"2028-03-01T00:00:00+00:00"}));
}

TEST(CronTest, NextCrossesYearEnd) {
  EXPECT_EQ(FiresUtc("0 0 1 1 *", "2026-12-31T23:59:59Z", 1), (V{"2027-01-01T00:00:00+00:00"}));
}

// ---------------------------------------------------------------------------------------
// Strictness of Next and Prev

TEST(CronTest, NextIsStrictlyAfter) {
  CronExpr expr = MustParse("0 * * * *");
  const date::time_zone* utc = Zone("UTC");
  EXPECT_EQ(FormatIsoUtc(*expr.Next(At("2026-01-01T10:00:00Z"), utc)), "2026-01-01T11:00:00Z");
  EXPECT_EQ(FormatIsoUtc(*expr.Next(At("2026-01-01T09:59:59Z"), utc)), "2026-01-01T10:00:00Z");
  EXPECT_EQ(FormatIsoUtc(*expr.Next(At("2026-01-01T10:00:01Z"), utc)), "2026-01-01T11:00:00Z");
}

TEST(CronTest, PrevIsStrictlyBefore) {
  CronExpr expr = MustParse("0 * * * *");
  const date::time_zone* utc = Zone("UTC");
  EXPECT_EQ(FormatIsoUtc(*expr.Prev(At("2026-01-01T10:00:00Z"), utc)), "2026-01-01T09:00:00Z");
  EXPECT_EQ(FormatIsoUtc(*expr.Prev(At("2026-01-01T10:00:01Z"), utc)), "2026-01-01T10:00:00Z");
  EXPECT_EQ(FormatIsoUtc(*expr.Prev(At("2026-01-01T09:59:59Z"), utc)), "2026-01-01T09:00:00Z");
}

TEST(CronTest, PrevWalksBackAcrossMonthsAndYears) {
  EXPECT_EQ(PrevFires("0 0 31 * *", "UTC", "2026-03-01T00:00:00Z", 3),
            (V{"2026-01-31T00:00:00+00:00", "2025-12-31T00:00:00+00:00", "2025-10-31T00:00:00+00:00"}));
  EXPECT_EQ(PrevFires("30 14 * * MON-FRI", "UTC", "2026-01-05T14:30:00Z", 2),
            (V{"2026-01-02T14:30:00+00:00", "2026-01-01T14:30:00+00:00"}));
  EXPECT_EQ(PrevFires("@yearly", "UTC", "2026-01-01T00:00:00Z", 1), (V{"2025-01-01T00:00:00+00:00"}));
}

TEST(CronTest, NextAndPrevAreEvaluatedInTheZone) {
  // 09:00 in New York in January is 14:00Z; in Berlin 08:00Z.
  EXPECT_EQ(Fires("0 9 * * *", "America/New_York", "2026-01-01T00:00:00Z", 1), (V{"2026-01-01T09:00:00-05:00"}));
  EXPECT_EQ(Fires("0 9 * * *", "Europe/Berlin", "2026-01-01T00:00:00Z", 1), (V{"2026-01-01T09:00:00+01:00"}));
  // The day boundary is the zone's: midnight in Tokyo is 15:00Z the day before.
  EXPECT_EQ(Fires("0 0 1 * *", "Asia/Tokyo", "2026-01-31T14:00:00Z", 1), (V{"2026-02-01T00:00:00+09:00"}));
  // Weekdays are the zone's too: Monday 00:30 in Auckland is Sunday 11:30Z.
  CronExpr monday = MustParse("30 0 * * MON");
  EXPECT_EQ(FormatIsoUtc(*monday.Next(At("2026-01-03T00:00:00Z"), Zone("Pacific/Auckland"))),
            "2026-01-04T11:30:00Z");
}

// ---------------------------------------------------------------------------------------
// DST: Europe/Berlin (2026-03-29 02:00 -> 03:00; 2026-10-25 03:00 -> 02:00)

TEST(CronTest, SpringForwardGapFiresOnceAfterGap) {
  EXPECT_EQ(Fires("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00", 4),
            (V{"2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00",
               "2026-03-31T02:30:00+02:00"}));
  CronExpr expr = MustParse("30 2 * * *");
  EXPECT_EQ(FormatIsoUtc(*expr.Next(At("2026-03-28T12:00:00Z"), Zone("Europe/Berlin"))), "2026-03-29T01:00:00Z");
}

TEST(CronTest, SeveralWallTimesInTheGapFireOnce) {
  EXPECT_EQ(Fires("0,15,30,45 2 * * *", "Europe/Berlin", "2026-03-28T02:40:00", 4),
            (V{"2026-03-28T02:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00",
               "2026-03-30T02:15:00+02:00"}));
}

TEST(CronTest, GapTimeAndTheFirstTimeAfterTheGapFireOnce) {
  // 02:00 (in the gap) resolves to 03:00, which is also a fire time: one run.
  EXPECT_EQ(Fires("0 2,3 * * *", "Europe/Berlin", "2026-03-29T00:00:00", 3),
            (V{"2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-30T03:00:00+02:00"}));
  EXPECT_EQ(Fires("30 2,3 * * *", "Europe/Berlin", "2026-03-29T00:00:00", 3),
            (V{"2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"}));
}

TEST(CronTest, HourlyAcrossSpringForward) {
  EXPECT_EQ(Fires("0 * * * *", "Europe/Berlin", "2026-03-29T00:30:00", 4),
            (V{"2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00",
               "2026-03-29T05:00:00+02:00"}));
}

TEST(CronTest, EveryFifteenMinutesAcrossSpringForward) {
  EXPECT_EQ(Fires("*/15 * * * *", "Europe/Berlin", "2026-03-29T01:30:00", 4),
            (V{"2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00",
               "2026-03-29T03:30:00+02:00"}));
}

TEST(CronTest, FallBackFiresOnceAtFirstOccurrence) {
  EXPECT_EQ(Fires("30 2 * * *", "Europe/Berlin", "2026-10-24T00:00:00", 3),
            (V{"2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}));
  // Asked during the second pass of the repeated hour, the next run is tomorrow's.
  EXPECT_EQ(Fires("30 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00", 1),
            (V{"2026-10-26T02:30:00+01:00"}));
}

TEST(CronTest, EveryFifteenMinutesFiresOnlyDuringTheFirstPassOfTheRepeatedHour) {
  EXPECT_EQ(Fires("*/15 * * * *", "Europe/Berlin", "2026-10-25T01:40:00", 7),
            (V{"2026-10-25T01:45:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:15:00+02:00",
               "2026-10-25T02:30:00+02:00", "2026-10-25T02:45:00+02:00", "2026-10-25T03:00:00+01:00",
               "2026-10-25T03:15:00+01:00"}));
  // From inside the second pass: nothing more until 03:00 CET.
  EXPECT_EQ(Fires("*/15 * * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00", 1),
            (V{"2026-10-25T03:00:00+01:00"}));
}

TEST(CronTest, HourlyAcrossFallBack) {
  EXPECT_EQ(Fires("0 * * * *", "Europe/Berlin", "2026-10-25T00:30:00", 4),
            (V{"2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00",
               "2026-10-25T04:00:00+01:00"}));
}

TEST(CronTest, PrevAcrossBerlinTransitions) {
  EXPECT_EQ(PrevFires("30 2 * * *", "Europe/Berlin", "2026-03-30T00:00:00", 2),
            (V{"2026-03-29T03:00:00+02:00", "2026-03-28T02:30:00+01:00"}));
  EXPECT_EQ(PrevFires("0,15,30,45 2 * * *", "Europe/Berlin", "2026-03-29T12:00:00", 2),
            (V{"2026-03-29T03:00:00+02:00", "2026-03-28T02:45:00+01:00"}));
  EXPECT_EQ(PrevFires("*/15 * * * *", "Europe/Berlin", "2026-10-25T03:20:00+01:00", 4),
            (V{"2026-10-25T03:15:00+01:00", "2026-10-25T03:00:00+01:00", "2026-10-25T02:45:00+02:00",
               "2026-10-25T02:30:00+02:00"}));
  // During the second pass the last fire was 02:30 of the first pass, not yesterday's.
  EXPECT_EQ(PrevFires("30 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00", 1),
            (V{"2026-10-25T02:30:00+02:00"}));
  EXPECT_EQ(PrevFires("45 2 * * *", "Europe/Berlin", "2026-10-25T02:50:00+01:00", 1),
            (V{"2026-10-25T02:45:00+02:00"}));
}

// ---------------------------------------------------------------------------------------
// DST: America/New_York (2026-03-08 02:00 -> 03:00; 2026-11-01 02:00 -> 01:00)

TEST(CronTest, NewYorkSpringForwardGap) {
  EXPECT_EQ(Fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00", 3),
            (V{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"}));
  EXPECT_EQ(Fires("0 * * * *", "America/New_York", "2026-03-08T00:30:00", 3),
            (V{"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"}));
}

TEST(CronTest, NewYorkFallBackRepeatedHour) {
  EXPECT_EQ(Fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00", 3),
            (V{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"}));
  EXPECT_EQ(Fires("*/20 * * * *", "America/New_York", "2026-11-01T00:50:00", 5),
            (V{"2026-11-01T01:00:00-04:00", "2026-11-01T01:20:00-04:00", "2026-11-01T01:40:00-04:00",
               "2026-11-01T02:00:00-05:00", "2026-11-01T02:20:00-05:00"}));
  EXPECT_EQ(Fires("0 * * * *", "America/New_York", "2026-11-01T00:30:00", 3),
            (V{"2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"}));
}

// ---------------------------------------------------------------------------------------
// DST: Australia/Lord_Howe, a 30-minute shift (2026-04-05 02:00 +11 -> 01:30 +10:30;
// 2026-10-04 02:00 +10:30 -> 02:30 +11)

TEST(CronTest, LordHoweHalfHourGapFiresOnceAfterGap) {
  EXPECT_EQ(Fires("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00", 2),
            (V{"2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"}));
  // 02:00, 02:15 (in the gap) and 02:30 (right after it) are one instant: one run.
  EXPECT_EQ(Fires("0,15,30,45 2 * * *", "Australia/Lord_Howe", "2026-10-04T00:00:00", 3),
            (V{"2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00", "2026-10-05T02:00:00+11:00"}));
  EXPECT_EQ(Fires("*/10 * * * *", "Australia/Lord_Howe", "2026-10-04T01:45:00", 3),
            (V{"2026-10-04T01:50:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:40:00+11:00"}));
}

TEST(CronTest, LordHoweHalfHourFallBackFiresOnce) {
  EXPECT_EQ(Fires("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00", 2),
            (V{"2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"}));
  EXPECT_EQ(Fires("*/15 * * * *", "Australia/Lord_Howe", "2026-04-05T01:10:00", 5),
            (V{"2026-04-05T01:15:00+11:00", "2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00",
               "2026-04-05T02:00:00+10:30", "2026-04-05T02:15:00+10:30"}));
  EXPECT_EQ(Fires("0 * * * *", "Australia/Lord_Howe", "2026-04-05T00:30:00", 3),
            (V{"2026-04-05T01:00:00+11:00", "2026-04-05T02:00:00+10:30", "2026-04-05T03:00:00+10:30"}));
}

TEST(CronTest, LordHowePrev) {
  EXPECT_EQ(PrevFires("*/15 * * * *", "Australia/Lord_Howe", "2026-04-05T02:05:00+10:30", 3),
            (V{"2026-04-05T02:00:00+10:30", "2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+11:00"}));
  EXPECT_EQ(PrevFires("0,15,30,45 2 * * *", "Australia/Lord_Howe", "2026-10-04T03:00:00", 3),
            (V{"2026-10-04T02:45:00+11:00", "2026-10-04T02:30:00+11:00", "2026-10-03T02:45:00+10:30"}));
}

// ---------------------------------------------------------------------------------------
// Properties over many transitions

struct ZoneCase {
  const char* zone;
  const char* from;  // UTC
};

TEST(CronTest, NextIsStrictlyIncreasingAndNeverFiresTwiceOnOneWallTime) {
  const char* exprs[] = {"*/15 * * * *",   "0 * * * *",    "30 2 * * *",
                         "0,15,30,45 2 * * *", "0 2,3 * * *",    "45 1 * * *",   "*/7 1-3 * * *",
                         "0 0 * * *",          "5 2 * * SUN",    "0 0 1 * *",    "59 1,2 * * *"};
  const char* zones[] = {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC", "America/Santiago",
                         "Asia/Kolkata",  "Pacific/Chatham"};
  for (const char* zone_name : zones) {
    const date::time_zone* zone = Zone(zone_name);
    for (const char* text : exprs) {
      CronExpr expr = MustParse(text);
      SysSeconds t = At("2026-01-01T00:00:00Z");
      const SysSeconds end = At("2027-01-01T00:00:00Z");
      std::optional<SysSeconds> last;
      std::set<std::string> walls;
      while (t < end) {
        auto next = expr.Next(t, zone);
        ASSERT_TRUE(next) << text << " in " << zone_name;
        ASSERT_GT(*next, t) << text << " in " << zone_name;
        std::string wall = FormatIso(*next, zone).substr(0, 19);
        ASSERT_TRUE(walls.insert(wall).second) << text << " in " << zone_name << " fired twice at wall time " << wall;
        if (last) {
          // Consistency: the previous fire time of each is the one before it.
          ASSERT_EQ(expr.Prev(*next, zone), last) << text << " in " << zone_name << " at " << FormatIsoUtc(*next);
        }
        last = next;
        t = *next;
      }
    }
  }
}

TEST(CronTest, NextAndPrevAgreeAtArbitraryInstants) {
  const char* exprs[] = {"*/15 * * * *", "30 2 * * *", "0,15,30,45 2 * * *", "45 1 * * *", "0 * * * *",
                         "0 0 29 2 *",   "0 0 13 * FRI", "17 */3 * * 1-5"};
  const char* zones[] = {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe"};
  // Instants around the 2026 transitions of all three zones, every 7 minutes and 13 seconds.
  const char* windows[] = {"2026-03-07T20:00:00Z", "2026-03-28T20:00:00Z", "2026-04-04T10:00:00Z",
                           "2026-10-03T10:00:00Z", "2026-10-24T20:00:00Z", "2026-10-31T20:00:00Z"};
  for (const char* zone_name : zones) {
    const date::time_zone* zone = Zone(zone_name);
    for (const char* text : exprs) {
      CronExpr expr = MustParse(text);
      for (const char* window : windows) {
        for (SysSeconds t = At(window); t < At(window) + hours(14); t += minutes(7) + seconds(13)) {
          auto next = expr.Next(t, zone);
          auto prev = expr.Prev(t, zone);
          ASSERT_TRUE(next && prev);
          ASSERT_GT(*next, t);
          ASSERT_LT(*prev, t);
          // Nothing fires in (prev, t) or (t, next).
          ASSERT_LE(*expr.Prev(*next, zone), t) << text << " " << zone_name << " " << FormatIsoUtc(t);
          ASSERT_GE(*expr.Next(*prev, zone), t) << text << " " << zone_name << " " << FormatIsoUtc(t);
        }
      }
    }
  }
}

TEST(CronTest, EveryWallMinuteOutsideTheRepeatedHourFiresExactlyOnce) {
  // Over a whole fall-back day and spring-forward day, "* * * * *" fires at every instant
  // whose wall time was not seen before; the gap collapses to one fire.
  const date::time_zone* zone = Zone("Europe/Berlin");
  CronExpr expr = MustParse("* * * * *");
  int count = 0;
  for (SysSeconds t = At("2026-10-24T22:00:00Z"); t < At("2026-10-25T23:00:00Z");) {
    t = *expr.Next(t, zone);
    ++count;
  }
  // 25 real hours, minus the hour whose wall times repeat.
  EXPECT_EQ(count, 24 * 60);
  count = 0;
  for (SysSeconds t = At("2026-03-28T23:00:00Z"); t < At("2026-03-29T22:00:00Z");) {
    t = *expr.Next(t, zone);
    ++count;
  }
  // 23 real hours, every minute of them fires once (02:00-02:59 all become 03:00).
  EXPECT_EQ(count, 23 * 60);
}

// ---------------------------------------------------------------------------------------
// Speed

TEST(CronTest, NextAndPrevAreFastEvenForRareSchedules) {
  const date::time_zone* zone = Zone("Europe/Berlin");
  const char* exprs[] = {"*/15 * * * *", "0 0 29 2 1", "0 0 29 2 */7", "0 0 31 * *", "59 23 31 12 *"};
  auto start = std::chrono::steady_clock::now();
  for (const char* text : exprs) {
    CronExpr expr = MustParse(text);
    // 2000 instants spread over 2000-2100, so rare schedules are asked from arbitrary points.
    for (int i = 0; i < 2000; ++i) {
      SysSeconds t = At("2000-01-01T00:00:00Z") + i * (hours(24 * 18) + minutes(7));
      ASSERT_TRUE(expr.Next(t, zone)) << text;
      ASSERT_TRUE(expr.Prev(t, zone)) << text;
    }
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  // Typically a few microseconds a call (the rarest scan a few decades of Februaries);
  // the bound is generous for slow machines.
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST(CronTest, NextAndPrevStopAtTheEndsOfTheCalendar) {
  CronExpr expr = MustParse("0 0 29 2 */7");
  const date::time_zone* utc = Zone("UTC");
  EXPECT_EQ(expr.Next(At("9999-01-01T00:00:00Z"), utc), std::nullopt);
  EXPECT_EQ(expr.Prev(At("0001-06-01T00:00:00Z"), utc), std::nullopt);
  EXPECT_EQ(expr.Next(SysSeconds::max(), utc), std::nullopt);
  EXPECT_EQ(expr.Prev(SysSeconds::min(), utc), std::nullopt);
  EXPECT_EQ(FormatIsoUtc(*MustParse("59 23 31 12 *").Next(At("9999-12-31T00:00:00Z"), utc)), "9999-12-31T23:59:00Z");
}

// ---------------------------------------------------------------------------------------
// Expressions that never fire

TEST(CronTest, RefusesExpressionsThatNeverFire) {
  EXPECT_EQ(ParseError("0 0 31 2 *"),
            "invalid cron expression '0 0 31 2 *': it never fires (day 31 does not exist in February)");
  EXPECT_EQ(ParseError("0 0 30 2 *"),
            "invalid cron expression '0 0 30 2 *': it never fires (day 30 does not exist in February)");
  EXPECT_EQ(ParseError("0 0 31 4,6,9,11 *"),
            "invalid cron expression '0 0 31 4,6,9,11 *': it never fires (no selected month has day 31)");
  EXPECT_EQ(ParseError("0 0 31 APR *"),
            "invalid cron expression '0 0 31 APR *': it never fires (day 31 does not exist in April)");
  EXPECT_EQ(ParseError("0 0 30,31 2 *"),
            "invalid cron expression '0 0 30,31 2 *': it never fires (days 30 and 31 do not exist in February)");
  EXPECT_EQ(ParseError("0 0 31 2,4,6 *"),
            "invalid cron expression '0 0 31 2,4,6 *': it never fires (no selected month has day 31)");
  EXPECT_EQ(ParseError("0 0 30-31/1 FEB *"),
            "invalid cron expression '0 0 30-31/1 FEB *': it never fires (days 30 and 31 do not exist in February)");
  // With a '*'-prefixed weekday both fields must match, so the day still never exists.
  EXPECT_EQ(ParseError("0 0 31 2 */2"),
            "invalid cron expression '0 0 31 2 */2': it never fires (day 31 does not exist in February)");
}

TEST(CronTest, AcceptsExpressionsThatFireRarely) {
  EXPECT_TRUE(CronExpr::Parse("0 0 29 2 *").ok());
  EXPECT_TRUE(CronExpr::Parse("0 0 29-31 2 *").ok());
  EXPECT_TRUE(CronExpr::Parse("0 0 31 2,3 *").ok());
  // Both day fields restricted: Mondays in February fire even though Feb 31 does not exist.
  EXPECT_EQ(FiresUtc("0 0 31 2 MON", "2026-01-01T00:00:00Z", 1), (V{"2026-02-02T00:00:00+00:00"}));
}

// ---------------------------------------------------------------------------------------
// Parse errors, word for word

TEST(CronTest, FieldCountErrors) {
  EXPECT_EQ(ParseError("* * * *"),
            "invalid cron expression '* * * *': expected 5 fields (minute hour day-of-month month day-of-week), got 4");
  EXPECT_EQ(ParseError("0 * * * * *"),
            "invalid cron expression '0 * * * * *': expected 5 fields (minute hour day-of-month month "
            "day-of-week), got 6");
  EXPECT_EQ(ParseError(""),
            "invalid cron expression '': expected 5 fields (minute hour day-of-month month day-of-week), got 0");
  EXPECT_EQ(ParseError("   "),
            "invalid cron expression '': expected 5 fields (minute hour day-of-month month day-of-week), got 0");
}

TEST(CronTest, MacroErrors) {
  EXPECT_EQ(ParseError("@foo"),
            "invalid cron expression '@foo': unknown macro '@foo'; expected @yearly, @annually, @monthly, "
            "@weekly, @daily, @midnight or @hourly");
  EXPECT_EQ(ParseError("@reboot"),
            "invalid cron expression '@reboot': unknown macro '@reboot'; expected @yearly, @annually, @monthly, "
            "@weekly, @daily, @midnight or @hourly");
  EXPECT_EQ(ParseError("@daily 5"),
            "invalid cron expression '@daily 5': unknown macro '@daily 5'; expected @yearly, @annually, "
            "@monthly, @weekly, @daily, @midnight or @hourly");
}

TEST(CronTest, OutOfRangeErrors) {
  EXPECT_EQ(ParseError("61 * * * *"), "invalid cron expression '61 * * * *': minute 61 is out of range 0-59");
  EXPECT_EQ(ParseError("60 * * * *"), "invalid cron expression '60 * * * *': minute 60 is out of range 0-59");
  EXPECT_EQ(ParseError("0 24 * * *"), "invalid cron expression '0 24 * * *': hour 24 is out of range 0-23");
  EXPECT_EQ(ParseError("0 0 0 * *"), "invalid cron expression '0 0 0 * *': day-of-month 0 is out of range 1-31");
  EXPECT_EQ(ParseError("0 0 32 * *"),
            "invalid cron expression '0 0 32 * *': day-of-month 32 is out of range 1-31");
  EXPECT_EQ(ParseError("0 0 * 0 *"), "invalid cron expression '0 0 * 0 *': month 0 is out of range 1-12");
  EXPECT_EQ(ParseError("0 0 * 13 *"), "invalid cron expression '0 0 * 13 *': month 13 is out of range 1-12");
  EXPECT_EQ(ParseError("0 0 * * 8"), "invalid cron expression '0 0 * * 8': day-of-week 8 is out of range 0-7");
  EXPECT_EQ(ParseError("1-60 * * * *"), "invalid cron expression '1-60 * * * *': minute 60 is out of range 0-59");
  EXPECT_EQ(ParseError("0 0 * * 1-8/2"),
            "invalid cron expression '0 0 * * 1-8/2': day-of-week 8 is out of range 0-7");
  EXPECT_EQ(ParseError("99999999999 * * * *"),
            "invalid cron expression '99999999999 * * * *': minute 99999999999 is out of range 0-59");
  EXPECT_EQ(ParseError("007 * * * *"), "(parsed fine)");
}

TEST(CronTest, StepErrors) {
  EXPECT_EQ(ParseError("*/0 * * * *"), "invalid cron expression '*/0 * * * *': minute step must be at least 1");
  EXPECT_EQ(ParseError("0 0 1-10/0 * *"),
            "invalid cron expression '0 0 1-10/0 * *': day-of-month step must be at least 1");
  EXPECT_EQ(ParseError("*/x * * * *"), "invalid cron expression '*/x * * * *': minute step 'x' is not a number");
  EXPECT_EQ(ParseError("0 */-2 * * *"), "invalid cron expression '0 */-2 * * *': hour step '-2' is not a number");
  EXPECT_EQ(ParseError("1/2/3 * * * *"),
            "invalid cron expression '1/2/3 * * * *': minute step '2/3' is not a number");
  EXPECT_EQ(ParseError("*/ * * * *"), "invalid cron expression '*/ * * * *': minute '*/' has nothing after the '/'");
  EXPECT_EQ(ParseError("/5 * * * *"), "invalid cron expression '/5 * * * *': minute '/5' has nothing before the '/'");
}

TEST(CronTest, NameErrors) {
  EXPECT_EQ(ParseError("0 0 1 FOO *"), "invalid cron expression '0 0 1 FOO *': unknown month name 'FOO'");
  EXPECT_EQ(ParseError("0 0 1 january *"), "invalid cron expression '0 0 1 january *': unknown month name 'january'");
  EXPECT_EQ(ParseError("0 0 * * FOO"), "invalid cron expression '0 0 * * FOO': unknown day-of-week name 'FOO'");
  EXPECT_EQ(ParseError("0 0 * * MONDAY"),
            "invalid cron expression '0 0 * * MONDAY': unknown day-of-week name 'MONDAY'");
  EXPECT_EQ(ParseError("0 0 * JAN-FOO *"), "invalid cron expression '0 0 * JAN-FOO *': unknown month name 'FOO'");
  EXPECT_EQ(ParseError("0 0 * 1x *"),
            "invalid cron expression '0 0 * 1x *': month '1x' is not a number or month name");
  EXPECT_EQ(ParseError("0 0 * * 1x"),
            "invalid cron expression '0 0 * * 1x': day-of-week '1x' is not a number or day-of-week name");
  // Names belong to their own fields only.
  EXPECT_EQ(ParseError("0 0 * MON *"), "invalid cron expression '0 0 * MON *': unknown month name 'MON'");
  EXPECT_EQ(ParseError("0 0 * * JAN"), "invalid cron expression '0 0 * * JAN': unknown day-of-week name 'JAN'");
  EXPECT_EQ(ParseError("0 MON * * *"), "invalid cron expression '0 MON * * *': hour 'MON' is not a number");
  EXPECT_EQ(ParseError("abc * * * *"), "invalid cron expression 'abc * * * *': minute 'abc' is not a number");
}

TEST(CronTest, UnsupportedSyntaxErrors) {
  EXPECT_EQ(ParseError("0 0 L * *"), "invalid cron expression '0 0 L * *': day-of-month 'L' is not a number");
  EXPECT_EQ(ParseError("0 0 ? * 1"), "invalid cron expression '0 0 ? * 1': day-of-month '?' is not a number");
  EXPECT_EQ(ParseError("0 0 15W * *"), "invalid cron expression '0 0 15W * *': day-of-month '15W' is not a number");
  EXPECT_EQ(ParseError("0 0 * * 5#3"),
            "invalid cron expression '0 0 * * 5#3': day-of-week '5#3' is not a number or day-of-week name");
}

TEST(CronTest, ListAndRangeErrors) {
  EXPECT_EQ(ParseError("1,,2 * * * *"),
            "invalid cron expression '1,,2 * * * *': minute field '1,,2' has an empty list item");
  EXPECT_EQ(ParseError("5, * * * *"), "invalid cron expression '5, * * * *': minute field '5,' has an empty list item");
  EXPECT_EQ(ParseError("0 ,5 * * *"), "invalid cron expression '0 ,5 * * *': hour field ',5' has an empty list item");
  EXPECT_EQ(ParseError("30-10 * * * *"),
            "invalid cron expression '30-10 * * * *': minute range 30-10 is backwards (30 is after 10)");
  EXPECT_EQ(ParseError("0 0 * FEB-JAN *"),
            "invalid cron expression '0 0 * FEB-JAN *': month range FEB-JAN is backwards (FEB is after JAN)");
  EXPECT_EQ(ParseError("0 0 * * SAT-MON"),
            "invalid cron expression '0 0 * * SAT-MON': day-of-week range SAT-MON is backwards (SAT is after "
            "MON)");
  EXPECT_EQ(ParseError("-5 * * * *"), "invalid cron expression '-5 * * * *': minute range '-5' is missing a bound");
  EXPECT_EQ(ParseError("5- * * * *"), "invalid cron expression '5- * * * *': minute range '5-' is missing a bound");
  EXPECT_EQ(ParseError("1-2-3 * * * *"),
            "invalid cron expression '1-2-3 * * * *': minute range '1-2-3' has more than two bounds");
  EXPECT_EQ(ParseError("*-5 * * * *"), "invalid cron expression '*-5 * * * *': minute range '*-5' cannot contain '*'");
  EXPECT_EQ(ParseError("** * * * *"), "invalid cron expression '** * * * *': minute '**' is not a number");
}

TEST(CronTest, ErrorsReportTheFirstBadField) {
  EXPECT_EQ(ParseError("61 24 * * *"), "invalid cron expression '61 24 * * *': minute 61 is out of range 0-59");
}

TEST(CronTest, ParsedExpressionsAreValuesThatCanBeCopied) {
  CronExpr a = MustParse("*/5 * * * *");
  CronExpr b = a;
  EXPECT_EQ(b.text(), "*/5 * * * *");
  EXPECT_EQ(a.Next(At("2026-01-01T00:00:00Z"), Zone("UTC")), b.Next(At("2026-01-01T00:00:00Z"), Zone("UTC")));
}

}  // namespace
}  // namespace batchd::cron
