#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "scheduler/scheduler.h"

#include <algorithm>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "common/logging.h"

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
  RetryDownstream();
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
      if (Status st = registry_.SetLastFire(name, now); !st.ok())
        LogEvent(spdlog::level::err, {.dag = name}, "DAG {}: {}", name, st.message());
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
        LogEvent(spdlog::level::err, {.dag = name}, "DAG {}: scheduling the fire at {} failed: {}", name,
                 FormatIsoUtc(fire.fire_time), st.message());
        break;
      }
    }
  }
}

void Scheduler::PollFileTriggers() {
  std::vector<std::string> names;
  for (const auto& [name, reg] : registry_.all()) {
    for (const auto& trigger : reg.dag->triggers) {
      if (trigger.kind == dag::Trigger::Kind::kFile) {
        names.push_back(name);
        break;
      }
    }
  }
  // Forget what was seen for DAGs that are gone or have no file trigger any more.
  std::erase_if(file_watches_, [&](const auto& w) { return !std::count(names.begin(), names.end(), w.first); });
  for (const auto& name : names) {
    const RegisteredDag* reg = registry_.Find(name);
    // A paused DAG's files wait: each version still there when it is unpaused fires then.
    if (reg && !reg->entry.paused) PollFiles(name, *reg);
  }
}

void Scheduler::PollFiles(const std::string& name, const RegisteredDag& reg) {
  WatchedDag& watched = file_watches_[name];
  if (watched.generation != reg.entry.updated_at) watched = WatchedDag{reg.entry.updated_at, {}};
  // Each path once, however many of the DAG's globs match it.
  std::map<std::string, FileVersion> matched;
  for (const auto& trigger : reg.dag->triggers) {
    if (trigger.kind != dag::Trigger::Kind::kFile) continue;
    for (auto& file : MatchFiles(trigger.value)) matched.emplace(file.path, std::move(file));
  }
  std::vector<FileVersion> files;
  files.reserve(matched.size());
  for (auto& [path, file] : matched) files.push_back(std::move(file));
  const Millis settle = options_.file_settle.value_or(options_.tick);
  std::vector<FileVersion> due = watched.watch.Observe(files, clock_.Now(), settle);
  const size_t chunk = std::max<size_t>(1, options_.files_per_commit);
  for (size_t i = 0; i < due.size(); i += chunk) {
    std::vector<FileVersion> part(due.begin() + i, due.begin() + std::min(due.size(), i + chunk));
    if (!FireFiles(name, reg.dag, part, watched.watch)) break;
  }
}

bool Scheduler::FireFiles(const std::string& name, const dag::DagPtr& dag, const std::vector<FileVersion>& due,
                          FileWatch& watch) {
  store::Store& store = engine_.store();
  const SysMillis now = clock_.Now();
  std::vector<const FileVersion*> handled;
  const FileVersion* failed = nullptr;  // the file whose step failed, if one did
  Status st = store.Begin();
  for (const auto& file : due) {
    if (!st.ok()) break;
    failed = &file;
    // The ledger decides, not the runs: they may have been pruned long ago.
    Result<bool> fired = store.TriggerFileFired(name, file.path, file.size, file.mtime_ns);
    if (!fired.ok()) {
      st = fired.status();
      break;
    }
    if (!*fired) {
      engine::RunRequest request;
      request.dag = dag;
      request.trigger = "file";
      request.logical_date = request.interval_start = request.interval_end =
          std::chrono::floor<std::chrono::seconds>(now);
      request.params["trigger_file"] = file.path;  // exact bytes
      request.run_key = FileRunKey(name, file);
      Result<engine::CreatedRun> created = engine_.CreateRun(request);
      if (!created.ok()) {
        st = created.status();
        break;
      }
      // The run and its ledger row commit together: a crash keeps both or neither.
      st = store.RecordTriggerFile({name, file.path, file.size, file.mtime_ns, created->run.run_id, now});
      if (!st.ok()) break;
    }
    handled.push_back(&file);
    failed = nullptr;
  }
  if (st.ok()) {
    st = store.Commit();
  } else {
    store.Rollback();
  }
  if (!st.ok()) {
    // The path as in run keys: printable whatever its bytes.
    const std::string what = failed ? "file trigger for " + EscapeKeyBytes(failed->path)
                                    : "file trigger for " + std::to_string(due.size()) + " files";
    LogEvent(spdlog::level::err, {.dag = name},
             "DAG {}: {}: {}; nothing of it was stored, the files are tried again at the next poll", name, what,
             st.message());
    return false;
  }
  for (const FileVersion* file : handled) watch.MarkHandled(*file);
  return true;
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
        LogEvent(spdlog::level::err, {.dag = name},
                 "DAG {}: after_dag trigger from run {}: {}; trying again at the next tick", name,
                 upstream_run.run_id, created.status().message());
        // The run key is deterministic: trying again never creates a second run.
        downstream_retry_.emplace(upstream_run.run_id, upstream_run);
      }
    }
  }
}

void Scheduler::RetryDownstream() {
  if (downstream_retry_.empty()) return;
  std::map<std::string, store::RunRecord> pending;
  pending.swap(downstream_retry_);
  for (const auto& [_, run] : pending) TriggerDownstream(run.dag, run);
}

}  // namespace batchd::scheduler
