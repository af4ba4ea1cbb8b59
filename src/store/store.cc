#include "store/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include "store/sqlite.h"

namespace batchd::store {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

int64_t Ms(SysMillis t) { return t.time_since_epoch().count(); }
SysMillis FromMs(int64_t v) { return SysMillis(milliseconds(v)); }
std::optional<int64_t> Ms(const std::optional<SysMillis>& t) {
  return t ? std::optional<int64_t>(Ms(*t)) : std::nullopt;
}
std::optional<SysMillis> OptMs(const Statement& s, int c) {
  auto v = s.OptInt(c);
  return v ? std::optional<SysMillis>(FromMs(*v)) : std::nullopt;
}
std::optional<int> OptInt32(const Statement& s, int c) {
  auto v = s.OptInt(c);
  return v ? std::optional<int>(static_cast<int>(*v)) : std::nullopt;
}
int64_t Secs(SysSeconds t) { return t.time_since_epoch().count(); }
SysSeconds FromSecs(int64_t v) { return SysSeconds(std::chrono::seconds(v)); }

// Absolute, so log paths stay valid whatever a task's working directory is.
Result<std::string> NormalizeDataDir(const std::string& data_dir_arg) {
  if (data_dir_arg.empty()) return Status::InvalidArgument("the data directory must not be empty");
  std::error_code ec;
  std::string data_dir = fs::absolute(data_dir_arg, ec).lexically_normal().string();
  if (ec) return Status::IoError("invalid data directory '" + data_dir_arg + "': " + ec.message());
  while (data_dir.size() > 1 && data_dir.back() == '/') data_dir.pop_back();
  return data_dir;
}

// fsyncs a directory (the entries of files created in it); "" or the error.
std::string SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    return "cannot sync directory '" + dir + "': " + std::strerror(err);
  }
  ::close(fd);
  return "";
}

// Schema version 5's new objects, shared by its upgrade and CurrentSchemaSql(). The counts behind the Prometheus counters that
// describe stored history (docs/store-schema.md, "Counts"): SQL triggers add to them in the
// statement that changes a state, so every write path counts, a rolled-back transaction
// counts nothing, and retention, which deletes rows, never lowers a count.
constexpr const char* kSchemaV5Objects = R"sql(
CREATE TABLE metric_counts (
  metric TEXT NOT NULL,
  dag TEXT NOT NULL,
  task TEXT NOT NULL DEFAULT '',
  trigger TEXT NOT NULL DEFAULT '',
  label TEXT NOT NULL DEFAULT '',
  value REAL NOT NULL,
  total REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (metric, dag, task, trigger, label)
) WITHOUT ROWID;
CREATE TABLE dag_health (
  dag TEXT PRIMARY KEY,
  last_success_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE slo_misses (
  id INTEGER PRIMARY KEY,
  dag TEXT NOT NULL,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  at INTEGER NOT NULL,
  detail TEXT NOT NULL,
  UNIQUE (dag, kind, subject)
);
CREATE TRIGGER count_slo_misses AFTER INSERT ON slo_misses
BEGIN
  INSERT INTO metric_counts (metric, dag, task, trigger, label, value)
    VALUES ('slo_misses', NEW.dag, '', '', NEW.kind, 1)
    ON CONFLICT DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER count_run_endings AFTER UPDATE OF state ON runs
WHEN NEW.state IN ('success', 'failed', 'cancelled') AND NEW.state IS NOT OLD.state
BEGIN
  INSERT INTO metric_counts (metric, dag, task, trigger, label, value)
    VALUES ('runs', NEW.dag, '', NEW.trigger, NEW.state, 1)
    ON CONFLICT DO UPDATE SET value = value + 1;
  INSERT INTO dag_health (dag, last_success_at)
    SELECT NEW.dag, COALESCE(NEW.ended_at, 0) WHERE NEW.state = 'success'
    ON CONFLICT DO UPDATE SET last_success_at = MAX(last_success_at, excluded.last_success_at);
END;
CREATE TRIGGER count_instance_endings AFTER UPDATE OF state ON task_instances
WHEN NEW.state IS NOT OLD.state
  AND NEW.state IN ('success', 'failed', 'skipped', 'upstream_failed', 'cancelled', 'retry_wait')
BEGIN
  INSERT INTO metric_counts (metric, dag, task, trigger, label, value)
    SELECT CASE WHEN NEW.state = 'retry_wait' THEN 'retries' ELSE 'partitions' END, r.dag, NEW.task, '',
           CASE WHEN NEW.state = 'retry_wait' THEN '' ELSE NEW.state END, 1
    FROM runs r WHERE r.run_id = NEW.run_id
    ON CONFLICT DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER count_idempotent_skips AFTER UPDATE OF state ON task_instances
WHEN NEW.state IS NOT OLD.state AND NEW.state = 'skipped' AND NEW.reason = 'already_succeeded'
BEGIN
  INSERT INTO metric_counts (metric, dag, task, trigger, label, value)
    SELECT 'idempotent_skips', r.dag, NEW.task, '', '', 1 FROM runs r WHERE r.run_id = NEW.run_id
    ON CONFLICT DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER count_instances_born_ended AFTER INSERT ON task_instances
WHEN NEW.state IN ('success', 'failed', 'skipped', 'upstream_failed', 'cancelled')
BEGIN
  INSERT INTO metric_counts (metric, dag, task, trigger, label, value)
    SELECT 'partitions', r.dag, NEW.task, '', NEW.state, 1 FROM runs r WHERE r.run_id = NEW.run_id
    ON CONFLICT DO UPDATE SET value = value + 1;
  INSERT INTO metric_counts (metric, dag, task, trigger, label, value)
    SELECT 'idempotent_skips', r.dag, NEW.task, '', '', 1
    FROM runs r WHERE NEW.state = 'skipped' AND NEW.reason = 'already_succeeded' AND r.run_id = NEW.run_id
    ON CONFLICT DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER count_attempt_endings AFTER UPDATE OF outcome ON attempts
WHEN OLD.outcome = 'running' AND NEW.outcome != 'running'
BEGIN
  INSERT INTO metric_counts (metric, dag, task, trigger, label, value, total)
    SELECT 'attempts', r.dag, i.task, '', NEW.outcome, 1, NEW.cpu_seconds
    FROM task_instances i JOIN runs r ON r.run_id = i.run_id WHERE i.id = NEW.instance_id
    ON CONFLICT DO UPDATE SET value = value + 1, total = total + excluded.total;
END;
CREATE TRIGGER count_attempts_born_ended AFTER INSERT ON attempts
WHEN NEW.outcome != 'running'
BEGIN
  INSERT INTO metric_counts (metric, dag, task, trigger, label, value, total)
    SELECT 'attempts', r.dag, i.task, '', NEW.outcome, 1, NEW.cpu_seconds
    FROM task_instances i JOIN runs r ON r.run_id = i.run_id WHERE i.id = NEW.instance_id
    ON CONFLICT DO UPDATE SET value = value + 1, total = total + excluded.total;
END;
)sql";

// kUpgrades[v - 1] migrates an existing file from version v to v + 1. A new file (version
// 0) gets CurrentSchemaSql() in one step instead: version 1's schema is what migration 2's
// text starts from (and what StoreOpenTest rebuilds by hand). Never edit a shipped entry:
// append a new one, bump kSchemaVersion, and update CurrentSchemaSql() (docs/store-schema.md,
// "Versioning").
const char* const kUpgrades[] = {
    // 2: fewer index pages written per state change (each commit writes whole pages to
    // the WAL). Only dead letters are looked up by state, so only they are indexed; the
    // keys table is clustered on its primary key instead of a rowid plus an index.
    R"sql(
DROP INDEX instances_by_state;
CREATE INDEX instances_failed ON task_instances (ended_at) WHERE state = 'failed';
CREATE TABLE idempotency_keys_v2 (
  dag TEXT NOT NULL,
  key TEXT NOT NULL,
  run_id TEXT NOT NULL,
  succeeded_at INTEGER NOT NULL,
  PRIMARY KEY (dag, key)
) WITHOUT ROWID;
INSERT INTO idempotency_keys_v2 (dag, key, run_id, succeeded_at)
  SELECT dag, key, run_id, succeeded_at FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_v2 RENAME TO idempotency_keys;
)sql",
    // 3: one index page less per attempt started and finished. Recovery finds the
    // attempts left running through the runs that can have them (runs_by_state).
    R"sql(
DROP INDEX attempts_running;
)sql",
    // 4: the file-trigger ledger, apart from run history so that retention cannot make a
    // file fire again. Files that fired before it existed are found through their runs,
    // whose keys were "<dag>@file:<path>:<mtime seconds>.<nanoseconds>:<size>" with the
    // path also in params.trigger_file; runs already pruned left nothing to find.
    R"sql(
CREATE TABLE trigger_files (
  dag TEXT NOT NULL,
  path BLOB NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  run_id TEXT NOT NULL,
  fired_at INTEGER NOT NULL,
  PRIMARY KEY (dag, path, size, mtime_ns)
) WITHOUT ROWID;
INSERT OR IGNORE INTO trigger_files (dag, path, size, mtime_ns, run_id, fired_at)
  SELECT dag, CAST(path AS BLOB), CAST(substr(rest, instr(rest, ':') + 1) AS INTEGER),
         CAST(substr(rest, 1, instr(rest, '.') - 1) AS INTEGER) * 1000000000 +
           CAST(substr(rest, instr(rest, '.') + 1, instr(rest, ':') - instr(rest, '.') - 1) AS INTEGER),
         run_id, created_at
  FROM (SELECT dag, run_id, created_at, path, substr(run_key, length(prefix) + 1) AS rest
        FROM (SELECT dag, run_id, created_at, run_key, path, dag || '@file:' || path || ':' AS prefix
              FROM (SELECT dag, run_id, created_at, run_key,
                           CASE WHEN json_valid(params) THEN json_extract(params, '$.trigger_file') END AS path
                    FROM runs WHERE trigger = 'file'))
        WHERE typeof(path) = 'text' AND substr(run_key, 1, length(prefix)) = prefix)
  WHERE rest GLOB '[0-9]*.[0-9]*:[0-9]*' AND rest NOT GLOB '*[^0-9.:]*';
)sql",
    // 5: the counts behind the Prometheus counters, so that they survive restarts and
    // retention; SLO misses; each DAG's last success. History already stored is counted
    // as well as it can be: each stored run and instance once in its present state, each
    // attempt followed by another of its instance as a retry.
    nullptr,  // kSchemaV5Objects + kUpgrade5Backfill, in UpgradeSql()
    // 6: each attempt records the DAG version it ran, as a retry may run a newer version
    // than the run started with. Attempts stored before ran their run's version. An
    // instance cleared with --force runs even when its idempotency key succeeded.
    R"sql(
