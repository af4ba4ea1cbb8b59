// The SQLite adapter: error classification, bind errors, statement caching and resets.

#include "store/sqlite.h"

#include "store/store_test_util.h"

namespace batchd::store {
namespace {

using namespace testing;  // NOLINT

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Open(tmp_ / "test.db");
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
    ASSERT_TRUE(db_->Exec("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; "
                          "CREATE TABLE parent (id INTEGER PRIMARY KEY); "
                          "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL, "
                          "  p INTEGER REFERENCES parent (id), UNIQUE (v)); "
                          "INSERT INTO parent VALUES (1)")
                    .ok());
  }
  TempDir tmp_;
  std::unique_ptr<Database> db_;
};

TEST_F(SqliteTest, ConstraintViolationsAreClassified) {
  ASSERT_TRUE(db_->Exec("INSERT INTO t VALUES ('a', 'x', 1)").ok());
  Status pk = db_->Exec("INSERT INTO t VALUES ('a', 'y', 1)");
  EXPECT_EQ(pk.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(pk.message(), "UNIQUE constraint failed: t.k");
  Status unique = db_->Exec("INSERT INTO t VALUES ('b', 'x', 1)");
  EXPECT_EQ(unique.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(unique.message(), "UNIQUE constraint failed: t.v");
  Status fk = db_->Exec("INSERT INTO t VALUES ('c', 'z', 2)");
  EXPECT_EQ(fk.code(), StatusCode::kNotFound);
  EXPECT_EQ(fk.message(), "FOREIGN KEY constraint failed");
  Status not_null = db_->Exec("INSERT INTO t VALUES ('d', NULL, 1)");
  EXPECT_EQ(not_null.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(not_null.message(), "NOT NULL constraint failed: t.v");
}

TEST_F(SqliteTest, StatementErrorsAreClassifiedLikeExecErrors) {
  ASSERT_TRUE(db_->Exec("INSERT INTO t VALUES ('a', 'x', 1)").ok());
  auto s = db_->Prepare("INSERT INTO t VALUES (?, ?, ?)");
  ASSERT_TRUE(s.ok());
  Status st = (*s)->Bind(1, "a").Bind(2, "y").Bind(3, int64_t{1}).Run();
  EXPECT_EQ(st.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(st.message(), "UNIQUE constraint failed: t.k");
  // The failed statement was reset: it runs again with new bindings.
  EXPECT_TRUE((*s)->Bind(1, "b").Bind(2, "y").Bind(3, int64_t{1}).Run().ok());
}

TEST_F(SqliteTest, BadSqlIsAnInternalError) {
  auto s = db_->Prepare("SELEC 1");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInternal);
  EXPECT_EQ(s.status().message(), "database '" + tmp_.path() + "/test.db': near \"SELEC\": syntax error");
  Status missing = db_->Exec("SELECT * FROM nope");
  EXPECT_EQ(missing.code(), StatusCode::kInternal);
  EXPECT_EQ(missing.message(), "database '" + tmp_.path() + "/test.db': no such table: nope");
}

TEST_F(SqliteTest, BindErrorIsReportedByStep) {
  auto s = db_->Prepare("SELECT ?");
  ASSERT_TRUE(s.ok());
  auto row = (*s)->Bind(1, int64_t{5}).Bind(2, "too many").Step();
  ASSERT_FALSE(row.ok());
  EXPECT_EQ(row.status().code(), StatusCode::kInternal);
  EXPECT_EQ(row.status().message(), "cannot bind parameter 2 of 'SELECT ?': column index out of range");
  // The error does not stick to the cached statement.
  auto again = db_->Prepare("SELECT ?");
  ASSERT_TRUE(again.ok());
  auto ok = (*again)->Bind(1, int64_t{6}).Step();
  ASSERT_TRUE(ok.ok());
  ASSERT_TRUE(*ok);
  EXPECT_EQ((*again)->Int(0), 6);
  (*again)->Reset();
}

TEST_F(SqliteTest, PrepareCachesAndResetsTheStatement) {
  auto a = db_->Prepare("SELECT ?1 IS NULL");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(*(*a)->Bind(1, int64_t{1}).Step());
  EXPECT_EQ((*a)->Int(0), 0);
  auto b = db_->Prepare("SELECT ?1 IS NULL");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b) << "same SQL, same cached statement";
  ASSERT_TRUE(*(*b)->Step());
  EXPECT_EQ((*b)->Int(0), 1) << "bindings were cleared";
  (*b)->Reset();
}

TEST_F(SqliteTest, ColumnAccessorsReadNullsAndValues) {
  auto s = db_->Prepare("SELECT NULL, 42, 2.5, 'text', ''");
  ASSERT_TRUE(s.ok());
  ScopedStatement scope(**s);
  ASSERT_TRUE(*(*s)->Step());
  EXPECT_TRUE((*s)->IsNull(0));
  EXPECT_FALSE((*s)->OptInt(0).has_value());
  EXPECT_FALSE((*s)->OptText(0).has_value());
  EXPECT_EQ((*s)->Text(0), "");
  EXPECT_EQ((*s)->OptInt(1), 42);
  EXPECT_DOUBLE_EQ((*s)->Double(2), 2.5);
  EXPECT_EQ((*s)->OptText(3), "text");
  EXPECT_EQ((*s)->OptText(4), "");
}

TEST_F(SqliteTest, TextWithEmbeddedNulRoundTrips) {
  const std::string value("a\0b", 3);
  auto ins = db_->Prepare("INSERT INTO t (k, v) VALUES ('nul', ?)");
  ASSERT_TRUE(ins.ok());
  ASSERT_TRUE((*ins)->Bind(1, value).Run().ok());
  auto sel = db_->Prepare("SELECT v FROM t WHERE k = 'nul'");
  ASSERT_TRUE(sel.ok());
  ScopedStatement scope(**sel);
  ASSERT_TRUE(*(*sel)->Step());
  EXPECT_EQ((*sel)->Text(0), value);
}

// A SELECT left mid-iteration pins a WAL snapshot and stops a checkpoint from finishing;
// ScopedStatement ends it on scope exit.
TEST_F(SqliteTest, ScopedStatementReleasesTheReadSnapshot) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(db_->Exec("INSERT INTO t (k, v) VALUES ('k" + std::to_string(i) + "', 'v" + std::to_string(i) + "')")
                    .ok());
  }
  auto other = Database::Open(tmp_ / "test.db");
  ASSERT_TRUE(other.ok());
  // PASSIVE: never waits. It copies WAL frames up to the oldest reader's snapshot;
  // returns whether every frame in the log was checkpointed.
  auto checkpoint_complete = [&] {
    auto s = (*other)->Prepare("PRAGMA wal_checkpoint(PASSIVE)");
    EXPECT_TRUE(s.ok());
    auto row = (*s)->Step();
    EXPECT_TRUE(row.ok() && *row);
    bool complete = (*s)->Int(1) == (*s)->Int(2);
    (*s)->Reset();
    return complete;
  };
  {
    auto s = db_->Prepare("SELECT k FROM t");
    ASSERT_TRUE(s.ok());
    ScopedStatement scope(**s);
    ASSERT_TRUE(*(*s)->Step());  // one row read, more pending
    ASSERT_TRUE((*other)->Exec("INSERT INTO t (k, v) VALUES ('late', 'late')").ok());
    EXPECT_FALSE(checkpoint_complete());
  }
  EXPECT_TRUE(checkpoint_complete());
}

