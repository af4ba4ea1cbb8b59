#include "common/time.h"

#include <date/date.h>
#include <date/tz.h>

#include <cctype>
#include <cstdio>
#include <optional>
#include <stdexcept>

namespace batchd {

namespace {

using std::chrono::minutes;
using std::chrono::seconds;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Reads exactly `n` ASCII digits at `pos`; advances `pos`. std::nullopt if they are not there.
std::optional<int> Digits(std::string_view s, size_t& pos, size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  pos += n;
  return v;
}

bool Expect(std::string_view s, size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

const char* const kMonthNames[] = {"January", "February", "March",     "April",   "May",      "June",
                                   "July",    "August",   "September", "October", "November", "December"};

// "+02:00", "-03:30", "+00:00"; seconds are appended only for historic offsets
// (local mean time) that are not whole minutes, so the text never lies about the instant.
std::string FormatOffset(seconds offset) {
  char sign = offset < seconds(0) ? '-' : '+';
  long long total = offset.count() < 0 ? -offset.count() : offset.count();
  char buf[64];
  if (total % 60 == 0) {
    std::snprintf(buf, sizeof buf, "%c%02lld:%02lld", sign, total / 3600, (total / 60) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%c%02lld:%02lld:%02lld", sign, total / 3600, (total / 60) % 60, total % 60);
  }
  return buf;
}

// "2026-03-29T03:00:00" for a local (wall) or UTC time.
template <class Clock>
std::string FormatWall(std::chrono::time_point<Clock, seconds> t) {
  auto day = date::floor<date::days>(t);
  date::year_month_day ymd{day};
  date::hh_mm_ss<seconds> tod{t - day};
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long long>(tod.hours().count()), static_cast<long long>(tod.minutes().count()),
                static_cast<long long>(tod.seconds().count()));
  return buf;
}

// The default zone, used by every DAG without `timezone`. Looking it up in the tz
// database, or asking a database zone for its offsets, first indexes the whole database (a
// stat of every file under /usr/share/zoneinfo, ~3 ms, paid by every `batchd run`).
// ZoneInfoAt answers for this object without touching it; it is never destroyed, like
// the database's zones (and its destructor needs types date keeps private).
const date::time_zone* UtcZone() {
  static const date::time_zone* const utc = new date::time_zone("UTC", date::detail::undocumented{});
  return utc;
}

date::sys_info UtcInfo() {
  date::sys_info info;
  info.begin = date::sys_seconds::min();
  info.end = date::sys_seconds::max();
  info.offset = std::chrono::seconds(0);
  info.save = std::chrono::minutes(0);
  info.abbrev = "UTC";
  return info;
}
}  // namespace

date::sys_info ZoneInfoAt(const date::time_zone* zone, SysSeconds t) {
  if (zone == UtcZone()) return UtcInfo();
  return zone->get_info(t);
}

date::local_info ZoneInfoAt(const date::time_zone* zone, date::local_seconds wall) {
  if (zone == UtcZone()) return date::local_info{date::local_info::unique, UtcInfo(), date::sys_info{}};
  return zone->get_info(wall);
}

Result<const date::time_zone*> LookupZone(std::string_view name) {
  std::string n(Trim(name));
  if (n.empty()) return Status::InvalidArgument("unknown time zone '" + std::string(name) + "'");
  if (n == "UTC") return UtcZone();
  try {
    return date::locate_zone(n);
  } catch (const std::exception&) {
    return Status::InvalidArgument("unknown time zone '" + std::string(name) + "'");
  }
}

SysSeconds ResolveWallTime(date::local_seconds wall, const date::time_zone* zone) {
  date::local_info info = ZoneInfoAt(zone, wall);
  switch (info.result) {
    case date::local_info::unique:
    case date::local_info::ambiguous:  // the first occurrence uses the earlier period's offset
      return SysSeconds(wall.time_since_epoch() - info.first.offset);
    case date::local_info::nonexistent:  // inside a spring-forward gap: the gap's end
      return info.first.end;
  }
  return SysSeconds(wall.time_since_epoch() - info.first.offset);
}

Result<SysSeconds> ParseInstant(std::string_view text, const date::time_zone* zone) {
  const std::string_view s = Trim(text);
  auto invalid = [&] {
    return Status::InvalidArgument("invalid time '" + std::string(text) +
                                   "': expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or with an offset (Z, +02:00)");
  };
  size_t pos = 0;
  auto y = Digits(s, pos, 4);
  if (!y || !Expect(s, pos, '-')) return invalid();
  auto mo = Digits(s, pos, 2);
  if (!mo || !Expect(s, pos, '-')) return invalid();
  auto d = Digits(s, pos, 2);
  if (!d || *mo < 1 || *mo > 12 || *d < 1 || *d > 31) return invalid();
  date::year_month_day ymd{date::year(*y), date::month(static_cast<unsigned>(*mo)),
                           date::day(static_cast<unsigned>(*d))};
  if (!ymd.ok()) {
    return Status::InvalidArgument("invalid time '" + std::string(text) + "': there is no day " +
                                   std::to_string(*d) + " in " + kMonthNames[*mo - 1] + " " + std::to_string(*y));
  }
  seconds time_of_day{0};
  std::optional<seconds> offset;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') return invalid();
    ++pos;
    auto h = Digits(s, pos, 2);
    if (!h || !Expect(s, pos, ':')) return invalid();
    auto mi = Digits(s, pos, 2);
    if (!mi) return invalid();
    int sec = 0;
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      auto se = Digits(s, pos, 2);
      if (!se) return invalid();
      sec = *se;
    }
    if (*h > 23 || *mi > 59 || sec > 59) return invalid();
    time_of_day = std::chrono::hours(*h) + minutes(*mi) + seconds(sec);
    if (pos < s.size()) {
      if (s[pos] == 'Z' || s[pos] == 'z') {
        ++pos;
        offset = seconds(0);
      } else if (s[pos] == '+' || s[pos] == '-') {
        int sign = s[pos] == '-' ? -1 : 1;
        ++pos;
        auto oh = Digits(s, pos, 2);
        if (!oh || !Expect(s, pos, ':')) return invalid();
        auto om = Digits(s, pos, 2);
        if (!om || *oh > 23 || *om > 59) return invalid();
        offset = sign * (std::chrono::hours(*oh) + minutes(*om));
      } else {
        return invalid();
      }
    }
    if (pos != s.size()) return invalid();
  }
  const date::days day = date::sys_days(ymd).time_since_epoch();
  if (offset) return SysSeconds(day + time_of_day - *offset);
  return ResolveWallTime(date::local_seconds(day + time_of_day), zone);
}

std::string FormatIso(SysSeconds t, const date::time_zone* zone) {
  date::sys_info info = ZoneInfoAt(zone, t);
  date::local_seconds wall{t.time_since_epoch() + info.offset};
  return FormatWall(wall) + FormatOffset(info.offset);
}

std::string FormatIsoUtc(SysSeconds t) { return FormatWall(t) + "Z"; }

std::string FormatDate(SysSeconds t, const date::time_zone* zone) {
  date::sys_info info = ZoneInfoAt(zone, t);
  date::local_seconds wall{t.time_since_epoch() + info.offset};
  std::string iso = FormatWall(wall);
  return iso.substr(0, iso.find('T'));
}

SysMillis SystemClock::Now() const {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

const SystemClock& SystemClock::Instance() {
  static const SystemClock clock;
  return clock;
}

}  // namespace batchd
