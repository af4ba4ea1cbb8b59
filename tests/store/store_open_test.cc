// Opening a store: the data-directory lock, damaged and foreign files, schema versions
// and migrations, and durability across a SIGKILL. Every error message is asserted word
// for word: it is what the operator reads at 3 a.m.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>

#include <gmock/gmock.h>

#include "store/store_test_util.h"

namespace batchd::store {
namespace {

using namespace testing;  // NOLINT
namespace fs = std::filesystem;

// Fills a store with enough rows to span many pages, then closes it (which checkpoints
// the WAL into batchd.db and removes the WAL).
void FillAndClose(const std::string& dir) {
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Begin().ok());
  for (int r = 0; r < 40; ++r) {
    std::string id = "run" + std::to_string(r);
    ASSERT_TRUE(store->CreateRun(MakeRun(id, "billing", "key" + std::to_string(r), 1000 + r)).ok());
    std::vector<InstanceRecord> instances;
    for (int p = 0; p < 20; ++p)
      instances.push_back(MakeInstance(id, "extract", "partition-with-a-long-name-" + std::to_string(p)));
    ASSERT_TRUE(store->InsertInstances(instances).ok());
  }
  ASSERT_TRUE(store->Commit().ok());
}

TEST(StoreOpenTest, CreatesDataDirectoryLockFileAndLogDirectory) {
  TempDir tmp;
  const std::string dir = tmp / "a/b/data";
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->data_dir(), dir);
  EXPECT_EQ(store->LogDir(), dir + "/logs");
  EXPECT_TRUE(fs::is_directory(dir + "/logs"));
  EXPECT_TRUE(fs::is_regular_file(dir + "/batchd.db"));
  EXPECT_EQ(ReadFile(dir + "/batchd.lock"), std::to_string(::getpid()) + "\n");
}

TEST(StoreOpenTest, NormalizesTheDataDirectoryToAnAbsolutePath) {
  TempDir tmp;
  auto store = OpenOrDie(tmp / "x/../data/./");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->data_dir(), tmp / "data");
  EXPECT_EQ(store->LogDir(), tmp / "data/logs");
}

// NewStorePaths: what a new store's creation made is taken back, and nothing else.
std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir)) names.push_back(fs::relative(e.path(), dir));
  std::sort(names.begin(), names.end());
  return names;
}

TEST(NewStorePathsTest, RemovesANewStoreWithTheDirectoriesItCreated) {
  TempDir tmp;
  const std::string dir = tmp / "a/b/data";
  auto paths = NewStorePaths::Before(dir + "/");
  EXPECT_TRUE(paths.creates_database());
  auto store = Store::Open(dir, Store::SyncMode::kOnFlush);
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_THAT(Listing(tmp.path()), ::testing::Contains("a/b/data/batchd.db-wal"));
  Store::Discard(std::move(*store), paths);
  EXPECT_THAT(Listing(tmp.path()), ::testing::IsEmpty());
}

TEST(NewStorePathsTest, KeepsWhatWasThereBefore) {
  TempDir tmp;
  const std::string dir = tmp / "data";
  fs::create_directories(dir + "/logs/old-run");
  WriteFile(dir + "/batchd.lock", "1\n");
  WriteFile(dir + "/notes.txt", "mine\n");
  auto paths = NewStorePaths::Before(dir);
  EXPECT_TRUE(paths.creates_database());
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  Store::Discard(std::move(store), paths);
  EXPECT_THAT(Listing(tmp.path()), ::testing::ElementsAre("data", "data/batchd.lock", "data/logs", "data/logs/old-run",
                                               "data/notes.txt"));
}

TEST(NewStorePathsTest, DiscardKeepsAStoreItsOpenDidNotCreate) {
  // Another process created the store between Before() and Open(): its files stay.
  TempDir tmp;
  const std::string dir = tmp / "data";
  auto paths = NewStorePaths::Before(dir);
  EXPECT_TRUE(paths.creates_database());
  {
    auto other = OpenOrDie(dir);
    ASSERT_NE(other, nullptr);
    ASSERT_TRUE(other->CreateRun(MakeRun("run1", "billing", "k1", 1000)).ok());
  }
  auto store = Store::Open(dir, Store::SyncMode::kOnFlush);
  ASSERT_TRUE(store.ok()) << store.status().message();
  ASSERT_TRUE((*store)->CreateRun(MakeRun("run2", "billing", "k2", 2000)).ok());
  ASSERT_TRUE((*store)->Flush().ok());  // leaves its WAL, which Before() saw missing
  Store::Discard(std::move(*store), paths);
  EXPECT_THAT(Listing(tmp.path()), ::testing::Contains("data/batchd.db-wal"));
  auto reopened = OpenOrDie(dir);
  ASSERT_NE(reopened, nullptr);
  for (const char* id : {"run1", "run2"}) {
    auto run = reopened->GetRun(id);
    ASSERT_TRUE(run.ok());
    EXPECT_TRUE(run->has_value()) << id;
  }
}

TEST(NewStorePathsTest, DiscardAfterAFailedOpenRemovesOnlyEmptyDirectories) {
  // The store is in use by another process: its Open fails, and nothing of the holder's goes.
  TempDir tmp;
  const std::string dir = tmp / "new/data";
  auto paths = NewStorePaths::Before(dir);
  auto holder = OpenOrDie(dir);
  ASSERT_NE(holder, nullptr);
  auto refused = Store::Open(dir);
  ASSERT_FALSE(refused.ok());
  Store::Discard(nullptr, paths);
  EXPECT_THAT(Listing(tmp.path()), ::testing::IsSupersetOf({"new/data/batchd.db", "new/data/batchd.lock", "new/data/logs"}));
  holder.reset();
  Store::Discard(nullptr, paths);  // nothing is removed after the holder closed either
  EXPECT_THAT(Listing(tmp.path()), ::testing::Contains("new/data/batchd.db"));
}

