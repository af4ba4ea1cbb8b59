#pragma once
// Wall-clock helpers shared by the cron engine, the DAG loader, the CLI and the engine:
// IANA zone lookup and ISO-8601 parsing/formatting with the zone's offset.
// Zones come from Howard Hinnant's date/tz over the OS tzdata (GCC 12 lacks
// std::chrono::locate_zone).

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace date {
class time_zone;
struct local_t;
struct sys_info;
struct local_info;
}  // namespace date

namespace batchd {

using SysSeconds = std::chrono::sys_seconds;
using SysMillis = std::chrono::sys_time<std::chrono::milliseconds>;

// Looks up an IANA zone ("Europe/Berlin", "UTC"). Error: "unknown time zone 'X'".
Result<const date::time_zone*> LookupZone(std::string_view name);

// The zone's offset at `t` and the interval it holds for, or the candidate offsets of a
// wall time. Use these rather than time_zone::get_info: for UTC they answer without
// reading the tz database.
date::sys_info ZoneInfoAt(const date::time_zone* zone, SysSeconds t);
date::local_info ZoneInfoAt(const date::time_zone* zone,
                            std::chrono::time_point<date::local_t, std::chrono::seconds> wall);

// Parses an instant. Accepted forms:
//   2026-03-29                      midnight of that day in `zone`
//   2026-03-29T02:30[:00]           wall time in `zone` (also with a space instead of T)
//   2026-03-29T02:30:00Z / +02:00   an absolute instant (offset given)
// A wall time inside a DST gap resolves to the first instant after the gap; an
// ambiguous wall time resolves to its first occurrence (same rule as schedules).
Result<SysSeconds> ParseInstant(std::string_view text, const date::time_zone* zone);

// Resolves a wall-clock time in `zone` to an instant by the schedule rule (SPEC section 4):
// inside a spring-forward gap, the first instant after the gap; a wall time that occurs twice
// at fall-back, its first occurrence. ParseInstant and the cron engine share it so they agree.
SysSeconds ResolveWallTime(std::chrono::time_point<date::local_t, std::chrono::seconds> wall,
                           const date::time_zone* zone);

// "2026-03-29T03:00:00+02:00" (seconds precision, the zone's offset at that instant;
// "+00:00" for UTC).
std::string FormatIso(SysSeconds t, const date::time_zone* zone);
// Same, in UTC with a "Z" suffix: "2026-03-29T01:00:00Z".
std::string FormatIsoUtc(SysSeconds t);
// "2026-03-29": the calendar date of `t` in `zone`.
std::string FormatDate(SysSeconds t, const date::time_zone* zone);

// Current time. The engine and scheduler take a Clock so tests can use a fake one.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SysMillis Now() const = 0;
};

// The real system clock; thread-safe.
class SystemClock final : public Clock {
 public:
  SysMillis Now() const override;
  static const SystemClock& Instance();
};

}  // namespace batchd
