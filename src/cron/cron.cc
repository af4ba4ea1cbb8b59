#include "cron/cron.h"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <vector>

namespace batchd::cron {

namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using LocalMinutes = date::local_time<minutes>;

// How far Next/Prev search before giving up. Parse refuses expressions that never fire,
// and any accepted expression fires within a few decades (the rarest is a Feb 29 that must
// also be a given weekday: at most 40 years apart across a skipped leap year like 2100);
// 400 years is the whole Gregorian cycle, so the bound is only a guard against loops.
constexpr date::days kHorizon{146097};

// Fire times are searched within years 1-9999 (what ISO-8601 text can show); beyond, the
// calendar arithmetic would run out of date::year's range.
constexpr date::local_days kFirstDay{date::year(1) / 1 / 1};
constexpr date::local_days kLastDay{date::year(9999) / 12 / 31};

// One of the five fields: its name in messages, its range and optional names.
struct FieldSpec {
  const char* name;
  int min;
  int max;
  const char* const* names;  // names[i] stands for min + i; nullptr when none
  int name_count;
  const char* name_kind;  // "month name" or "day-of-week name"
};

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kWeekdayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
constexpr const char* kMonthFullNames[] = {"January", "February", "March",     "April",   "May",      "June",
                                           "July",    "August",   "September", "October", "November", "December"};

// Day-of-week runs 0-7 so that 7 means Sunday too; bit 7 is folded into bit 0 afterwards.
constexpr FieldSpec kFields[5] = {
    {"minute", 0, 59, nullptr, 0, nullptr},
    {"hour", 0, 23, nullptr, 0, nullptr},
    {"day-of-month", 1, 31, nullptr, 0, nullptr},
    {"month", 1, 12, kMonthNames, 12, "month name"},
    {"day-of-week", 0, 7, kWeekdayNames, 7, "day-of-week name"},
};

struct Macro {
  const char* name;
  const char* expansion;
};
constexpr Macro kMacros[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"},
};

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
bool AllAlpha(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); });
}
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return std::string(s);
}

// A parse failure: the problem only; Parse prefixes "invalid cron expression '<text>': ".
struct Problem {
  std::string what;
};

// "61" -> 61; absurdly long digit strings saturate so they are reported as out of range.
int ToInt(std::string_view digits) {
  int64_t v = 0;
  for (char c : digits) {
    v = v * 10 + (c - '0');
    if (v > 1'000'000) return 1'000'000;
  }
  return static_cast<int>(v);
}

// One value of a field: a number or (month, day-of-week) a three-letter name.
// `is_name` tells the caller the value was written as a name (for SUN at a range's end).
std::optional<Problem> ParseValue(std::string_view token, const FieldSpec& spec, int& out, bool& is_name) {
  is_name = false;
  if (AllDigits(token)) {
    int v = ToInt(token);
    if (v < spec.min || v > spec.max) {
      std::string shown = v >= 1'000'000 ? std::string(token) : std::to_string(v);
      return Problem{std::string(spec.name) + " " + shown + " is out of range " + std::to_string(spec.min) + "-" +
                     std::to_string(spec.max)};
    }
    out = v;
    return std::nullopt;
  }
  if (spec.names == nullptr) {
    return Problem{std::string(spec.name) + " '" + std::string(token) + "' is not a number"};
  }
  if (AllAlpha(token)) {
    for (int i = 0; i < spec.name_count; ++i) {
      if (EqualsIgnoreCase(token, spec.names[i])) {
        out = spec.min + i;
        is_name = true;
        return std::nullopt;
      }
    }
    return Problem{"unknown " + std::string(spec.name_kind) + " '" + std::string(token) + "'"};
  }
  return Problem{std::string(spec.name) + " '" + std::string(token) + "' is not a number or " + spec.name_kind};
}

