#pragma once
// Thin RAII adapter over the SQLite C API. Errors become Status values here; nothing
// above src/store sees sqlite3 types. Not thread-safe: one owner per Database.
//
// Error classification (Database::Error):
//   SQLITE_CORRUPT, SQLITE_NOTADB      -> Corruption "database '<path>' is corrupt (...); ..."
//   UNIQUE / PRIMARY KEY constraint    -> AlreadyExists
//   FOREIGN KEY constraint             -> NotFound (the referenced row does not exist)
//   other constraints                  -> InvalidArgument
//   SQLITE_ERROR (bad SQL, no table)   -> Internal "database '<path>': <sqlite message>"
//   everything else (I/O, disk full)   -> IoError "database '<path>': <sqlite message>"
// Callers in store.cc prefix the message with what they were doing.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace batchd::store {

class Statement;
class WalCheckpointer;

class Database {
 public:
  // Opens (creating if absent) the database file; `read_only`: opens an existing file
  // for reading only (another process may be writing it).
  static Result<std::unique_ptr<Database>> Open(const std::string& path, bool read_only = false);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements with no results.
  Status Exec(std::string_view sql);
  // Runs one statement with no results through the statement cache: for the ones run
  // on every transaction (BEGIN, COMMIT, PRAGMA synchronous), which would otherwise be
  // parsed again each time.
  Status ExecCached(std::string_view sql);
  // Prepares (and caches by SQL text) a statement. The pointer stays valid for the
  // Database's lifetime; the statement is reset and its bindings cleared before it is
  // returned. Hold it in a ScopedStatement so every exit path resets it again.
  Result<Statement*> Prepare(std::string_view sql);
  int64_t LastInsertRowId() const;
  // Rows changed by the most recent INSERT/UPDATE/DELETE.
  int Changes() const;
  // True while an explicit transaction is open. SQLite may end one on its own after
  // some errors (disk full, I/O error), which is why the Store asks instead of assuming.
  bool InTransaction() const;
  const std::string& path() const { return path_; }
  // Moves WAL checkpoints off this connection's commits onto a background thread (see
  // checkpointer.h). Call once, after enabling WAL mode.
  void StartBackgroundCheckpoints();
  // PRAGMA synchronous: FULL (fsync the WAL on every commit) or, relaxed, NORMAL (no
  // fsync; the commit survives a crash of the process, not of the machine). Relaxed
  // holds only for explicit transactions: an autocommit write, or Exec() outside a
  // transaction, first restores FULL. Cached: changes cost a statement only when the
  // level differs.
  Status SetRelaxedSync(bool relaxed);
  // SetRelaxedSync(false) unless a transaction is open: before any write that would
  // commit on its own.
  Status RestoreFullSyncOutsideTransaction();
  // Every commit from now on is relaxed, inside a transaction or not, until SyncWal():
  // the owner makes them durable in one go (Store's SyncMode::kOnFlush).
  Status DeferSyncs();
  // fsyncs the WAL through SQLite's own descriptor: every commit so far becomes durable.
  // Nothing to do when this connection has not opened the WAL yet.
  Status SyncWal();
  // Closing the last connection leaves the WAL as it is instead of checkpointing it
  // (copying it into the database file and fsyncing that): the next open reads it.
  void SkipCheckpointOnClose();
  // Size of the WAL file in bytes (0 when there is none).
  int64_t WalBytes() const;
  // Copies the whole WAL into the database file, fsyncs it and truncates the WAL to zero
  // bytes (SQLITE_CHECKPOINT_TRUNCATE on this connection).
  Status CheckpointAndTruncateWal();
  // Whether SQLite reported the file damaged (SQLITE_CORRUPT, SQLITE_NOTADB) on this
  // connection: the next open must check it again, however it was closed.
  bool SawCorruption() const { return saw_corruption_; }

 private:
  Database(sqlite3* db, std::string path);
  // The Status for SQLite result code `rc`, whose text is `detail`.
  Status Error(int rc, const std::string& detail) const;
  mutable bool saw_corruption_ = false;
  Status LastError() const;
  sqlite3* db_;
  std::string path_;
  std::unique_ptr<WalCheckpointer> checkpointer_;
  bool relaxed_sync_ = false;
  bool syncs_deferred_ = false;
  struct Cache;
  std::unique_ptr<Cache> cache_;
  friend class Statement;
};

// A prepared statement. Bind with 1-based indexes; Step() returns true while rows remain.
// A failed Bind (wrong index, out of memory) is remembered and reported by Step().
class Statement {
 public:
  Statement(sqlite3_stmt* stmt, Database* db);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view value);
  Statement& Bind(int index, const std::string& value) { return Bind(index, std::string_view(value)); }
  Statement& Bind(int index, const char* value) { return Bind(index, std::string_view(value)); }
  Statement& BindNull(int index);
  // Bytes as a BLOB: stored and compared exactly, whatever they are (a file name need not
  // be UTF-8, which TEXT assumes).
  Statement& BindBlob(int index, std::string_view bytes);
  template <typename T>
  Statement& Bind(int index, const std::optional<T>& value) {
    return value ? Bind(index, *value) : BindNull(index);
  }

  // Advances; Result is true when a row is available, false when done. On error the
  // statement is reset.
  Result<bool> Step();
  // Steps to completion (for statements without rows), then resets.
  Status Run();
  // Ends any iteration (releasing the read snapshot it holds) and clears bindings.
  void Reset();

  bool IsNull(int column) const;
  int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;
  std::string Blob(int column) const;
  int ColumnCount() const;
  std::optional<int64_t> OptInt(int column) const;
  std::optional<std::string> OptText(int column) const;

 private:
  void CheckBind(int rc, int index);
  sqlite3_stmt* stmt_;
  Database* db_;
  // Writes to the database (BEGIN IMMEDIATE does too, for SQLite, but commits nothing).
  bool writes_;
  int bind_error_ = 0;  // first failed sqlite3_bind_* result code, reported by Step()
  int bind_error_index_ = 0;
};

// Resets a cached statement when it goes out of scope, so that no return path leaves it
// mid-iteration: an unfinished SELECT holds a WAL read snapshot, which stops checkpoints
// from recycling the log.
class ScopedStatement {
 public:
  explicit ScopedStatement(Statement& s) : s_(s) {}
  ~ScopedStatement() { s_.Reset(); }
  ScopedStatement(const ScopedStatement&) = delete;
  ScopedStatement& operator=(const ScopedStatement&) = delete;

 private:
  Statement& s_;
};

}  // namespace batchd::store
