#pragma once
// Scheduler: turns time and events into run requests. It fires cron schedules (with
// catchup after downtime or unpause), `after_dag` triggers (when an upstream run
// succeeds) and `file` triggers (a new file matching a glob), and hands each to
// Engine::CreateRun with a deterministic run key, so a repeated request after a crash or
// a clock step finds the existing run instead of creating a second one.
//
// A DAG's last handled fire time is persisted with the run it created, in one
// transaction: a restart neither misses nor repeats a fire. Only fires later than the
// last handled one are considered, so a clock stepping backwards cannot fire twice.
// Likewise a file version that fires is recorded in the file-trigger ledger in the
// transaction that creates its run: it fires exactly once, whatever retention prunes.
//
// Thread rules: engine thread only; timers run on the same io_context.

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "scheduler/dag_registry.h"
#include "scheduler/file_trigger.h"

namespace boost::asio { class io_context; }

namespace batchd::scheduler {

struct SchedulerOptions {
  // Longest sleep between checks; also the polling interval of file triggers. Short
  // enough that a clock step or resume from suspend is noticed quickly.
  Millis tick = std::chrono::seconds(2);
  // Most runs one DAG may get from one catch-up pass (more follow on the next pass).
  size_t max_catchup_per_pass = 100;
  // How long a file must stay unchanged (size and mtime), as seen by two polls, before its
  // file trigger fires; default: one tick. Zero fires a file at its first sighting.
  std::optional<Millis> file_settle;
  // Most file runs created per transaction (one fsync each): 1,000 files dropped at once
  // cost a few commits, not a thousand.
  size_t files_per_commit = 200;
};

class Scheduler final : public engine::EngineObserver {
 public:
  Scheduler(boost::asio::io_context& io, engine::Engine& engine, DagRegistry& registry, const Clock& clock,
            SchedulerOptions options);
  ~Scheduler() override;

  // Begins ticking; fires whatever is due now (catchup after downtime), and re-issues
  // after_dag triggers of upstream successes a crash may have interrupted.
  void Start();
  void Stop();
  // Checks schedules now (after unpause, submit, reload).
  void Poke();

  // engine::EngineObserver: after_dag triggers.
  void OnRunFinished(const engine::RunPlan& plan) override;

 private:
  void Tick();
  void Arm();
  void FireSchedules(SysSeconds now);
  void PollFileTriggers();
  void PollFiles(const std::string& name, const RegisteredDag& reg);
  // Creates the runs of `due` files and records them in the ledger, in one transaction;
  // false when it rolled back (the files are tried again at the next poll).
  bool FireFiles(const std::string& name, const dag::DagPtr& dag, const std::vector<FileVersion>& due,
                 FileWatch& watch);
  void TriggerDownstream(const std::string& upstream_dag, const store::RunRecord& upstream_run);
  // after_dag triggers whose run could not be created (the store could not be written).
  void RetryDownstream();

  boost::asio::io_context& io_;
  engine::Engine& engine_;
  DagRegistry& registry_;
  const Clock& clock_;
  SchedulerOptions options_;
  struct TimerHolder;
  std::unique_ptr<TimerHolder> timer_;
  bool stopped_ = true;
  // Per DAG with file triggers: what its polls saw, and the DAG entry's updated_at it was
  // seen for (a resubmitted or purged-and-resubmitted DAG starts afresh).
  struct WatchedDag {
    SysMillis generation{};
    FileWatch watch;
  };
  std::map<std::string, WatchedDag> file_watches_;
  // Upstream runs (by run id) whose after_dag triggers failed; retried each tick.
  std::map<std::string, store::RunRecord> downstream_retry_;
};

}  // namespace batchd::scheduler