TEST(StoreOpenTest, EmptyDataDirectoryIsInvalid) {
  auto store = Store::Open("");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.status().message(), "the data directory must not be empty");
}

TEST(StoreOpenTest, UsesWriteAheadLogging) {
  TempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  auto db = Database::Open(tmp / "batchd.db");
  ASSERT_TRUE(db.ok());
  auto s = (*db)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(*(*s)->Step());
  EXPECT_EQ((*s)->Text(0), "wal");
  (*s)->Reset();
}

// --- The data-directory lock ---

TEST(StoreOpenTest, SecondOpenInTheSameProcessFailsWithTheHolderPid) {
  TempDir tmp;
  auto first = OpenOrDie(tmp.path());
  ASSERT_NE(first, nullptr);
  // flock locks belong to open file descriptions, so this conflicts like another process.
  auto second = Store::Open(tmp.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(), "data directory '" + tmp.path() +
                                           "' is in use by another batchd process (pid " +
                                           std::to_string(::getpid()) + ")");
  // The refused Open did not disturb the holder.
  EXPECT_TRUE(first->Audit(0, "ping", "x", "{}", AtMs(1)).ok());
  EXPECT_EQ(ReadFile(tmp / "batchd.lock"), std::to_string(::getpid()) + "\n");
}

TEST(StoreOpenTest, LockIsReleasedWhenTheStoreIsDestroyed) {
  TempDir tmp;
  auto first = OpenOrDie(tmp.path());
  ASSERT_NE(first, nullptr);
  first.reset();
  auto second = Store::Open(tmp.path());
  EXPECT_TRUE(second.ok()) << second.status().ToString();
}

TEST(StoreOpenTest, OpenFailsWhileAnotherProcessHoldsTheLock) {
  TempDir tmp;
  int ready[2], release[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(release), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Child: hold the store open until the parent closes `release`.
    ::close(ready[0]);
    ::close(release[1]);
    auto store = Store::Open(tmp.path());
    char c = store.ok() ? 'y' : 'n';
    if (::write(ready[1], &c, 1) != 1) ::_exit(2);
    while (::read(release[0], &c, 1) > 0) {
    }
    ::_exit(store.ok() ? 0 : 1);
  }
  ::close(ready[1]);
  ::close(release[0]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');

  auto store = Store::Open(tmp.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().message(), "data directory '" + tmp.path() +
                                          "' is in use by another batchd process (pid " + std::to_string(child) +
                                          ")");

  ::close(release[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::close(ready[0]);
  // The holder is gone, so is its lock.
  auto again = Store::Open(tmp.path());
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

TEST(StoreOpenTest, LockMessageOmitsThePidWhenTheLockFileHasNone) {
  TempDir tmp;
  auto first = OpenOrDie(tmp.path());
  ASSERT_NE(first, nullptr);
  WriteFile(tmp / "batchd.lock", "not a pid\n");
  auto second = Store::Open(tmp.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(), "data directory '" + tmp.path() + "' is in use by another batchd process");
}

TEST(StoreOpenTest, FailedOpenReleasesTheLock) {
  TempDir tmp;
  WriteFile(tmp / "batchd.db", "definitely not sqlite, but long enough to have a header of a hundred bytes: "
                               "padding padding padding padding");
  auto first = Store::Open(tmp.path());
  ASSERT_FALSE(first.ok());
  // Still the file's error, not "in use": the failed Open let go of the lock.
  auto second = Store::Open(tmp.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(), first.status().message());
  EXPECT_EQ(second.status().code(), StatusCode::kCorruption);
}

// --- Damaged and foreign files ---

std::string NotSqliteMessage(const std::string& dir) {
  return "database '" + dir +
         "/batchd.db' is not an SQLite database (bad header); move it aside to start an empty store, or "
         "restore it from a backup";
}

TEST(StoreOpenTest, RandomBytesAreNotAnSqliteDatabase) {
  TempDir tmp;
  std::mt19937 rng(12345);
  std::string bytes(64 * 1024, '\0');
  for (auto& b : bytes) b = static_cast<char>(rng() & 0xff);
  WriteFile(tmp / "batchd.db", bytes);
  auto store = Store::Open(tmp.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store.status().message(), NotSqliteMessage(tmp.path()));
  EXPECT_EQ(ReadFile(tmp / "batchd.db"), bytes) << "a failed Open must not write to the file";
}

TEST(StoreOpenTest, TextFileNamedBatchdDbIsNotAnSqliteDatabase) {
  TempDir tmp;
  const std::string text = "# notes\nthis is where I keep my shopping list\n";
  WriteFile(tmp / "batchd.db", text);
  auto store = Store::Open(tmp.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store.status().message(), NotSqliteMessage(tmp.path()));
  EXPECT_EQ(ReadFile(tmp / "batchd.db"), text);
}

TEST(StoreOpenTest, DirectoryNamedBatchdDbIsAnIoError) {
  TempDir tmp;
  fs::create_directories(tmp / "batchd.db");
  auto store = Store::Open(tmp.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kIoError);
  EXPECT_EQ(store.status().message(), "database '" + tmp.path() + "/batchd.db' is not a regular file");
}

// Store::Open creates databases with 1 KiB pages.
constexpr uint64_t kPageSize = 1024;

TEST(StoreOpenTest, TruncatedDatabaseIsReportedAsTruncated) {
  TempDir tmp;
  FillAndClose(tmp.path());
  ASSERT_FALSE(fs::exists(tmp / "batchd.db-wal")) << "closing should have checkpointed the WAL";
  const auto size = fs::file_size(tmp / "batchd.db");
  ASSERT_EQ(size % kPageSize, 0u);
  ASSERT_GE(size, 8 * kPageSize);
  fs::resize_file(tmp / "batchd.db", size / 2);

  auto store = Store::Open(tmp.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store.status().message(), "database '" + tmp.path() + "/batchd.db' is truncated: its header says " +
                                          std::to_string(size / kPageSize) + " pages of " + std::to_string(kPageSize) + " bytes but the file has only " +
                                          std::to_string(size / 2) + " bytes; restore it from a backup");
  EXPECT_EQ(fs::file_size(tmp / "batchd.db"), size / 2);
}

TEST(StoreOpenTest, DatabaseCutInsideItsHeaderIsReportedAsTruncated) {
  TempDir tmp;
  FillAndClose(tmp.path());
  fs::resize_file(tmp / "batchd.db", 40);
  auto store = Store::Open(tmp.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store.status().message(), "database '" + tmp.path() +
                                          "/batchd.db' is truncated: the file has 40 bytes, less than an SQLite "
                                          "header; restore it from a backup");
}

// Overwrites the middle of the file (b-tree pages of runs/instances) with garbage, leaving
// the header intact and the size unchanged; returns the damaged page's number.
uint64_t DamageMiddlePage(const std::string& db) {
  const auto size = fs::file_size(db);
  std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(size / 2 / kPageSize * kPageSize));  // the start of a page
  std::string junk(kPageSize, '\xA5');
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  return size / 2 / kPageSize + 1;
}

// What the lock file holds after a process using the store died without closing it.
void LeaveAsIfKilled(const TempDir& tmp) {
  std::ofstream(tmp / "batchd.lock", std::ios::trunc) << "4242\n";
}

TEST(StoreOpenTest, CleanlyClosedStoreIsNotScannedOnOpen) {
  TempDir tmp;
  FillAndClose(tmp.path());
  EXPECT_EQ(ReadFile(tmp / "batchd.lock"), "closed\n");
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->integrity_checked(), "");
  EXPECT_EQ(ReadFile(tmp / "batchd.lock"), std::to_string(::getpid()) + "\n") << "the holder's pid while open";
}

TEST(StoreOpenTest, StoreLeftOpenByAKilledProcessIsCheckedOnOpen) {
  TempDir tmp;
  FillAndClose(tmp.path());
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = Store::Open(tmp.path());
    ::_exit(store.ok() ? 0 : 1);  // no destructor: as if killed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(ReadFile(tmp / "batchd.lock"), std::to_string(child) + "\n");
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->integrity_checked(), "unclean shutdown");
  }
  auto again = OpenOrDie(tmp.path());
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->integrity_checked(), "") << "closed cleanly since";
}

