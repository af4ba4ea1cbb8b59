#include "store/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

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

// Each entry migrates from version (index) to (index + 1).
const char* const kMigrations[] = {
    R"sql(
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
  exit_code INTEGER,
  next_attempt_at INTEGER,
  started_at INTEGER,
  ended_at INTEGER,
  UNIQUE (run_id, task, partition)
);
CREATE INDEX instances_by_state ON task_instances (state);
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
CREATE INDEX attempts_running ON attempts (outcome) WHERE outcome = 'running';
CREATE TABLE idempotency_keys (
  dag TEXT NOT NULL,
  key TEXT NOT NULL,
  run_id TEXT NOT NULL,
  succeeded_at INTEGER NOT NULL,
  PRIMARY KEY (dag, key)
);
CREATE TABLE audit (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL
);
)sql",
};
constexpr int kMigrationCount = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kMigrationCount == kSchemaVersion, "one migration per schema version");

#define RETURN_IF_ERROR(expr)              \
  do {                                     \
    ::batchd::Status _st = (expr);         \
    if (!_st.ok()) return _st;             \
  } while (0)

#define ASSIGN_STMT(var, db, sql)          \
  auto var##_r = (db)->Prepare(sql);       \
  if (!var##_r.ok()) return var##_r.status(); \
  Statement& var = **var##_r

RunRecord ReadRun(const Statement& s) {
  RunRecord r;
  r.run_id = s.Text(0);
  r.dag = s.Text(1);
  r.dag_hash = s.Text(2);
  r.run_key = s.Text(3);
  r.trigger = s.Text(4);
  r.state = ParseRunState(s.Text(5)).value_or(RunState::kFailed);
  r.logical_date = FromSecs(s.Int(6));
  r.interval_start = FromSecs(s.Int(7));
  r.interval_end = FromSecs(s.Int(8));
  r.params_json = s.Text(9);
  r.force = s.Int(10) != 0;
  r.created_at = FromMs(s.Int(11));
  r.started_at = OptMs(s, 12);
  r.ended_at = OptMs(s, 13);
  r.scheduled_for = OptMs(s, 14);
  r.error = s.Text(15);
  return r;
}
constexpr const char* kRunColumns =
    "run_id, dag, dag_hash, run_key, trigger, state, logical_date, interval_start, interval_end, params, force, "
    "created_at, started_at, ended_at, scheduled_for, error";

InstanceRecord ReadInstance(const Statement& s) {
  InstanceRecord i;
  i.id = s.Int(0);
  i.run_id = s.Text(1);
  i.task = s.Text(2);
  i.partition = s.Text(3);
  i.state = ParseInstanceState(s.Text(4)).value_or(InstanceState::kFailed);
  i.reason = s.Text(5);
  i.idempotency_key = s.Text(6);
  i.attempts = static_cast<int>(s.Int(7));
  i.exit_code = OptInt32(s, 8);
  i.next_attempt_at = OptMs(s, 9);
  i.started_at = OptMs(s, 10);
  i.ended_at = OptMs(s, 11);
  return i;
}
constexpr const char* kInstanceColumns =
    "id, run_id, task, partition, state, reason, idempotency_key, attempts, exit_code, next_attempt_at, "
    "started_at, ended_at";

DagEntry ReadDag(const Statement& s) {
  DagEntry d;
  d.name = s.Text(0);
  d.current_hash = s.Text(1);
  d.origin = s.Text(2);
  d.source_path = s.Text(3);
  d.paused = s.Int(4) != 0;
  d.deleted = s.Int(5) != 0;
  if (auto v = s.OptInt(6)) d.last_fire = FromSecs(*v);
  d.updated_at = FromMs(s.Int(7));
  return d;
}
constexpr const char* kDagColumns =
    "name, current_hash, origin, source_path, paused, deleted, last_fire, updated_at";

}  // namespace

