#pragma once
// Store: the single source of truth for batchd's state, on SQLite in WAL mode with
// synchronous=FULL (docs/store-schema.md). The engine can be killed at any instant and
// resume from what is here.
//
// Ownership and threads: one Store per data directory per process (an exclusive flock on
// <data_dir>/batchd.lock enforces it across processes). A Store is NOT thread-safe: it is
// owned by the engine's loop thread; other threads (the API) post work to that thread.
//
// Writes outside an explicit transaction commit immediately (a method that writes several
// rows uses its own transaction, so it is all-or-nothing). For high-rate state changes the
// engine wraps a batch in Begin()/Commit() (group commit) and performs the side effects
// that depend on the batch (spawning, replying) only after Commit() returns.
//
// Errors are Status values whose message says what was being done and why it failed,
// e.g. "cannot update run 'ab12': no such run". Updates of a row that does not exist
// return NotFound; duplicate keys return AlreadyExists; a damaged file returns Corruption.

#include <cstdint>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "batchd/states.h"
#include "common/status.h"
#include "common/time.h"

namespace batchd::store {

class Database;

inline constexpr int kSchemaVersion = 8;

struct DagVersion {
  std::string dag;
  std::string hash;         // SHA-256 of source
  std::string source;       // the YAML text
  std::string source_path;  // where it came from (file path or "<submit>")
};

struct DagEntry {
  std::string name;
  std::string current_hash;
  std::string origin;                      // "file" or "submit"
  std::string source_path;
  bool paused = false;                     // operator override (pause/unpause)
  bool deleted = false;                    // `delete` without --purge
  std::optional<SysSeconds> last_fire;     // the scheduler's last fire time handled
  SysMillis updated_at{};
};

struct RunRecord {
  std::string run_id;
  std::string dag;
  std::string dag_hash;
  std::string run_key;
  std::string trigger;                     // schedule | manual | backfill | dag | file
  RunState state = RunState::kQueued;
  SysSeconds logical_date{};
  SysSeconds interval_start{};
  SysSeconds interval_end{};
  std::string params_json = "{}";          // trigger-time overrides, JSON object
  bool force = false;                      // ignore already-succeeded idempotency keys
  SysMillis created_at{};
  std::optional<SysMillis> started_at;
  std::optional<SysMillis> ended_at;
  std::optional<SysMillis> scheduled_for;  // fire time (schedule/backfill), for delay SLI
  std::string error;                       // why the run failed before any task ran
};

struct InstanceRecord {
  int64_t id = 0;
  std::string run_id;
  std::string task;
  std::string partition;
  InstanceState state = InstanceState::kPending;
  std::string reason;                      // e.g. already_succeeded, trigger_rule
  std::string idempotency_key;
  int attempts = 0;                        // attempts started so far
  int retry_base = 0;                      // `attempts` when last reset by a manual retry:
                                           // the retry policy counts from here
  std::optional<int> exit_code;            // of the last finished attempt
  std::optional<SysMillis> next_attempt_at;  // retry_wait: when to queue again
  std::optional<SysMillis> started_at;
  std::optional<SysMillis> ended_at;
  bool force = false;                      // cleared with --force: runs even when its
                                           // idempotency key already succeeded
};

struct AttemptRecord {
  int64_t id = 0;
  int64_t instance_id = 0;
  int number = 1;                          // 1-based
  AttemptOutcome outcome = AttemptOutcome::kRunning;
  int pid = 0;
  SysMillis started_at{};
  std::optional<SysMillis> ended_at;
  std::optional<int> exit_code;
  std::optional<int> signal;
  double cpu_seconds = 0;
  int64_t max_rss_kb = 0;
  std::string log_path;
  std::string error;
  std::string dag_hash;                    // the DAG version the attempt ran ("" if unknown)
};

// An attempt with the task instance it belongs to (ListRunAttempts).
struct RunAttempt {
  std::string task;
  std::string partition;
  AttemptRecord attempt;
};

struct AuditEntry {
  int64_t id = 0;
  SysMillis at{};
  int uid = -1;
  std::string action;   // submit, trigger, cancel, retry, pause, ...
  std::string target;   // DAG name or run id
  std::string detail;   // JSON
};

// One version of a file that a `file` trigger started a run for: the file-trigger ledger
// (docs/store-schema.md, `trigger_files`). (dag, path, size, mtime_ns) identifies it.
struct TriggerFile {
  std::string dag;
  std::string path;      // the exact bytes of the path, which need not be UTF-8
  int64_t size = 0;      // bytes
  int64_t mtime_ns = 0;  // modification time, nanoseconds since the epoch
  std::string run_id;    // the run it started (not a foreign key: the ledger outlives runs)
  SysMillis fired_at{};
};

// One stored count behind a Prometheus counter (docs/store-schema.md, "Counts"): what
// happened how often, per DAG and, where it applies, task, trigger and state/outcome.
struct MetricCount {
  std::string metric;   // runs | partitions | attempts | retries | idempotent_skips |
                        // duplicate_triggers | slo_misses
  std::string dag;
  std::string task;     // "" where it does not apply
  std::string trigger;  // runs only
  std::string label;    // the state (runs, partitions), outcome (attempts) or kind (slo_misses)
  double value = 0;     // how many
  double total = 0;     // attempts: the CPU seconds they used; else 0
};

// A missed SLO of a DAG: a run that ran longer than `slo.max_duration` (subject: the run
// id) or a last success that became older than `slo.freshness` (subject: the time of that
// success in milliseconds, or "never"). (dag, kind, subject) is counted once.
struct SloMiss {
  int64_t id = 0;
  std::string dag;
  std::string kind;     // duration | freshness
  std::string subject;
  SysMillis at{};       // when it was noticed
  std::string detail;   // a sentence for people
};

// Per DAG and task, how many instances are dead letters now.
struct DeadLetterCount {
  std::string dag;
  std::string task;
  int64_t count = 0;
};

// Filter for ListRuns.
struct RunFilter {
  std::optional<std::string> dag;    // only this DAG's runs
  std::optional<RunState> state;     // only runs in this state
  int limit = 50;                    // at most this many, newest first; negative: all
};

// What Store::Open(data_dir) would create that is not there yet: the directory and its
// missing parents, logs/, the lock file, the database and its WAL, shared-memory and
// journal files. A caller that creates a store before it knows it will use it (`batchd
// run` creates one while its DAG file parses) takes it back with Store::Discard().
class NewStorePaths {
 public:
  static NewStorePaths Before(const std::string& data_dir);
  // Open() would create the database (there is none yet).
  bool creates_database() const { return creates_database_; }