ALTER TABLE attempts ADD COLUMN dag_hash TEXT NOT NULL DEFAULT '';
UPDATE attempts SET dag_hash = (SELECT r.dag_hash FROM task_instances i JOIN runs r ON r.run_id = i.run_id
                                WHERE i.id = attempts.instance_id);
ALTER TABLE task_instances ADD COLUMN force INTEGER NOT NULL DEFAULT 0;
)sql",
    // 7: queued runs by DAG, oldest first, so that starting the next queued runs costs
    // a few index seeks however long a backfill's queue is; a run's instances in id
    // order, so that a page of a run's status costs the page, not the run.
    R"sql(
CREATE INDEX runs_queued ON runs (dag, created_at) WHERE state = 'queued';
CREATE INDEX instances_by_run ON task_instances (run_id, id);
)sql",
    // 8: a run's failed instances and those waiting to retry, so that listing them costs
    // what they are, not the run. Small, and written only when an instance fails; running
    // instances stay out, as every attempt would write the index twice (the engine knows them).
    R"sql(
CREATE INDEX instances_attention ON task_instances (run_id, id) WHERE state IN ('failed', 'retry_wait');
)sql",
};

const char* const kUpgrade5Backfill = R"sql(
INSERT INTO metric_counts (metric, dag, task, trigger, label, value)
  SELECT 'runs', dag, '', trigger, state, COUNT(*) FROM runs
  WHERE state IN ('success', 'failed', 'cancelled') GROUP BY dag, trigger, state;
INSERT INTO metric_counts (metric, dag, task, trigger, label, value)
  SELECT 'partitions', r.dag, i.task, '', i.state, COUNT(*) FROM task_instances i JOIN runs r ON r.run_id = i.run_id
  WHERE i.state IN ('success', 'failed', 'skipped', 'upstream_failed', 'cancelled') GROUP BY r.dag, i.task, i.state;
INSERT INTO metric_counts (metric, dag, task, trigger, label, value)
  SELECT 'idempotent_skips', r.dag, i.task, '', '', COUNT(*) FROM task_instances i JOIN runs r ON r.run_id = i.run_id
  WHERE i.state = 'skipped' AND i.reason = 'already_succeeded' GROUP BY r.dag, i.task;
INSERT INTO metric_counts (metric, dag, task, trigger, label, value, total)
  SELECT 'attempts', r.dag, i.task, '', a.outcome, COUNT(*), SUM(a.cpu_seconds)
  FROM attempts a JOIN task_instances i ON i.id = a.instance_id JOIN runs r ON r.run_id = i.run_id
  WHERE a.outcome != 'running' GROUP BY r.dag, i.task, a.outcome;
INSERT INTO metric_counts (metric, dag, task, trigger, label, value)
  SELECT 'retries', r.dag, i.task, '', '', SUM(i.attempts - 1)
  FROM task_instances i JOIN runs r ON r.run_id = i.run_id WHERE i.attempts > 1 GROUP BY r.dag, i.task;
INSERT INTO dag_health (dag, last_success_at)
  SELECT dag, MAX(COALESCE(ended_at, 0)) FROM runs WHERE state = 'success' GROUP BY dag;
)sql";

// The schema at kSchemaVersion, for a new database: the same tables and indexes that a
// version-1 file has after every upgrade (a test compares them), built in one step
// (rebuilding version 1 into version 2 took as long again: ~1.2 ms of a first `batchd run`).
constexpr const char* kSchemaBeforeV5 = R"sql(
CREATE TABLE dag_versions (
  dag TEXT NOT NULL,
  hash TEXT NOT NULL,
  source TEXT NOT NULL,
  source_path TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (dag, hash)
);
CREATE TABLE dags (
  name TEXT PRIMARY KEY,
  current_hash TEXT NOT NULL,
  origin TEXT NOT NULL,
  source_path TEXT NOT NULL,
  paused INTEGER NOT NULL DEFAULT 0,
  deleted INTEGER NOT NULL DEFAULT 0,
  last_fire INTEGER,
  updated_at INTEGER NOT NULL
);
CREATE TABLE runs (
  run_id TEXT PRIMARY KEY,
  dag TEXT NOT NULL,
  dag_hash TEXT NOT NULL,
  run_key TEXT NOT NULL,
  trigger TEXT NOT NULL,
  state TEXT NOT NULL,
  logical_date INTEGER NOT NULL,
  interval_start INTEGER NOT NULL,
  interval_end INTEGER NOT NULL,
  params TEXT NOT NULL,
  force INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  scheduled_for INTEGER,
  error TEXT NOT NULL DEFAULT '',
  UNIQUE (dag, run_key)
);
CREATE INDEX runs_by_dag ON runs (dag, created_at);
CREATE INDEX runs_by_state ON runs (state);
CREATE TABLE task_instances (
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
  task TEXT NOT NULL,
  partition TEXT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  idempotency_key TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  retry_base INTEGER NOT NULL DEFAULT 0,
  exit_code INTEGER,
  next_attempt_at INTEGER,
  started_at INTEGER,
  ended_at INTEGER,
  UNIQUE (run_id, task, partition)
);
CREATE INDEX instances_failed ON task_instances (ended_at) WHERE state = 'failed';
CREATE TABLE attempts (
  id INTEGER PRIMARY KEY,
  instance_id INTEGER NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
  number INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  pid INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  exit_code INTEGER,
  signal INTEGER,
  cpu_seconds REAL NOT NULL DEFAULT 0,
  max_rss_kb INTEGER NOT NULL DEFAULT 0,
  log_path TEXT NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  UNIQUE (instance_id, number)
);
CREATE TABLE idempotency_keys (
  dag TEXT NOT NULL,
  key TEXT NOT NULL,
  run_id TEXT NOT NULL,
  succeeded_at INTEGER NOT NULL,
  PRIMARY KEY (dag, key)
) WITHOUT ROWID;
CREATE TABLE trigger_files (
  dag TEXT NOT NULL,
  path BLOB NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  run_id TEXT NOT NULL,
  fired_at INTEGER NOT NULL,
  PRIMARY KEY (dag, path, size, mtime_ns)
) WITHOUT ROWID;
CREATE TABLE audit (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL
);
)sql";

// Later upgrades only add to the tables; a new file runs them as they are.
std::string CurrentSchemaSql() { return std::string(kSchemaBeforeV5) + kSchemaV5Objects + kUpgrades[6 - 2] + kUpgrades[7 - 2] +
                                 kUpgrades[8 - 2]; }

// The text that migrates version `to - 1` to `to`.
std::string UpgradeSql(int64_t to) {
  if (to == 5) return std::string(kSchemaV5Objects) + kUpgrade5Backfill;
  return kUpgrades[to - 2];
}
static_assert(sizeof(kUpgrades) / sizeof(kUpgrades[0]) == kSchemaVersion - 1, "one upgrade per schema version after 1");

// Same code, message prefixed with what we were doing: "cannot create run 'x': ...".
Status Annotate(const Status& st, const std::string& doing) {
  if (st.ok()) return st;
  switch (st.code()) {
    case StatusCode::kNotFound: return Status::NotFound(doing + ": " + st.message());
    case StatusCode::kAlreadyExists: return Status::AlreadyExists(doing + ": " + st.message());
    case StatusCode::kInvalidArgument: return Status::InvalidArgument(doing + ": " + st.message());
    case StatusCode::kFailedPrecondition: return Status::FailedPrecondition(doing + ": " + st.message());
    case StatusCode::kCorruption: return Status::Corruption(doing + ": " + st.message());
    case StatusCode::kUnavailable: return Status::Unavailable(doing + ": " + st.message());
    case StatusCode::kInternal: return Status::Internal(doing + ": " + st.message());
    default: return Status::IoError(doing + ": " + st.message());
  }
}

#define RETURN_IF_ERROR(expr)      \
  do {                             \
    ::batchd::Status _st = (expr); \
    if (!_st.ok()) return _st;     \
  } while (0)