std::string NewRunId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  uint64_t v = rng();
  std::string id(12, '0');
  for (int i = 0; i < 12; ++i) id[i] = kHex[(v >> (i * 4)) & 15];
  return id;
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& data_dir_arg) {
  std::error_code ec;
  // Absolute, so log paths stay valid whatever a task's working directory is.
  const std::string data_dir = fs::absolute(data_dir_arg, ec).lexically_normal().string();
  if (ec) return Status::IoError("invalid data directory '" + data_dir_arg + "': " + ec.message());
  fs::create_directories(data_dir, ec);
  if (ec) return Status::IoError("cannot create data directory '" + data_dir + "': " + ec.message());
  fs::create_directories(data_dir + "/logs", ec);
  if (ec) return Status::IoError("cannot create log directory '" + data_dir + "/logs': " + ec.message());

  std::string lock_path = data_dir + "/batchd.lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("cannot open lock file '" + lock_path + "': " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd);
    return Status::FailedPrecondition("data directory '" + data_dir + "' is in use by another batchd process" +
                                      (holder.empty() ? std::string() : " (pid " + holder + ")"));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] ssize_t w = ::pwrite(fd, pid.data(), pid.size(), 0);
  }

  std::string db_path = data_dir + "/batchd.db";
  auto db = Database::Open(db_path);
  if (!db.ok()) {
    ::close(fd);
    return db.status();
  }
  std::unique_ptr<Store> store(new Store(data_dir, fd, std::move(*db)));
  if (Status st = store->Migrate(); !st.ok()) return st;
  return store;
}

Store::Store(std::string data_dir, int lock_fd, std::unique_ptr<Database> db)
    : data_dir_(std::move(data_dir)), lock_fd_(lock_fd), db_(std::move(db)) {}

