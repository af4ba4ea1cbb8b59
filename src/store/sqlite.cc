#include "store/sqlite.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include "store/checkpointer.h"

#include <unordered_map>

namespace batchd::store {

struct Database::Cache {
  std::unordered_map<std::string, std::unique_ptr<Statement>> statements;
};

Result<std::unique_ptr<Database>> Database::Open(const std::string& path, bool read_only) {
  sqlite3* db = nullptr;
  const int mode = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &db, mode | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Status::IoError("cannot open database '" + path + "': " + msg);
  }
  sqlite3_extended_result_codes(db, 1);
  // The data directory lock keeps other batchd processes out; this only covers an
  // operator's sqlite3 shell holding a lock for a moment.
  sqlite3_busy_timeout(db, 5000);
  return std::unique_ptr<Database>(new Database(db, path));
}

Database::Database(sqlite3* db, std::string path)
    : db_(db), path_(std::move(path)), cache_(std::make_unique<Cache>()) {}

Database::~Database() {
  checkpointer_.reset();
  cache_.reset();  // finalize statements before closing
  sqlite3_close(db_);
}

Status Database::Error(int rc, const std::string& detail) const {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      saw_corruption_ = true;
      return Status::Corruption("database '" + path_ + "' is corrupt (" + detail + "); restore it from a backup");
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) return Status::AlreadyExists(detail);
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return Status::NotFound(detail);
      return Status::InvalidArgument(detail);
    case SQLITE_ERROR:  // bad SQL, missing table: a bug or a damaged schema, not the disk
      return Status::Internal("database '" + path_ + "': " + detail);
    default:
      return Status::IoError("database '" + path_ + "': " + detail);
  }
}

Status Database::LastError() const { return Error(sqlite3_extended_errcode(db_), sqlite3_errmsg(db_)); }

Status Database::SetRelaxedSync(bool relaxed) {
  if (syncs_deferred_) relaxed = true;
  if (relaxed == relaxed_sync_) return Status::Ok();
  char* err = nullptr;
  int rc = sqlite3_exec(db_, relaxed ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Error(rc, "cannot set the durability level: " + msg);
  }
  relaxed_sync_ = relaxed;
  return Status::Ok();
}

Status Database::RestoreFullSyncOutsideTransaction() {
  if (!relaxed_sync_ || InTransaction()) return Status::Ok();  // deferred syncs stay relaxed: SetRelaxedSync
  return SetRelaxedSync(false);
}

Status Database::Exec(std::string_view sql) {
  if (Status st = RestoreFullSyncOutsideTransaction(); !st.ok()) return st;
  char* err = nullptr;
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string msg = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  // sqlite3_exec returns the primary code; the connection knows the extended one.
  int code = sqlite3_extended_errcode(db_);
  return Error((code & 0xff) == (rc & 0xff) ? code : rc, msg);
}

Status Database::DeferSyncs() {
  if (Status st = SetRelaxedSync(true); !st.ok()) return st;
  syncs_deferred_ = true;
  return Status::Ok();
}

Status Database::SyncWal() {
  sqlite3_file* file = nullptr;
  int rc = sqlite3_file_control(db_, "main", SQLITE_FCNTL_JOURNAL_POINTER, &file);
  if (rc == SQLITE_OK && (file == nullptr || file->pMethods == nullptr)) return Status::Ok();  // no WAL open
  if (rc == SQLITE_OK) rc = file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
  if (rc != SQLITE_OK) return Error(rc, "cannot sync the write-ahead log of '" + path_ + "'");
  return Status::Ok();
}

void Database::SkipCheckpointOnClose() { sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr); }