TEST(StoreOpenTest, DamagedPageFailsTheIntegrityCheckAfterAnUncleanShutdown) {
  TempDir tmp;
  FillAndClose(tmp.path());
  const uint64_t page = DamageMiddlePage(tmp / "batchd.db");
  LeaveAsIfKilled(tmp);
  for (int attempt = 0; attempt < 2; ++attempt) {  // a failed open does not mark it clean
    auto store = Store::Open(tmp.path());
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
    // The detail in parentheses is SQLite's own first finding (SQLite 3.40).
    EXPECT_EQ(store.status().message(), "database '" + tmp.path() + "/batchd.db' is corrupt (integrity check: Page " +
                                            std::to_string(page) +
                                            ": btreeInitPage() returns error code 11); restore it from a backup");
  }
}

TEST(StoreOpenTest, CheckIntegrityFindsDamageInACleanlyClosedStore) {
  TempDir tmp;
  FillAndClose(tmp.path());
  EXPECT_TRUE(Store::CheckIntegrity(tmp.path()).ok());
  {
    auto open = OpenOrDie(tmp.path());  // a daemon using the store does not stop the check
    ASSERT_NE(open, nullptr);
    EXPECT_TRUE(Store::CheckIntegrity(tmp.path()).ok());
  }
  const uint64_t page = DamageMiddlePage(tmp / "batchd.db");
  Status st = Store::CheckIntegrity(tmp.path());
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_TRUE(st.message().starts_with("database '" + tmp.path() +
                                       "/batchd.db' is corrupt; restore it from a backup. Findings:\n  "))
      << st.message();
  EXPECT_NE(st.message().find("Page " + std::to_string(page) + ": btreeInitPage() returns error code 11"),
            std::string::npos)
      << st.message();
  Status missing = Store::CheckIntegrity(tmp / "nowhere");
  EXPECT_EQ(missing.code(), StatusCode::kIoError);
  EXPECT_EQ(missing.message(), "cannot read database '" + tmp / "nowhere" + "/batchd.db': No such file or directory");
}

TEST(StoreOpenTest, SqliteDatabaseOfAnotherApplicationIsNotABatchdDatabase) {
  TempDir tmp;
  ASSERT_TRUE(ExecSql(tmp / "batchd.db", "CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('soup')").ok());
  auto store = Store::Open(tmp.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store.status().message(), "database '" + tmp.path() +
                                          "/batchd.db' is not a batchd database (it has tables but no schema "
                                          "version); use another data directory");
  // Nothing was added to somebody else's database.
  EXPECT_EQ(QueryInt(tmp / "batchd.db", "SELECT COUNT(*) FROM sqlite_schema"), 1);
}

