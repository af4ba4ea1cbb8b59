#pragma once
// Pure scheduling arithmetic: which fire times of a DAG are due, and their data
// intervals. No I/O and no clock: the Scheduler passes `now` in.

#include <optional>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "cron/cron.h"
#include "dag/dag.h"

namespace batchd::scheduler {

struct Fire {
  SysSeconds fire_time{};       // the run's logical date
  SysSeconds interval_start{};  // the previous fire time
  SysSeconds interval_end{};    // == fire_time
};

// A DAG's compiled schedule: its cron expression evaluated in its zone, bounded by
// start_date and end_date.
class Schedule {
 public:
  // nullopt result value: the DAG has no schedule (manual only).
  static Result<std::optional<Schedule>> ForDag(const dag::Dag& dag);

  // The first fire strictly after `t` within [start_date, end_date], if any.
  std::optional<SysSeconds> NextAfter(SysSeconds t) const;
  // Fire with its data interval [previous fire, fire).
  Fire MakeFire(SysSeconds fire_time) const;

  // The fires due at `now` given the last fire already handled:
  //  - every fire in (last_fire, now], oldest first, when `catchup` (at most `limit`,
  //    the oldest ones; the caller continues from the last on its next pass);
  //  - only the latest fire in (last_fire, now] otherwise.
  // With no last_fire, catchup starts at start_date; without catchup, a never-scheduled
  // DAG gets no past fire: its first run is its next fire time.
  std::vector<Fire> Due(std::optional<SysSeconds> last_fire, SysSeconds now, bool catchup, size_t limit) const;

  // Every fire in [from, to], oldest first (backfill), at most `limit`.
  std::vector<Fire> Between(SysSeconds from, SysSeconds to, size_t limit) const;

  const date::time_zone* zone() const { return zone_; }

 private:
  cron::CronExpr cron_;
  const date::time_zone* zone_ = nullptr;
  std::optional<SysSeconds> start_;
  std::optional<SysSeconds> end_;
  Schedule(cron::CronExpr cron, const date::time_zone* zone) : cron_(std::move(cron)), zone_(zone) {}
};

}  // namespace batchd::scheduler