Store::~Store() {
  db_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Status Store::Migrate() {
  // journal_mode=WAL fails on a file that is not a database: the first place we see it.
  RETURN_IF_ERROR(db_->Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(db_->Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"));
  {
    ASSIGN_STMT(check, db_, "PRAGMA quick_check");
    auto row = check.Step();
    if (!row.ok()) return row.status();
    if (*row && check.Text(0) != "ok") {
      std::string detail = check.Text(0);
      check.Reset();
      return Status::Corruption("database '" + db_->path() + "' is corrupt (" + detail + ")");
    }
    check.Reset();
  }
  RETURN_IF_ERROR(db_->Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
  int version = 0;
  {
    ASSIGN_STMT(q, db_, "SELECT version FROM schema_version");
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (*row) version = static_cast<int>(q.Int(0));
    q.Reset();
  }
  if (version > kSchemaVersion) {
    return Status::FailedPrecondition("database '" + db_->path() + "' has schema version " + std::to_string(version) +
                                      ", newer than this batchd supports (" + std::to_string(kSchemaVersion) +
                                      "); upgrade batchd or use another data directory");
  }
  for (int v = version; v < kSchemaVersion; ++v) {
    RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
    Status st = db_->Exec(kMigrations[v]);
    if (st.ok()) {
      st = db_->Exec(v == 0 ? "INSERT INTO schema_version (version) VALUES (1)"
                            : "UPDATE schema_version SET version = " + std::to_string(v + 1));
    }
    if (!st.ok()) {
      (void)db_->Exec("ROLLBACK");
      return Status::Corruption("migrating database '" + db_->path() + "' to schema version " +
                                std::to_string(v + 1) + " failed: " + st.message());
    }
    RETURN_IF_ERROR(db_->Exec("COMMIT"));
  }
  return Status::Ok();
}

Status Store::Begin() {
  if (txn_depth_++ == 0) {
    Status st = db_->Exec("BEGIN IMMEDIATE");
    if (!st.ok()) txn_depth_ = 0;
    return st;
  }
  return Status::Ok();
}

Status Store::Commit() {
  if (txn_depth_ == 0) return Status::Internal("Commit without Begin");
  if (--txn_depth_ == 0) return db_->Exec("COMMIT");
  return Status::Ok();
}

void Store::Rollback() {
  if (txn_depth_ > 0) {
    txn_depth_ = 0;
    (void)db_->Exec("ROLLBACK");
  }
}

// --- DAGs ---

Status Store::PutDagVersion(const DagVersion& v) {
  ASSIGN_STMT(s, db_,
              "INSERT OR IGNORE INTO dag_versions (dag, hash, source, source_path, created_at) "
              "VALUES (?, ?, ?, ?, ?)");
  auto now = std::chrono::floor<milliseconds>(std::chrono::system_clock::now());
  return s.Bind(1, v.dag).Bind(2, v.hash).Bind(3, v.source).Bind(4, v.source_path).Bind(5, Ms(now)).Run();
}

Result<DagVersion> Store::GetDagVersion(const std::string& dag, const std::string& hash) {
  ASSIGN_STMT(s, db_, "SELECT source, source_path FROM dag_versions WHERE dag = ? AND hash = ?");
  s.Bind(1, dag).Bind(2, hash);
  auto row = s.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::NotFound("no version " + hash + " of DAG '" + dag + "'");
  DagVersion v{dag, hash, s.Text(0), s.Text(1)};
  s.Reset();
  return v;
}

Status Store::SetCurrentDag(const std::string& name, const std::string& hash, const std::string& origin,
                            const std::string& source_path, SysMillis now) {
  ASSIGN_STMT(s, db_,
              "INSERT INTO dags (name, current_hash, origin, source_path, updated_at) VALUES (?, ?, ?, ?, ?) "
              "ON CONFLICT (name) DO UPDATE SET current_hash = excluded.current_hash, origin = excluded.origin, "
              "source_path = excluded.source_path, updated_at = excluded.updated_at, deleted = 0");
  return s.Bind(1, name).Bind(2, hash).Bind(3, origin).Bind(4, source_path).Bind(5, Ms(now)).Run();
}

Result<std::optional<DagEntry>> Store::GetDag(const std::string& name) {
  ASSIGN_STMT(s, db_, std::string("SELECT ") + kDagColumns + " FROM dags WHERE name = ?");
  s.Bind(1, name);
  auto row = s.Step();
  if (!row.ok()) return row.status();
  std::optional<DagEntry> out;
  if (*row) out = ReadDag(s);
  s.Reset();
  return out;
}

Result<std::vector<DagEntry>> Store::ListDags(bool include_deleted) {
  ASSIGN_STMT(s, db_,
              std::string("SELECT ") + kDagColumns + " FROM dags WHERE deleted = 0 OR ? ORDER BY name");
  s.Bind(1, include_deleted ? 1 : 0);
  std::vector<DagEntry> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadDag(s));
  }
  s.Reset();
  return out;
}

Status Store::SetDagPaused(const std::string& name, bool paused) {
  ASSIGN_STMT(s, db_, "UPDATE dags SET paused = ? WHERE name = ?");
  return s.Bind(1, paused ? 1 : 0).Bind(2, name).Run();
}

Status Store::SetDagDeleted(const std::string& name) {
  ASSIGN_STMT(s, db_, "UPDATE dags SET deleted = 1 WHERE name = ?");
  return s.Bind(1, name).Run();
}

Status Store::SetLastFire(const std::string& name, SysSeconds fire) {
  ASSIGN_STMT(s, db_, "UPDATE dags SET last_fire = ? WHERE name = ?");
  return s.Bind(1, Secs(fire)).Bind(2, name).Run();
}

Status Store::PurgeDag(const std::string& name) {
  RETURN_IF_ERROR(Begin());
  const char* statements[] = {
      "DELETE FROM attempts WHERE instance_id IN (SELECT i.id FROM task_instances i JOIN runs r ON r.run_id = "
      "i.run_id WHERE r.dag = ?)",
      "DELETE FROM task_instances WHERE run_id IN (SELECT run_id FROM runs WHERE dag = ?)",
      "DELETE FROM runs WHERE dag = ?",
      "DELETE FROM idempotency_keys WHERE dag = ?",
      "DELETE FROM dag_versions WHERE dag = ?",
      "DELETE FROM dags WHERE name = ?",
  };
  for (const char* sql : statements) {
    auto s = db_->Prepare(sql);
    Status st = s.ok() ? (*s)->Bind(1, name).Run() : s.status();
    if (!st.ok()) {
      Rollback();
      return st;
    }
  }
  return Commit();
}

// --- Runs ---

Result<std::pair<RunRecord, bool>> Store::CreateRun(const RunRecord& run) {
  {
    ASSIGN_STMT(s, db_, std::string("SELECT ") + kRunColumns + " FROM runs WHERE dag = ? AND run_key = ?");
    s.Bind(1, run.dag).Bind(2, run.run_key);
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (*row) {
      RunRecord existing = ReadRun(s);
      s.Reset();
      return std::make_pair(existing, false);
    }
    s.Reset();
  }
  ASSIGN_STMT(s, db_,
              std::string("INSERT INTO runs (") + kRunColumns +
                  ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.Bind(1, run.run_id).Bind(2, run.dag).Bind(3, run.dag_hash).Bind(4, run.run_key).Bind(5, run.trigger);
  s.Bind(6, ToString(run.state)).Bind(7, Secs(run.logical_date)).Bind(8, Secs(run.interval_start));
  s.Bind(9, Secs(run.interval_end)).Bind(10, run.params_json).Bind(11, run.force ? 1 : 0);
  s.Bind(12, Ms(run.created_at)).Bind(13, Ms(run.started_at)).Bind(14, Ms(run.ended_at));
  s.Bind(15, Ms(run.scheduled_for)).Bind(16, run.error);
  RETURN_IF_ERROR(s.Run());
  return std::make_pair(run, true);
}

Result<std::optional<RunRecord>> Store::GetRun(const std::string& run_id) {
  ASSIGN_STMT(s, db_, std::string("SELECT ") + kRunColumns + " FROM runs WHERE run_id = ?");
  s.Bind(1, run_id);
  auto row = s.Step();
  if (!row.ok()) return row.status();
  std::optional<RunRecord> out;
  if (*row) out = ReadRun(s);
  s.Reset();
  return out;
}

Result<std::vector<RunRecord>> Store::ListRuns(const RunFilter& filter) {
  ASSIGN_STMT(s, db_,
              std::string("SELECT ") + kRunColumns +
                  " FROM runs WHERE (?1 IS NULL OR dag = ?1) AND (?2 IS NULL OR state = ?2) "
                  "ORDER BY created_at DESC, rowid DESC LIMIT ?3");
  s.Bind(1, filter.dag);
  if (filter.state) s.Bind(2, ToString(*filter.state)); else s.BindNull(2);
  s.Bind(3, static_cast<int64_t>(filter.limit));
  std::vector<RunRecord> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadRun(s));
  }
  s.Reset();
  return out;
}

Result<std::vector<RunRecord>> Store::ListRunsInStates(const std::vector<RunState>& states) {
  std::vector<RunRecord> out;
  for (RunState state : states) {
    ASSIGN_STMT(s, db_, std::string("SELECT ") + kRunColumns + " FROM runs WHERE state = ? ORDER BY created_at, rowid");
    s.Bind(1, ToString(state));
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back(ReadRun(s));
    }
    s.Reset();
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const RunRecord& a, const RunRecord& b) { return a.created_at < b.created_at; });
  return out;
}