// Prepares `sql` into `var` (a Statement&), reset again when the scope ends.
#define ASSIGN_STMT(var, sql)                     \
  auto var##_r = db_->Prepare(sql);               \
  if (!var##_r.ok()) return var##_r.status();     \
  Statement& var = **var##_r;                     \
  ScopedStatement var##_scope(var)

// All-or-nothing scope for a method that writes several rows: rolls back unless
// Commit() was called. Nests inside the caller's group commit.
class Transaction {
 public:
  explicit Transaction(Store& store) : store_(store) {}
  ~Transaction() {
    if (open_) store_.Rollback();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Status Begin() {
    Status st = store_.Begin();
    open_ = st.ok();
    return st;
  }
  Status Commit() {
    open_ = false;
    return store_.Commit();
  }

 private:
  Store& store_;
  bool open_ = false;
};

// A run id is a directory name under logs/: nothing that could climb out of it.
bool IsSafeRunId(const std::string& id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  return std::all_of(id.begin(), id.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-' || c == '.';
  });
}

constexpr const char* kRunColumns =
    "run_id, dag, dag_hash, run_key, trigger, state, logical_date, interval_start, interval_end, params, force, "
    "created_at, started_at, ended_at, scheduled_for, error";

Status ReadRun(const Statement& s, RunRecord* r) {
  r->run_id = s.Text(0);
  r->dag = s.Text(1);
  r->dag_hash = s.Text(2);
  r->run_key = s.Text(3);
  r->trigger = s.Text(4);
  std::string state = s.Text(5);
  auto parsed = ParseRunState(state);
  if (!parsed) return Status::Corruption("run '" + r->run_id + "' has unknown state '" + state + "'");
  r->state = *parsed;
  r->logical_date = FromSecs(s.Int(6));
  r->interval_start = FromSecs(s.Int(7));
  r->interval_end = FromSecs(s.Int(8));
  r->params_json = s.Text(9);
  r->force = s.Int(10) != 0;
  r->created_at = FromMs(s.Int(11));
  r->started_at = OptMs(s, 12);
  r->ended_at = OptMs(s, 13);
  r->scheduled_for = OptMs(s, 14);
  r->error = s.Text(15);
  return Status::Ok();
}

constexpr const char* kInstanceColumns =
    "i.id, i.run_id, i.task, i.partition, i.state, i.reason, i.idempotency_key, i.attempts, i.exit_code, "
    "i.next_attempt_at, i.started_at, i.ended_at, i.retry_base, i.force";

Status ReadInstance(const Statement& s, InstanceRecord* i) {
  i->id = s.Int(0);
  i->run_id = s.Text(1);
  i->task = s.Text(2);
  i->partition = s.Text(3);
  std::string state = s.Text(4);
  auto parsed = ParseInstanceState(state);
  if (!parsed) return Status::Corruption("task instance " + std::to_string(i->id) + " has unknown state '" + state + "'");
  i->state = *parsed;
  i->reason = s.Text(5);
  i->idempotency_key = s.Text(6);
  i->attempts = static_cast<int>(s.Int(7));
  i->exit_code = OptInt32(s, 8);
  i->next_attempt_at = OptMs(s, 9);
  i->started_at = OptMs(s, 10);
  i->ended_at = OptMs(s, 11);
  i->retry_base = static_cast<int>(s.Int(12));
  i->force = s.Int(13) != 0;
  return Status::Ok();
}

constexpr const char* kAttemptColumns =
    "id, instance_id, number, outcome, pid, started_at, ended_at, exit_code, signal, cpu_seconds, max_rss_kb, "
    "log_path, error, dag_hash";

Status ReadAttempt(const Statement& s, AttemptRecord* a) {
  a->id = s.Int(0);
  a->instance_id = s.Int(1);
  a->number = static_cast<int>(s.Int(2));
  std::string outcome = s.Text(3);
  auto parsed = ParseAttemptOutcome(outcome);
  if (!parsed) return Status::Corruption("attempt " + std::to_string(a->id) + " has unknown outcome '" + outcome + "'");
  a->outcome = *parsed;
  a->pid = static_cast<int>(s.Int(4));
  a->started_at = FromMs(s.Int(5));
  a->ended_at = OptMs(s, 6);
  a->exit_code = OptInt32(s, 7);
  a->signal = OptInt32(s, 8);
  a->cpu_seconds = s.Double(9);
  a->max_rss_kb = s.Int(10);
  a->log_path = s.Text(11);
  a->error = s.Text(12);
  a->dag_hash = s.Text(13);
  return Status::Ok();
}

constexpr const char* kDagColumns = "name, current_hash, origin, source_path, paused, deleted, last_fire, updated_at";

Status ReadDag(const Statement& s, DagEntry* d) {
  d->name = s.Text(0);
  d->current_hash = s.Text(1);
  d->origin = s.Text(2);
  d->source_path = s.Text(3);
  d->paused = s.Int(4) != 0;
  d->deleted = s.Int(5) != 0;
  if (auto v = s.OptInt(6)) d->last_fire = FromSecs(*v);
  d->updated_at = FromMs(s.Int(7));
  return Status::Ok();
}

// Steps `s` to the end, reading each row with `read` into `out`.
template <typename T, typename ReadFn>
Status ReadAll(Statement& s, ReadFn read, std::vector<T>* out) {
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Ok();
    T value;
    RETURN_IF_ERROR(read(s, &value));
    out->push_back(std::move(value));
  }
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Checks what SQLite would only half-notice: a file that is not SQLite at all, or one
// shorter than its own header says (a copy cut short, a truncated disk). Reads the
// 100-byte header of https://www.sqlite.org/fileformat.html; writes nothing. True when
// there is no database yet (no file, or an empty one): SQLite will create it.
Result<bool> CheckDatabaseFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return true;  // a new store
    return Status::IoError("cannot read database '" + path + "': " + std::strerror(errno));
  }
  struct stat st {};
  unsigned char header[100] = {};
  ssize_t n = -1;
  bool regular = false;
  if (::fstat(fd, &st) == 0) {
    regular = S_ISREG(st.st_mode);
    if (regular) n = ::pread(fd, header, sizeof header, 0);
  }
  const int saved_errno = errno;
  ::close(fd);
  if (n < 0 && regular) return Status::IoError("cannot read database '" + path + "': " + std::strerror(saved_errno));
  if (!regular) return Status::IoError("database '" + path + "' is not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) return true;  // empty: SQLite initializes it (schema version 0)

  static const unsigned char kMagic[16] = {'S', 'Q', 'L', 'i', 't', 'e', ' ', 'f',
                                           'o', 'r', 'm', 'a', 't', ' ', '3', '\0'};
  const size_t magic_len = std::min<size_t>(static_cast<size_t>(n), sizeof kMagic);
  if (std::memcmp(header, kMagic, magic_len) != 0) {
    return Status::Corruption("database '" + path +
                              "' is not an SQLite database (bad header); move it aside to start an empty store, "
                              "or restore it from a backup");
  }
  if (n < static_cast<ssize_t>(sizeof header)) {
    return Status::Corruption("database '" + path + "' is truncated: the file has " + std::to_string(size) +
                              " bytes, less than an SQLite header; restore it from a backup");
  }
  uint32_t page_size = (uint32_t{header[16]} << 8) | header[17];
  if (page_size == 1) page_size = 65536;
  const uint32_t change_counter = BigEndian32(header + 24);
  const uint32_t pages = BigEndian32(header + 28);
  const uint32_t valid_for = BigEndian32(header + 92);
  // The page count is only meaningful when it was written with the change counter. A
  // non-empty WAL may hold pages the main file has not received yet (a checkpoint cut
  // short by a crash): SQLite replays it, so the file may legitimately be shorter.
  std::error_code ec;
  const auto wal_size = fs::file_size(path + "-wal", ec);
  const bool wal_pending = !ec && wal_size > 0;
  if (pages > 0 && change_counter == valid_for && !wal_pending && size < uint64_t{pages} * page_size) {
    return Status::Corruption("database '" + path + "' is truncated: its header says " + std::to_string(pages) +
                              " pages of " + std::to_string(page_size) + " bytes but the file has only " +
                              std::to_string(size) + " bytes; restore it from a backup");
  }
  return false;
}

// The pid written in the lock file by the holder, or "" if unreadable.
// The lock file holds the pid of the process using the store, and this once it closed
// the store cleanly.
constexpr char kClosedCleanly[] = "closed\n";
constexpr ssize_t kClosedCleanlySize = sizeof kClosedCleanly - 1;

bool LockFileSaysClosedCleanly(int fd) {
  char buf[sizeof kClosedCleanly] = {0};
  return ::pread(fd, buf, sizeof buf, 0) == kClosedCleanlySize &&
         std::memcmp(buf, kClosedCleanly, kClosedCleanlySize) == 0;
}

void WriteClosedMark(int fd) {
  if (::pwrite(fd, kClosedCleanly, kClosedCleanlySize, 0) == kClosedCleanlySize) {
    [[maybe_unused]] int rc = ::ftruncate(fd, kClosedCleanlySize);
  }
}

// Flush() checkpoints a WAL larger than this (a wide run's); a small one is left for the
// next open, which reads it in a few milliseconds at most.
constexpr int64_t kFlushCheckpointWalBytes = 4 << 20;

std::string LockHolder(int fd) {
  char buf[32] = {0};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string pid;
  for (ssize_t i = 0; i < n && buf[i] != '\n'; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(buf[i]))) return "";
    pid.push_back(buf[i]);
  }
  return pid;
}

}  // namespace

std::string NewRunId() {
  // Straight from the OS entropy source: ids must not repeat across daemon restarts,
  // which a generator seeded with 32 bits would risk.
  static thread_local std::random_device rd;
  static const char* kHex = "0123456789abcdef";
  const uint64_t v = (uint64_t{rd()} << 32) | rd();
  std::string id(12, '0');
  for (int i = 0; i < 12; ++i) id[i] = kHex[(v >> (i * 4)) & 15];
  return id;
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& data_dir_arg, SyncMode sync) {
  Result<std::string> normalized = NormalizeDataDir(data_dir_arg);
  if (!normalized.ok()) return normalized.status();
  const std::string& data_dir = *normalized;
  std::error_code ec;
  // The lock comes first: nothing below may touch a store another process is using.
  const std::string lock_path = data_dir + "/batchd.lock";
  int fd = -1;
  for (int tries = 1;; ++tries) {
    fs::create_directories(data_dir, ec);
    if (ec) return Status::IoError("cannot create data directory '" + data_dir + "': " + ec.message());
    fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Status::IoError("cannot open lock file '" + lock_path + "': " + std::strerror(errno));
    // flock locks belong to the open file description, so a second Open in this process
    // conflicts too; the kernel drops the lock when the holder dies, even by SIGKILL.
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const std::string holder = LockHolder(fd);
      ::close(fd);
      if (err != EWOULDBLOCK)
        return Status::IoError("cannot lock '" + lock_path + "': " + std::strerror(err));
      return Status::FailedPrecondition("data directory '" + data_dir + "' is in use by another batchd process" +
                                        (holder.empty() ? std::string() : " (pid " + holder + ")"));
    }
    // The file locked must still be the one at the path: Discard() removes the lock file
    // of a store it takes back, and a process that opened it before then would otherwise
    // hold a lock nobody else can see.
    struct stat held {}, at_path {};
    if (::fstat(fd, &held) == 0 && ::stat(lock_path.c_str(), &at_path) == 0 && held.st_dev == at_path.st_dev &&
        held.st_ino == at_path.st_ino) {
      break;
    }
    ::close(fd);
    if (tries == 3) return Status::IoError("cannot lock '" + lock_path + "': the file keeps being replaced");
  }
  // Read before the pid replaces it: whether the last holder closed the store cleanly.
  const bool closed_cleanly = LockFileSaysClosedCleanly(fd);
  // Write the pid before trimming, so a concurrent reader sees the old or the new pid
  // up to its newline, never an empty file.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::pwrite(fd, pid.data(), pid.size(), 0) == static_cast<ssize_t>(pid.size())) {
    [[maybe_unused]] int rc = ::ftruncate(fd, static_cast<off_t>(pid.size()));
  }
  auto fail = [fd](Status st) {
    ::close(fd);
    return st;
  };

  fs::create_directories(data_dir + "/logs", ec);
  if (ec) return fail(Status::IoError("cannot create log directory '" + data_dir + "/logs': " + ec.message()));
  const std::string db_path = data_dir + "/batchd.db";
  Result<bool> creating = CheckDatabaseFile(db_path);
  if (!creating.ok()) return fail(creating.status());
  // The pid must be on disk before anything is stored, or a power cut could leave the
  // last clean close's mark and the next Open would not check the file.
  if (!*creating && ::fdatasync(fd) != 0)
    return fail(Status::IoError("cannot sync lock file '" + lock_path + "': " + std::strerror(errno)));
  auto db = Database::Open(db_path);
  if (!db.ok()) return fail(db.status());
  // From here the Store owns the fd: its destructor releases the lock on any error.
  std::unique_ptr<Store> store(new Store(data_dir, fd, std::move(*db)));
  store->created_database_ = *creating;
  RETURN_IF_ERROR(store->Configure(*creating));
  if (!*creating && !closed_cleanly) RETURN_IF_ERROR(store->QuickCheck("unclean shutdown"));
  RETURN_IF_ERROR(store->Migrate());
  store->sync_mode_ = sync;
  if (sync == SyncMode::kOnFlush) {
    RETURN_IF_ERROR(store->db_->DeferSyncs());
    if (*creating) store->StartCreationSync(std::launch::async);  // Flush() waits for it
  } else if (*creating) {
    // Nothing is acknowledged before this; the first FULL commit syncs the WAL.
    store->StartCreationSync(std::launch::deferred);
    if (std::string error = store->creation_sync_.get(); !error.empty()) return Status::IoError(error);
    RETURN_IF_ERROR(store->db_->Exec("PRAGMA synchronous=FULL"));
  }
  store->opened_ = true;
  return store;
}