// Parses one field ("*/15", "1-5,10", "MON-FRI") into a bit mask over spec.min..spec.max.
std::optional<Problem> ParseField(std::string_view field, const FieldSpec& spec, uint64_t& mask) {
  mask = 0;
  const std::string name = spec.name;
  size_t start = 0;
  while (true) {
    size_t comma = field.find(',', start);
    std::string_view item = field.substr(start, comma == std::string_view::npos ? field.npos : comma - start);
    if (item.empty()) {
      return Problem{name + " field '" + std::string(field) + "' has an empty list item"};
    }
    // item = base [ "/" step ]
    std::string_view base = item;
    int step = 1;
    bool has_step = false;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      base = item.substr(0, slash);
      std::string_view step_text = item.substr(slash + 1);
      if (base.empty()) return Problem{name + " '" + std::string(item) + "' has nothing before the '/'"};
      if (step_text.empty()) return Problem{name + " '" + std::string(item) + "' has nothing after the '/'"};
      if (!AllDigits(step_text)) {
        return Problem{name + " step '" + std::string(step_text) + "' is not a number"};
      }
      step = ToInt(step_text);
      if (step < 1) return Problem{name + " step must be at least 1"};
      has_step = true;
    }
    int lo, hi;
    if (base == "*") {
      lo = spec.min;
      hi = spec.max;
    } else if (size_t dash = base.find('-'); dash != std::string_view::npos) {
      std::string_view a = base.substr(0, dash), b = base.substr(dash + 1);
      if (a.empty() || b.empty()) return Problem{name + " range '" + std::string(base) + "' is missing a bound"};
      if (a == "*" || b == "*") {
        return Problem{name + " range '" + std::string(base) + "' cannot contain '*'"};
      }
      if (b.find('-') != std::string_view::npos) {
        return Problem{name + " range '" + std::string(base) + "' has more than two bounds"};
      }
      bool a_name, b_name;
      if (auto p = ParseValue(a, spec, lo, a_name)) return p;
      if (auto p = ParseValue(b, spec, hi, b_name)) return p;
      // "FRI-SUN" and "5-0": Sunday closing a day-of-week range is day 7.
      if (&spec == &kFields[4] && hi == 0 && lo > 0) hi = 7;
      if (lo > hi) {
        return Problem{name + " range " + std::string(base) + " is backwards (" + std::string(a) + " is after " +
                       std::string(b) + ")"};
      }
    } else {
      bool is_name;
      if (auto p = ParseValue(base, spec, lo, is_name)) return p;
      // "5/10" means 5-max/10 (as in cronie and croniter).
      hi = has_step ? spec.max : lo;
    }
    for (int v = lo; v <= hi; v += step) mask |= uint64_t{1} << v;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return std::nullopt;
}

// "30 and 31", "29, 30 and 31".
std::string JoinDays(const std::vector<int>& days) {
  std::string out;
  for (size_t i = 0; i < days.size(); ++i) {
    if (i > 0) out += i + 1 == days.size() ? " and " : ", ";
    out += std::to_string(days[i]);
  }
  return out;
}

// The longest each month can be (February in a leap year).
constexpr int kMaxDaysInMonth[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

}  // namespace