Status Store::UpdateRunState(const std::string& run_id, RunState state, std::optional<SysMillis> started_at,
                             std::optional<SysMillis> ended_at, const std::string& error) {
  ASSIGN_STMT(s, db_,
              "UPDATE runs SET state = ?, started_at = COALESCE(?, started_at), ended_at = ?, error = ? "
              "WHERE run_id = ?");
  return s.Bind(1, ToString(state)).Bind(2, Ms(started_at)).Bind(3, Ms(ended_at)).Bind(4, error).Bind(5, run_id).Run();
}

Result<std::optional<SysMillis>> Store::LastSuccessfulRunEnd(const std::string& dag) {
  ASSIGN_STMT(s, db_, "SELECT MAX(ended_at) FROM runs WHERE dag = ? AND state = 'success'");
  s.Bind(1, dag);
  auto row = s.Step();
  if (!row.ok()) return row.status();
  std::optional<SysMillis> out = OptMs(s, 0);
  s.Reset();
  return out;
}

// --- Task instances ---

Status Store::InsertInstances(std::vector<InstanceRecord>& instances) {
  RETURN_IF_ERROR(Begin());
  for (auto& i : instances) {
    auto s = db_->Prepare(
        "INSERT INTO task_instances (run_id, task, partition, state, reason, idempotency_key, attempts, "
        "exit_code, next_attempt_at, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s.ok()) {
      Rollback();
      return s.status();
    }
    Statement& st = **s;
    st.Bind(1, i.run_id).Bind(2, i.task).Bind(3, i.partition).Bind(4, ToString(i.state)).Bind(5, i.reason);
    st.Bind(6, i.idempotency_key).Bind(7, i.attempts).Bind(8, i.exit_code).Bind(9, Ms(i.next_attempt_at));
    st.Bind(10, Ms(i.started_at)).Bind(11, Ms(i.ended_at));
    if (Status r = st.Run(); !r.ok()) {
      Rollback();
      return r;
    }
    i.id = db_->LastInsertRowId();
  }
  return Commit();
}