void Store::StartCreationSync(std::launch when) {
  // The database file (its header now says WAL), then the directory entries of it and of
  // its WAL.
  const std::string db_path = db_->path();
  creation_sync_fd_ = ::open(db_path.c_str(), O_RDONLY | O_CLOEXEC);
  const int db_fd = creation_sync_fd_;
  creation_sync_ = std::async(when, [db_fd, db_path, dir = data_dir_]() -> std::string {
    if (db_fd < 0 || ::fdatasync(db_fd) != 0) return "cannot sync database '" + db_path + "': " + std::strerror(errno);
    return SyncDirectory(dir);
  });
}

Status Store::Flush() {
  if (sync_mode_ != SyncMode::kOnFlush) return Status::Ok();
  if (creation_sync_.valid()) {
    if (std::string error = creation_sync_.get(); !error.empty()) return Status::IoError(error);
  }
  RETURN_IF_ERROR(db_->SyncWal());
  // The next open rebuilds its WAL index by reading the whole WAL, so a wide run copies its
  // WAL back now rather than leave every later start-up that read. Best effort: the WAL is
  // durable either way, and a checkpoint the background thread is running makes this busy.
  if (db_->WalBytes() > kFlushCheckpointWalBytes) [[maybe_unused]] Status ignored = db_->CheckpointAndTruncateWal();
  db_->SkipCheckpointOnClose();
  // Nothing is written after Flush (the caller exits without closing), so the store is
  // closed now as far as the next open is concerned: no integrity scan for it.
  if (!db_->SawCorruption()) WriteClosedMark(lock_fd_);
  return Status::Ok();
}

Store::Store(std::string data_dir, int lock_fd, std::unique_ptr<Database> db)
    : data_dir_(std::move(data_dir)), lock_fd_(lock_fd), db_(std::move(db)) {}

Store::~Store() {
  if (creation_sync_.valid()) creation_sync_.wait();
  CloseDatabase();  // an open transaction is rolled back by SQLite on close
  if (creation_sync_fd_ >= 0) ::close(creation_sync_fd_);  // SQLite's locks are gone with it
  if (lock_fd_ >= 0) {
    // The next Open skips the integrity scan only when it reads this.
    if (closed_cleanly_) WriteClosedMark(lock_fd_);
    ::close(lock_fd_);  // releases the flock
  }
}

void Store::CloseDatabase() {
  if (!db_) return;
  closed_cleanly_ = opened_ && !db_->SawCorruption();
  db_.reset();
}

Status Store::Configure(bool creating) {
  // A new database is built without fsyncs (the switch to WAL and the schema cost 8 of
  // them, ~5 ms on a first `batchd run`), then StartCreationSync() syncs it twice. Nothing
  // is acknowledged before that. SQLite without fsyncs survives a crash of the process; a
  // power cut within those milliseconds can leave a file it cannot read, reported as corrupt
  // on the next start: there was nothing in it yet, so deleting it is the fix.
  if (creating) RETURN_IF_ERROR(db_->Exec("PRAGMA synchronous=OFF"));
  // The first statements to read the file: where SQLite reports damage the header check
  // could not see.
  RETURN_IF_ERROR(db_->Exec("PRAGMA page_size=1024"));
  {
    ASSIGN_STMT(mode, "PRAGMA journal_mode=WAL");
    auto row = mode.Step();
    if (!row.ok()) return row.status();
    const std::string got = *row ? mode.Text(0) : std::string();
    if (got != "wal") {
      return Status::IoError("database '" + db_->path() + "': cannot enable write-ahead logging (journal mode is '" +
                             got + "')");
    }
  }
  // FULL: every commit fsyncs the WAL, so a committed transaction survives power loss.
  // journal_size_limit: truncate the WAL back to 64 MiB after a checkpoint.
  RETURN_IF_ERROR(db_->Exec(std::string(creating ? "" : "PRAGMA synchronous=FULL; ") +
                            "PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=67108864;"));
  db_->StartBackgroundCheckpoints();
  return Status::Ok();
}

namespace {
// SQLite's first finding in an integrity_check/quick_check result, e.g. "Page 17:
// btreeInitPage() returns error code 11", without the "*** in database main ***" banner.
std::string FirstFinding(const std::string& text) {
  for (size_t start = 0; start < text.size();) {
    size_t end = std::min(text.find('\n', start), text.size());
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.rfind("***", 0) != 0) return line;
    start = end + 1;
  }
  return text;
}
}  // namespace

Status Store::QuickCheck(const char* why) {
  integrity_checked_ = why;
  ASSIGN_STMT(check, "PRAGMA quick_check");
  auto row = check.Step();
  if (!row.ok()) return row.status();
  if (*row && check.Text(0) != "ok") {
    return Status::Corruption("database '" + db_->path() + "' is corrupt (integrity check: " +
                              FirstFinding(check.Text(0)) + "); restore it from a backup");
  }
  return Status::Ok();
}

Status Store::CheckIntegrity(const std::string& data_dir) {
  const std::string db_path = data_dir + "/batchd.db";
  struct stat st {};
  if (::stat(db_path.c_str(), &st) != 0)
    return Status::IoError("cannot read database '" + db_path + "': " + std::strerror(errno));
  auto db = Database::Open(db_path, /*read_only=*/true);
  if (!db.ok()) return db.status();
  std::vector<std::string> findings;
  for (const char* pragma : {"PRAGMA integrity_check(20)", "PRAGMA foreign_key_check"}) {
    auto s = (*db)->Prepare(pragma);
    if (!s.ok()) {
      // Damage in the schema itself stops the check before it starts.
      if (s.status().code() != StatusCode::kCorruption) return s.status();
      findings.push_back(std::string(pragma) + ": " + s.status().message());
      continue;
    }
    ScopedStatement scope(**s);
    const bool foreign_keys = std::string_view(pragma).find("foreign_key") != std::string_view::npos;
    while (findings.size() < 20) {
      auto row = (*s)->Step();
      if (!row.ok()) {
        // A page too damaged to read ends this check; what SQLite says is a finding too.
        if (row.status().code() != StatusCode::kCorruption) return row.status();
        findings.push_back(std::string(pragma) + ": " + row.status().message());
        break;
      }
      if (!*row) break;
      if (foreign_keys) {
        findings.push_back("table " + (*s)->Text(0) + " row " + (*s)->Text(1) + " refers to a missing row of " +
                           (*s)->Text(2));
      } else if ((*s)->Text(0) != "ok") {
        findings.push_back((*s)->Text(0));
      }
    }
  }
  if (findings.empty()) return Status::Ok();
  std::string text;
  for (const auto& f : findings) text += "\n  " + f;
  return Status::Corruption("database '" + db_path + "' is corrupt; restore it from a backup. Findings:" + text);
}

