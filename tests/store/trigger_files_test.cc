// The file-trigger ledger: one row per (dag, path, size, mtime_ns) that started a run,
// with the path's exact bytes, kept apart from run history so that retention cannot
// make a file fire again.

#include <set>

#include "store/store_test_util.h"

namespace batchd::store {
namespace {

using namespace testing;  // NOLINT

constexpr int64_t kMtime = 1'764'000'000'123'456'789;

TriggerFile File(const std::string& dag, const std::string& path, int64_t size = 42, int64_t mtime_ns = kMtime,
                 const std::string& run_id = "run1") {
  return TriggerFile{dag, path, size, mtime_ns, run_id, AtMs(1'764'000'001'000)};
}

bool Fired(Store& store, const TriggerFile& f) {
  auto fired = store.TriggerFileFired(f.dag, f.path, f.size, f.mtime_ns);
  EXPECT_TRUE(fired.ok()) << fired.status().ToString();
  return fired.ok() && *fired;
}

class TriggerFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenOrDie(tmp_.path());
    ASSERT_NE(store_, nullptr);
  }
  TempDir tmp_;
  std::unique_ptr<Store> store_;
};

TEST_F(TriggerFilesTest, EachVersionOfAFileIsRecordedOnce) {
  const TriggerFile a = File("etl", "/in/a.csv");
  EXPECT_FALSE(Fired(*store_, a));
  ASSERT_TRUE(store_->RecordTriggerFile(a).ok());
  EXPECT_TRUE(Fired(*store_, a));

  Status again = store_->RecordTriggerFile(File("etl", "/in/a.csv", 42, kMtime, "run2"));
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.message(),
            "cannot record trigger file of DAG 'etl' for run 'run2': this version of the file (size 42, mtime_ns "
            "1764000000123456789) has fired already");

  // Another size, another mtime (by one nanosecond), another path, another DAG: each a
  // version of its own.
  for (const TriggerFile& other : {File("etl", "/in/a.csv", 43), File("etl", "/in/a.csv", 42, kMtime + 1),
                                   File("etl", "/in/b.csv"), File("other", "/in/a.csv")}) {
    EXPECT_FALSE(Fired(*store_, other)) << other.dag << " " << other.path << " " << other.size;
    EXPECT_TRUE(store_->RecordTriggerFile(other).ok());
  }
  auto listed = store_->ListTriggerFiles("etl");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 4u);
  EXPECT_EQ((*listed)[0].path, "/in/a.csv");
  EXPECT_EQ((*listed)[0].size, 42);
  EXPECT_EQ((*listed)[0].mtime_ns, kMtime);
  EXPECT_EQ((*listed)[0].run_id, "run1");
  EXPECT_EQ((*listed)[0].fired_at, AtMs(1'764'000'001'000));
}

TEST_F(TriggerFilesTest, KeepsTheExactBytesOfAPathThatIsNotUtf8) {
  const std::string latin1 = "/in/caf\xe9.csv";   // é in Latin-1: not UTF-8
  const std::string utf8 = "/in/caf\xc3\xa9.csv";  // é in UTF-8
  const std::string nul_free_junk = std::string("/in/\xff\xfe\x80") + "\n.csv";
  for (const auto& path : {latin1, utf8, nul_free_junk}) ASSERT_TRUE(store_->RecordTriggerFile(File("etl", path)).ok());
  EXPECT_TRUE(Fired(*store_, File("etl", latin1)));
  EXPECT_TRUE(Fired(*store_, File("etl", utf8)));
  EXPECT_FALSE(Fired(*store_, File("etl", "/in/caf\xef\xbf\xbd.csv"))) << "not confused with U+FFFD";
  auto listed = store_->ListTriggerFiles("etl");
  ASSERT_TRUE(listed.ok());
  std::set<std::string> paths;
  for (const auto& f : *listed) paths.insert(f.path);
  EXPECT_EQ(paths, (std::set<std::string>{latin1, utf8, nul_free_junk}));
  EXPECT_EQ(QueryInt(tmp_ / "batchd.db", "SELECT COUNT(*) FROM trigger_files WHERE typeof(path) = 'blob'"), 3);
}

TEST_F(TriggerFilesTest, PruningTheRunKeepsItsFileFired) {
  RunRecord run = MakeRun("run1", "etl", "etl@file:/in/a.csv:42:1", 100);
  run.trigger = "file";
  ASSERT_TRUE(store_->CreateRun(run).ok());
  ASSERT_TRUE(store_->RecordTriggerFile(File("etl", "/in/a.csv")).ok());
  ASSERT_TRUE(store_->UpdateRunState("run1", RunState::kSuccess, AtMs(200), AtMs(300)).ok());

  auto pruned = store_->PruneRunsBefore(AtMs(1000));
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  EXPECT_EQ(*pruned, 1);
  EXPECT_FALSE(store_->GetRun("run1")->has_value());
  EXPECT_TRUE(Fired(*store_, File("etl", "/in/a.csv")));
}

TEST_F(TriggerFilesTest, PurgingTheDagForgetsItsFilesOnly) {
  ASSERT_TRUE(store_->PutDagVersion({"etl", "h1", "dag: etl\n", "<submit>"}).ok());
  ASSERT_TRUE(store_->SetCurrentDag("etl", "h1", "submit", "<submit>", AtMs(1)).ok());
  ASSERT_TRUE(store_->RecordTriggerFile(File("etl", "/in/a.csv")).ok());
  ASSERT_TRUE(store_->RecordTriggerFile(File("other", "/in/a.csv")).ok());
  ASSERT_TRUE(store_->SetDagDeleted("etl").ok());
  EXPECT_TRUE(Fired(*store_, File("etl", "/in/a.csv"))) << "delete without --purge keeps the ledger";

  ASSERT_TRUE(store_->PurgeDag("etl").ok());
  EXPECT_FALSE(Fired(*store_, File("etl", "/in/a.csv")));
  EXPECT_TRUE(Fired(*store_, File("other", "/in/a.csv")));
}

TEST_F(TriggerFilesTest, ALedgerRowRolledBackWithItsRunLeavesNeither) {
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->CreateRun(MakeRun("run1", "etl", "etl@file:/in/a.csv:42:1")).ok());
  ASSERT_TRUE(store_->RecordTriggerFile(File("etl", "/in/a.csv")).ok());
  store_->Rollback();
  EXPECT_FALSE(store_->GetRun("run1")->has_value());
  EXPECT_FALSE(Fired(*store_, File("etl", "/in/a.csv")));
}

}  // namespace
}  // namespace batchd::store