TEST(StoreOpenTest, NewerSchemaVersionIsRefused) {
  TempDir tmp;
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
  }
  ASSERT_TRUE(ExecSql(tmp / "batchd.db", "UPDATE schema_version SET version = " + std::to_string(kSchemaVersion + 1)).ok());
  auto store = Store::Open(tmp.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store.status().message(), "database '" + tmp.path() +
                                          "/batchd.db' has schema version " + std::to_string(kSchemaVersion + 1) +
                                          ", newer than this batchd supports (" +
                                          std::to_string(kSchemaVersion) +
                                          "); upgrade batchd or use another data directory");
  EXPECT_EQ(QueryInt(tmp / "batchd.db", "SELECT version FROM schema_version"), kSchemaVersion + 1) << "left untouched";
}

TEST(StoreOpenTest, NegativeSchemaVersionIsCorruption) {
  TempDir tmp;
  ASSERT_TRUE(ExecSql(tmp / "batchd.db", "CREATE TABLE schema_version (version INTEGER NOT NULL); "
                                         "INSERT INTO schema_version VALUES (-3)")
                  .ok());
  auto store = Store::Open(tmp.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store.status().message(), "database '" + tmp.path() +
                                          "/batchd.db' has an invalid schema version -3; restore it from a backup");
}

// --- Migrations ---

const char* const kTables[] = {"dag_versions", "dags", "runs", "task_instances", "attempts", "idempotency_keys",
                               "trigger_files", "audit"};

// Every table and index with its columns, keys, clustering and partial-index condition,
// independent of how the DDL was spelled (a renamed table's text is quoted, for one).
std::string SchemaFingerprint(const std::string& db_path) {
  auto db = Database::Open(db_path);
  EXPECT_TRUE(db.ok());
  auto rows = [&](const std::string& sql) {
    std::string out;
    auto s = (*db)->Prepare(sql);
    EXPECT_TRUE(s.ok()) << sql;
    if (!s.ok()) return out;
    for (;;) {
      auto row = (*s)->Step();
      if (!row.ok() || !*row) break;
      for (int c = 0; c < (*s)->ColumnCount(); ++c) out += (*s)->Text(c) + "|";
      out += "\n";
    }
    (*s)->Reset();
    return out;
  };
  std::string fp;
  const std::string objects = rows("SELECT type, name, tbl_name FROM sqlite_schema ORDER BY name");
  fp += objects;
  std::istringstream lines(objects);
  for (std::string line; std::getline(lines, line);) {
    const std::string type = line.substr(0, line.find('|'));
    std::string name = line.substr(type.size() + 1);
    name = name.substr(0, name.find('|'));
    if (type == "table") {
      fp += rows("SELECT * FROM pragma_table_xinfo('" + name + "')");
      fp += rows("SELECT wr, strict FROM pragma_table_list WHERE name = '" + name + "'");
      fp += rows("SELECT \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list('" + name + "')");
      fp += rows("SELECT name, \"unique\", origin, partial FROM pragma_index_list('" + name + "') ORDER BY name");
    } else if (type == "index") {
      fp += rows("SELECT * FROM pragma_index_xinfo('" + name + "')");
      fp += rows("SELECT substr(sql, instr(sql, ' WHERE ')) FROM sqlite_schema WHERE name = '" + name +
                 "' AND sql LIKE '% WHERE %'");
    }
  }
  return fp;
}

void ExpectCurrentSchema(const std::string& db_path) {
  EXPECT_EQ(QueryInt(db_path, "SELECT version FROM schema_version"), kSchemaVersion);
  EXPECT_EQ(QueryInt(db_path, "SELECT COUNT(*) FROM schema_version"), 1);
  for (const char* table : kTables) {
    EXPECT_EQ(QueryInt(db_path, std::string("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = '") +
                                    table + "'"),
              1)
        << table;
  }
}

TEST(StoreOpenTest, MigratesAnEmptyFileFromVersionZeroToCurrent) {
  TempDir tmp;
  WriteFile(tmp / "batchd.db", "");
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateRun(MakeRun("r1", "billing", "k1")).ok());
  }
  ExpectCurrentSchema(tmp / "batchd.db");
}

TEST(StoreOpenTest, MigratesAnEmptySchemaVersionTableFromVersionZero) {
  TempDir tmp;
  ASSERT_TRUE(ExecSql(tmp / "batchd.db", "CREATE TABLE schema_version (version INTEGER NOT NULL)").ok());
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
  }
  ExpectCurrentSchema(tmp / "batchd.db");
}

TEST(StoreOpenTest, ReopeningACurrentDatabaseMigratesNothing) {
  TempDir tmp;
  { ASSERT_NE(OpenOrDie(tmp.path()), nullptr); }
  const int64_t schema_cookie = QueryInt(tmp / "batchd.db", "PRAGMA schema_version");
  { ASSERT_NE(OpenOrDie(tmp.path()), nullptr); }
  EXPECT_EQ(QueryInt(tmp / "batchd.db", "PRAGMA schema_version"), schema_cookie) << "no DDL ran on reopen";
  ExpectCurrentSchema(tmp / "batchd.db");
}

// What version 8 added, to turn a file back into version 7.
constexpr const char* kDropVersion8 = "DROP INDEX instances_attention; ";

// What versions 7 and 8 added, to turn a file back into version 6.
constexpr const char* kDropVersion7 = "DROP INDEX instances_attention; DROP INDEX runs_queued; DROP INDEX instances_by_run; ";

// What versions 6 to 8 added, to turn a file back into version 5.
constexpr const char* kDropVersion6 =
    "DROP INDEX instances_attention; DROP INDEX runs_queued; DROP INDEX instances_by_run; ALTER TABLE attempts DROP COLUMN dag_hash; "
    "ALTER TABLE task_instances DROP COLUMN force; ";

