#pragma once
// CronExpr: a parsed five-field cron expression (minute hour day-of-month month
// day-of-week) or macro (@yearly @annually @monthly @weekly @daily @midnight @hourly),
// evaluated on the wall clock of an IANA zone. Pure: no I/O, no global state;
// immutable after Parse and safe to share between threads.
//
// DST rules (SPEC section 4): a wall-clock fire time inside a spring-forward gap fires
// once, at the first instant after the gap; a wall-clock time that occurs twice at
// fall-back fires once, at its first occurrence. Nothing is skipped, nothing fires twice.
// Day-of-month and day-of-week both restricted: a day matches if either matches (Vixie).

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/time.h"

namespace batchd::cron {

class CronExpr {
 public:
  // Parses `text`. Errors name the field and the problem, e.g.
  //   "invalid cron expression '61 * * * *': minute 61 is out of range 0-59"
  // An expression that can never fire ("0 0 31 2 *", "0 0 30 2 *") is refused:
  //   "invalid cron expression '0 0 31 2 *': it never fires (day 31 does not exist in February)"
  static Result<CronExpr> Parse(std::string_view text);

  // The first fire time strictly after `after`, evaluated in `zone`.
  // std::nullopt only if none exists within the search horizon (never happens for an
  // expression Parse accepted; kept so callers never loop forever).
  std::optional<SysSeconds> Next(SysSeconds after, const date::time_zone* zone) const;

  // The last fire time strictly before `before`, in `zone` (the start of a scheduled
  // run's data interval is Prev(fire time)).
  std::optional<SysSeconds> Prev(SysSeconds before, const date::time_zone* zone) const;

  // The text as given (trimmed).
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // 1..31
  std::bitset<13> months_;         // 1..12
  std::bitset<7> days_of_week_;    // 0..6, Sunday = 0 (7 is folded into 0)
  bool dom_restricted_ = false;    // field did not begin with '*' (Vixie's DOM_STAR rule)
  bool dow_restricted_ = false;    // likewise for day-of-week (DOW_STAR)
};

}  // namespace batchd::cron