Result<CronExpr> CronExpr::Parse(std::string_view text) {
  CronExpr expr;
  expr.text_ = Trim(text);
  auto fail = [&](const std::string& what) {
    return Status::InvalidArgument("invalid cron expression '" + expr.text_ + "': " + what);
  };

  std::string body = expr.text_;
  if (!body.empty() && body.front() == '@') {
    const Macro* found = nullptr;
    for (const Macro& m : kMacros) {
      if (EqualsIgnoreCase(body, m.name)) found = &m;
    }
    if (found == nullptr) {
      return fail("unknown macro '" + body +
                  "'; expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly");
    }
    body = found->expansion;
  }

  std::vector<std::string_view> fields;
  {
    std::string_view rest = body;
    while (true) {
      while (!rest.empty() && IsSpace(rest.front())) rest.remove_prefix(1);
      if (rest.empty()) break;
      size_t end = 0;
      while (end < rest.size() && !IsSpace(rest[end])) ++end;
      fields.push_back(rest.substr(0, end));
      rest.remove_prefix(end);
    }
  }
  if (fields.size() != 5) {
    return fail("expected 5 fields (minute hour day-of-month month day-of-week), got " +
                std::to_string(fields.size()));
  }

  uint64_t masks[5];
  for (int i = 0; i < 5; ++i) {
    if (auto problem = ParseField(fields[i], kFields[i], masks[i])) return fail(problem->what);
  }
  if (masks[4] & (uint64_t{1} << 7)) masks[4] = (masks[4] | 1) & ~(uint64_t{1} << 7);

  expr.minutes_ = std::bitset<60>(masks[0]);
  expr.hours_ = std::bitset<24>(masks[1]);
  expr.days_of_month_ = std::bitset<32>(masks[2]);
  expr.months_ = std::bitset<13>(masks[3]);
  expr.days_of_week_ = std::bitset<7>(masks[4]);
  // Vixie cron: a field beginning with '*' ("*", "*/2") counts as unrestricted (DOM_STAR,
  // DOW_STAR); only when neither is does a day match on either field.
  expr.dom_restricted_ = fields[2].front() != '*';
  expr.dow_restricted_ = fields[4].front() != '*';

  // When day-of-month decides alone or together with day-of-week (AND), some selected
  // month must have a selected day. Every date recurs on every weekday within the 400-year
  // Gregorian cycle, so that is also enough for the AND case to fire. With OR, the weekday
  // alone always fires.
  if (!(expr.dom_restricted_ && expr.dow_restricted_)) {
    bool possible = false;
    std::vector<int> months, days;
    for (int m = 1; m <= 12; ++m) {
      if (!expr.months_[m]) continue;
      months.push_back(m);
      for (int d = 1; d <= kMaxDaysInMonth[m]; ++d) possible = possible || expr.days_of_month_[d];
    }
    if (!possible) {
      for (int d = 1; d <= 31; ++d) {
        if (expr.days_of_month_[d]) days.push_back(d);
      }
      // Every month has days 1-28, so `days` is a subset of 29-31 here.
      std::string why;
      if (months.size() == 1) {
        why = (days.size() == 1 ? "day " : "days ") + JoinDays(days) + (days.size() == 1 ? " does" : " do") +
              " not exist in " + kMonthFullNames[months[0] - 1];
      } else {
        // Several months without the day: only day 31 can be missing from more than February.
        why = (days.size() == 1 ? "no selected month has day " : "no selected month has days ") + JoinDays(days);
      }
      return fail("it never fires (" + why + ")");
    }
  }
  return expr;
}

namespace {

date::year_month_day YmdOf(date::local_days day) { return date::year_month_day{day}; }

// Whether the expression can fire on local day `day` (month aside): Vixie's OR when both
// day fields are restricted, AND otherwise.
bool DayMatches(const std::bitset<32>& dom, const std::bitset<7>& dow, bool dom_restricted, bool dow_restricted,
                date::local_days day) {
  bool dom_ok = dom[static_cast<unsigned>(YmdOf(day).day())];
  bool dow_ok = dow[date::weekday{day}.c_encoding()];
  if (dom_restricted && dow_restricted) return dom_ok || dow_ok;
  return dom_ok && dow_ok;
}

}  // namespace

