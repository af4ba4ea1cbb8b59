#pragma once
// Engine: the owner of all mutable run state. It turns run requests into runs in the
// store, plans them (RunPlan), dispatches ready instances to the TaskRunner within the
// limits (workers, max_active_runs, max_active_tasks, pools, priority), applies retry
// decisions with timers, and records everything in the Store before acting on it.
//
// Thread rules: every public method must be called on the io_context's thread (the
// daemon posts API work there). Runner callbacks (on the io thread, or a fake's thread) are posted
// back to that thread; nothing else touches engine state.
//
// Group commit: attempt results that arrive close together are applied in one
// transaction; the instances they make ready are marked running in that same
// transaction, and processes are spawned only after it commits.
//
// Faults (docs/reliability.md): a write that fails for one run (a constraint, a row that
// is gone) fails that run, with the reason, and the others go on. A batch the store
// cannot take (disk full, I/O error) is rolled back, every plan is reloaded from the
// store, results not yet recorded wait, nothing is spawned, and the pass is tried again
// with backoff until it commits; meanwhile store_fault() says why, and the API refuses
// new work. Only a store that reports itself corrupt stops the process.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <tuple>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "dag/dag.h"
#include "engine/partition_expander.h"
#include "engine/run_plan.h"
#include "executor/runner.h"
#include "store/store.h"

namespace boost::asio { class io_context; }

namespace batchd::engine {

// Receives engine events after they are committed; called on the engine thread.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  virtual void OnRunCreated(const store::RunRecord&) {}
  virtual void OnRunStateChanged(const RunPlan&, RunState /*from*/) {}
  virtual void OnInstanceStateChanged(const RunPlan&, const store::InstanceRecord&) {}
  virtual void OnAttemptFinished(const RunPlan&, const store::InstanceRecord&, const store::AttemptRecord&) {}
  virtual void OnRunFinished(const RunPlan&) {}
};

struct EngineOptions {
  // Slot limit per named pool; a task naming a pool not listed here runs unlimited. The
  // daemon refuses DAGs naming undefined pools (DagRegistry::SetPools); `batchd run` has
  // no pools and warns instead.
  std::map<std::string, int> pools;
  // Environment every attempt inherits (before BATCHD_* and the DAG's env).
  std::vector<std::string> base_env;
  // Maximum time a partitions command may run.
  Millis partition_command_timeout = std::chrono::seconds(60);
  // Run partitions commands on a thread of their own (PartitionExpander) rather than on
  // the loop, which they would block for up to partition_command_timeout.
  bool background_partition_commands = true;
  // Seed for retry jitter (0: random).
  uint64_t seed = 0;
  // fsync the store for every engine state change (attempt started/finished). Off, the
  // engine's commits survive kill -9 but a power cut may lose the last ones (their
  // attempts then run again; sinks deduplicate on BATCHD_IDEMPOTENCY_KEY). API
  // mutations and scheduler fires are always fsync'd before they are acknowledged.
  bool fsync_engine_commits = false;
  // Kills running partitions commands when this process dies (attempts get theirs
  // through the runner). May be null.
  executor::OrphanGuard* orphan_guard = nullptr;
  // When set, the engine plans and starts only this DAG's runs (`batchd run` on a data
  // directory that also holds other DAGs' history).
  std::optional<std::string> only_dag;
};

struct RunRequest {
  dag::DagPtr dag;
  std::string trigger = "manual";         // schedule | manual | backfill | dag | file
  SysSeconds logical_date{};
  SysSeconds interval_start{};
  SysSeconds interval_end{};
  std::optional<std::string> run_key;     // default "<dag>@<logical_date ISO>"
  std::map<std::string, std::string> params;
  bool force = false;
  std::optional<SysMillis> scheduled_for; // fire time, for the schedule-delay SLI
};

struct CreatedRun {
  store::RunRecord run;
  bool created = false;
};

// Resolves the DAG version a run was created with.
using DagResolver = std::function<Result<dag::DagPtr>(const std::string& name, const std::string& hash)>;

class Engine {
 public:
  Engine(boost::asio::io_context& io, store::Store& store, executor::TaskRunner& runner, const Clock& clock,
         EngineOptions options, DagResolver resolver);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void AddObserver(EngineObserver* observer) { observers_.push_back(observer); }

