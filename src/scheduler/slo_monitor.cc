#include "scheduler/slo_monitor.h"

#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "common/duration.h"
#include "common/logging.h"

namespace batchd::scheduler {

struct SloMonitor::TimerHolder {
  explicit TimerHolder(boost::asio::io_context& io) : timer(io) {}
  boost::asio::steady_timer timer;
};

SloMonitor::SloMonitor(boost::asio::io_context& io, engine::Engine& engine, DagRegistry& registry,
                       const Clock& clock, Millis period)
    : io_(io), engine_(engine), registry_(registry), clock_(clock), period_(period),
      timer_(std::make_unique<TimerHolder>(io)) {}

SloMonitor::~SloMonitor() = default;

void SloMonitor::Start() {
  Check();
  Arm();
}

bool SloMonitor::Load() {
  if (loaded_) return true;
  auto last = engine_.store().ListLastSuccesses();
  auto first = last.ok() ? engine_.store().ListFirstVersionTimes() : Result<std::map<std::string, SysMillis>>(last.status());
  if (!first.ok()) {
    spdlog::error("SLO checks: {}; trying again at the next check", first.status().message());
    return false;
  }
  for (const auto& [dag, at] : *last) last_success_[dag] = std::max(last_success_[dag], at);
  first_version_ = std::move(*first);
  loaded_ = true;
  return true;
}

void SloMonitor::Stop() { timer_->timer.cancel(); }

void SloMonitor::Arm() {
  timer_->timer.expires_after(period_);
  timer_->timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    Check();
    Arm();
  });
}

void SloMonitor::Check() {
  if (engine_.store_fault() || !Load()) return;  // nothing can be stored now; the next check catches up
  const SysMillis now = clock_.Now();
  for (const auto& [_, plan] : engine_.active_plans()) {
    const auto& run = plan->run();
    const RegisteredDag* reg = registry_.Find(run.dag);
    if (reg && run.state == RunState::kRunning) CheckDuration(run, *reg->dag, now);
  }
  for (const auto& [name, reg] : registry_.all()) CheckFreshness(name, *reg.dag, now);
}

void SloMonitor::CheckDuration(const store::RunRecord& run, const dag::Dag& dag, SysMillis now) {
  if (!dag.slo.max_duration || !run.started_at || duration_checked_.count(run.run_id)) return;
  const SysMillis end = run.ended_at.value_or(now);
  const Millis took = std::chrono::duration_cast<Millis>(end - *run.started_at);
  if (took <= *dag.slo.max_duration) return;
  duration_checked_.insert(run.run_id);
  Record({0, run.dag, "duration", run.run_id, now,
          "run " + run.run_id + (run.ended_at ? " ran " : " has been running for ") + FormatDuration(took) +
              ", longer than slo.max_duration " + FormatDuration(*dag.slo.max_duration)});
}

std::optional<SysMillis> SloMonitor::FreshSince(const std::string& dag) {
  if (auto it = last_success_.find(dag); it != last_success_.end()) return it->second;
  auto it = first_version_.find(dag);
  if (it == first_version_.end()) {
    // A DAG stored after Start(): read again (once per new DAG).
    if (auto first = engine_.store().ListFirstVersionTimes(); first.ok()) first_version_ = std::move(*first);
    it = first_version_.find(dag);
    if (it == first_version_.end()) return std::nullopt;
  }
  return it->second;
}

void SloMonitor::CheckFreshness(const std::string& name, const dag::Dag& dag, SysMillis now) {
  if (!dag.slo.freshness) return;
  auto since = FreshSince(name);
  if (!since || now - *since <= *dag.slo.freshness) return;
  auto success = last_success_.find(name);
  const std::string subject =
      success == last_success_.end() ? "never" : std::to_string(success->second.time_since_epoch().count());
  if (!freshness_checked_.insert({name, subject}).second) return;
  const Millis age = std::chrono::duration_cast<Millis>(now - *since);
  Record({0, name, "freshness", subject, now,
          (success == last_success_.end() ? "no successful run in the " + FormatDuration(age) + " since the DAG was stored"
                                          : "the last success is " + FormatDuration(age) + " old") +
              ", older than slo.freshness " + FormatDuration(*dag.slo.freshness)});
}

void SloMonitor::Record(const store::SloMiss& miss) {
  auto recorded = engine_.store().RecordSloMiss(miss);
  if (!recorded.ok()) {
    LogEvent(spdlog::level::err, {.dag = miss.dag}, "DAG {}: cannot record a {} SLO miss ({}): {}; checking again",
             miss.dag, miss.kind, miss.detail, recorded.status().message());
    if (miss.kind == "duration") duration_checked_.erase(miss.subject);
    else freshness_checked_.erase({miss.dag, miss.subject});
    return;
  }
  // Not new: counted before a restart, and logged then.
  if (*recorded) {
    LogContext context{.dag = miss.dag};
    if (miss.kind == "duration") context.run_id = miss.subject;
    LogEvent(spdlog::level::warn, context, "DAG {}: {} SLO missed: {}", miss.dag, miss.kind, miss.detail);
  }
}

void SloMonitor::OnRunFinished(const engine::RunPlan& plan) {
  const auto& run = plan.run();
  if (const RegisteredDag* reg = registry_.Find(run.dag)) CheckDuration(run, *reg->dag, clock_.Now());
  duration_checked_.erase(run.run_id);
  if (run.state == RunState::kSuccess && run.ended_at) {
    SysMillis& last = last_success_[run.dag];
    last = std::max(last, *run.ended_at);
  }
}

DagSloState SloMonitor::StateOf(const std::string& dag) const {
  DagSloState out;
  const SysMillis now = clock_.Now();
  if (auto it = last_success_.find(dag); it != last_success_.end()) out.last_success = it->second;
  const RegisteredDag* reg = registry_.Find(dag);
  if (!reg) return out;
  out.freshness = reg->dag->slo.freshness;
  out.max_duration = reg->dag->slo.max_duration;
  std::optional<SysMillis> since = out.last_success;
  if (!since)
    if (auto it = first_version_.find(dag); it != first_version_.end()) since = it->second;
  if (since) out.age = std::chrono::duration_cast<Millis>(now - *since);
  out.stale = out.freshness && out.age && *out.age > *out.freshness;
  if (out.max_duration) {
    for (const auto& [_, plan] : engine_.active_plans()) {
      const auto& run = plan->run();
      if (run.dag == dag && run.state == RunState::kRunning && run.started_at &&
          now - *run.started_at > *out.max_duration)
        ++out.runs_over_duration;
    }
  }
  return out;
}

}  // namespace batchd::scheduler