 private:
  friend class Store;
  std::vector<std::string> files_;
  std::string logs_dir_;           // "" if it existed
  std::vector<std::string> dirs_;  // the data directory and its parents, deepest first
  bool creates_database_ = false;
};

class Store {
 public:
  // Opens or creates the store in `data_dir` (created if missing), takes the directory
  // lock, checks the file and migrates the schema forward. Errors (messages in
  // docs/store-schema.md): the lock is held by another process or Store (FailedPrecondition),
  // the file is corrupt, truncated, not an SQLite database or not a batchd database, or its
  // schema is newer than ours (Corruption).
  //
  // `sync` says when commits become durable. kEveryCommit: as each transaction's
  // Durability says (the daemon, which replies to clients after kFull commits). kOnFlush:
  // every commit survives kill -9 of batchd but is durable against power loss only once
  // Flush() returns (`batchd run`, whose acknowledgement is its exit status: it flushes
  // before exiting; a power cut during the run loses the run's record, not a reply).
  enum class SyncMode { kEveryCommit, kOnFlush };
  static Result<std::unique_ptr<Store>> Open(const std::string& data_dir, SyncMode sync = SyncMode::kEveryCommit);
  // Takes back a store opened speculatively, before anything was stored in it: closes it
  // and removes what `before` lists as missing, so that the data directory is as it was.
  // Files and logs/ go only if this Open created the database, and while the lock is still
  // held (no other process can have opened the store in between); the data directory and
  // its parents only if empty. With a null `store` (its Open failed) only those go.
  static void Discard(std::unique_ptr<Store> store, const NewStorePaths& before);