  // Resumes from the store: attempts left running become lost (and retry under their
  // policy), runs in queued/running are planned again, retry timers re-armed.
  Status Recover();

  // Creates a run, or returns the existing one with the same run key. Committed before
  // returning. The run starts as soon as max_active_runs allows.
  Result<CreatedRun> CreateRun(const RunRequest& request);

  // Cancels a run: queued work is cancelled at once, running attempts are killed. Inside
  // a caller's transaction, the kills and the in-memory change wait for its commit.
  Status CancelRun(const std::string& run_id);

  // What `Retry` re-runs, and with which version of the DAG.
  struct RetryRequest {
    std::optional<std::string> task;
    std::optional<std::string> partition;
    // Run the DAG's current version (when it has the same tasks as the run's own);
    // false keeps the run's own version.
    bool current_version = false;
  };
  struct RetryOutcome {
    int reset = 0;                 // instances reset for another attempt
    std::string dag_hash;          // the version the retried instances run
    std::string previous_hash;     // the run's version before the retry
    std::string kept_version_why;  // why the current version was not taken, when asked for
  };
  // Re-runs failed and upstream_failed instances of a finished or running run. Inside a
  // caller's transaction, the plan is installed after its commit (and reloaded from the
  // store if it rolls back).
  Result<RetryOutcome> Retry(const std::string& run_id, const RetryRequest& request);
  // An operator's decision on instances that are not running: `state` is success,
  // failed or skipped; the instances keep `reason` ("marked <state>: <reason>"), and
  // their downstream follows the trigger rules. Marked success records the idempotency
  // key, as a successful attempt does.
  struct MarkRequest {
    std::string task;
    std::optional<std::string> partition;  // none: every partition of the task
    InstanceState state = InstanceState::kSuccess;
    std::string reason;
  };
  // Runs finished instances again: the retry policy applies afresh; an instance whose
  // idempotency key already succeeded is skipped again unless `force`.
  struct ClearRequest {
    std::string task;
    std::optional<std::string> partition;  // none: every partition of the task
    bool downstream = false;               // also every instance downstream of them
    bool force = false;
  };
  struct EditOutcome {
    int changed = 0;         // instances marked or cleared
    int keys_succeeded = 0;  // Clear: of those, how many will be skipped for their key
  };
  // Both work on a running run or a finished one (which becomes active again; queued
  // behind max_active_runs when it has work and no free slot). Inside a caller's
  // transaction, the plan is installed after its commit.
  Result<EditOutcome> Mark(const std::string& run_id, const MarkRequest& request);
  Result<EditOutcome> Clear(const std::string& run_id, const ClearRequest& request);

  // Retry with the run's own version; returns how many instances were reset.
  Result<int> RetryRun(const std::string& run_id, const std::optional<std::string>& task,
                       const std::optional<std::string>& partition);

  // Stops dispatching; running attempts are killed after `grace` by the caller's runner
  // shutdown; their results make the instances queued again (they run on next start).
  void StopDispatching() { dispatching_ = false; }
  bool HasRunningAttempts() const { return !running_.empty(); }

  // Active (planned) run by id, or null.
  const RunPlan* FindActiveRun(const std::string& run_id) const;
  // Ids of the instances of `run_id` with an attempt running now, ascending; at most the
  // runner's capacity, so listing them never reads the run.
  std::vector<int64_t> RunningInstanceIds(const std::string& run_id) const;
  // Whether `dag` has runs planned, draining or running partitions commands.
  bool HasActiveRuns(const std::string& dag) const { return ActiveRunsOf(dag) > 0; }
  // Why the store cannot be written right now (engine passes are being retried), or null.
  const std::optional<std::string>& store_fault() const { return store_fault_; }
  size_t ActiveRunCount() const { return plans_.size(); }
  // The active runs' plans by run id (the SLO monitor reads how long they have run).
  const std::map<std::string, std::unique_ptr<RunPlan>>& active_plans() const { return plans_; }
  int RunningAttemptCount() const { return static_cast<int>(running_.size()); }
  int QueuedInstanceCount() const;
  // Runs whose partitions commands are running (they start when these are back).
  size_t StartingRunCount() const { return expanding_.size() + expanded_.size(); }
  // Pool -> slots in use.
  const std::map<std::string, int>& PoolUsage() const { return pool_used_; }
  const EngineOptions& options() const { return options_; }
  store::Store& store() { return store_; }
  // New slot limits (config reload); attempts already running keep their slots.
  void SetPools(std::map<std::string, int> pools) {
    options_.pools = std::move(pools);
    SchedulePump();
  }
  // The DAG version a run was created with (cached).
  Result<dag::DagPtr> ResolveDag(const std::string& name, const std::string& hash) { return resolver_(name, hash); }