int64_t Database::WalBytes() const {
  struct stat st {};
  return ::stat((path_ + "-wal").c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

Status Database::CheckpointAndTruncateWal() {
  int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "cannot checkpoint the write-ahead log of '" + path_ + "'");
  return Status::Ok();
}

void Database::StartBackgroundCheckpoints() {
  if (!checkpointer_) checkpointer_ = std::make_unique<WalCheckpointer>(db_, path_);
}

Status Database::ExecCached(std::string_view sql) {
  auto stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  return (*stmt)->Run();
}

Result<Statement*> Database::Prepare(std::string_view sql) {
  std::string key(sql);
  auto it = cache_->statements.find(key);
  if (it != cache_->statements.end()) {
    it->second->Reset();
    return it->second.get();
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, key.c_str(), static_cast<int>(key.size()), SQLITE_PREPARE_PERSISTENT, &stmt,
                         nullptr) != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return LastError();
  }
  auto owned = std::make_unique<Statement>(stmt, this);
  Statement* raw = owned.get();
  cache_->statements.emplace(std::move(key), std::move(owned));
  return raw;
}

int64_t Database::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
int Database::Changes() const { return sqlite3_changes(db_); }
bool Database::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

Statement::~Statement() { sqlite3_finalize(stmt_); }

void Statement::CheckBind(int rc, int index) {
  if (rc != SQLITE_OK && bind_error_ == 0) {
    bind_error_ = rc;
    bind_error_index_ = index;
  }
}

Statement& Statement::Bind(int index, int64_t value) {
  CheckBind(sqlite3_bind_int64(stmt_, index, value), index);
  return *this;
}
Statement& Statement::Bind(int index, double value) {
  CheckBind(sqlite3_bind_double(stmt_, index, value), index);
  return *this;
}
Statement& Statement::Bind(int index, std::string_view value) {
  CheckBind(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8), index);
  return *this;
}
Statement& Statement::BindBlob(int index, std::string_view bytes) {
  // A null pointer would bind NULL: an empty value is a zero-length blob.
  CheckBind(bytes.empty() ? sqlite3_bind_zeroblob(stmt_, index, 0)
                          : sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT),
            index);
  return *this;
}
Statement& Statement::BindNull(int index) {
  CheckBind(sqlite3_bind_null(stmt_, index), index);
  return *this;
}

Statement::Statement(sqlite3_stmt* stmt, Database* db)
    : stmt_(stmt), db_(db), writes_(sqlite3_stmt_readonly(stmt) == 0 && std::string_view(sqlite3_sql(stmt)).rfind("BEGIN", 0) != 0) {}

Result<bool> Statement::Step() {
  if (bind_error_ != 0) {
    Status error = Status::Internal("cannot bind parameter " + std::to_string(bind_error_index_) + " of '" +
                                    sqlite3_sql(stmt_) + "': " + sqlite3_errstr(bind_error_));
    Reset();
    return error;
  }
  // An autocommit write is durable whatever the last transaction asked for.
  if (writes_) {
    if (Status st = db_->RestoreFullSyncOutsideTransaction(); !st.ok()) {
      Reset();
      return st;
    }
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Status error = db_->LastError();
  sqlite3_reset(stmt_);
  return error;
}

Status Statement::Run() {
  for (;;) {
    auto r = Step();
    if (!r.ok()) return r.status();
    if (!*r) break;
  }
  Reset();
  return Status::Ok();
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = 0;
  bind_error_index_ = 0;
}

bool Statement::IsNull(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
int64_t Statement::Int(int c) const { return sqlite3_column_int64(stmt_, c); }
double Statement::Double(int c) const { return sqlite3_column_double(stmt_, c); }
int Statement::ColumnCount() const { return sqlite3_column_count(stmt_); }
std::string Statement::Text(int c) const {
  const unsigned char* p = sqlite3_column_text(stmt_, c);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, c)))
           : std::string();
}
std::string Statement::Blob(int c) const {
  const void* p = sqlite3_column_blob(stmt_, c);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, c)))
           : std::string();
}
std::optional<int64_t> Statement::OptInt(int c) const {
  if (IsNull(c)) return std::nullopt;
  return Int(c);
}
std::optional<std::string> Statement::OptText(int c) const {
  if (IsNull(c)) return std::nullopt;
  return Text(c);
}

}  // namespace batchd::store