Status Store::Migrate() {
  // One IMMEDIATE transaction from reading the version to the last migration: a crash
  // leaves the old version intact, and nothing can interleave.
  Transaction txn(*this);
  RETURN_IF_ERROR(txn.Begin());
  bool has_version_table = false;
  bool has_other_tables = false;
  {
    ASSIGN_STMT(tables, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'");
    for (;;) {
      auto row = tables.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      (tables.Text(0) == "schema_version" ? has_version_table : has_other_tables) = true;
    }
  }
  int64_t version = 0;
  if (has_version_table) {
    ASSIGN_STMT(q, "SELECT MAX(version) FROM schema_version");
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (*row) version = q.OptInt(0).value_or(0);
  }
  const std::string& path = db_->path();
  if (version == 0 && has_other_tables) {
    return Status::Corruption("database '" + path +
                              "' is not a batchd database (it has tables but no schema version); use another "
                              "data directory");
  }
  if (version < 0) {
    return Status::Corruption("database '" + path + "' has an invalid schema version " + std::to_string(version) +
                              "; restore it from a backup");
  }
  if (version > kSchemaVersion) {
    return Status::Corruption("database '" + path + "' has schema version " + std::to_string(version) +
                              ", newer than this batchd supports (" + std::to_string(kSchemaVersion) +
                              "); upgrade batchd or use another data directory");
  }
  if (version < kSchemaVersion) {
    // An older file is checked before it is rewritten, unless Open just did.
    if (version > 0 && integrity_checked_.empty()) RETURN_IF_ERROR(QuickCheck("upgrade"));
    RETURN_IF_ERROR(db_->Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    if (version == 0) {
      if (Status st = db_->Exec(CurrentSchemaSql()); !st.ok()) {
        return Annotate(st, "creating the schema of database '" + path + "'");
      }
    }
    for (int64_t v = version == 0 ? kSchemaVersion : version; v < kSchemaVersion; ++v) {
      if (Status st = db_->Exec(UpgradeSql(v + 1)); !st.ok()) {
        return Annotate(st, "migrating database '" + path + "' to schema version " + std::to_string(v + 1));
      }
    }
    RETURN_IF_ERROR(db_->Exec("DELETE FROM schema_version; INSERT INTO schema_version (version) VALUES (" +
                              std::to_string(kSchemaVersion) + ")"));
  }
  return Annotate(txn.Commit(), "migrating database '" + path + "'");
}

Status Store::Begin(Durability durability) {
  if (txn_depth_ == 0) {
    RETURN_IF_ERROR(db_->SetRelaxedSync(durability == Durability::kProcessCrash));
    if (Status st = db_->ExecCached("BEGIN IMMEDIATE"); !st.ok()) return Annotate(st, "cannot begin a transaction");
    rollback_only_ = false;
  }
  ++txn_depth_;
  return Status::Ok();
}

Status Store::Commit() {
  if (txn_depth_ == 0) return Status::Internal("Commit() without a matching Begin()");
  if (--txn_depth_ > 0) return Status::Ok();
  if (rollback_only_) {
    RollbackNow();
    return Status::Internal(
        "transaction rolled back: an operation inside it failed (see the earlier error); nothing was written");
  }
  if (!db_->InTransaction()) {
    // SQLite already rolled back (disk full, I/O error) when a statement failed.
    pending_log_removals_.clear();
    RunAfterTransaction(false);
    return Status::IoError("transaction lost: SQLite rolled it back after an earlier error; nothing was written");
  }
  if (Status st = db_->ExecCached("COMMIT"); !st.ok()) {
    RollbackNow();
    return Annotate(st, "cannot commit; the transaction was rolled back");
  }
  RemovePendingLogs();
  RunAfterTransaction(true);
  return Status::Ok();
}

void Store::AfterTransaction(std::function<void(bool committed)> fn) {
  if (txn_depth_ == 0) {
    fn(true);
    return;
  }
  after_transaction_.push_back(std::move(fn));
}

void Store::RunAfterTransaction(bool committed) {
  // Taken first: a callback may open a transaction of its own.
  std::vector<std::function<void(bool)>> callbacks;
  callbacks.swap(after_transaction_);
  for (auto& fn : callbacks) fn(committed);
}

void Store::Rollback() {
  if (txn_depth_ == 0) return;
  if (--txn_depth_ > 0) {
    rollback_only_ = true;  // the outermost Commit()/Rollback() ends it
    return;
  }
  RollbackNow();
}

void Store::RollbackNow() {
  if (db_->InTransaction()) (void)db_->ExecCached("ROLLBACK");
  rollback_only_ = false;
  pending_log_removals_.clear();
  RunAfterTransaction(false);
}

void Store::RemoveRunLogs(std::vector<std::string> run_ids) {
  for (auto& id : run_ids) pending_log_removals_.push_back(std::move(id));
  if (txn_depth_ == 0) RemovePendingLogs();
}

void Store::RemovePendingLogs() {
  for (const auto& run_id : pending_log_removals_) {
    if (!IsSafeRunId(run_id)) continue;  // never let a stored id address anything outside logs/
    std::error_code ec;
    fs::remove_all(LogDir() + "/" + run_id, ec);  // best effort: leftover files are harmless
  }
  pending_log_removals_.clear();
}

// --- DAGs ---

Status Store::PutDagVersion(const DagVersion& v) {
  auto doing = [&] { return "cannot store version " + v.hash + " of DAG '" + v.dag + "'"; };
  auto s = db_->Prepare(
      "INSERT OR IGNORE INTO dag_versions (dag, hash, source, source_path, created_at) VALUES (?, ?, ?, ?, ?)");
  if (!s.ok()) return Annotate(s.status(), doing());
  ScopedStatement scope(**s);
  auto now = std::chrono::floor<milliseconds>(std::chrono::system_clock::now());
  Status st = (*s)->Bind(1, v.dag).Bind(2, v.hash).Bind(3, v.source).Bind(4, v.source_path).Bind(5, Ms(now)).Run();
  return Annotate(st, doing());
}

Result<DagVersion> Store::GetDagVersion(const std::string& dag, const std::string& hash) {
  ASSIGN_STMT(s, "SELECT source, source_path FROM dag_versions WHERE dag = ? AND hash = ?");
  s.Bind(1, dag).Bind(2, hash);
  auto row = s.Step();
  if (!row.ok()) return Annotate(row.status(), "cannot read version " + hash + " of DAG '" + dag + "'");
  if (!*row) return Status::NotFound("no version " + hash + " of DAG '" + dag + "'");
  return DagVersion{dag, hash, s.Text(0), s.Text(1)};
}

Status Store::SetCurrentDag(const std::string& name, const std::string& hash, const std::string& origin,
                            const std::string& source_path, SysMillis now) {
  ASSIGN_STMT(s,
              "INSERT INTO dags (name, current_hash, origin, source_path, updated_at) VALUES (?, ?, ?, ?, ?) "
              "ON CONFLICT (name) DO UPDATE SET current_hash = excluded.current_hash, origin = excluded.origin, "
              "source_path = excluded.source_path, updated_at = excluded.updated_at, deleted = 0");
  Status st = s.Bind(1, name).Bind(2, hash).Bind(3, origin).Bind(4, source_path).Bind(5, Ms(now)).Run();
  return Annotate(st, "cannot set the current version of DAG '" + name + "'");
}

Result<std::optional<DagEntry>> Store::GetDag(const std::string& name) {
  ASSIGN_STMT(s, std::string("SELECT ") + kDagColumns + " FROM dags WHERE name = ?");
  s.Bind(1, name);
  auto row = s.Step();
  if (!row.ok()) return Annotate(row.status(), "cannot read DAG '" + name + "'");
  std::optional<DagEntry> out;
  if (*row) {
    out.emplace();
    RETURN_IF_ERROR(ReadDag(s, &*out));
  }
  return out;
}

Result<std::vector<DagEntry>> Store::ListDags(bool include_deleted) {
  ASSIGN_STMT(s, std::string("SELECT ") + kDagColumns + " FROM dags WHERE deleted = 0 OR ? ORDER BY name");
  s.Bind(1, include_deleted ? 1 : 0);
  std::vector<DagEntry> out;
  RETURN_IF_ERROR(Annotate(ReadAll(s, ReadDag, &out), "cannot list DAGs"));
  return out;
}

// Runs an UPDATE of one row by key; NotFound "<doing>: no such <what>" when no row matched.
#define RUN_UPDATE(stmt, doing, what)                                       \
  do {                                                                      \
    if (Status _st = (stmt).Run(); !_st.ok()) return Annotate(_st, doing);  \
    if (db_->Changes() == 0) return Status::NotFound((doing) + ": no such " what); \
  } while (0)

Status Store::SetDagPaused(const std::string& name, bool paused) {
  ASSIGN_STMT(s, "UPDATE dags SET paused = ? WHERE name = ?");
  s.Bind(1, paused ? 1 : 0).Bind(2, name);
  RUN_UPDATE(s, std::string(paused ? "cannot pause" : "cannot unpause") + " DAG '" + name + "'", "DAG");
  return Status::Ok();
}

Status Store::SetDagDeleted(const std::string& name) {
  ASSIGN_STMT(s, "UPDATE dags SET deleted = 1 WHERE name = ?");
  s.Bind(1, name);
  RUN_UPDATE(s, "cannot delete DAG '" + name + "'", "DAG");
  return Status::Ok();
}

Status Store::SetDagFileRemoved(const std::string& name) {
  ASSIGN_STMT(s, "UPDATE dags SET deleted = 1, origin = 'file-removed' WHERE name = ?");
  s.Bind(1, name);
  RUN_UPDATE(s, "cannot delete DAG '" + name + "'", "DAG");
  return Status::Ok();
}

Status Store::SetLastFire(const std::string& name, SysSeconds fire) {
  ASSIGN_STMT(s, "UPDATE dags SET last_fire = ? WHERE name = ?");
  s.Bind(1, Secs(fire)).Bind(2, name);
  RUN_UPDATE(s, "cannot record the last fire time of DAG '" + name + "'", "DAG");
  return Status::Ok();
}

Status Store::PurgeDag(const std::string& name) {
  const std::string doing = "cannot purge DAG '" + name + "'";
  Transaction txn(*this);
  RETURN_IF_ERROR(Annotate(txn.Begin(), doing));
  std::vector<std::string> run_ids;
  {
    ASSIGN_STMT(s, "SELECT run_id FROM runs WHERE dag = ?");
    s.Bind(1, name);
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return Annotate(row.status(), doing);
      if (!*row) break;
      run_ids.push_back(s.Text(0));
    }
  }
  // Children first, so the result does not depend on foreign_keys being on.
  const char* statements[] = {
      "DELETE FROM attempts WHERE instance_id IN (SELECT i.id FROM task_instances i JOIN runs r ON r.run_id = "
      "i.run_id WHERE r.dag = ?)",
      "DELETE FROM task_instances WHERE run_id IN (SELECT run_id FROM runs WHERE dag = ?)",
      "DELETE FROM runs WHERE dag = ?",
      "DELETE FROM idempotency_keys WHERE dag = ?",
      "DELETE FROM trigger_files WHERE dag = ?",
      "DELETE FROM metric_counts WHERE dag = ?",
      "DELETE FROM dag_health WHERE dag = ?",
      "DELETE FROM slo_misses WHERE dag = ?",
      "DELETE FROM dag_versions WHERE dag = ?",
      "DELETE FROM dags WHERE name = ?",
  };
  int deleted = 0;
  for (const char* sql : statements) {
    ASSIGN_STMT(s, sql);
    if (Status st = s.Bind(1, name).Run(); !st.ok()) return Annotate(st, doing);
    deleted += db_->Changes();
  }
  if (deleted == 0) return Status::NotFound(doing + ": no such DAG");
  RETURN_IF_ERROR(Annotate(txn.Commit(), doing));
  RemoveRunLogs(std::move(run_ids));
  return Status::Ok();
}

// --- Runs ---

Result<std::pair<RunRecord, bool>> Store::CreateRun(const RunRecord& run) {
  const std::string doing = "cannot create run '" + run.run_id + "' of DAG '" + run.dag + "'";
  if (!IsSafeRunId(run.run_id)) {
    return Status::InvalidArgument(doing +
                                   ": a run id is 1-128 characters of letters, digits, '_', '-' and '.', "
                                   "and not '.' or '..'");
  }
  {
    // The UNIQUE (dag, run_key) constraint decides: a concurrent duplicate can't slip in
    // between a lookup and the insert.
    ASSIGN_STMT(s, std::string("INSERT INTO runs (") + kRunColumns +
                       ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (dag, run_key) DO NOTHING");
    s.Bind(1, run.run_id).Bind(2, run.dag).Bind(3, run.dag_hash).Bind(4, run.run_key).Bind(5, run.trigger);
    s.Bind(6, ToString(run.state)).Bind(7, Secs(run.logical_date)).Bind(8, Secs(run.interval_start));
    s.Bind(9, Secs(run.interval_end)).Bind(10, run.params_json).Bind(11, run.force ? 1 : 0);
    s.Bind(12, Ms(run.created_at)).Bind(13, Ms(run.started_at)).Bind(14, Ms(run.ended_at));
    s.Bind(15, Ms(run.scheduled_for)).Bind(16, run.error);
    Status st = s.Run();
    if (st.code() == StatusCode::kAlreadyExists) return Status::AlreadyExists(doing + ": the run id is taken");
    if (!st.ok()) return Annotate(st, doing);
    if (db_->Changes() == 1) return std::make_pair(run, true);
  }
  {
    // A trigger that found its run already there: counted, as it is not an error.
    ASSIGN_STMT(count,
                "INSERT INTO metric_counts (metric, dag, value) VALUES ('duplicate_triggers', ?, 1) "
                "ON CONFLICT DO UPDATE SET value = value + 1");
    if (Status st = count.Bind(1, run.dag).Run(); !st.ok()) return Annotate(st, doing);
  }
  ASSIGN_STMT(s, std::string("SELECT ") + kRunColumns + " FROM runs WHERE dag = ? AND run_key = ?");
  s.Bind(1, run.dag).Bind(2, run.run_key);
  auto row = s.Step();
  if (!row.ok()) return Annotate(row.status(), doing);
  if (!*row) return Status::Internal(doing + ": run key '" + run.run_key + "' conflicts but no run has it");
  RunRecord existing;
  RETURN_IF_ERROR(ReadRun(s, &existing));
  return std::make_pair(std::move(existing), false);
}

Result<std::optional<RunRecord>> Store::GetRun(const std::string& run_id) {
  ASSIGN_STMT(s, std::string("SELECT ") + kRunColumns + " FROM runs WHERE run_id = ?");
  s.Bind(1, run_id);
  auto row = s.Step();
  if (!row.ok()) return Annotate(row.status(), "cannot read run '" + run_id + "'");
  std::optional<RunRecord> out;
  if (*row) {
    out.emplace();
    RETURN_IF_ERROR(ReadRun(s, &*out));
  }
  return out;
}

Result<std::vector<RunRecord>> Store::ListRuns(const RunFilter& filter) {
  ASSIGN_STMT(s, std::string("SELECT ") + kRunColumns +
                     " FROM runs WHERE (?1 IS NULL OR dag = ?1) AND (?2 IS NULL OR state = ?2) "
                     "ORDER BY created_at DESC, rowid DESC LIMIT ?3");
  s.Bind(1, filter.dag);
  if (filter.state) s.Bind(2, ToString(*filter.state)); else s.BindNull(2);
  s.Bind(3, static_cast<int64_t>(filter.limit < 0 ? -1 : filter.limit));  // negative: no limit
  std::vector<RunRecord> out;
  RETURN_IF_ERROR(Annotate(ReadAll(s, ReadRun, &out), "cannot list runs"));
  return out;
}

Result<std::vector<RunRecord>> Store::ListRunsInStates(const std::vector<RunState>& states) {
  // One query, so runs in different states interleave by age; duplicates in `states`
  // must not duplicate runs.
  std::set<RunState> unique(states.begin(), states.end());
  std::vector<RunRecord> out;
  if (unique.empty()) return out;
  std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs WHERE state IN (";
  for (size_t i = 0; i < unique.size(); ++i) sql += i ? ", ?" : "?";
  sql += ") ORDER BY created_at, rowid";
  ASSIGN_STMT(s, sql);
  int index = 1;
  for (RunState state : unique) s.Bind(index++, ToString(state));
  RETURN_IF_ERROR(Annotate(ReadAll(s, ReadRun, &out), "cannot list runs by state"));
  return out;
}

Result<std::vector<std::string>> Store::DagsWithQueuedRuns() {
  // One seek per DAG in runs_queued (whose condition the literal 'queued' must repeat),
  // not a scan of the queue; left to itself the planner prefers runs_by_state and a sort.
  ASSIGN_STMT(s, "SELECT dag FROM runs INDEXED BY runs_queued WHERE state = 'queued' AND dag > ? ORDER BY dag LIMIT 1");
  std::vector<std::string> out;
  std::string after;
  for (;;) {
    s.Reset();
    s.Bind(1, after);
    auto row = s.Step();
    if (!row.ok()) return Annotate(row.status(), "cannot list the DAGs with queued runs");
    if (!*row) return out;
    after = s.Text(0);
    out.push_back(after);
  }
}

Result<std::vector<RunRecord>> Store::ListQueuedRuns(const std::string& dag, int limit) {
  std::vector<RunRecord> out;
  if (limit <= 0) return out;
  ASSIGN_STMT(s, std::string("SELECT ") + kRunColumns +
                     " FROM runs INDEXED BY runs_queued WHERE state = 'queued' AND dag = ? ORDER BY created_at, rowid LIMIT ?");
  s.Bind(1, dag).Bind(2, static_cast<int64_t>(limit));
  RETURN_IF_ERROR(Annotate(ReadAll(s, ReadRun, &out), "cannot list the queued runs of DAG '" + dag + "'"));
  return out;
}

Status Store::UpdateRunDagHash(const std::string& run_id, const std::string& dag_hash) {
  ASSIGN_STMT(s, "UPDATE runs SET dag_hash = ? WHERE run_id = ?");
  s.Bind(1, dag_hash).Bind(2, run_id);
  RUN_UPDATE(s, "cannot change the DAG version of run '" + run_id + "'", "run");
  return Status::Ok();
}

Status Store::UpdateRunState(const std::string& run_id, RunState state, std::optional<SysMillis> started_at,
                             std::optional<SysMillis> ended_at, const std::string& error) {
  ASSIGN_STMT(s,
              "UPDATE runs SET state = ?, started_at = COALESCE(?, started_at), ended_at = ?, error = ? "
              "WHERE run_id = ?");
  s.Bind(1, ToString(state)).Bind(2, Ms(started_at)).Bind(3, Ms(ended_at)).Bind(4, error).Bind(5, run_id);
  RUN_UPDATE(s, "cannot update run '" + run_id + "'", "run");
  return Status::Ok();
}

Result<std::optional<SysMillis>> Store::LastSuccessfulRunEnd(const std::string& dag) {
  ASSIGN_STMT(s, "SELECT MAX(ended_at) FROM runs WHERE dag = ? AND state = 'success'");
  s.Bind(1, dag);
  auto row = s.Step();
  if (!row.ok()) return Annotate(row.status(), "cannot read the last successful run of DAG '" + dag + "'");
  std::optional<SysMillis> out;
  if (*row) out = OptMs(s, 0);
  return out;
}

// --- Task instances ---

Status Store::InsertInstances(std::vector<InstanceRecord>& instances) {
  Transaction txn(*this);
  RETURN_IF_ERROR(Annotate(txn.Begin(), "cannot insert task instances"));
  size_t filled = 0;
  auto fail = [&](const Status& st) {
    for (size_t k = 0; k < filled; ++k) instances[k].id = 0;  // none of them exist
    return st;
  };
  for (auto& i : instances) {
    const std::string doing =
        "cannot insert task instance " + i.task + "[" + i.partition + "] of run '" + i.run_id + "'";
    auto s = db_->Prepare(
        "INSERT INTO task_instances (run_id, task, partition, state, reason, idempotency_key, attempts, "
        "exit_code, next_attempt_at, started_at, ended_at, retry_base, force) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return fail(Annotate(s.status(), doing));
    Statement& st = **s;
    ScopedStatement scope(st);
    st.Bind(1, i.run_id).Bind(2, i.task).Bind(3, i.partition).Bind(4, ToString(i.state)).Bind(5, i.reason);
    st.Bind(6, i.idempotency_key).Bind(7, i.attempts).Bind(8, i.exit_code).Bind(9, Ms(i.next_attempt_at));
    st.Bind(10, Ms(i.started_at)).Bind(11, Ms(i.ended_at)).Bind(12, i.retry_base).Bind(13, i.force ? 1 : 0);
    Status r = st.Run();
    if (r.code() == StatusCode::kNotFound) return fail(Status::NotFound(doing + ": no such run"));
    if (r.code() == StatusCode::kAlreadyExists) return fail(Status::AlreadyExists(doing + ": it already exists"));
    if (!r.ok()) return fail(Annotate(r, doing));
    i.id = db_->LastInsertRowId();
    ++filled;
  }
  if (Status st = txn.Commit(); !st.ok()) return fail(Annotate(st, "cannot insert task instances"));
  return Status::Ok();
}

Result<std::vector<InstanceRecord>> Store::ListInstances(const std::string& run_id) {
  ASSIGN_STMT(s, std::string("SELECT ") + kInstanceColumns + " FROM task_instances i WHERE i.run_id = ? ORDER BY i.id");
  s.Bind(1, run_id);
  std::vector<InstanceRecord> out;
  RETURN_IF_ERROR(Annotate(ReadAll(s, ReadInstance, &out), "cannot list task instances of run '" + run_id + "'"));
  return out;
}

Result<std::optional<InstanceRecord>> Store::GetInstance(const std::string& run_id, const std::string& task,
                                                         const std::string& partition) {
  ASSIGN_STMT(s, std::string("SELECT ") + kInstanceColumns +
                     " FROM task_instances i WHERE i.run_id = ? AND i.task = ? AND i.partition = ?");
  s.Bind(1, run_id).Bind(2, task).Bind(3, partition);
  std::vector<InstanceRecord> out;
  RETURN_IF_ERROR(Annotate(ReadAll(s, ReadInstance, &out), "cannot read task instance " + task + "[" + partition +
                                                               "] of run '" + run_id + "'"));
  if (out.empty()) return std::optional<InstanceRecord>();
  return std::optional<InstanceRecord>(std::move(out.front()));
}

Result<std::vector<InstanceRecord>> Store::ListInstancePage(const std::string& run_id, const InstanceFilter& filter) {
  std::vector<InstanceRecord> out;
  if (filter.limit <= 0) return out;
  // instances_by_run (run_id, id): a seek to the cursor, then the run's rows in order
  // until the page is full. Asked only for failed and retrying instances, the partial index
  // instances_attention holds just those rows: its WHERE is spelled out for SQLite to use it.
  const bool attention_only =
      !filter.states.empty() && std::all_of(filter.states.begin(), filter.states.end(), [](InstanceState st) {
        return st == InstanceState::kFailed || st == InstanceState::kRetryWait;
      });
  std::string sql = std::string("SELECT ") + kInstanceColumns + " FROM task_instances i " +
                    (attention_only ? "INDEXED BY instances_attention" : "INDEXED BY instances_by_run") +
                    " WHERE i.run_id = ?1 AND i.id > ?2 AND (?3 IS NULL OR i.task = ?3) AND (?4 IS NULL OR i.partition = ?4)";
  if (attention_only) sql += " AND i.state IN ('failed', 'retry_wait')";
  if (!filter.states.empty()) {
    sql += " AND i.state IN (";
    for (size_t k = 0; k < filter.states.size(); ++k) sql += (k ? ", ?" : "?") + std::to_string(k + 6);
    sql += ")";
  }
  sql += " ORDER BY i.id LIMIT ?5";
  ASSIGN_STMT(s, sql);
  s.Bind(1, run_id).Bind(2, filter.after_id).Bind(3, filter.task).Bind(4, filter.partition);
  s.Bind(5, static_cast<int64_t>(filter.limit));
  for (size_t k = 0; k < filter.states.size(); ++k) s.Bind(static_cast<int>(k + 6), ToString(filter.states[k]));
  RETURN_IF_ERROR(Annotate(ReadAll(s, ReadInstance, &out), "cannot list task instances of run '" + run_id + "'"));
  return out;
}

Result<std::map<std::string, std::map<InstanceState, int64_t>>> Store::CountInstances(const std::string& run_id) {
  ASSIGN_STMT(s, "SELECT task, state, COUNT(*) FROM task_instances WHERE run_id = ? GROUP BY task, state");
  s.Bind(1, run_id);
  std::map<std::string, std::map<InstanceState, int64_t>> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return Annotate(row.status(), "cannot count task instances of run '" + run_id + "'");
    if (!*row) return out;
    auto state = ParseInstanceState(s.Text(1));
    if (!state) return Status::Corruption("task instance of run '" + run_id + "' has unknown state '" + s.Text(1) + "'");
    out[s.Text(0)][*state] = s.Int(2);
  }
}

Status Store::UpdateInstance(const InstanceRecord& i) {
  ASSIGN_STMT(s,
              "UPDATE task_instances SET state = ?, reason = ?, attempts = ?, exit_code = ?, next_attempt_at = ?, "
              "started_at = ?, ended_at = ?, retry_base = ?, force = ? WHERE id = ?");
  s.Bind(1, ToString(i.state)).Bind(2, i.reason).Bind(3, i.attempts).Bind(4, i.exit_code);
  s.Bind(5, Ms(i.next_attempt_at)).Bind(6, Ms(i.started_at)).Bind(7, Ms(i.ended_at)).Bind(8, i.retry_base);
  s.Bind(9, i.force ? 1 : 0).Bind(10, i.id);
  RUN_UPDATE(s, "cannot update task instance " + std::to_string(i.id) + " (" + i.task + "[" + i.partition + "])",
             "task instance");
  return Status::Ok();
}

Result<std::vector<InstanceRecord>> Store::ListDeadLetters(const std::optional<std::string>& dag) {
  ASSIGN_STMT(s, std::string("SELECT ") + kInstanceColumns +
                     " FROM task_instances i JOIN runs r ON r.run_id = i.run_id "
                     "WHERE i.state = 'failed' AND (?1 IS NULL OR r.dag = ?1) ORDER BY i.ended_at DESC, i.id DESC");
  s.Bind(1, dag);
  std::vector<InstanceRecord> out;
  RETURN_IF_ERROR(Annotate(ReadAll(s, ReadInstance, &out), "cannot list dead letters"));
  return out;
}

// --- Attempts ---

Status Store::InsertAttempt(AttemptRecord& a) {
  const std::string doing =
      "cannot record attempt " + std::to_string(a.number) + " of task instance " + std::to_string(a.instance_id);
  ASSIGN_STMT(s, "INSERT INTO attempts (instance_id, number, outcome, pid, started_at, ended_at, exit_code, signal, "
                 "cpu_seconds, max_rss_kb, log_path, error, dag_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.Bind(1, a.instance_id).Bind(2, a.number).Bind(3, ToString(a.outcome)).Bind(4, a.pid);
  s.Bind(5, Ms(a.started_at)).Bind(6, Ms(a.ended_at)).Bind(7, a.exit_code).Bind(8, a.signal);
  s.Bind(9, a.cpu_seconds).Bind(10, a.max_rss_kb).Bind(11, a.log_path).Bind(12, a.error);
  s.Bind(13, a.dag_hash);
  Status st = s.Run();
  if (st.code() == StatusCode::kNotFound) return Status::NotFound(doing + ": no such task instance");
  if (st.code() == StatusCode::kAlreadyExists) return Status::AlreadyExists(doing + ": it already exists");
  if (!st.ok()) return Annotate(st, doing);
  a.id = db_->LastInsertRowId();
  return Status::Ok();
}

Status Store::FinishAttempt(const AttemptRecord& a) {
  ASSIGN_STMT(s,
              "UPDATE attempts SET outcome = ?, pid = ?, ended_at = ?, exit_code = ?, signal = ?, cpu_seconds = ?, "
              "max_rss_kb = ?, error = ? WHERE id = ?");
  s.Bind(1, ToString(a.outcome)).Bind(2, a.pid).Bind(3, Ms(a.ended_at)).Bind(4, a.exit_code).Bind(5, a.signal);
  s.Bind(6, a.cpu_seconds).Bind(7, a.max_rss_kb).Bind(8, a.error).Bind(9, a.id);
  RUN_UPDATE(s, "cannot finish attempt " + std::to_string(a.id), "attempt");
  return Status::Ok();
}

Result<std::vector<AttemptRecord>> Store::ListAttempts(int64_t instance_id) {
  ASSIGN_STMT(s, std::string("SELECT ") + kAttemptColumns + " FROM attempts WHERE instance_id = ? ORDER BY number");
  s.Bind(1, instance_id);
  std::vector<AttemptRecord> out;
  RETURN_IF_ERROR(Annotate(ReadAll(s, ReadAttempt, &out),
                           "cannot list attempts of task instance " + std::to_string(instance_id)));
  return out;
}

Result<std::vector<AttemptRecord>> Store::ListAttemptsOfInstances(int64_t first_id, int64_t last_id) {
  ASSIGN_STMT(s, std::string("SELECT ") + kAttemptColumns +
                     " FROM attempts WHERE instance_id BETWEEN ? AND ? ORDER BY instance_id, number");
  s.Bind(1, first_id).Bind(2, last_id);
  std::vector<AttemptRecord> out;
  RETURN_IF_ERROR(Annotate(ReadAll(s, ReadAttempt, &out), "cannot list attempts of task instances " +
                                                              std::to_string(first_id) + "-" + std::to_string(last_id)));
  return out;
}

Result<std::vector<RunAttempt>> Store::ListRunAttempts(const std::string& run_id,
                                                       const std::optional<std::string>& task,
                                                       const std::optional<std::string>& partition) {
  // The attempt's columns first, in kAttemptColumns order, so ReadAttempt reads 0-13.
  ASSIGN_STMT(s,
              "SELECT a.id, a.instance_id, a.number, a.outcome, a.pid, a.started_at, a.ended_at, a.exit_code, "
              "a.signal, a.cpu_seconds, a.max_rss_kb, a.log_path, a.error, a.dag_hash, i.task, i.partition "
              "FROM attempts a JOIN task_instances i ON i.id = a.instance_id "
              "WHERE i.run_id = ?1 AND (?2 IS NULL OR i.task = ?2) AND (?3 IS NULL OR i.partition = ?3) "
              "ORDER BY i.id, a.number");
  s.Bind(1, run_id).Bind(2, task).Bind(3, partition);
  std::vector<RunAttempt> out;
  auto read = [](const Statement& st, RunAttempt* r) {
    RETURN_IF_ERROR(ReadAttempt(st, &r->attempt));
    r->task = st.Text(14);
    r->partition = st.Text(15);
    return Status::Ok();
  };
  RETURN_IF_ERROR(Annotate(ReadAll(s, read, &out), "cannot list attempts of run '" + run_id + "'"));
  return out;
}

Result<std::vector<int64_t>> Store::MarkRunningAttemptsLost(SysMillis now) {
  const std::string doing = "cannot mark running attempts lost";
  Transaction txn(*this);
  RETURN_IF_ERROR(Annotate(txn.Begin(), doing));
  // Only a run that has not ended can have a running attempt (a run ends once none of
  // its instances runs; a cancelled one keeps its running attempts until they are
  // reported): looked up through runs_by_state and the two unique indexes, this costs
  // what is active, not the whole history, with no index on attempts.outcome to keep up
  // on every attempt.
  std::vector<int64_t> attempt_ids;
  std::vector<int64_t> instance_ids;
  {
    ASSIGN_STMT(s,
                "SELECT a.id, a.instance_id FROM runs r "
                "JOIN task_instances ti ON ti.run_id = r.run_id "
                "JOIN attempts a ON a.instance_id = ti.id "
                "WHERE r.state IN ('queued', 'running', 'cancelled') AND a.outcome = 'running' "
                "ORDER BY a.instance_id");
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return Annotate(row.status(), doing);
      if (!*row) break;
      attempt_ids.push_back(s.Int(0));
      if (instance_ids.empty() || instance_ids.back() != s.Int(1)) instance_ids.push_back(s.Int(1));
    }
  }
  ASSIGN_STMT(u,
              "UPDATE attempts SET outcome = 'lost', ended_at = ?, error = 'the daemon stopped while the attempt ran' "
              "WHERE id = ?");
  for (int64_t id : attempt_ids) {
    RETURN_IF_ERROR(Annotate(u.Bind(1, Ms(now)).Bind(2, id).Run(), doing));
    u.Reset();
  }
  RETURN_IF_ERROR(Annotate(txn.Commit(), doing));
  return instance_ids;
}

// --- Counts, SLOs and DAG health ---

Result<std::vector<MetricCount>> Store::ListMetricCounts() {
  ASSIGN_STMT(s, "SELECT metric, dag, task, trigger, label, value, total FROM metric_counts");
  std::vector<MetricCount> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return Annotate(row.status(), "cannot read the stored counts");
    if (!*row) break;
    out.push_back({s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), s.Double(5), s.Double(6)});
  }
  return out;
}

namespace {

// (text, milliseconds) rows as a map.
Result<std::map<std::string, SysMillis>> ReadTimesByName(Statement& s, const std::string& doing) {
  std::map<std::string, SysMillis> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return Annotate(row.status(), doing);
    if (!*row) break;
    out.emplace(s.Text(0), FromMs(s.Int(1)));
  }
  return out;
}

}  // namespace