  // Path of an attempt's log file: <logs>/<run id>/<shard>/<task>@<partition>.<attempt>.log,
  // where shard is the instance id divided by kLogShardInstances, so that no directory
  // holds the logs of more than that many instances however wide the run.
  std::string LogPath(const std::string& run_id, const store::InstanceRecord& inst, int attempt) const;
  static constexpr int64_t kLogShardInstances = 1000;

 private:
  struct Running;

  void SchedulePump();
  // The one main loop step: apply results, start runs, resolve, dispatch, commit,
  // spawn, notify. See engine.cc.
  void Pump();
  // What a pass changed outside the store, for AbandonPass to put back when the pass
  // does not commit.
  struct Pass {
    std::vector<executor::AttemptResult> results;    // taken from the inbox
    std::vector<std::unique_ptr<Running>> finished;  // their running_ entries
    std::vector<uint64_t> dispatched;                // attempts entered in running_
    bool committed = false;
  };
  // Pump's work; false when it did not commit.
  bool RunPass(Pass& pass);
  void AbandonPass(Pass& pass);
  void StartQueuedRuns();
  // Cancels the unfinished ones among stored instances (of a run that is not planned).
  Status CancelStoredInstances(std::vector<store::InstanceRecord>& instances, SysMillis now,
                               const std::string& reason);
  // Runs of `dag` holding a max_active_runs slot (planned, or running partitions commands).
  int ActiveRunsOf(const std::string& dag) const;
  // Plans a queued run that already has instances (a retry that waited for a slot).
  Status ResumeQueuedRetry(store::RunRecord run, const dag::DagPtr& dag, std::vector<store::InstanceRecord> instances);
  // Plans and starts a queued run. `outputs`: what its partitions commands printed (from
  // the expander); null runs them here.
  Status StartRun(store::RunRecord run, const PartitionCommandOutputs* outputs = nullptr);
  // The distinct partitions commands of a run, rendered, one task each.
  std::vector<dag::Task> PartitionCommandsOf(const dag::Dag& dag, const store::RunRecord& run) const;
  // The partitions command's environment: inherited, the DAG's env, BATCHD_PARAM_*.
  std::vector<std::string> PartitionCommandEnv(const dag::Dag& dag, const store::RunRecord& run) const;
  void ArmRetryTimer(const std::string& run_id, int64_t instance_id, SysMillis at);
  void FinishAttemptInPlan(RunPlan& plan, size_t index, store::AttemptRecord& attempt,
                           const executor::AttemptResult* result);
  void ResolveQueued(RunPlan& plan);
  // The plan an operator's change edits: an active run's own, or a finished run's planned
  // again from the store (installed by CommitRunEdit). `doing` names the change in errors.
  struct RunEdit {
    RunPlan* plan = nullptr;
    std::unique_ptr<RunPlan> owned;  // set for a run that was not active
    dag::DagPtr new_version;         // set when the change moves the run to this version
  };
  Result<RunEdit> OpenRunEdit(const std::string& run_id, const char* doing);
  // Makes the edit run `version` of its DAG.
  void MoveEditToVersion(RunEdit& edit, const dag::DagPtr& version);
  // Persists the run and its changed instances (and `also`, in the same transaction) and
  // makes the run active once that commits; `what` is logged.
  Status CommitRunEdit(const std::string& run_id, RunEdit& edit, std::string what,
                       const std::function<Status()>& also = nullptr);
  // The instances of `task` (one partition, or all) of a run, or why there are none.
  Result<std::vector<size_t>> SelectInstances(const RunPlan& plan, const std::string& task,
                                              const std::optional<std::string>& partition) const;
  // The DAG's current version when it can take over `run` (same task ids, not deleted);
  // otherwise null and `why` says why not.
  Result<dag::DagPtr> CurrentVersionFor(const store::RunRecord& run, const dag::Dag& own, std::string* why);
  static std::string NothingToRetry(const std::string& run_id, const std::optional<std::string>& task,
                                    const std::optional<std::string>& partition);
  // Creates the directory of a log file of `run_id` unless this engine already did.
  void EnsureLogDir(const std::string& run_id, const std::string& log_path);
  // Removes the run's log directories that hold nothing (its attempts printed nothing).
  void RemoveEmptyLogDirs(const std::string& run_id);
  std::vector<std::string> AttemptEnv(RunPlan& plan, size_t index, int attempt) const;
  // A store error met during a pass: see "Faults" above. `run_id` names the run it
  // belongs to; empty when it belongs to the whole batch.
  void NoteFault(const std::string& run_id, const Status& st);
  // Ends each run a pass faulted: run failed with the reason, unfinished instances failed,
  // running attempts killed. In a transaction of its own, after the pass committed.
  void FailFaultedRuns(const std::map<std::string, std::string>& faulted);
  // After a pass that did not commit: plans again from what the store holds, keeping the
  // attempts whose processes run in this daemon.
  Status ReloadPlansFromStore();
  // The same for some runs: each is planned again, or dropped when it is no longer active.
  Status ReloadPlans(const std::vector<std::string>& run_ids);
  // Re-plans one stored run (a Recover or a reload). An instance stored as running whose
  // attempt is not in running_ was lost: `lost_processes` collects it, to be killed.
  std::unique_ptr<RunPlan> PlanFromStore(const store::RunRecord& run, const dag::DagPtr& dag,
                                         std::vector<store::InstanceRecord> instances,
                                         std::set<std::tuple<std::string, std::string, std::string>>* lost_processes);
  void EnterStoreFault(const Status& st);
  // Plans one active run again from the store (its in-memory change was rolled back).
  void ReloadPlan(const std::string& run_id);
  // CancelRun's in-memory part and kills, after its commit.
  void ApplyCancel(const std::string& run_id, SysMillis now);
  [[noreturn]] static void StopForDamagedStore(const Status& st);
  // Parameters as stored in runs.params_json: exact bytes, whatever they are.
  static std::string EncodeParams(const std::map<std::string, std::string>& params);