  // Why Open checked the database's integrity: "unclean shutdown" (the last process to
  // hold the store did not close it: killed, crashed, power lost, or a batchd from before
  // this record was kept), "upgrade" (the schema was migrated), or "" when it did not.
  // A store closed cleanly and opened again is not scanned, so start-up does not grow
  // with the history.
  const std::string& integrity_checked() const { return integrity_checked_; }

  // `batchd check`: PRAGMA integrity_check and foreign_key_check of the database in
  // `data_dir` through a read-only connection, so it can run while a daemon uses the
  // store. Ok, or Corruption listing up to 20 findings; IoError if it cannot be read.
  static Status CheckIntegrity(const std::string& data_dir);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& data_dir() const { return data_dir_; }
  std::string LogDir() const { return data_dir_ + "/logs"; }

  // Durability of a transaction's commit. kFull (the default) fsyncs the WAL: it survives
  // power loss, and is what every API mutation uses before its reply. kProcessCrash skips
  // the fsync: the commit survives kill -9 of batchd (the WAL is in the OS page cache) but
  // not a power cut, which the engine's own high-rate state changes accept (see
  // docs/store-schema.md, "Durability"). The next kFull commit makes everything before it
  // durable too. Writes outside Begin()/Commit() are always kFull.
  enum class Durability { kFull, kProcessCrash };

  // Group commit. Nested Begin() calls are counted; the outermost Commit() commits.
  // Rollback() ends the innermost Begin(). A nested Rollback() dooms the whole
  // transaction: nothing is written, and the outermost Commit() rolls back and returns
  // an error (so an outer batch never half-commits around a failed inner step).
  // If COMMIT itself fails the transaction is rolled back: nothing of it is durable.
  // `durability` applies to the outermost Begin() only.
  Status Begin(Durability durability = Durability::kFull);
  Status Commit();
  void Rollback();
  bool InTransaction() const { return txn_depth_ > 0; }
  // Runs `fn(committed)` when the outermost transaction ends: true once its COMMIT
  // succeeded, false when it rolled back (nothing of it was written). Outside a
  // transaction, fn(true) runs at once. For what must follow the commit that a caller
  // further out may still fail (killing processes, installing a plan, telling
  // observers), and for undoing in-memory changes when it fails.
  void AfterTransaction(std::function<void(bool committed)> fn);
  // kOnFlush: makes every commit so far durable (the WAL; for a store this process
  // created, also the database file and its directory entry), copies a large WAL back
  // into the database, lets closing skip the checkpoint (the next open's background
  // checkpointer does it instead) and marks the store closed cleanly in the lock file:
  // the caller writes nothing more and may exit without destroying the Store.
  // kEveryCommit: nothing to do.
  Status Flush();

  // --- DAGs ---
  Status PutDagVersion(const DagVersion& v);  // idempotent
  Result<DagVersion> GetDagVersion(const std::string& dag, const std::string& hash);
  // Makes `hash` the current version of `name` (creating the entry, clearing `deleted`).
  Status SetCurrentDag(const std::string& name, const std::string& hash, const std::string& origin,
                       const std::string& source_path, SysMillis now);
  Result<std::optional<DagEntry>> GetDag(const std::string& name);
  Result<std::vector<DagEntry>> ListDags(bool include_deleted = false);
  Status SetDagPaused(const std::string& name, bool paused);
  Status SetDagDeleted(const std::string& name);
  // Soft-deletes a DAG whose file left the DAGs directory (origin becomes `file-removed`,
  // so that the file coming back, even unchanged, registers it again).
  Status SetDagFileRemoved(const std::string& name);
  Status SetLastFire(const std::string& name, SysSeconds fire);
  // Removes the DAG, its versions, runs, instances, attempts, idempotency keys, file-trigger
  // ledger and the runs' log directories (after the commit). The audit trail is kept. NotFound when
  // nothing at all is stored under `name`. The caller stops the DAG's active runs first.
  Status PurgeDag(const std::string& name);