// What versions 5 to 8 added, to turn a file back into version 4.
constexpr const char* kDropVersion5 =
    "DROP INDEX instances_attention; DROP INDEX runs_queued; DROP INDEX instances_by_run; ALTER TABLE attempts DROP COLUMN dag_hash; ALTER TABLE task_instances DROP COLUMN force; "
    "DROP TRIGGER count_run_endings; DROP TRIGGER count_instance_endings; DROP TRIGGER count_idempotent_skips; "
    "DROP TRIGGER count_instances_born_ended; DROP TRIGGER count_attempt_endings; "
    "DROP TRIGGER count_attempts_born_ended; DROP TRIGGER count_slo_misses; "
    "DROP TABLE metric_counts; DROP TABLE dag_health; DROP TABLE slo_misses; ";

TEST(StoreOpenTest, MigratesVersionOneKeepingIdempotencyKeys) {
  TempDir tmp;
  const std::string db = tmp / "batchd.db";
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->RecordKeySuccess("billing", "billing/charge/eu/2026-01-01", "run1", AtMs(7)).ok());
  }
  // Turn the file back into what version 1 shipped.
  ASSERT_TRUE(ExecSql(db, std::string(kDropVersion5) + "DROP INDEX instances_failed; "
                          "CREATE INDEX instances_by_state ON task_instances (state); "
                          "CREATE TABLE k1 (dag TEXT NOT NULL, key TEXT NOT NULL, run_id TEXT NOT NULL, "
                          "succeeded_at INTEGER NOT NULL, PRIMARY KEY (dag, key)); "
                          "INSERT INTO k1 SELECT * FROM idempotency_keys; DROP TABLE idempotency_keys; "
                          "ALTER TABLE k1 RENAME TO idempotency_keys; "
                          "CREATE INDEX attempts_running ON attempts (outcome) WHERE outcome = 'running'; "
                          "DROP TABLE trigger_files; "
                          "UPDATE schema_version SET version = 1")
                  .ok());
  ASSERT_EQ(QueryInt(db, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'instances_by_state'"), 1);
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    auto done = store->KeySucceeded("billing", "billing/charge/eu/2026-01-01");
    ASSERT_TRUE(done.ok()) << done.status().ToString();
    EXPECT_TRUE(*done) << "a key that succeeded before the upgrade still skips";
    EXPECT_FALSE(*store->KeySucceeded("billing", "billing/charge/us/2026-01-01"));
  }
  ExpectCurrentSchema(db);
  EXPECT_EQ(QueryInt(db, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'instances_by_state'"), 0);
  EXPECT_EQ(QueryInt(db, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'instances_failed'"), 1);
  EXPECT_EQ(QueryInt(db, "SELECT COUNT(*) FROM pragma_table_list WHERE name = 'idempotency_keys' AND wr = 1"), 1)
      << "clustered on (dag, key)";
  EXPECT_EQ(QueryInt(db, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'attempts_running'"), 0);

  // What the migrations built is what a new database gets in one step.
  TempDir fresh;
  { ASSERT_NE(OpenOrDie(fresh.path()), nullptr); }
  EXPECT_EQ(SchemaFingerprint(db), SchemaFingerprint(fresh / "batchd.db"));
}

TEST(StoreOpenTest, MigratesVersionTwoAndRecoveryStillFindsRunningAttempts) {
  TempDir tmp;
  const std::string db = tmp / "batchd.db";
  int64_t instance_id = 0;
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateRun(MakeRun("r1", "billing", "k1", 1000, RunState::kRunning)).ok());
    std::vector<InstanceRecord> instances{MakeInstance("r1", "extract")};
    ASSERT_TRUE(store->InsertInstances(instances).ok());
    instance_id = instances[0].id;
    AttemptRecord a = MakeAttempt(instance_id, 1);
    ASSERT_TRUE(store->InsertAttempt(a).ok());
  }
  ASSERT_TRUE(ExecSql(db, std::string(kDropVersion5) +
                              "CREATE INDEX attempts_running ON attempts (outcome) WHERE outcome = 'running'; "
                              "DROP TABLE trigger_files; "
                              "UPDATE schema_version SET version = 2")
                  .ok());
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  ExpectCurrentSchema(db);
  EXPECT_EQ(QueryInt(db, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'attempts_running'"), 0);
  auto lost = store->MarkRunningAttemptsLost(AtMs(9000));
  ASSERT_TRUE(lost.ok()) << lost.status().ToString();
  EXPECT_EQ(*lost, std::vector<int64_t>{instance_id});
}

// Version 3 had no ledger: a file had fired when a run with its key existed. Upgrading
// finds those files through their runs, so that none fires again.
TEST(StoreOpenTest, MigratesVersionThreeRecordingTheFilesItsRunsFiredFor) {
  TempDir tmp;
  const std::string db = tmp / "batchd.db";
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    // Run keys as version 3's scheduler made them: <dag>@file:<path>:<sec>.<nsec>:<size>.
    // The path holds ':' and 'é', and one run's file has a one-digit nanosecond part.
    RunRecord a = MakeRun("r1", "etl", "etl@file:/in/a:b \xc3\xa9.csv:1764000000.123456789:42", 1000);
    a.trigger = "file";
    a.params_json = R"({"trigger_file":"/in/a:b \u00e9.csv"})";
    RunRecord b = MakeRun("r2", "etl", "etl@file:/in/c.csv:1764000005.7:0", 2000, RunState::kSuccess);
    b.trigger = "file";
    b.params_json = R"({"trigger_file":"/in/c.csv"})";
    RunRecord manual = MakeRun("r3", "etl", "etl@2026-01-01T00:00:00+00:00", 3000);
    RunRecord odd = MakeRun("r4", "etl", "etl@file:elsewhere", 4000);  // not a key it made
    odd.trigger = "file";
    odd.params_json = "not json";
    for (const auto& r : {a, b, manual, odd}) ASSERT_TRUE(store->CreateRun(r).ok()) << r.run_id;
  }
  ASSERT_TRUE(ExecSql(db, std::string(kDropVersion5) + "DROP TABLE trigger_files; UPDATE schema_version SET version = 3").ok());
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    auto listed = store->ListTriggerFiles("etl");
    ASSERT_TRUE(listed.ok()) << listed.status().ToString();
    ASSERT_EQ(listed->size(), 2u);
    EXPECT_EQ((*listed)[0].path, "/in/a:b \xc3\xa9.csv");
    EXPECT_EQ((*listed)[0].size, 42);
    EXPECT_EQ((*listed)[0].mtime_ns, 1'764'000'000'123'456'789);
    EXPECT_EQ((*listed)[0].run_id, "r1");
    EXPECT_EQ((*listed)[0].fired_at, AtMs(1000));
    EXPECT_EQ((*listed)[1].path, "/in/c.csv");
    EXPECT_EQ((*listed)[1].size, 0);
    EXPECT_EQ((*listed)[1].mtime_ns, 1'764'000'005'000'000'007);
    EXPECT_EQ((*listed)[1].run_id, "r2");
  }
  ExpectCurrentSchema(db);
  TempDir fresh;
  { ASSERT_NE(OpenOrDie(fresh.path()), nullptr); }
  EXPECT_EQ(SchemaFingerprint(db), SchemaFingerprint(fresh / "batchd.db"));
}

// Before version 6 an attempt always ran its run's DAG version: the upgrade records that
// version on every stored attempt.
TEST(StoreOpenTest, MigratesVersionFiveGivingEachAttemptItsRunsVersion) {
  TempDir tmp;
  const std::string db = tmp / "batchd.db";
  int64_t first = 0, second = 0;
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    RunRecord r1 = MakeRun("r1", "billing", "k1", 1000, RunState::kRunning);
    r1.dag_hash = "hash-one";
    RunRecord r2 = MakeRun("r2", "billing", "k2", 2000, RunState::kRunning);
    r2.dag_hash = "hash-two";
    ASSERT_TRUE(store->CreateRun(r1).ok());
    ASSERT_TRUE(store->CreateRun(r2).ok());
    std::vector<InstanceRecord> instances{MakeInstance("r1", "extract"), MakeInstance("r2", "extract")};
    ASSERT_TRUE(store->InsertInstances(instances).ok());
    first = instances[0].id;
    second = instances[1].id;
    for (int64_t id : {first, second}) {
      AttemptRecord a = MakeAttempt(id, 1);
      ASSERT_TRUE(store->InsertAttempt(a).ok());
    }
  }
  ASSERT_TRUE(ExecSql(db, std::string(kDropVersion6) + "UPDATE schema_version SET version = 5").ok());
  ASSERT_EQ(QueryInt(db, "SELECT COUNT(*) FROM pragma_table_info('attempts') WHERE name = 'dag_hash'"), 0);
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    auto a1 = store->ListAttempts(first);
    auto a2 = store->ListAttempts(second);
    ASSERT_TRUE(a1.ok() && a2.ok());
    ASSERT_EQ(a1->size(), 1u);
    ASSERT_EQ(a2->size(), 1u);
    EXPECT_EQ((*a1)[0].dag_hash, "hash-one");
    EXPECT_EQ((*a2)[0].dag_hash, "hash-two");
  }
  ExpectCurrentSchema(db);
  TempDir fresh;
  { ASSERT_NE(OpenOrDie(fresh.path()), nullptr); }
  EXPECT_EQ(SchemaFingerprint(db), SchemaFingerprint(fresh / "batchd.db"));
}

TEST(StoreOpenTest, MigratesVersionSixIndexingTheQueuedRuns) {
  TempDir tmp;
  const std::string db = tmp / "batchd.db";
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateRun(MakeRun("r1", "billing", "k1", 2000)).ok());
    ASSERT_TRUE(store->CreateRun(MakeRun("r2", "billing", "k2", 1000)).ok());
    ASSERT_TRUE(store->CreateRun(MakeRun("r3", "reports", "k3", 1500, RunState::kSuccess)).ok());
  }
  ASSERT_TRUE(ExecSql(db, std::string(kDropVersion7) + "UPDATE schema_version SET version = 6").ok());
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->integrity_checked(), "upgrade");
    auto dags = store->DagsWithQueuedRuns();
    ASSERT_TRUE(dags.ok());
    EXPECT_EQ(*dags, std::vector<std::string>{"billing"});
    auto queued = store->ListQueuedRuns("billing", 5);
    ASSERT_TRUE(queued.ok());
    ASSERT_EQ(queued->size(), 2u);
    EXPECT_EQ((*queued)[0].run_id, "r2");
    EXPECT_EQ((*queued)[1].run_id, "r1");
  }
  EXPECT_EQ(QueryInt(db, "SELECT version FROM schema_version"), kSchemaVersion);
  ExpectCurrentSchema(db);
  auto reopened = OpenOrDie(tmp.path());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->integrity_checked(), "") << "checked once, when upgraded";
}