std::optional<SysSeconds> CronExpr::Next(SysSeconds after, const date::time_zone* zone) const {
  // The wall clock at `after` (with the offset in force then) resolves to `after` or to an
  // earlier instant, and ResolveWallTime never decreases as wall time increases, so no wall
  // time before it can fire after `after`. Scan forward in wall time from there, skipping
  // wall times that resolve to `after` or earlier: the repeated hour at fall-back (it
  // resolves to its first pass) and further wall times in the same spring-forward gap
  // (they all resolve to the gap's end, which fired already).
  if (after < SysSeconds{kFirstDay.time_since_epoch()} || after >= SysSeconds{(kLastDay + date::days(1)).time_since_epoch()}) {
    return std::nullopt;
  }
  const date::sys_info info = ZoneInfoAt(zone, after);
  LocalMinutes from = date::floor<minutes>(date::local_seconds{after.time_since_epoch() + info.offset});
  const date::local_days limit = std::min(date::floor<date::days>(from) + kHorizon, kLastDay);

  while (true) {
    // The first matching wall minute at or after `from`.
    std::optional<LocalMinutes> wall;
    date::local_days day = date::floor<date::days>(from);
    int h0 = static_cast<int>((from - day) / hours(1));
    int m0 = static_cast<int>(((from - day) % hours(1)) / minutes(1));
    while (!wall) {
      if (day > limit) return std::nullopt;
      date::year_month_day ymd = YmdOf(day);
      if (!months_[static_cast<unsigned>(ymd.month())]) {
        // Jump to the first day of the next month.
        day = date::local_days{(ymd.year() / ymd.month() / 1) + date::months(1)};
        h0 = m0 = 0;
        continue;
      }
      if (DayMatches(days_of_month_, days_of_week_, dom_restricted_, dow_restricted_, day)) {
        for (int h = h0; h < 24 && !wall; ++h) {
          if (!hours_[h]) continue;
          for (int m = h == h0 ? m0 : 0; m < 60; ++m) {
            if (minutes_[m]) {
              wall = day + hours(h) + minutes(m);
              break;
            }
          }
        }
      }
      if (wall) break;
      day += date::days(1);
      h0 = m0 = 0;
    }
    SysSeconds t = ResolveWallTime(date::local_seconds{*wall}, zone);
    if (t > after) return t;
    from = *wall + minutes(1);
  }
}

std::optional<SysSeconds> CronExpr::Prev(SysSeconds before, const date::time_zone* zone) const {
  // Mirror of Next, scanning backwards. Right after a fall-back, wall times later than the
  // current wall clock may still resolve (to their first occurrence) before `before`, so
  // start from the wall clock under the larger of the current and the previous offset.
  if (before <= SysSeconds{(kFirstDay + date::days(1)).time_since_epoch()} ||
      before > SysSeconds{(kLastDay + date::days(1)).time_since_epoch()}) {
    return std::nullopt;
  }
  const date::sys_info info = ZoneInfoAt(zone, before);
  seconds offset = info.offset;
  // info.begin is the minimum sys_seconds in a zone without transitions (UTC): compare
  // without subtracting it, which would overflow.
  if (info.begin > before - hours(48)) offset = std::max(offset, ZoneInfoAt(zone, info.begin - seconds(1)).offset);
  LocalMinutes from = date::floor<minutes>(date::local_seconds{before.time_since_epoch() + offset});
  const date::local_days limit = std::max(date::floor<date::days>(from) - kHorizon, kFirstDay);

  while (true) {
    // The last matching wall minute at or before `from`.
    std::optional<LocalMinutes> wall;
    date::local_days day = date::floor<date::days>(from);
    int h0 = static_cast<int>((from - day) / hours(1));
    int m0 = static_cast<int>(((from - day) % hours(1)) / minutes(1));
    while (!wall) {
      if (day < limit) return std::nullopt;
      date::year_month_day ymd = YmdOf(day);
      if (!months_[static_cast<unsigned>(ymd.month())]) {
        // Jump to the last day of the previous month.
        day = date::local_days{date::sys_days{ymd.year() / ymd.month() / 1}.time_since_epoch()} - date::days(1);
        h0 = 23;
        m0 = 59;
        continue;
      }
      if (DayMatches(days_of_month_, days_of_week_, dom_restricted_, dow_restricted_, day)) {
        for (int h = h0; h >= 0 && !wall; --h) {
          if (!hours_[h]) continue;
          for (int m = h == h0 ? m0 : 59; m >= 0; --m) {
            if (minutes_[m]) {
              wall = day + hours(h) + minutes(m);
              break;
            }
          }
        }
      }
      if (wall) break;
      day -= date::days(1);
      h0 = 23;
      m0 = 59;
    }
    SysSeconds t = ResolveWallTime(date::local_seconds{*wall}, zone);
    if (t < before) return t;
    from = *wall - minutes(1);
  }
}

}  // namespace batchd::cron