Result<std::map<std::string, SysMillis>> Store::ListLastSuccesses() {
  ASSIGN_STMT(s, "SELECT dag, last_success_at FROM dag_health");
  return ReadTimesByName(s, "cannot read the DAGs' last successes");
}

Result<std::map<std::string, SysMillis>> Store::ListFirstVersionTimes() {
  ASSIGN_STMT(s, "SELECT dag, MIN(created_at) FROM dag_versions GROUP BY dag");
  return ReadTimesByName(s, "cannot read when the DAGs were first stored");
}

Result<std::vector<DeadLetterCount>> Store::CountDeadLetters() {
  // The partial index instances_failed holds exactly the dead letters.
  ASSIGN_STMT(s,
              "SELECT r.dag, i.task, COUNT(*) FROM task_instances i INDEXED BY instances_failed "
              "JOIN runs r ON r.run_id = i.run_id WHERE i.state = 'failed' GROUP BY r.dag, i.task");
  std::vector<DeadLetterCount> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return Annotate(row.status(), "cannot count dead letters");
    if (!*row) break;
    out.push_back({s.Text(0), s.Text(1), s.Int(2)});
  }
  return out;
}

Result<bool> Store::RecordSloMiss(const SloMiss& miss) {
  ASSIGN_STMT(s,
              "INSERT INTO slo_misses (dag, kind, subject, at, detail) VALUES (?, ?, ?, ?, ?) "
              "ON CONFLICT (dag, kind, subject) DO NOTHING");
  s.Bind(1, miss.dag).Bind(2, miss.kind).Bind(3, miss.subject).Bind(4, Ms(miss.at)).Bind(5, miss.detail);
  if (Status st = s.Run(); !st.ok())
    return Annotate(st, "cannot record the " + miss.kind + " SLO miss of DAG '" + miss.dag + "'");
  return db_->Changes() == 1;
}