TEST(StoreOpenTest, MigratesVersionSevenIndexingTheInstancesThatNeedAttention) {
  TempDir tmp;
  const std::string db = tmp / "batchd.db";
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateRun(MakeRun("r1", "billing", "k1")).ok());
    std::vector<InstanceRecord> instances{MakeInstance("r1", "a"), MakeInstance("r1", "b"), MakeInstance("r1", "c"),
                                          MakeInstance("r1", "d")};
    instances[0].state = InstanceState::kRetryWait;
    instances[1].state = InstanceState::kRunning;
    instances[2].state = InstanceState::kSuccess;
    instances[3].state = InstanceState::kFailed;
    ASSERT_TRUE(store->InsertInstances(instances).ok());
  }
  ASSERT_TRUE(ExecSql(db, std::string(kDropVersion8) + "UPDATE schema_version SET version = 7").ok());
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->integrity_checked(), "upgrade");
    Store::InstanceFilter attention;
    attention.states = {InstanceState::kFailed, InstanceState::kRetryWait};
    auto page = store->ListInstancePage("r1", attention);
    ASSERT_TRUE(page.ok()) << page.status().message();
    ASSERT_EQ(page->size(), 2u);
    EXPECT_EQ((*page)[0].task, "a");
    EXPECT_EQ((*page)[1].task, "d");
    attention.states = {InstanceState::kFailed};
    attention.after_id = (*page)[0].id;
    page = store->ListInstancePage("r1", attention);
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page->size(), 1u);
    EXPECT_EQ((*page)[0].task, "d");
    attention.states = {InstanceState::kRunning};  // not in the index: the run's rows
    attention.after_id = 0;
    page = store->ListInstancePage("r1", attention);
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page->size(), 1u);
    EXPECT_EQ((*page)[0].task, "b");
  }
  EXPECT_EQ(QueryInt(db, "SELECT version FROM schema_version"), 8);
  ExpectCurrentSchema(db);
  // SQLite reads it through the small index, not the run's rows.
  EXPECT_EQ(QueryInt(db, "SELECT COUNT(*) FROM task_instances INDEXED BY instances_attention "
                         "WHERE run_id = 'r1' AND state IN ('failed', 'retry_wait')"),
            2);
}