Result<std::vector<InstanceRecord>> Store::ListInstances(const std::string& run_id) {
  ASSIGN_STMT(s, db_, std::string("SELECT ") + kInstanceColumns + " FROM task_instances WHERE run_id = ? ORDER BY id");
  s.Bind(1, run_id);
  std::vector<InstanceRecord> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadInstance(s));
  }
  s.Reset();
  return out;
}

Status Store::UpdateInstance(const InstanceRecord& i) {
  ASSIGN_STMT(s, db_,
              "UPDATE task_instances SET state = ?, reason = ?, attempts = ?, exit_code = ?, next_attempt_at = ?, "
              "started_at = ?, ended_at = ? WHERE id = ?");
  s.Bind(1, ToString(i.state)).Bind(2, i.reason).Bind(3, i.attempts).Bind(4, i.exit_code);
  s.Bind(5, Ms(i.next_attempt_at)).Bind(6, Ms(i.started_at)).Bind(7, Ms(i.ended_at)).Bind(8, i.id);
  return s.Run();
}

Result<std::vector<InstanceRecord>> Store::ListDeadLetters(const std::optional<std::string>& dag) {
  std::string sql = "SELECT i.id, i.run_id, i.task, i.partition, i.state, i.reason, i.idempotency_key, i.attempts, "
                    "i.exit_code, i.next_attempt_at, i.started_at, i.ended_at FROM task_instances i JOIN runs r "
                    "ON r.run_id = i.run_id WHERE i.state = 'failed' AND (?1 IS NULL OR r.dag = ?1) "
                    "ORDER BY i.ended_at DESC, i.id DESC";
  ASSIGN_STMT(s, db_, sql);
  s.Bind(1, dag);
  std::vector<InstanceRecord> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadInstance(s));
  }
  s.Reset();
  return out;
}

// --- Attempts ---

Status Store::InsertAttempt(AttemptRecord& a) {
  ASSIGN_STMT(s, db_,
              "INSERT INTO attempts (instance_id, number, outcome, pid, started_at, log_path) VALUES (?, ?, ?, ?, ?, ?)");
  s.Bind(1, a.instance_id).Bind(2, a.number).Bind(3, ToString(a.outcome)).Bind(4, a.pid);
  s.Bind(5, Ms(a.started_at)).Bind(6, a.log_path);
  RETURN_IF_ERROR(s.Run());
  a.id = db_->LastInsertRowId();
  return Status::Ok();
}

Status Store::FinishAttempt(const AttemptRecord& a) {
  ASSIGN_STMT(s, db_,
              "UPDATE attempts SET outcome = ?, pid = ?, ended_at = ?, exit_code = ?, signal = ?, cpu_seconds = ?, "
              "max_rss_kb = ?, error = ? WHERE id = ?");
  s.Bind(1, ToString(a.outcome)).Bind(2, a.pid).Bind(3, Ms(a.ended_at)).Bind(4, a.exit_code).Bind(5, a.signal);
  s.Bind(6, a.cpu_seconds).Bind(7, a.max_rss_kb).Bind(8, a.error).Bind(9, a.id);
  return s.Run();
}

Result<std::vector<AttemptRecord>> Store::ListAttempts(int64_t instance_id) {
  ASSIGN_STMT(s, db_,
              "SELECT id, instance_id, number, outcome, pid, started_at, ended_at, exit_code, signal, cpu_seconds, "
              "max_rss_kb, log_path, error FROM attempts WHERE instance_id = ? ORDER BY number");
  s.Bind(1, instance_id);
  std::vector<AttemptRecord> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    AttemptRecord a;
    a.id = s.Int(0);
    a.instance_id = s.Int(1);
    a.number = static_cast<int>(s.Int(2));
    a.outcome = ParseAttemptOutcome(s.Text(3)).value_or(AttemptOutcome::kFailed);
    a.pid = static_cast<int>(s.Int(4));
    a.started_at = FromMs(s.Int(5));
    a.ended_at = OptMs(s, 6);
    a.exit_code = OptInt32(s, 7);
    a.signal = OptInt32(s, 8);
    a.cpu_seconds = s.Double(9);
    a.max_rss_kb = s.Int(10);
    a.log_path = s.Text(11);
    a.error = s.Text(12);
    out.push_back(std::move(a));
  }
  s.Reset();
  return out;
}

