#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "scheduler/scheduler.h"

#include <glob.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

namespace batchd::scheduler {

namespace asio = boost::asio;

struct Scheduler::TimerHolder {
  explicit TimerHolder(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
};

Scheduler::Scheduler(asio::io_context& io, engine::Engine& engine, DagRegistry& registry, const Clock& clock,
                     SchedulerOptions options)
    : io_(io),
      engine_(engine),
      registry_(registry),
      clock_(clock),
      options_(options),
      timer_(std::make_unique<TimerHolder>(io)) {}

Scheduler::~Scheduler() = default;

void Scheduler::Start() {
  stopped_ = false;
  // Upstream successes whose downstream run a crash may have prevented: the run key is
  // deterministic, so re-issuing finds the existing run when there is one.
  for (const auto& [name, reg] : registry_.all()) {
    for (const auto& trigger : reg.dag->triggers) {
      if (trigger.kind != dag::Trigger::Kind::kAfterDag) continue;
      auto runs = engine_.store().ListRuns({trigger.value, RunState::kSuccess, 1});
      if (runs.ok() && !runs->empty()) TriggerDownstream(trigger.value, runs->front());
    }
  }
  Tick();
}

void Scheduler::Stop() {
  stopped_ = true;
  timer_->timer.cancel();
}

void Scheduler::Poke() {
  if (!stopped_) Tick();
}

void Scheduler::Arm() {
  if (stopped_) return;
  // Sleep until the next fire, but never longer than a tick: the steady clock does not
  // follow wall-clock steps, so re-checking often is what notices them.
  const SysSeconds now = std::chrono::floor<std::chrono::seconds>(clock_.Now());
  Millis wait = options_.tick;
  for (const auto& [name, reg] : registry_.all()) {
    if (reg.entry.paused || !reg.schedule) continue;
    auto next = reg.schedule->NextAfter(now);
    if (!next) continue;
    auto until = std::chrono::duration_cast<Millis>(*next - clock_.Now());
    wait = std::min(wait, std::max(Millis(0), until));
  }
  timer_->timer.expires_after(wait);
  timer_->timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Tick();
  });
}

void Scheduler::Tick() {
  if (stopped_) return;
  FireSchedules(std::chrono::floor<std::chrono::seconds>(clock_.Now()));
  PollFileTriggers();
  Arm();
}

void Scheduler::FireSchedules(SysSeconds now) {
  std::vector<std::string> names;
  for (const auto& [name, reg] : registry_.all()) names.push_back(name);
  for (const auto& name : names) {
    const RegisteredDag* reg = registry_.Find(name);
    if (!reg || reg->entry.paused || !reg->schedule) continue;
    auto due = reg->schedule->Due(reg->entry.last_fire, now, reg->dag->catchup, options_.max_catchup_per_pass);
    if (due.empty() && !reg->entry.last_fire) {
      // Never scheduled and nothing to catch up: remember "now" as the starting point,
      // so the first run is the next fire time, and downtime from here on is caught up.
      if (Status st = registry_.SetLastFire(name, now); !st.ok()) spdlog::error("DAG {}: {}", name, st.message());
      continue;
    }
    dag::DagPtr dag = reg->dag;
    for (const auto& fire : due) {
      engine::RunRequest request;
      request.dag = dag;
      request.trigger = "schedule";
      request.logical_date = fire.fire_time;
      request.interval_start = fire.interval_start;
      request.interval_end = fire.interval_end;
      request.scheduled_for = SysMillis(fire.fire_time);
      // The run and the DAG's last fire commit together.
      Status st = engine_.store().Begin();
      Result<engine::CreatedRun> created = st.ok() ? engine_.CreateRun(request) : Result<engine::CreatedRun>(st);
      if (created.ok()) st = registry_.SetLastFire(name, fire.fire_time);
      else st = created.status();
      if (st.ok()) st = engine_.store().Commit();
      if (!st.ok()) {
        engine_.store().Rollback();
        spdlog::error("DAG {}: scheduling the fire at {} failed: {}", name, FormatIsoUtc(fire.fire_time),
                      st.message());
        break;
      }
    }
  }
}

void Scheduler::PollFileTriggers() {
  for (const auto& [name, reg] : registry_.all()) {
    if (reg.entry.paused) continue;
    for (const auto& trigger : reg.dag->triggers) {
      if (trigger.kind != dag::Trigger::Kind::kFile) continue;
      glob_t g{};
      if (::glob(trigger.value.c_str(), GLOB_NOSORT, nullptr, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; ++i) {
          std::string path = g.gl_pathv[i];
          struct stat st{};
          if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
          // A file is new when this (path, mtime, size) has no run yet.
          engine::RunRequest request;
          request.dag = reg.dag;
          request.trigger = "file";
          auto now = std::chrono::floor<std::chrono::seconds>(clock_.Now());
          request.logical_date = request.interval_start = request.interval_end = now;
          request.params["trigger_file"] = path;
          request.run_key = name + "@file:" + path + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
                            std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_size);
          auto created = engine_.CreateRun(request);
          if (!created.ok()) spdlog::error("DAG {}: file trigger for {}: {}", name, path, created.status().message());
        }
      }
      ::globfree(&g);
    }
  }
}

void Scheduler::OnRunFinished(const engine::RunPlan& plan) {
  if (plan.run().state != RunState::kSuccess) return;
  TriggerDownstream(plan.run().dag, plan.run());
}

void Scheduler::TriggerDownstream(const std::string& upstream_dag, const store::RunRecord& upstream_run) {
  for (const auto& [name, reg] : registry_.all()) {
    if (reg.entry.paused) continue;
    for (const auto& trigger : reg.dag->triggers) {
      if (trigger.kind != dag::Trigger::Kind::kAfterDag || trigger.value != upstream_dag) continue;
      engine::RunRequest request;
      request.dag = reg.dag;
      request.trigger = "dag";
      request.logical_date = upstream_run.logical_date;
      request.interval_start = upstream_run.interval_start;
      request.interval_end = upstream_run.interval_end;
      request.run_key = name + "@after:" + upstream_run.run_id;
      auto created = engine_.CreateRun(request);
      if (!created.ok()) {
        spdlog::error("DAG {}: after_dag trigger from run {}: {}", name, upstream_run.run_id,
                      created.status().message());
      }
    }
  }
}

}  // namespace batchd::scheduler