TEST(StoreOpenTest, ReopenAfterCloseKeepsEverything) {
  TempDir tmp;
  int64_t instance_id = 0;
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->PutDagVersion({"billing", "h1", "dag: billing\n", "/dags/billing.yaml"}).ok());
    ASSERT_TRUE(store->SetCurrentDag("billing", "h1", "file", "/dags/billing.yaml", AtMs(5)).ok());
    ASSERT_TRUE(store->CreateRun(MakeRun("r1", "billing", "k1")).ok());
    std::vector<InstanceRecord> instances{MakeInstance("r1", "extract")};
    ASSERT_TRUE(store->InsertInstances(instances).ok());
    instance_id = instances[0].id;
    AttemptRecord a = MakeAttempt(instance_id, 1);
    ASSERT_TRUE(store->InsertAttempt(a).ok());
    ASSERT_TRUE(store->RecordKeySuccess("billing", "k", "r1", AtMs(9)).ok());
    ASSERT_TRUE(store->Audit(1000, "submit", "billing", "{}", AtMs(7)).ok());
  }
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->GetDagVersion("billing", "h1").ok());
  auto dag = store->GetDag("billing");
  ASSERT_TRUE(dag.ok());
  EXPECT_TRUE(dag->has_value());
  auto run = store->GetRun("r1");
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(run->has_value());
  EXPECT_EQ((*run)->run_key, "k1");
  auto instances = store->ListInstances("r1");
  ASSERT_TRUE(instances.ok());
  ASSERT_EQ(instances->size(), 1u);
  EXPECT_EQ((*instances)[0].id, instance_id);
  auto attempts = store->ListAttempts(instance_id);
  ASSERT_TRUE(attempts.ok());
  EXPECT_EQ(attempts->size(), 1u);
  EXPECT_TRUE(*store->KeySucceeded("billing", "k"));
  EXPECT_EQ(store->ListAudit(10)->size(), 1u);
}

// --- Durability ---

// A child process commits a batch, starts another it never commits, and is killed with
// SIGKILL mid-transaction. The parent reopens: the committed batch is there (recovered
// from the WAL, which was never checkpointed), the uncommitted one is not, and the
// kernel released the dead child's lock.
void CommittedBatchSurvivesSigkillAndUncommittedOneDoesNot(Store::SyncMode mode) {
  TempDir tmp;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    auto report = [&](char c) {
      if (::write(ready[1], &c, 1) != 1) ::_exit(2);
    };
    auto opened = Store::Open(tmp.path(), mode);
    if (!opened.ok()) report('o');
    Store& store = **opened;
    bool ok = store.Begin().ok() && store.CreateRun(MakeRun("committed", "billing", "k1")).ok();
    std::vector<InstanceRecord> instances{MakeInstance("committed", "extract"), MakeInstance("committed", "load")};
    ok = ok && store.InsertInstances(instances).ok();
    AttemptRecord attempt = MakeAttempt(instances[0].id, 1);
    ok = ok && store.InsertAttempt(attempt).ok() && store.Commit().ok();
    if (!ok) report('c');
    report('1');  // committed
    ok = store.Begin().ok() && store.CreateRun(MakeRun("uncommitted", "billing", "k2")).ok();
    if (!ok) report('u');
    report('2');  // written, not committed
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c1 = 0, c2 = 0;
  ASSERT_EQ(::read(ready[0], &c1, 1), 1);
  ASSERT_EQ(c1, '1');
  ASSERT_EQ(::read(ready[0], &c2, 1), 1);
  ASSERT_EQ(c2, '2');
  ::close(ready[0]);
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ASSERT_TRUE(fs::exists(tmp / "batchd.db-wal"));
  EXPECT_GT(fs::file_size(tmp / "batchd.db-wal"), 0u) << "the committed batch lives in the WAL";

  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  auto committed = store->GetRun("committed");
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  ASSERT_TRUE(committed->has_value());
  EXPECT_EQ((*committed)->run_key, "k1");
  auto instances = store->ListInstances("committed");
  ASSERT_TRUE(instances.ok());
  ASSERT_EQ(instances->size(), 2u);
  auto lost = store->MarkRunningAttemptsLost(AtMs(2'000'000'000'000));
  ASSERT_TRUE(lost.ok());
  EXPECT_EQ(*lost, std::vector<int64_t>{(*instances)[0].id});
  auto uncommitted = store->GetRun("uncommitted");
  ASSERT_TRUE(uncommitted.ok());
  EXPECT_FALSE(uncommitted->has_value());
  EXPECT_EQ(ReadFile(tmp / "batchd.lock"), std::to_string(::getpid()) + "\n");
}