Result<std::vector<int64_t>> Store::MarkRunningAttemptsLost(SysMillis now) {
  std::vector<int64_t> instance_ids;
  {
    ASSIGN_STMT(s, db_, "SELECT instance_id FROM attempts WHERE outcome = 'running'");
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      instance_ids.push_back(s.Int(0));
    }
    s.Reset();
  }
  ASSIGN_STMT(u, db_,
              "UPDATE attempts SET outcome = 'lost', ended_at = ?, error = 'the daemon stopped while the attempt ran' "
              "WHERE outcome = 'running'");
  RETURN_IF_ERROR(u.Bind(1, Ms(now)).Run());
  return instance_ids;
}

// --- Idempotency keys ---

Result<bool> Store::KeySucceeded(const std::string& dag, const std::string& key) {
  ASSIGN_STMT(s, db_, "SELECT 1 FROM idempotency_keys WHERE dag = ? AND key = ?");
  s.Bind(1, dag).Bind(2, key);
  auto row = s.Step();
  if (!row.ok()) return row.status();
  bool found = *row;
  s.Reset();
  return found;
}

Status Store::RecordKeySuccess(const std::string& dag, const std::string& key, const std::string& run_id,
                               SysMillis at) {
  ASSIGN_STMT(s, db_,
              "INSERT INTO idempotency_keys (dag, key, run_id, succeeded_at) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (dag, key) DO UPDATE SET run_id = excluded.run_id, succeeded_at = excluded.succeeded_at");
  return s.Bind(1, dag).Bind(2, key).Bind(3, run_id).Bind(4, Ms(at)).Run();
}

// --- Audit ---

Status Store::Audit(int uid, const std::string& action, const std::string& target, const std::string& detail_json,
                    SysMillis at) {
  ASSIGN_STMT(s, db_, "INSERT INTO audit (at, uid, action, target, detail) VALUES (?, ?, ?, ?, ?)");
  return s.Bind(1, Ms(at)).Bind(2, uid).Bind(3, action).Bind(4, target).Bind(5, detail_json).Run();
}

Result<std::vector<AuditEntry>> Store::ListAudit(int limit) {
  ASSIGN_STMT(s, db_, "SELECT id, at, uid, action, target, detail FROM audit ORDER BY id DESC LIMIT ?");
  s.Bind(1, static_cast<int64_t>(limit));
  std::vector<AuditEntry> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({s.Int(0), FromMs(s.Int(1)), static_cast<int>(s.Int(2)), s.Text(3), s.Text(4), s.Text(5)});
  }
  s.Reset();
  return out;
}

// --- Retention ---

Result<int> Store::PruneRunsBefore(SysMillis cutoff) {
  std::vector<std::string> runs;
  {
    ASSIGN_STMT(s, db_,
                "SELECT run_id FROM runs WHERE state IN ('success', 'failed', 'cancelled') AND ended_at < ?");
    s.Bind(1, Ms(cutoff));
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      runs.push_back(s.Text(0));
    }
    s.Reset();
  }
  if (runs.empty()) return 0;
  RETURN_IF_ERROR(Begin());
  for (const auto& run_id : runs) {
    const char* statements[] = {
        "DELETE FROM attempts WHERE instance_id IN (SELECT id FROM task_instances WHERE run_id = ?)",
        "DELETE FROM task_instances WHERE run_id = ?",
        "DELETE FROM runs WHERE run_id = ?",
    };
    for (const char* sql : statements) {
      auto s = db_->Prepare(sql);
      Status st = s.ok() ? (*s)->Bind(1, run_id).Run() : s.status();
      if (!st.ok()) {
        Rollback();
        return st;
      }
    }
  }
  RETURN_IF_ERROR(Commit());
  // Logs are removed after the commit: a crash in between leaves files, never rows
  // pointing at missing files.
  for (const auto& run_id : runs) {
    std::error_code ec;
    fs::remove_all(LogDir() + "/" + run_id, ec);
  }
  return static_cast<int>(runs.size());
}

}  // namespace batchd::store