  boost::asio::io_context& io_;
  store::Store& store_;
  executor::TaskRunner& runner_;
  const Clock& clock_;
  EngineOptions options_;
  DagResolver resolver_;
  std::vector<EngineObserver*> observers_;
  std::mt19937_64 rng_;
  bool dispatching_ = true;
  struct PassFaults {
    Status store_error;                       // the first error that lost the whole batch
    std::map<std::string, std::string> runs;  // run id -> why that run fails
  };
  PassFaults faults_;                         // of the pass under way
  std::optional<std::string> store_fault_;    // set from a failed pass to one that commits
  Millis store_retry_delay_{0};
  bool store_retry_due_ = false;              // the retry timer fired: Pump may try again
  int store_fault_passes_ = 0;                // passes failed since the fault began
  bool plans_stale_ = false;                  // a reload after a failed pass is still due

  std::map<std::string, std::unique_ptr<RunPlan>> plans_;  // active runs by run id
  std::map<uint64_t, std::unique_ptr<Running>> running_;   // by attempt id
  std::map<std::string, int> pool_used_;
  std::vector<executor::AttemptResult> inbox_;             // results waiting for Pump
  std::vector<std::string> started_runs_;                  // started since the last notify
  bool pump_scheduled_ = false;
  // Set by what can let a queued run start (a run created or finished, a retry queued,
  // partitions back); StartQueuedRuns queries the store only then.
  bool may_start_queued_runs_ = true;
  std::map<std::string, std::set<std::string>> log_dirs_;  // run id -> log dirs made for it
  struct Timers;
  std::unique_ptr<Timers> timers_;
  std::unique_ptr<PartitionExpander> expander_;           // null: commands run inline
  std::map<std::string, std::string> expanding_;           // run id -> DAG, commands running
  std::map<std::string, PartitionCommandOutputs> expanded_;  // run id -> outputs, to start
  // Keeps runner callbacks from touching a destroyed engine.
  std::shared_ptr<Engine*> self_;
};

}  // namespace batchd::engine