TEST(StoreOpenTest, CommittedBatchSurvivesSigkillAndUncommittedOneDoesNot) {
  CommittedBatchSurvivesSigkillAndUncommittedOneDoesNot(Store::SyncMode::kEveryCommit);
}

TEST(StoreOpenTest, CommittedBatchSurvivesSigkillBeforeFlushInOnFlushMode) {
  CommittedBatchSurvivesSigkillAndUncommittedOneDoesNot(Store::SyncMode::kOnFlush);
}

TEST(StoreOpenTest, FlushedStoreLeavesItsWalForTheNextOpenInsteadOfCheckpointing) {
  TempDir tmp;
  {
    auto opened = Store::Open(tmp.path(), Store::SyncMode::kOnFlush);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    ASSERT_TRUE((*opened)->Begin().ok());
    ASSERT_TRUE((*opened)->CreateRun(MakeRun("r1", "billing", "k1")).ok());
    ASSERT_TRUE((*opened)->Commit().ok());
    ASSERT_TRUE((*opened)->RecordKeySuccess("billing", "k", "r1", AtMs(9)).ok());  // autocommit
    ASSERT_TRUE((*opened)->Flush().ok());
  }
  ASSERT_TRUE(fs::exists(tmp / "batchd.db-wal"));
  EXPECT_GT(fs::file_size(tmp / "batchd.db-wal"), 0u) << "closing after Flush() does not checkpoint";
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  auto run = store->GetRun("r1");
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(run->has_value());
  EXPECT_TRUE(*store->KeySucceeded("billing", "k"));
}

// `batchd run`: Flush(), then _exit without destructors. `instances_per_run` sizes the WAL.
pid_t FlushAndExitInChild(const std::string& dir, int runs, int instances_per_run) {
  pid_t child = ::fork();
  if (child != 0) return child;
  auto store = Store::Open(dir, Store::SyncMode::kOnFlush);
  if (!store.ok()) ::_exit(1);
  for (int r = 0; r < runs; ++r) {
    std::string id = "run" + std::to_string(r);
    if (!(*store)->Begin().ok() || !(*store)->CreateRun(MakeRun(id, "billing", "key" + std::to_string(r), r)).ok())
      ::_exit(2);
    std::vector<InstanceRecord> instances;
    for (int p = 0; p < instances_per_run; ++p)
      instances.push_back(MakeInstance(id, "extract", "partition-with-a-long-name-" + std::to_string(p)));
    if (!(*store)->InsertInstances(instances).ok() || !(*store)->Commit().ok()) ::_exit(3);
  }
  ::_exit((*store)->Flush().ok() ? 0 : 4);
}

void ExpectChildExitedZero(pid_t child) {
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(StoreOpenTest, FlushMarksTheStoreClosedForAProcessThatExitsWithoutClosingIt) {
  TempDir tmp;
  ExpectChildExitedZero(FlushAndExitInChild(tmp.path(), 1, 10));
  EXPECT_EQ(ReadFile(tmp / "batchd.lock"), "closed\n");
  EXPECT_GT(fs::file_size(tmp / "batchd.db-wal"), 0u) << "a small WAL is left for the next open";
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->integrity_checked(), "");
  EXPECT_TRUE(store->GetRun("run0")->has_value());
}

TEST(StoreOpenTest, FlushCopiesALargeWalBackAndTruncatesIt) {
  // The next open would otherwise read all of it to rebuild the WAL index.
  TempDir tmp;
  ExpectChildExitedZero(FlushAndExitInChild(tmp.path(), 40, 2000));
  EXPECT_EQ(ReadFile(tmp / "batchd.lock"), "closed\n");
  EXPECT_EQ(fs::file_size(tmp / "batchd.db-wal"), 0u);
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->integrity_checked(), "");
  EXPECT_TRUE(store->GetRun("run39")->has_value());
  auto counts = store->CountInstances("run39");
  ASSERT_TRUE(counts.ok());
  int64_t total = 0;
  for (const auto& [state, n] : (*counts)["extract"]) total += n;
  EXPECT_EQ(total, 2000);
}

TEST(StoreOpenTest, OnFlushStoreClosedWithoutFlushCheckpointsAsUsual) {
  TempDir tmp;
  {
    auto opened = Store::Open(tmp.path(), Store::SyncMode::kOnFlush);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    ASSERT_TRUE((*opened)->CreateRun(MakeRun("r1", "billing", "k1")).ok());
  }
  EXPECT_FALSE(fs::exists(tmp / "batchd.db-wal"));
  auto store = OpenOrDie(tmp.path());
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->GetRun("r1")->has_value());
}

}  // namespace
}  // namespace batchd::store