  // --- Runs ---
  // Inserts `run` unless a run with the same (dag, run_key) exists; returns the stored
  // run and whether it was created (when not, the DAG's duplicate_triggers count grows). `run.run_id` names the run's log directory, so it must
  // be 1-128 characters of [A-Za-z0-9_.-] and not "." or ".." (InvalidArgument).
  Result<std::pair<RunRecord, bool>> CreateRun(const RunRecord& run);
  Result<std::optional<RunRecord>> GetRun(const std::string& run_id);
  Result<std::vector<RunRecord>> ListRuns(const RunFilter& filter);
  // Runs in any of the given states, oldest first (created_at, then insertion order).
  Result<std::vector<RunRecord>> ListRunsInStates(const std::vector<RunState>& states);
  // The DAGs with at least one queued run, by name; O(DAGs) index seeks.
  Result<std::vector<std::string>> DagsWithQueuedRuns();
  // The `limit` oldest queued runs of `dag` (created_at, then insertion order).
  Result<std::vector<RunRecord>> ListQueuedRuns(const std::string& dag, int limit);
  // Sets state, ended_at (cleared when nullopt) and error; started_at only when given.
  // Moves a run to another version of its DAG (a retry with the DAG's current version).
  Status UpdateRunDagHash(const std::string& run_id, const std::string& dag_hash);
  Status UpdateRunState(const std::string& run_id, RunState state, std::optional<SysMillis> started_at,
                        std::optional<SysMillis> ended_at, const std::string& error = "");
  Result<std::optional<SysMillis>> LastSuccessfulRunEnd(const std::string& dag);

  // --- Task instances ---
  Status InsertInstances(std::vector<InstanceRecord>& instances);  // fills ids
  Result<std::vector<InstanceRecord>> ListInstances(const std::string& run_id);
  // One instance by its key, or nullopt; an index seek.
  Result<std::optional<InstanceRecord>> GetInstance(const std::string& run_id, const std::string& task,
                                                    const std::string& partition);
  // A page of a run's instances in id order, for status: costs the page (plus the rows
  // the filters pass over), not the run.
  struct InstanceFilter {
    std::optional<std::string> task, partition;
    std::vector<InstanceState> states;  // any of these; empty: every state
    int64_t after_id = 0;               // only instances with a greater id (the cursor)
    int limit = 1000;
  };
  Result<std::vector<InstanceRecord>> ListInstancePage(const std::string& run_id, const InstanceFilter& filter);
  // A run's instances per task and state; reads every instance of the run.
  Result<std::map<std::string, std::map<InstanceState, int64_t>>> CountInstances(const std::string& run_id);
  Status UpdateInstance(const InstanceRecord& instance);  // all mutable fields by id
  // Failed instances after their last attempt, newest first (dead letters).
  Result<std::vector<InstanceRecord>> ListDeadLetters(const std::optional<std::string>& dag);

  // --- Attempts ---
  Status InsertAttempt(AttemptRecord& attempt);  // fills id; (instance, number) is unique
  Status FinishAttempt(const AttemptRecord& attempt);
  Result<std::vector<AttemptRecord>> ListAttempts(int64_t instance_id);
  // The attempts of the instances with ids in [first_id, last_id], by instance and number.
  Result<std::vector<AttemptRecord>> ListAttemptsOfInstances(int64_t first_id, int64_t last_id);
  // Every attempt of a run in one query, in instance order (task order), then by number.
  // `task` and `partition`, when given, keep only that task's (and partition's) attempts.
  Result<std::vector<RunAttempt>> ListRunAttempts(const std::string& run_id,
                                                  const std::optional<std::string>& task = std::nullopt,
                                                  const std::optional<std::string>& partition = std::nullopt);
  // Marks every attempt still `running` as `lost` (ended now); returns their instance ids,
  // ascending, each once.
  Result<std::vector<int64_t>> MarkRunningAttemptsLost(SysMillis now);

  // --- Idempotency keys ---
  Result<bool> KeySucceeded(const std::string& dag, const std::string& key);
  Status RecordKeySuccess(const std::string& dag, const std::string& key, const std::string& run_id,
                          SysMillis at);

  // --- File-trigger ledger ---
  // Whether this version of the file (dag, path, size, mtime_ns) has started a run.
  Result<bool> TriggerFileFired(const std::string& dag, const std::string& path, int64_t size, int64_t mtime_ns);
  // Records that a version of a file started `file.run_id`; AlreadyExists when it is
  // recorded already. The scheduler calls it in the transaction that creates the run, so
  // a crash keeps both or neither.
  Status RecordTriggerFile(const TriggerFile& file);
  // The DAG's ledger, oldest first (fired_at, then run id).
  Result<std::vector<TriggerFile>> ListTriggerFiles(const std::string& dag);