TEST(DatabaseTest, OpenInAMissingDirectoryIsAnIoError) {
  TempDir tmp;
  auto db = Database::Open(tmp / "missing/dir/x.db");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), StatusCode::kIoError);
  EXPECT_EQ(db.status().message(), "cannot open database '" + tmp.path() + "/missing/dir/x.db': unable to open database file");
}

// PRAGMA synchronous as SQLite reports it: 1 = NORMAL, 2 = FULL.
int Synchronous(Database& db) {
  auto stmt = db.Prepare("PRAGMA synchronous");
  EXPECT_TRUE(stmt.ok());
  auto row = (*stmt)->Step();
  EXPECT_TRUE(row.ok() && *row);
  int level = static_cast<int>((*stmt)->Int(0));
  (*stmt)->Reset();
  return level;
}

TEST_F(SqliteTest, RelaxedSyncHoldsForTransactionsAndAnyAutocommitWriteRestoresFull) {
  ASSERT_TRUE(db_->Exec("PRAGMA synchronous=FULL").ok());
  ASSERT_TRUE(db_->SetRelaxedSync(true).ok());
  EXPECT_EQ(Synchronous(*db_), 1);
  ASSERT_TRUE(db_->ExecCached("BEGIN IMMEDIATE").ok());
  auto insert = db_->Prepare("INSERT INTO t VALUES (?, ?, 1)");
  ASSERT_TRUE(insert.ok());
  ASSERT_TRUE((*insert)->Bind(1, std::string_view("a")).Bind(2, std::string_view("x")).Run().ok());
  ASSERT_TRUE(db_->ExecCached("COMMIT").ok());
  EXPECT_EQ(Synchronous(*db_), 1) << "reads, BEGIN and COMMIT keep the level";

  // A write outside a transaction is made durable first.
  ASSERT_TRUE((*insert)->Bind(1, std::string_view("b")).Bind(2, std::string_view("y")).Run().ok());
  EXPECT_EQ(Synchronous(*db_), 2);

  // So is anything run through Exec() outside a transaction.
  ASSERT_TRUE(db_->SetRelaxedSync(true).ok());
  ASSERT_TRUE(db_->Exec("INSERT INTO t VALUES ('c', 'z', 1)").ok());
  EXPECT_EQ(Synchronous(*db_), 2);
}

TEST_F(SqliteTest, DeferredSyncsStayRelaxedEvenForAutocommitWritesUntilTheWalIsSynced) {
  ASSERT_TRUE(db_->Exec("PRAGMA journal_mode=WAL").ok());
  ASSERT_TRUE(db_->SyncWal().ok());  // nothing written yet: nothing to sync
  ASSERT_TRUE(db_->DeferSyncs().ok());
  EXPECT_EQ(Synchronous(*db_), 1);
  ASSERT_TRUE(db_->Exec("INSERT INTO t VALUES ('a', 'x', 1)").ok());
  EXPECT_EQ(Synchronous(*db_), 1);
  ASSERT_TRUE(db_->SetRelaxedSync(false).ok());
  EXPECT_EQ(Synchronous(*db_), 1) << "a transaction cannot ask for FULL either";
  ASSERT_TRUE(db_->SyncWal().ok());
}

}  // namespace
}  // namespace batchd::store