Result<std::vector<SloMiss>> Store::ListSloMisses(const std::optional<std::string>& dag, int limit) {
  ASSIGN_STMT(s,
              "SELECT id, dag, kind, subject, at, detail FROM slo_misses WHERE (?1 IS NULL OR dag = ?1) "
              "ORDER BY at DESC, id DESC LIMIT ?2");
  s.Bind(1, dag).Bind(2, static_cast<int64_t>(limit < 0 ? -1 : limit));
  std::vector<SloMiss> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return Annotate(row.status(), "cannot list SLO misses");
    if (!*row) break;
    out.push_back({s.Int(0), s.Text(1), s.Text(2), s.Text(3), FromMs(s.Int(4)), s.Text(5)});
  }
  return out;
}

Result<std::set<std::string>> Store::SloMissSubjects(const std::string& dag, const std::string& kind) {
  ASSIGN_STMT(s, "SELECT subject FROM slo_misses WHERE dag = ? AND kind = ?");
  s.Bind(1, dag).Bind(2, kind);
  std::set<std::string> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return Annotate(row.status(), "cannot read the SLO misses of DAG '" + dag + "'");
    if (!*row) break;
    out.insert(s.Text(0));
  }
  return out;
}

// --- Idempotency keys ---

Result<bool> Store::KeySucceeded(const std::string& dag, const std::string& key) {
  ASSIGN_STMT(s, "SELECT 1 FROM idempotency_keys WHERE dag = ? AND key = ?");
  s.Bind(1, dag).Bind(2, key);
  auto row = s.Step();
  if (!row.ok()) return Annotate(row.status(), "cannot look up idempotency key '" + key + "' of DAG '" + dag + "'");
  return *row;
}