  // --- Audit trail ---
  Status Audit(int uid, const std::string& action, const std::string& target, const std::string& detail_json,
               SysMillis at);
  Result<std::vector<AuditEntry>> ListAudit(int limit);  // newest first; negative limit: all

  // --- Counts, SLOs and DAG health (docs/store-schema.md, "Counts") ---
  // Every stored count. Triggers in the schema keep them; retention never lowers them.
  Result<std::vector<MetricCount>> ListMetricCounts();
  // Per DAG, the end of its newest successful run (kept when retention prunes the run).
  Result<std::map<std::string, SysMillis>> ListLastSuccesses();
  // Per DAG, when its first version was stored: where freshness counts from before a
  // first success.
  Result<std::map<std::string, SysMillis>> ListFirstVersionTimes();
  // Dead letters per DAG and task (ListDeadLetters, counted in SQL).
  Result<std::vector<DeadLetterCount>> CountDeadLetters();
  // Stores `miss` unless (dag, kind, subject) is stored already; returns whether it was new.
  Result<bool> RecordSloMiss(const SloMiss& miss);
  // The DAG's misses (every DAG's when nullopt), newest first, at most `limit` (negative: all).
  Result<std::vector<SloMiss>> ListSloMisses(const std::optional<std::string>& dag, int limit);
  // Subjects of the DAG's misses of one kind: the runs already counted, say.
  Result<std::set<std::string>> SloMissSubjects(const std::string& dag, const std::string& kind);

  // --- Retention ---
  // Deletes terminal runs (and their instances, attempts, log files) that ended before
  // `cutoff`; returns the number of runs removed. Idempotency keys, the file-trigger ledger
  // and the audit trail are kept: a key that succeeded must stay succeeded, and a file that
  // fired must not fire again, after its run is gone. Oldest first, at most `max_runs`
  // in one transaction, so that a first prune of a long history comes in bounded steps.
  Result<int> PruneRunsBefore(SysMillis cutoff, int max_runs = std::numeric_limits<int>::max());

 private:
  Store(std::string data_dir, int lock_fd, std::unique_ptr<Database> db);
  Status Configure(bool creating);
  Status Migrate();
  // PRAGMA quick_check; Corruption with SQLite's first finding. `why` is logged.
  Status QuickCheck(const char* why);
  // Closes the database; notes whether the store was opened and closed with no sign of
  // damage, which the destructor then records in the lock file.
  void CloseDatabase();
  // A new database: syncs its file and directory, through a descriptor of our own that
  // stays open until SQLite has closed the file (closing any descriptor of it would drop
  // SQLite's POSIX locks). std::launch::async (kOnFlush) runs it on a thread while the
  // run goes on, and Flush() waits for it; deferred runs it at creation_sync_.get().
  void StartCreationSync(std::launch when);
  SyncMode sync_mode_ = SyncMode::kEveryCommit;
  std::future<std::string> creation_sync_;  // "" when synced, else the error
  int creation_sync_fd_ = -1;
  // Deletes the log directories of `run_ids` now, or after the outermost Commit() when a
  // transaction is open: a crash in between leaves files, never rows without their logs.
  void RemoveRunLogs(std::vector<std::string> run_ids);
  void RemovePendingLogs();
  void RollbackNow();

  std::string data_dir_;
  bool created_database_ = false;  // this Open created the database file
  bool opened_ = false;            // Open succeeded
  bool closed_cleanly_ = false;    // set by CloseDatabase()
  std::string integrity_checked_;  // why this Open ran a quick_check ("" if it did not)
  int lock_fd_;
  std::unique_ptr<Database> db_;
  int txn_depth_ = 0;
  bool rollback_only_ = false;                      // a nested Rollback() doomed the transaction
  std::vector<std::string> pending_log_removals_;  // run ids, removed after the commit
  std::vector<std::function<void(bool)>> after_transaction_;  // AfterTransaction callbacks
  void RunAfterTransaction(bool committed);
};

// A fresh run id: 12 lowercase hex characters from a random source.
std::string NewRunId();

}  // namespace batchd::store
