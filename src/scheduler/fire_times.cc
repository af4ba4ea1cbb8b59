#include "scheduler/fire_times.h"

namespace batchd::scheduler {

Result<std::optional<Schedule>> Schedule::ForDag(const dag::Dag& dag) {
  if (!dag.schedule) return std::optional<Schedule>();
  auto zone = LookupZone(dag.timezone);
  if (!zone.ok()) return zone.status();
  auto cron = cron::CronExpr::Parse(*dag.schedule);
  if (!cron.ok()) return cron.status();
  Schedule s(std::move(*cron), *zone);
  s.start_ = dag.start_date;
  s.end_ = dag.end_date;
  return std::optional<Schedule>(std::move(s));
}

std::optional<SysSeconds> Schedule::NextAfter(SysSeconds t) const {
  // Fires before start_date do not count: look from just before it.
  if (start_ && t < *start_) t = *start_ - std::chrono::seconds(1);
  auto next = cron_.Next(t, zone_);
  if (!next || (end_ && *next > *end_)) return std::nullopt;
  return next;
}

Fire Schedule::MakeFire(SysSeconds fire_time) const {
  Fire f;
  f.fire_time = fire_time;
  f.interval_end = fire_time;
  auto prev = cron_.Prev(fire_time, zone_);
  f.interval_start = prev ? *prev : fire_time;
  return f;
}

std::vector<Fire> Schedule::Due(std::optional<SysSeconds> last_fire, SysSeconds now, bool catchup,
                                size_t limit) const {
  std::vector<Fire> out;
  if (!last_fire) {
    if (!catchup || !start_) return out;
    last_fire = *start_ - std::chrono::seconds(1);
  }
  if (catchup) {
    SysSeconds t = *last_fire;
    while (out.size() < limit) {
      auto next = NextAfter(t);
      if (!next || *next > now) break;
      out.push_back(MakeFire(*next));
      t = *next;
    }
    return out;
  }
  // Latest fire in (last_fire, now]: the last one before now + 1s, if after last_fire.
  auto latest = cron_.Prev(now + std::chrono::seconds(1), zone_);
  if (latest && *latest > *last_fire && (!start_ || *latest >= *start_) && (!end_ || *latest <= *end_)) {
    out.push_back(MakeFire(*latest));
  } else if (latest && end_ && *latest > *end_) {
    // Past end_date: the last fire inside the window, if not handled yet.
    auto last_in_window = cron_.Prev(*end_ + std::chrono::seconds(1), zone_);
    if (last_in_window && *last_in_window > *last_fire && (!start_ || *last_in_window >= *start_))
      out.push_back(MakeFire(*last_in_window));
  }
  return out;
}

std::vector<Fire> Schedule::Between(SysSeconds from, SysSeconds to, size_t limit) const {
  std::vector<Fire> out;
  SysSeconds t = from - std::chrono::seconds(1);
  while (out.size() < limit) {
    auto next = cron_.Next(t, zone_);
    if (!next || *next > to) break;
    out.push_back(MakeFire(*next));
    t = *next;
  }
  return out;
}

}  // namespace batchd::scheduler