Status Store::RecordKeySuccess(const std::string& dag, const std::string& key, const std::string& run_id,
                               SysMillis at) {
  ASSIGN_STMT(s,
              "INSERT INTO idempotency_keys (dag, key, run_id, succeeded_at) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (dag, key) DO UPDATE SET run_id = excluded.run_id, succeeded_at = excluded.succeeded_at");
  Status st = s.Bind(1, dag).Bind(2, key).Bind(3, run_id).Bind(4, Ms(at)).Run();
  return Annotate(st, "cannot record idempotency key '" + key + "' of DAG '" + dag + "'");
}

// --- File-trigger ledger ---

Result<bool> Store::TriggerFileFired(const std::string& dag, const std::string& path, int64_t size,
                                     int64_t mtime_ns) {
  ASSIGN_STMT(s, "SELECT 1 FROM trigger_files WHERE dag = ? AND path = ? AND size = ? AND mtime_ns = ?");
  s.Bind(1, dag).BindBlob(2, path).Bind(3, size).Bind(4, mtime_ns);
  auto row = s.Step();
  if (!row.ok()) return Annotate(row.status(), "cannot look up trigger file of DAG '" + dag + "'");
  return *row;
}

Status Store::RecordTriggerFile(const TriggerFile& f) {
  const std::string doing = "cannot record trigger file of DAG '" + f.dag + "' for run '" + f.run_id + "'";
  ASSIGN_STMT(s,
              "INSERT INTO trigger_files (dag, path, size, mtime_ns, run_id, fired_at) VALUES (?, ?, ?, ?, ?, ?)");
  s.Bind(1, f.dag).BindBlob(2, f.path).Bind(3, f.size).Bind(4, f.mtime_ns).Bind(5, f.run_id).Bind(6, Ms(f.fired_at));
  Status st = s.Run();
  if (st.code() == StatusCode::kAlreadyExists) {
    return Status::AlreadyExists(doing + ": this version of the file (size " + std::to_string(f.size) +
                                 ", mtime_ns " + std::to_string(f.mtime_ns) + ") has fired already");
  }
  return Annotate(st, doing);
}

Result<std::vector<TriggerFile>> Store::ListTriggerFiles(const std::string& dag) {
  ASSIGN_STMT(s, "SELECT dag, path, size, mtime_ns, run_id, fired_at FROM trigger_files WHERE dag = ? "
                 "ORDER BY fired_at, run_id");
  s.Bind(1, dag);
  std::vector<TriggerFile> out;
  auto read = [](const Statement& s, TriggerFile* f) {
    *f = {s.Text(0), s.Blob(1), s.Int(2), s.Int(3), s.Text(4), FromMs(s.Int(5))};
    return Status::Ok();
  };
  RETURN_IF_ERROR(Annotate(ReadAll(s, read, &out), "cannot list trigger files of DAG '" + dag + "'"));
  return out;
}

// --- Audit ---

Status Store::Audit(int uid, const std::string& action, const std::string& target, const std::string& detail_json,
                    SysMillis at) {
  ASSIGN_STMT(s, "INSERT INTO audit (at, uid, action, target, detail) VALUES (?, ?, ?, ?, ?)");
  Status st = s.Bind(1, Ms(at)).Bind(2, uid).Bind(3, action).Bind(4, target).Bind(5, detail_json).Run();
  return Annotate(st, "cannot write the audit entry for " + action + " " + target);
}

Result<std::vector<AuditEntry>> Store::ListAudit(int limit) {
  ASSIGN_STMT(s, "SELECT id, at, uid, action, target, detail FROM audit ORDER BY id DESC LIMIT ?");
  s.Bind(1, static_cast<int64_t>(limit < 0 ? -1 : limit));
  std::vector<AuditEntry> out;
  auto read = [](const Statement& s, AuditEntry* e) {
    *e = {s.Int(0), FromMs(s.Int(1)), static_cast<int>(s.Int(2)), s.Text(3), s.Text(4), s.Text(5)};
    return Status::Ok();
  };
  RETURN_IF_ERROR(Annotate(ReadAll(s, read, &out), "cannot read the audit trail"));
  return out;
}

// --- Retention ---

Result<int> Store::PruneRunsBefore(SysMillis cutoff, int max_runs) {
  const std::string doing = "cannot prune old runs";
  Transaction txn(*this);
  RETURN_IF_ERROR(Annotate(txn.Begin(), doing));
  std::vector<std::string> runs;
  {
    ASSIGN_STMT(s, "SELECT run_id FROM runs WHERE state IN (?, ?, ?) AND ended_at < ? ORDER BY created_at, rowid LIMIT ?");
    s.Bind(1, ToString(RunState::kSuccess)).Bind(2, ToString(RunState::kFailed)).Bind(3, ToString(RunState::kCancelled));
    s.Bind(4, Ms(cutoff)).Bind(5, static_cast<int64_t>(max_runs));
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return Annotate(row.status(), doing);
      if (!*row) break;
      runs.push_back(s.Text(0));
    }
  }
  if (runs.empty()) return 0;
  for (const auto& run_id : runs) {
    const char* statements[] = {
        "DELETE FROM attempts WHERE instance_id IN (SELECT id FROM task_instances WHERE run_id = ?)",
        "DELETE FROM task_instances WHERE run_id = ?",
        "DELETE FROM runs WHERE run_id = ?",
    };
    for (const char* sql : statements) {
      ASSIGN_STMT(s, sql);
      if (Status st = s.Bind(1, run_id).Run(); !st.ok()) return Annotate(st, doing);
    }
  }
  RETURN_IF_ERROR(Annotate(txn.Commit(), doing));
  const int count = static_cast<int>(runs.size());
  RemoveRunLogs(std::move(runs));
  return count;
}

NewStorePaths NewStorePaths::Before(const std::string& data_dir_arg) {
  NewStorePaths paths;
  Result<std::string> normalized = NormalizeDataDir(data_dir_arg);
  if (!normalized.ok()) return paths;  // Open() fails the same way and creates nothing
  const fs::path dir(*normalized);
  auto missing = [](const fs::path& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) != 0 && errno == ENOENT;
  };
  // Only a new store is taken back: beside an existing database, a missing WAL is one
  // that closing it removed, and the next open's WAL holds data.
  paths.creates_database_ = missing(dir / "batchd.db");
  if (!paths.creates_database_) return paths;
  if (missing(dir / "logs")) paths.logs_dir_ = dir / "logs";
  for (fs::path d = dir; d.has_relative_path() && missing(d); d = d.parent_path()) paths.dirs_.push_back(d);
  for (const char* name : {"batchd.lock", "batchd.db", "batchd.db-wal", "batchd.db-shm", "batchd.db-journal"}) {
    if (missing(dir / name)) paths.files_.push_back(dir / name);
  }
  return paths;
}

void Store::Discard(std::unique_ptr<Store> store, const NewStorePaths& before) {
  if (store) {
    if (store->creation_sync_.valid()) store->creation_sync_.wait();
    store->CloseDatabase();  // SQLite's files are closed; the lock is still ours
    if (store->created_database_) {
      for (const auto& f : before.files_) ::unlink(f.c_str());
      // logs/ too, only while the lock is held: another store may use it once it is released.
      if (!before.logs_dir_.empty()) ::rmdir(before.logs_dir_.c_str());
    }
  }
  store.reset();  // releases the lock
  for (const auto& d : before.dirs_) ::rmdir(d.c_str());
}

}  // namespace batchd::store
