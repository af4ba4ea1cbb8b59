// The Store API: every method round-trips, plus the semantics the engine relies on
// (run key dedupe, idempotency keys, dead letters, lost attempts, group commit, retention).

#include <filesystem>
#include <set>

#include <gmock/gmock.h>

#include "store/store_test_util.h"

namespace batchd::store {
namespace {

using namespace testing;  // NOLINT
namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenOrDie(tmp_.path());
    ASSERT_NE(store_, nullptr);
  }

  // Creates a run (asserting it was new) and returns it.
  RunRecord AddRun(const std::string& id, const std::string& dag, int64_t created_ms,
                   RunState state = RunState::kQueued) {
    RunRecord run = MakeRun(id, dag, "key-" + id, created_ms, state);
    auto created = store_->CreateRun(run);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    EXPECT_TRUE(created.ok() && created->second);
    return run;
  }

  // Inserts instances and returns them with their ids.
  std::vector<InstanceRecord> AddInstances(std::vector<InstanceRecord> instances) {
    Status st = store_->InsertInstances(instances);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return instances;
  }

  void FinishRun(const std::string& id, RunState state, int64_t ended_ms) {
    Status st = store_->UpdateRunState(id, state, AtMs(ended_ms - 1), AtMs(ended_ms));
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  // SQLite's plan for `sql` on this store's file, its steps' details joined by "; ".
  std::string QueryPlan(const std::string& sql) {
    auto db = Database::Open(tmp_ / "batchd.db", /*read_only=*/true);
    EXPECT_TRUE(db.ok());
    if (!db.ok()) return "";
    auto s = (*db)->Prepare("EXPLAIN QUERY PLAN " + sql);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return "";
    std::string plan;
    while (true) {
      auto row = (*s)->Step();
      if (!row.ok() || !*row) break;
      plan += (plan.empty() ? "" : "; ") + (*s)->Text(3);
    }
    (*s)->Reset();
    return plan;
  }

  std::vector<std::string> RunIds(const std::vector<RunRecord>& runs) {
    std::vector<std::string> ids;
    for (const auto& r : runs) ids.push_back(r.run_id);
    return ids;
  }

  // Rows in `table`, through a separate connection (committed data only).
  int64_t Count(const std::string& table) { return QueryInt(tmp_ / "batchd.db", "SELECT COUNT(*) FROM " + table); }

  TempDir tmp_;
  std::unique_ptr<Store> store_;
};

void ExpectSameRun(const RunRecord& a, const RunRecord& b) {
  EXPECT_EQ(a.run_id, b.run_id);
  EXPECT_EQ(a.dag, b.dag);
  EXPECT_EQ(a.dag_hash, b.dag_hash);
  EXPECT_EQ(a.run_key, b.run_key);
  EXPECT_EQ(a.trigger, b.trigger);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.logical_date, b.logical_date);
  EXPECT_EQ(a.interval_start, b.interval_start);
  EXPECT_EQ(a.interval_end, b.interval_end);
  EXPECT_EQ(a.params_json, b.params_json);
  EXPECT_EQ(a.force, b.force);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.started_at, b.started_at);
  EXPECT_EQ(a.ended_at, b.ended_at);
  EXPECT_EQ(a.scheduled_for, b.scheduled_for);
  EXPECT_EQ(a.error, b.error);
}

void ExpectSameInstance(const InstanceRecord& a, const InstanceRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.run_id, b.run_id);
  EXPECT_EQ(a.task, b.task);
  EXPECT_EQ(a.partition, b.partition);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.idempotency_key, b.idempotency_key);
  EXPECT_EQ(a.attempts, b.attempts);
  EXPECT_EQ(a.exit_code, b.exit_code);
  EXPECT_EQ(a.next_attempt_at, b.next_attempt_at);
  EXPECT_EQ(a.started_at, b.started_at);
  EXPECT_EQ(a.ended_at, b.ended_at);
}

void ExpectSameAttempt(const AttemptRecord& a, const AttemptRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.instance_id, b.instance_id);
  EXPECT_EQ(a.number, b.number);
  EXPECT_EQ(a.outcome, b.outcome);
  EXPECT_EQ(a.pid, b.pid);
  EXPECT_EQ(a.started_at, b.started_at);
  EXPECT_EQ(a.ended_at, b.ended_at);
  EXPECT_EQ(a.exit_code, b.exit_code);
  EXPECT_EQ(a.signal, b.signal);
  EXPECT_DOUBLE_EQ(a.cpu_seconds, b.cpu_seconds);
  EXPECT_EQ(a.max_rss_kb, b.max_rss_kb);
  EXPECT_EQ(a.log_path, b.log_path);
  EXPECT_EQ(a.error, b.error);
}

// --- DAGs ---

TEST_F(StoreTest, DagVersionRoundTripsAndPutIsIdempotent) {
  DagVersion v{"billing", "abc123", "dag: billing\ntasks: []\n", "/etc/batchd/dags/billing.yaml"};
  ASSERT_TRUE(store_->PutDagVersion(v).ok());
  ASSERT_TRUE(store_->PutDagVersion(v).ok());
  auto got = store_->GetDagVersion("billing", "abc123");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->dag, "billing");
  EXPECT_EQ(got->hash, "abc123");
  EXPECT_EQ(got->source, v.source);
  EXPECT_EQ(got->source_path, v.source_path);
  EXPECT_EQ(Count("dag_versions"), 1);
}

TEST_F(StoreTest, UnknownDagVersionIsNotFound) {
  ASSERT_TRUE(store_->PutDagVersion({"billing", "abc123", "x", "<submit>"}).ok());
  auto got = store_->GetDagVersion("billing", "fff");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(got.status().message(), "no version fff of DAG 'billing'");
}

TEST_F(StoreTest, SetCurrentDagCreatesTheEntryThenUpdatesItKeepingOperatorState) {
  ASSERT_TRUE(store_->SetCurrentDag("billing", "h1", "file", "/dags/billing.yaml", AtMs(100)).ok());
  auto dag = store_->GetDag("billing");
  ASSERT_TRUE(dag.ok());
  ASSERT_TRUE(dag->has_value());
  EXPECT_EQ((*dag)->name, "billing");
  EXPECT_EQ((*dag)->current_hash, "h1");
  EXPECT_EQ((*dag)->origin, "file");
  EXPECT_EQ((*dag)->source_path, "/dags/billing.yaml");
  EXPECT_FALSE((*dag)->paused);
  EXPECT_FALSE((*dag)->deleted);
  EXPECT_FALSE((*dag)->last_fire.has_value());
  EXPECT_EQ((*dag)->updated_at, AtMs(100));

  ASSERT_TRUE(store_->SetDagPaused("billing", true).ok());
  ASSERT_TRUE(store_->SetLastFire("billing", AtSecs(1'767'225'600)).ok());
  ASSERT_TRUE(store_->SetDagDeleted("billing").ok());
  ASSERT_TRUE(store_->SetCurrentDag("billing", "h2", "submit", "<submit>", AtMs(200)).ok());
  dag = store_->GetDag("billing");
  ASSERT_TRUE(dag.ok() && dag->has_value());
  EXPECT_EQ((*dag)->current_hash, "h2");
  EXPECT_EQ((*dag)->origin, "submit");
  EXPECT_EQ((*dag)->source_path, "<submit>");
  EXPECT_TRUE((*dag)->paused) << "pause is an operator override a new version keeps";
  EXPECT_FALSE((*dag)->deleted) << "a new version revives a deleted DAG";
  EXPECT_EQ((*dag)->last_fire, AtSecs(1'767'225'600));
  EXPECT_EQ((*dag)->updated_at, AtMs(200));
}

TEST_F(StoreTest, GetDagOfUnknownNameIsEmpty) {
  auto dag = store_->GetDag("nope");
  ASSERT_TRUE(dag.ok());
  EXPECT_FALSE(dag->has_value());
}

TEST_F(StoreTest, ListDagsIsSortedByNameAndHidesDeletedUnlessAsked) {
  ASSERT_TRUE(store_->SetCurrentDag("zeta", "h", "file", "z.yaml", AtMs(1)).ok());
  ASSERT_TRUE(store_->SetCurrentDag("alpha", "h", "file", "a.yaml", AtMs(1)).ok());
  ASSERT_TRUE(store_->SetCurrentDag("mid", "h", "file", "m.yaml", AtMs(1)).ok());
  ASSERT_TRUE(store_->SetDagDeleted("mid").ok());
  auto names = [](const std::vector<DagEntry>& dags) {
    std::vector<std::string> out;
    for (const auto& d : dags) out.push_back(d.name);
    return out;
  };
  auto visible = store_->ListDags();
  ASSERT_TRUE(visible.ok());
  EXPECT_EQ(names(*visible), (std::vector<std::string>{"alpha", "zeta"}));
  auto all = store_->ListDags(true);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(names(*all), (std::vector<std::string>{"alpha", "mid", "zeta"}));
  EXPECT_TRUE((*all)[1].deleted);
}

TEST_F(StoreTest, PauseUnpauseAndLastFireRoundTrip) {
  ASSERT_TRUE(store_->SetCurrentDag("billing", "h", "file", "b.yaml", AtMs(1)).ok());
  ASSERT_TRUE(store_->SetDagPaused("billing", true).ok());
  EXPECT_TRUE((*store_->GetDag("billing"))->paused);
  ASSERT_TRUE(store_->SetDagPaused("billing", false).ok());
  EXPECT_FALSE((*store_->GetDag("billing"))->paused);
  ASSERT_TRUE(store_->SetLastFire("billing", AtSecs(1'700'000'123)).ok());
  EXPECT_EQ((*store_->GetDag("billing"))->last_fire, AtSecs(1'700'000'123));
  EXPECT_EQ(QueryInt(tmp_ / "batchd.db", "SELECT last_fire FROM dags"), 1'700'000'123) << "stored in seconds";
}

TEST_F(StoreTest, ChangingAnUnknownDagIsNotFound) {
  Status paused = store_->SetDagPaused("nope", true);
  EXPECT_EQ(paused.code(), StatusCode::kNotFound);
  EXPECT_EQ(paused.message(), "cannot pause DAG 'nope': no such DAG");
  EXPECT_EQ(store_->SetDagPaused("nope", false).message(), "cannot unpause DAG 'nope': no such DAG");
  EXPECT_EQ(store_->SetDagDeleted("nope").message(), "cannot delete DAG 'nope': no such DAG");
  EXPECT_EQ(store_->SetLastFire("nope", AtSecs(1)).message(),
            "cannot record the last fire time of DAG 'nope': no such DAG");
}

TEST_F(StoreTest, PurgeDagRemovesEverythingOfThatDagAndNothingElse) {
  for (const std::string dag : {"billing", "other"}) {
    ASSERT_TRUE(store_->PutDagVersion({dag, "h1", "src", "p"}).ok());
    ASSERT_TRUE(store_->PutDagVersion({dag, "h2", "src2", "p"}).ok());
    ASSERT_TRUE(store_->SetCurrentDag(dag, "h2", "file", "p", AtMs(1)).ok());
    for (int r = 0; r < 2; ++r) {
      std::string id = dag + std::to_string(r);
      AddRun(id, dag, 10 + r);
      auto instances = AddInstances({MakeInstance(id, "t", "a"), MakeInstance(id, "t", "b")});
      AttemptRecord a = MakeAttempt(instances[0].id, 1);
      ASSERT_TRUE(store_->InsertAttempt(a).ok());
      fs::create_directories(store_->LogDir() + "/" + id + "/t");
      WriteFile(store_->LogDir() + "/" + id + "/t/a.1.log", "output\n");
    }
    ASSERT_TRUE(store_->RecordKeySuccess(dag, "k", dag + "0", AtMs(5)).ok());
  }
  ASSERT_TRUE(store_->Audit(1000, "submit", "billing", "{}", AtMs(1)).ok());

  ASSERT_TRUE(store_->PurgeDag("billing").ok());

  EXPECT_FALSE(store_->GetDag("billing")->has_value());
  EXPECT_FALSE(store_->GetDagVersion("billing", "h1").ok());
  EXPECT_FALSE(store_->GetRun("billing0")->has_value());
  EXPECT_TRUE(store_->ListInstances("billing0")->empty());
  EXPECT_FALSE(*store_->KeySucceeded("billing", "k"));
  EXPECT_FALSE(fs::exists(store_->LogDir() + "/billing0"));
  EXPECT_FALSE(fs::exists(store_->LogDir() + "/billing1"));
  // The other DAG is untouched; the audit trail is kept.
  EXPECT_TRUE(store_->GetDag("other")->has_value());
  EXPECT_TRUE(store_->GetDagVersion("other", "h1").ok());
  EXPECT_TRUE(store_->GetRun("other1")->has_value());
  EXPECT_EQ(store_->ListInstances("other0")->size(), 2u);
  EXPECT_TRUE(*store_->KeySucceeded("other", "k"));
  EXPECT_TRUE(fs::exists(store_->LogDir() + "/other0/t/a.1.log"));
  EXPECT_EQ(Count("runs"), 2);
  EXPECT_EQ(Count("task_instances"), 4);
  EXPECT_EQ(Count("attempts"), 2);
  EXPECT_EQ(Count("dag_versions"), 2);
  EXPECT_EQ(Count("audit"), 1);
}

TEST_F(StoreTest, PurgeDagRemovesRunsEvenWithoutADagEntry) {
  // `batchd run` creates runs and versions without registering the DAG.
  ASSERT_TRUE(store_->PutDagVersion({"adhoc", "h", "src", "p"}).ok());
  AddRun("r1", "adhoc", 1);
  ASSERT_TRUE(store_->PurgeDag("adhoc").ok());
  EXPECT_EQ(Count("runs"), 0);
  EXPECT_EQ(Count("dag_versions"), 0);
}

TEST_F(StoreTest, PurgeOfAnUnknownDagIsNotFound) {
  Status st = store_->PurgeDag("nope");
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "cannot purge DAG 'nope': no such DAG");
}

// --- Runs ---

TEST_F(StoreTest, CreateRunRoundTripsEveryField) {
  RunRecord run = MakeRun("a1b2c3d4e5f6", "billing", "billing@2026-01-01T00:00:00Z", 1'700'000'000'123,
                          RunState::kRunning);
  run.trigger = "backfill";
  run.force = true;
  run.started_at = AtMs(1'700'000'000'500);
  run.ended_at = AtMs(1'700'000'009'999);
  run.scheduled_for = AtMs(1'700'000'000'000);
  run.error = "something odd";
  auto created = store_->CreateRun(run);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(created->second);
  ExpectSameRun(created->first, run);
  auto got = store_->GetRun(run.run_id);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  ExpectSameRun(**got, run);
  EXPECT_EQ(QueryInt(tmp_ / "batchd.db", "SELECT logical_date FROM runs"), 1'700'000'000) << "seconds";
  EXPECT_EQ(QueryInt(tmp_ / "batchd.db", "SELECT created_at FROM runs"), 1'700'000'000'123) << "milliseconds";
}

TEST_F(StoreTest, CreateRunRoundTripsUnsetOptionalFields) {
  RunRecord run = MakeRun("r1", "billing", "k");
  ASSERT_TRUE(store_->CreateRun(run).ok());
  auto got = store_->GetRun("r1");
  ASSERT_TRUE(got.ok() && got->has_value());
  ExpectSameRun(**got, run);
  EXPECT_FALSE((*got)->started_at.has_value());
  EXPECT_FALSE((*got)->scheduled_for.has_value());
}

TEST_F(StoreTest, CreateRunWithExistingKeyReturnsExistingRun) {
  RunRecord first = MakeRun("first", "billing", "billing@2026-01-01", 100);
  ASSERT_TRUE(store_->CreateRun(first).ok());
  RunRecord second = MakeRun("second", "billing", "billing@2026-01-01", 200);
  second.trigger = "schedule";
  auto again = store_->CreateRun(second);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->second);
  ExpectSameRun(again->first, first);
  EXPECT_FALSE(store_->GetRun("second")->has_value());
  EXPECT_EQ(Count("runs"), 1);
}

TEST_F(StoreTest, CreateRunWithExistingKeyInsideABatchDoesNotDoomIt) {
  ASSERT_TRUE(store_->CreateRun(MakeRun("first", "billing", "k")).ok());
  ASSERT_TRUE(store_->Begin().ok());
  auto again = store_->CreateRun(MakeRun("second", "billing", "k"));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->second);
  ASSERT_TRUE(store_->Audit(0, "trigger", "billing", "{}", AtMs(1)).ok());
  EXPECT_TRUE(store_->Commit().ok());
  EXPECT_EQ(Count("audit"), 1);
}

TEST_F(StoreTest, SameRunKeyInAnotherDagCreatesANewRun) {
  ASSERT_TRUE(store_->CreateRun(MakeRun("r1", "billing", "2026-01-01")).ok());
  auto other = store_->CreateRun(MakeRun("r2", "reports", "2026-01-01"));
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->second);
  EXPECT_EQ(Count("runs"), 2);
}

TEST_F(StoreTest, CreateRunWithATakenRunIdIsAlreadyExists) {
  ASSERT_TRUE(store_->CreateRun(MakeRun("r1", "billing", "k1")).ok());
  auto dup = store_->CreateRun(MakeRun("r1", "billing", "k2"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(dup.status().message(), "cannot create run 'r1' of DAG 'billing': the run id is taken");
}

TEST_F(StoreTest, CreateRunRejectsRunIdsThatAreNotSafeDirectoryNames) {
  const std::vector<std::string> bad = {"", ".", "..", "../etc", "a/b", "with space", std::string(129, 'a')};
  for (const std::string& id : bad) {
    auto run = store_->CreateRun(MakeRun(id, "billing", "k"));
    ASSERT_FALSE(run.ok()) << id;
    EXPECT_EQ(run.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(run.status().message(), "cannot create run '" + id +
                                          "' of DAG 'billing': a run id is 1-128 characters of letters, digits, "
                                          "'_', '-' and '.', and not '.' or '..'");
  }
  EXPECT_EQ(Count("runs"), 0);
  EXPECT_TRUE(store_->CreateRun(MakeRun("Run_1.retry-2", "billing", "k")).ok());
}

TEST_F(StoreTest, GetRunOfUnknownIdIsEmpty) {
  auto got = store_->GetRun("nope");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TEST_F(StoreTest, ListRunsIsNewestFirstAndFiltersByDagAndState) {
  AddRun("b1", "billing", 100);
  AddRun("r1", "reports", 200);
  AddRun("b2", "billing", 300);
  AddRun("b3", "billing", 300);  // same instant: insertion order breaks the tie
  FinishRun("b2", RunState::kSuccess, 400);

  auto all = store_->ListRuns({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(RunIds(*all), (std::vector<std::string>{"b3", "b2", "r1", "b1"}));
  auto billing = store_->ListRuns({.dag = "billing"});
  ASSERT_TRUE(billing.ok());
  EXPECT_EQ(RunIds(*billing), (std::vector<std::string>{"b3", "b2", "b1"}));
  auto queued = store_->ListRuns({.dag = "billing", .state = RunState::kQueued});
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(RunIds(*queued), (std::vector<std::string>{"b3", "b1"}));
  auto success = store_->ListRuns({.state = RunState::kSuccess});
  ASSERT_TRUE(success.ok());
  EXPECT_EQ(RunIds(*success), (std::vector<std::string>{"b2"}));
  auto limited = store_->ListRuns({.limit = 2});
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(RunIds(*limited), (std::vector<std::string>{"b3", "b2"}));
  auto unlimited = store_->ListRuns({.limit = -1});
  ASSERT_TRUE(unlimited.ok());
  EXPECT_EQ(unlimited->size(), 4u);
  EXPECT_TRUE(store_->ListRuns({.dag = "nope"})->empty());
}

TEST_F(StoreTest, ListRunsInStatesIsOldestFirstAcrossStates) {
  AddRun("c", "billing", 300);
  AddRun("a", "billing", 100);
  AddRun("b", "reports", 200);
  AddRun("d", "billing", 200);  // same instant as b, inserted later
  AddRun("e", "billing", 50);
  ASSERT_TRUE(store_->UpdateRunState("a", RunState::kRunning, AtMs(110), std::nullopt).ok());
  ASSERT_TRUE(store_->UpdateRunState("d", RunState::kCancelled, std::nullopt, AtMs(210)).ok());
  FinishRun("e", RunState::kSuccess, 60);

  auto runs = store_->ListRunsInStates({RunState::kQueued, RunState::kRunning, RunState::kCancelled});
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(RunIds(*runs), (std::vector<std::string>{"a", "b", "d", "c"}));
  // The order of the states asked for does not matter, nor do repeats.
  auto again = store_->ListRunsInStates({RunState::kCancelled, RunState::kQueued, RunState::kRunning,
                                         RunState::kQueued});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(RunIds(*again), RunIds(*runs));
  auto queued = store_->ListRunsInStates({RunState::kQueued});
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(RunIds(*queued), (std::vector<std::string>{"b", "c"}));
  auto none = store_->ListRunsInStates({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(StoreTest, QueuedRunsArePerDagOldestFirstAndFoundByIndexSeeks) {
  AddRun("c", "billing", 300);
  AddRun("a", "billing", 100);
  AddRun("b", "reports", 200);
  AddRun("d", "billing", 100);  // same instant as a, inserted later
  AddRun("e", "audit", 50);
  ASSERT_TRUE(store_->UpdateRunState("a", RunState::kRunning, AtMs(110), std::nullopt).ok());
  FinishRun("e", RunState::kSuccess, 60);

  auto dags = store_->DagsWithQueuedRuns();
  ASSERT_TRUE(dags.ok());
  EXPECT_EQ(*dags, (std::vector<std::string>{"billing", "reports"})) << "audit has no queued run";
  auto billing = store_->ListQueuedRuns("billing", 10);
  ASSERT_TRUE(billing.ok());
  EXPECT_EQ(RunIds(*billing), (std::vector<std::string>{"d", "c"}));
  auto first = store_->ListQueuedRuns("billing", 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(RunIds(*first), (std::vector<std::string>{"d"}));
  auto none = store_->ListQueuedRuns("billing", 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto unknown = store_->ListQueuedRuns("nope", 5);
  ASSERT_TRUE(unknown.ok());
  EXPECT_TRUE(unknown->empty());

  // Both searches (Store's SQL, repeated here) seek in the partial index and sort nothing:
  // their cost does not grow with the queue.
  EXPECT_THAT(QueryPlan("SELECT dag FROM runs INDEXED BY runs_queued WHERE state = 'queued' AND dag > '' ORDER BY dag "
                        "LIMIT 1"),
              ::testing::AllOf(::testing::HasSubstr("INDEX runs_queued (dag>?)"),
                               ::testing::Not(::testing::HasSubstr("TEMP B-TREE"))));
  EXPECT_THAT(QueryPlan("SELECT run_id FROM runs INDEXED BY runs_queued WHERE state = 'queued' AND dag = 'x' ORDER BY "
                        "created_at, rowid LIMIT 3"),
              ::testing::AllOf(::testing::HasSubstr("INDEX runs_queued (dag=?)"),
                               ::testing::Not(::testing::HasSubstr("TEMP B-TREE"))));
}

TEST_F(StoreTest, StatusPagesCostThePageNotTheRun) {
  AddRun("r1", "billing", 100);
  AddRun("r2", "billing", 200);
  std::vector<InstanceRecord> mine;
  for (int p = 0; p < 5; ++p) mine.push_back(MakeInstance("r1", "extract", "p" + std::to_string(p)));
  mine.push_back(MakeInstance("r1", "load"));
  mine = AddInstances(mine);
  AddInstances({MakeInstance("r2", "extract", "p0")});
  mine[1].state = InstanceState::kFailed;
  mine[3].state = InstanceState::kRunning;
  for (int k : {1, 3}) ASSERT_TRUE(store_->UpdateInstance(mine[k]).ok());
  for (int number : {1, 2}) {
    AttemptRecord a = MakeAttempt(mine[1].id, number);
    ASSERT_TRUE(store_->InsertAttempt(a).ok());
  }
  AttemptRecord other = MakeAttempt(mine[4].id, 1);
  ASSERT_TRUE(store_->InsertAttempt(other).ok());

  auto names = [](const std::vector<InstanceRecord>& v) {
    std::vector<std::string> out;
    for (const auto& i : v) out.push_back(i.task + "[" + i.partition + "]");
    return out;
  };
  Store::InstanceFilter page;
  page.limit = 2;
  auto first = store_->ListInstancePage("r1", page);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(names(*first), (std::vector<std::string>{"extract[p0]", "extract[p1]"}));
  page.after_id = first->back().id;
  page.limit = 10;
  EXPECT_EQ(names(*store_->ListInstancePage("r1", page)),
            (std::vector<std::string>{"extract[p2]", "extract[p3]", "extract[p4]", "load[-]"}))
      << "not r2's";
  Store::InstanceFilter states;
  states.states = {InstanceState::kFailed, InstanceState::kRunning};
  EXPECT_EQ(names(*store_->ListInstancePage("r1", states)), (std::vector<std::string>{"extract[p1]", "extract[p3]"}));
  Store::InstanceFilter one;
  one.task = "extract";
  one.partition = "p4";
  EXPECT_EQ(names(*store_->ListInstancePage("r1", one)), std::vector<std::string>{"extract[p4]"});
  Store::InstanceFilter none;
  none.limit = 0;
  EXPECT_TRUE(store_->ListInstancePage("r1", none)->empty());

  auto got = store_->GetInstance("r1", "extract", "p1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->id, mine[1].id);
  EXPECT_FALSE(store_->GetInstance("r1", "extract", "nope")->has_value());

  auto counts = store_->CountInstances("r1");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)["extract"][InstanceState::kPending], 3);
  EXPECT_EQ((*counts)["extract"][InstanceState::kFailed], 1);
  EXPECT_EQ((*counts)["extract"][InstanceState::kRunning], 1);
  EXPECT_EQ((*counts)["load"][InstanceState::kPending], 1);
  EXPECT_EQ(counts->size(), 2u);

  auto attempts = store_->ListAttemptsOfInstances(mine[1].id, mine[3].id);
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 2u) << "not the attempt of p4, outside the range";
  EXPECT_EQ((*attempts)[0].number, 1);
  EXPECT_EQ((*attempts)[1].number, 2);

  // The page is a seek in instances_by_run, in id order, with no sort.
  EXPECT_THAT(QueryPlan("SELECT * FROM task_instances i INDEXED BY instances_by_run WHERE i.run_id = 'r1' AND "
                        "i.id > 0 AND i.state IN ('failed') ORDER BY i.id LIMIT 3"),
              ::testing::AllOf(::testing::HasSubstr("INDEX instances_by_run (run_id=? AND id>?)"),
                               ::testing::Not(::testing::HasSubstr("TEMP B-TREE"))));
}

TEST_F(StoreTest, UpdateRunStateKeepsStartedAtUnlessGivenAndSetsEndedAtAndError) {
  AddRun("r1", "billing", 100);
  ASSERT_TRUE(store_->UpdateRunState("r1", RunState::kRunning, AtMs(150), std::nullopt).ok());
  ASSERT_TRUE(store_->UpdateRunState("r1", RunState::kFailed, std::nullopt, AtMs(900), "boom").ok());
  auto run = *store_->GetRun("r1");
  EXPECT_EQ(run->state, RunState::kFailed);
  EXPECT_EQ(run->started_at, AtMs(150));
  EXPECT_EQ(run->ended_at, AtMs(900));
  EXPECT_EQ(run->error, "boom");
  // A retry runs it again: no end, no error, same start.
  ASSERT_TRUE(store_->UpdateRunState("r1", RunState::kRunning, std::nullopt, std::nullopt).ok());
  run = *store_->GetRun("r1");
  EXPECT_EQ(run->state, RunState::kRunning);
  EXPECT_EQ(run->started_at, AtMs(150));
  EXPECT_FALSE(run->ended_at.has_value());
  EXPECT_EQ(run->error, "");
}

TEST_F(StoreTest, UpdateRunStateOfUnknownRunIsNotFound) {
  Status st = store_->UpdateRunState("nope", RunState::kRunning, std::nullopt, std::nullopt);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "cannot update run 'nope': no such run");
}

TEST_F(StoreTest, LastSuccessfulRunEndIsTheLatestSuccessOfThatDag) {
  auto none = store_->LastSuccessfulRunEnd("billing");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  AddRun("b1", "billing", 1);
  AddRun("b2", "billing", 2);
  AddRun("b3", "billing", 3);
  AddRun("r1", "reports", 4);
  FinishRun("b1", RunState::kSuccess, 500);
  FinishRun("b2", RunState::kSuccess, 300);
  FinishRun("b3", RunState::kFailed, 900);
  FinishRun("r1", RunState::kSuccess, 1000);
  auto last = store_->LastSuccessfulRunEnd("billing");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, AtMs(500));
}

// --- Task instances ---

TEST_F(StoreTest, InsertInstancesFillsIdsAndListInstancesRoundTripsEveryField) {
  AddRun("r1", "billing", 1);
  InstanceRecord full = MakeInstance("r1", "load", "2026-01-01", InstanceState::kRetryWait);
  full.reason = "trigger_rule";
  full.attempts = 2;
  full.exit_code = 3;
  full.next_attempt_at = AtMs(5000);
  full.started_at = AtMs(4000);
  full.ended_at = AtMs(4500);
  auto instances = AddInstances({MakeInstance("r1", "extract"), full});
  ASSERT_EQ(instances.size(), 2u);
  EXPECT_GT(instances[0].id, 0);
  EXPECT_GT(instances[1].id, instances[0].id);
  auto listed = store_->ListInstances("r1");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  ExpectSameInstance((*listed)[0], instances[0]);
  ExpectSameInstance((*listed)[1], instances[1]);
  EXPECT_TRUE(store_->ListInstances("nope")->empty());
}

TEST_F(StoreTest, InsertInstancesIsAllOrNothing) {
  AddRun("r1", "billing", 1);
  std::vector<InstanceRecord> instances{MakeInstance("r1", "a"), MakeInstance("r1", "b"), MakeInstance("r1", "a")};
  Status st = store_->InsertInstances(instances);
  EXPECT_EQ(st.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(st.message(), "cannot insert task instance a[-] of run 'r1': it already exists");
  EXPECT_EQ(Count("task_instances"), 0);
  for (const auto& i : instances) EXPECT_EQ(i.id, 0) << "ids of rolled-back rows are cleared";
  // The store is usable afterwards.
  instances.pop_back();
  EXPECT_TRUE(store_->InsertInstances(instances).ok());
  EXPECT_EQ(Count("task_instances"), 2);
}

TEST_F(StoreTest, InsertInstancesOfUnknownRunIsNotFound) {
  std::vector<InstanceRecord> instances{MakeInstance("ghost", "extract", "eu")};
  Status st = store_->InsertInstances(instances);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "cannot insert task instance extract[eu] of run 'ghost': no such run");
}

TEST_F(StoreTest, UpdateInstanceWritesEveryMutableField) {
  AddRun("r1", "billing", 1);
  auto instances = AddInstances({MakeInstance("r1", "extract"), MakeInstance("r1", "load")});
  InstanceRecord i = instances[0];
  i.state = InstanceState::kFailed;
  i.reason = "exit code 3";
  i.attempts = 3;
  i.exit_code = 3;
  i.next_attempt_at = AtMs(77);
  i.started_at = AtMs(10);
  i.ended_at = AtMs(20);
  ASSERT_TRUE(store_->UpdateInstance(i).ok());
  auto listed = *store_->ListInstances("r1");
  ExpectSameInstance(listed[0], i);
  ExpectSameInstance(listed[1], instances[1]);
  // Clearing optional fields stores NULL again.
  i.exit_code.reset();
  i.next_attempt_at.reset();
  i.state = InstanceState::kQueued;
  ASSERT_TRUE(store_->UpdateInstance(i).ok());
  ExpectSameInstance((*store_->ListInstances("r1"))[0], i);
}

TEST_F(StoreTest, UpdateInstanceOfUnknownIdIsNotFound) {
  InstanceRecord i = MakeInstance("r1", "extract", "eu");
  i.id = 999;
  Status st = store_->UpdateInstance(i);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "cannot update task instance 999 (extract[eu]): no such task instance");
}

TEST_F(StoreTest, DeadLettersAreFailedInstancesNewestFirstOptionallyByDag) {
  AddRun("b1", "billing", 1);
  AddRun("r1", "reports", 2);
  auto b = AddInstances({MakeInstance("b1", "x", "1"), MakeInstance("b1", "x", "2"), MakeInstance("b1", "x", "3"),
                         MakeInstance("b1", "x", "4")});
  auto r = AddInstances({MakeInstance("r1", "y")});
  auto fail = [&](InstanceRecord i, int64_t ended, InstanceState state = InstanceState::kFailed) {
    i.state = state;
    i.ended_at = AtMs(ended);
    ASSERT_TRUE(store_->UpdateInstance(i).ok());
  };
  fail(b[0], 100);
  fail(b[1], 300);
  fail(b[2], 200, InstanceState::kUpstreamFailed);  // not a dead letter: it never ran
  fail(b[3], 250, InstanceState::kSuccess);
  fail(r[0], 250);
  auto ids = [](const std::vector<InstanceRecord>& v) {
    std::vector<int64_t> out;
    for (const auto& i : v) out.push_back(i.id);
    return out;
  };
  auto all = store_->ListDeadLetters(std::nullopt);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(ids(*all), (std::vector<int64_t>{b[1].id, r[0].id, b[0].id}));
  EXPECT_EQ((*all)[0].state, InstanceState::kFailed);
  EXPECT_EQ((*all)[0].run_id, "b1");
  auto billing = store_->ListDeadLetters("billing");
  ASSERT_TRUE(billing.ok());
  EXPECT_EQ(ids(*billing), (std::vector<int64_t>{b[1].id, b[0].id}));
  // A retried dead letter is no longer one.
  InstanceRecord retried = b[1];
  retried.state = InstanceState::kQueued;
  ASSERT_TRUE(store_->UpdateInstance(retried).ok());
  EXPECT_EQ(ids(*store_->ListDeadLetters("billing")), (std::vector<int64_t>{b[0].id}));
}

// --- Attempts ---

TEST_F(StoreTest, InsertAttemptThenFinishAttemptRoundTrip) {
  AddRun("r1", "billing", 1);
  auto instances = AddInstances({MakeInstance("r1", "extract")});
  AttemptRecord a = MakeAttempt(instances[0].id, 1);
  ASSERT_TRUE(store_->InsertAttempt(a).ok());
  EXPECT_GT(a.id, 0);
  auto listed = store_->ListAttempts(instances[0].id);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  ExpectSameAttempt((*listed)[0], a);

  a.outcome = AttemptOutcome::kTimeout;
  a.pid = 777;
  a.ended_at = AtMs(1'700'000'061'000);
  a.exit_code.reset();
  a.signal = 9;
  a.cpu_seconds = 12.75;
  a.max_rss_kb = 204800;
  a.error = "timed out after 1m";
  ASSERT_TRUE(store_->FinishAttempt(a).ok());
  listed = store_->ListAttempts(instances[0].id);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  ExpectSameAttempt((*listed)[0], a);
}

TEST_F(StoreTest, InsertAttemptStoresEveryFieldAndListsByNumber) {
  AddRun("r1", "billing", 1);
  auto instances = AddInstances({MakeInstance("r1", "extract")});
  AttemptRecord second = MakeAttempt(instances[0].id, 2, 2000);
  second.outcome = AttemptOutcome::kFailed;
  second.ended_at = AtMs(2500);
  second.exit_code = 1;
  second.cpu_seconds = 0.5;
  second.max_rss_kb = 1024;
  second.error = "spawn failed: no such file";
  AttemptRecord first = MakeAttempt(instances[0].id, 1, 1000);
  ASSERT_TRUE(store_->InsertAttempt(second).ok());
  ASSERT_TRUE(store_->InsertAttempt(first).ok());
  auto listed = store_->ListAttempts(instances[0].id);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  ExpectSameAttempt((*listed)[0], first);
  ExpectSameAttempt((*listed)[1], second);
  EXPECT_TRUE(store_->ListAttempts(12345)->empty());
}

TEST_F(StoreTest, ListRunAttemptsListsARunsAttemptsInTaskOrderWithTheirInstance) {
  AddRun("r1", "billing", 1);
  AddRun("r2", "billing", 2);
  auto instances = AddInstances({MakeInstance("r1", "extract", "eu"), MakeInstance("r1", "extract", "us"),
                                 MakeInstance("r1", "load"), MakeInstance("r2", "extract", "eu")});
  AttemptRecord us2 = MakeAttempt(instances[1].id, 2, 3000);
  AttemptRecord us1 = MakeAttempt(instances[1].id, 1, 2000);
  AttemptRecord eu1 = MakeAttempt(instances[0].id, 1, 1000);
  AttemptRecord other = MakeAttempt(instances[3].id, 1, 1000);
  for (AttemptRecord* a : {&us2, &us1, &eu1, &other}) ASSERT_TRUE(store_->InsertAttempt(*a).ok());

  auto all = store_->ListRunAttempts("r1");
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].task + "[" + (*all)[0].partition + "]", "extract[eu]");
  ExpectSameAttempt((*all)[0].attempt, eu1);
  EXPECT_EQ((*all)[1].partition, "us");
  ExpectSameAttempt((*all)[1].attempt, us1);
  ExpectSameAttempt((*all)[2].attempt, us2);

  auto us = store_->ListRunAttempts("r1", std::string("extract"), std::string("us"));
  ASSERT_TRUE(us.ok());
  EXPECT_EQ(us->size(), 2u);
  EXPECT_EQ(store_->ListRunAttempts("r1", std::string("extract"))->size(), 3u);
  EXPECT_TRUE(store_->ListRunAttempts("r1", std::string("load"))->empty());
  EXPECT_TRUE(store_->ListRunAttempts("nope")->empty());
}

TEST_F(StoreTest, AttemptNumbersAreUniquePerInstance) {
  AddRun("r1", "billing", 1);
  auto instances = AddInstances({MakeInstance("r1", "extract")});
  AttemptRecord a = MakeAttempt(instances[0].id, 1);
  ASSERT_TRUE(store_->InsertAttempt(a).ok());
  AttemptRecord dup = MakeAttempt(instances[0].id, 1);
  Status st = store_->InsertAttempt(dup);
  EXPECT_EQ(st.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(st.message(), "cannot record attempt 1 of task instance " + std::to_string(instances[0].id) +
                              ": it already exists");
}

TEST_F(StoreTest, AttemptOfUnknownInstanceIsNotFound) {
  AttemptRecord a = MakeAttempt(4242, 1);
  Status st = store_->InsertAttempt(a);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "cannot record attempt 1 of task instance 4242: no such task instance");
  a.id = 99;
  st = store_->FinishAttempt(a);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "cannot finish attempt 99: no such attempt");
}

TEST_F(StoreTest, MarkRunningAttemptsLostEndsOnlyRunningAttempts) {
  AddRun("r1", "billing", 1);
  auto instances = AddInstances({MakeInstance("r1", "a"), MakeInstance("r1", "b"), MakeInstance("r1", "c")});
  AttemptRecord done = MakeAttempt(instances[0].id, 1);
  ASSERT_TRUE(store_->InsertAttempt(done).ok());
  done.outcome = AttemptOutcome::kFailed;
  done.ended_at = AtMs(50);
  done.exit_code = 1;
  ASSERT_TRUE(store_->FinishAttempt(done).ok());
  AttemptRecord running_c = MakeAttempt(instances[2].id, 1);
  AttemptRecord running_a = MakeAttempt(instances[0].id, 2);
  ASSERT_TRUE(store_->InsertAttempt(running_c).ok());
  ASSERT_TRUE(store_->InsertAttempt(running_a).ok());

  auto lost = store_->MarkRunningAttemptsLost(AtMs(9000));
  ASSERT_TRUE(lost.ok()) << lost.status().ToString();
  EXPECT_EQ(*lost, (std::vector<int64_t>{instances[0].id, instances[2].id}));

  auto a = *store_->ListAttempts(instances[0].id);
  ASSERT_EQ(a.size(), 2u);
  ExpectSameAttempt(a[0], done);
  EXPECT_EQ(a[1].outcome, AttemptOutcome::kLost);
  EXPECT_EQ(a[1].ended_at, AtMs(9000));
  EXPECT_EQ(a[1].error, "the daemon stopped while the attempt ran");
  auto c = *store_->ListAttempts(instances[2].id);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].outcome, AttemptOutcome::kLost);

  auto again = store_->MarkRunningAttemptsLost(AtMs(9500));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  EXPECT_EQ((*store_->ListAttempts(instances[2].id))[0].ended_at, AtMs(9000));
}

TEST_F(StoreTest, MarkRunningAttemptsLostFindsThemInRunningAndCancelledRunsOfEveryDag) {
  // Recovery looks through the runs that have not ended; a cancel leaves its attempts
  // running until they are reported, so a crash then must find them too.
  ASSERT_TRUE(store_->CreateRun(MakeRun("running", "billing", "k1", 1000, RunState::kRunning)).ok());
  ASSERT_TRUE(store_->CreateRun(MakeRun("cancelled", "ads", "k1", 2000, RunState::kCancelled)).ok());
  ASSERT_TRUE(store_->CreateRun(MakeRun("finished", "ads", "k2", 3000, RunState::kSuccess)).ok());
  auto instances = AddInstances({MakeInstance("running", "a"), MakeInstance("cancelled", "b"),
                                 MakeInstance("finished", "c")});
  for (int i = 0; i < 3; ++i) {
    AttemptRecord a = MakeAttempt(instances[i].id, 1);
    ASSERT_TRUE(store_->InsertAttempt(a).ok());
  }
  auto lost = store_->MarkRunningAttemptsLost(AtMs(9000));
  ASSERT_TRUE(lost.ok()) << lost.status().ToString();
  EXPECT_EQ(*lost, (std::vector<int64_t>{instances[0].id, instances[1].id}));
  EXPECT_EQ((*store_->ListAttempts(instances[1].id))[0].outcome, AttemptOutcome::kLost);
  // A run only ends when none of its attempts runs; a row saying otherwise is left as it is.
  EXPECT_EQ((*store_->ListAttempts(instances[2].id))[0].outcome, AttemptOutcome::kRunning);
}

// --- Idempotency keys ---

TEST_F(StoreTest, IdempotencyKeysAreRecordedPerDag) {
  EXPECT_FALSE(*store_->KeySucceeded("billing", "billing/extract/2026-01-01"));
  ASSERT_TRUE(store_->RecordKeySuccess("billing", "billing/extract/2026-01-01", "r1", AtMs(100)).ok());
  EXPECT_TRUE(*store_->KeySucceeded("billing", "billing/extract/2026-01-01"));
  EXPECT_FALSE(*store_->KeySucceeded("reports", "billing/extract/2026-01-01"));
  EXPECT_FALSE(*store_->KeySucceeded("billing", "billing/extract/2026-01-02"));
  // A forced re-run succeeding again moves the key to the newer run.
  ASSERT_TRUE(store_->RecordKeySuccess("billing", "billing/extract/2026-01-01", "r2", AtMs(200)).ok());
  EXPECT_EQ(Count("idempotency_keys"), 1);
  auto db = Database::Open(tmp_ / "batchd.db");
  ASSERT_TRUE(db.ok());
  auto s = (*db)->Prepare("SELECT run_id, succeeded_at FROM idempotency_keys");
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(*(*s)->Step());
  EXPECT_EQ((*s)->Text(0), "r2");
  EXPECT_EQ((*s)->Int(1), 200);
  (*s)->Reset();
}

// --- Audit trail ---

TEST_F(StoreTest, AuditTrailIsNewestFirstWithALimit) {
  ASSERT_TRUE(store_->Audit(1000, "submit", "billing", R"({"hash":"h1"})", AtMs(10)).ok());
  ASSERT_TRUE(store_->Audit(0, "trigger", "billing", R"({"run_id":"r1"})", AtMs(20)).ok());
  ASSERT_TRUE(store_->Audit(1001, "cancel", "r1", "{}", AtMs(30)).ok());
  auto all = store_->ListAudit(10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].action, "cancel");
  EXPECT_EQ((*all)[0].target, "r1");
  EXPECT_EQ((*all)[0].uid, 1001);
  EXPECT_EQ((*all)[0].at, AtMs(30));
  EXPECT_EQ((*all)[0].detail, "{}");
  EXPECT_EQ((*all)[2].action, "submit");
  EXPECT_EQ((*all)[2].uid, 1000);
  EXPECT_EQ((*all)[2].detail, R"({"hash":"h1"})");
  EXPECT_GT((*all)[0].id, (*all)[1].id);
  auto two = store_->ListAudit(2);
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[1].action, "trigger");
}

// --- Retention ---

TEST_F(StoreTest, PruneRunsBeforeDeletesOldTerminalRunsTheirRowsAndLogs) {
  const std::vector<std::pair<std::string, RunState>> runs = {
      {"old_ok", RunState::kSuccess}, {"old_failed", RunState::kFailed}, {"old_cancelled", RunState::kCancelled},
      {"recent", RunState::kSuccess}, {"old_running", RunState::kRunning}, {"queued", RunState::kQueued}};
  for (const auto& [id, state] : runs) {
    AddRun(id, "billing", 1);
    auto instances = AddInstances({MakeInstance(id, "t", "p1"), MakeInstance(id, "t", "p2")});
    AttemptRecord a = MakeAttempt(instances[0].id, 1);
    ASSERT_TRUE(store_->InsertAttempt(a).ok());
    fs::create_directories(store_->LogDir() + "/" + id + "/t");
    WriteFile(store_->LogDir() + "/" + id + "/t/p1.1.log", "log\n");
  }
  FinishRun("old_ok", RunState::kSuccess, 100);
  FinishRun("old_failed", RunState::kFailed, 200);
  FinishRun("old_cancelled", RunState::kCancelled, 999);
  FinishRun("recent", RunState::kSuccess, 1000);  // not before the cutoff
  ASSERT_TRUE(store_->UpdateRunState("old_running", RunState::kRunning, AtMs(5), std::nullopt).ok());
  ASSERT_TRUE(store_->RecordKeySuccess("billing", "k", "old_ok", AtMs(100)).ok());

  auto pruned = store_->PruneRunsBefore(AtMs(1000));
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  EXPECT_EQ(*pruned, 3);

  for (const std::string id : {"old_ok", "old_failed", "old_cancelled"}) {
    EXPECT_FALSE(store_->GetRun(id)->has_value()) << id;
    EXPECT_TRUE(store_->ListInstances(id)->empty()) << id;
    EXPECT_FALSE(fs::exists(store_->LogDir() + "/" + id)) << id;
  }
  for (const std::string id : {"recent", "old_running", "queued"}) {
    EXPECT_TRUE(store_->GetRun(id)->has_value()) << id;
    EXPECT_EQ(store_->ListInstances(id)->size(), 2u) << id;
    EXPECT_TRUE(fs::exists(store_->LogDir() + "/" + id + "/t/p1.1.log")) << id;
  }
  EXPECT_EQ(Count("runs"), 3);
  EXPECT_EQ(Count("task_instances"), 6);
  EXPECT_EQ(Count("attempts"), 3);
  EXPECT_TRUE(*store_->KeySucceeded("billing", "k")) << "keys outlive their runs";

  auto nothing = store_->PruneRunsBefore(AtMs(1000));
  ASSERT_TRUE(nothing.ok());
  EXPECT_EQ(*nothing, 0);
}

TEST_F(StoreTest, PruneRunsBeforeTakesTheOldestFirstInBatchesOfMaxRuns) {
  for (int k = 0; k < 5; ++k) {
    const std::string id = "r" + std::to_string(k);
    AddRun(id, "billing", 10 + k);
    FinishRun(id, RunState::kSuccess, 100 + k);
  }
  auto first = store_->PruneRunsBefore(AtMs(1000), 2);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 2);
  EXPECT_FALSE(store_->GetRun("r0")->has_value());
  EXPECT_FALSE(store_->GetRun("r1")->has_value());
  EXPECT_TRUE(store_->GetRun("r2")->has_value());
  EXPECT_EQ(*store_->PruneRunsBefore(AtMs(1000), 2), 2);
  EXPECT_EQ(*store_->PruneRunsBefore(AtMs(1000), 2), 1);
  EXPECT_EQ(*store_->PruneRunsBefore(AtMs(1000), 2), 0);
  EXPECT_EQ(Count("runs"), 0);
}

// --- Group commit ---

TEST_F(StoreTest, NestedBeginCommitsOnlyAtTheOutermostCommit) {
  ASSERT_TRUE(store_->Begin().ok());
  EXPECT_TRUE(store_->InTransaction());
  ASSERT_TRUE(store_->Audit(0, "a", "t", "{}", AtMs(1)).ok());
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->Audit(0, "b", "t", "{}", AtMs(2)).ok());
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_EQ(Count("audit"), 0) << "another connection sees nothing before the outermost commit";
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_FALSE(store_->InTransaction());
  EXPECT_EQ(Count("audit"), 2);
}

TEST_F(StoreTest, RollbackDiscardsTheWholeBatch) {
  ASSERT_TRUE(store_->Begin().ok());
  AddRun("r1", "billing", 1);
  ASSERT_TRUE(store_->Audit(0, "a", "t", "{}", AtMs(1)).ok());
  store_->Rollback();
  EXPECT_FALSE(store_->InTransaction());
  EXPECT_FALSE(store_->GetRun("r1")->has_value());
  EXPECT_TRUE(store_->ListAudit(10)->empty());
  store_->Rollback();  // harmless without a transaction
  EXPECT_TRUE(store_->Audit(0, "b", "t", "{}", AtMs(2)).ok());
  EXPECT_EQ(Count("audit"), 1);
}

TEST_F(StoreTest, NestedRollbackDoomsTheOuterBatch) {
  AddRun("r1", "billing", 1);
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->Audit(0, "before", "t", "{}", AtMs(1)).ok());
  // A failing multi-row write inside the batch rolls back its own nested transaction.
  std::vector<InstanceRecord> dup{MakeInstance("r1", "a"), MakeInstance("r1", "a")};
  EXPECT_EQ(store_->InsertInstances(dup).code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(store_->InTransaction()) << "the caller's Begin() is still open";
  ASSERT_TRUE(store_->Audit(0, "after", "t", "{}", AtMs(2)).ok());
  Status st = store_->Commit();
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_EQ(st.message(),
            "transaction rolled back: an operation inside it failed (see the earlier error); nothing was written");
  EXPECT_FALSE(store_->InTransaction());
  EXPECT_EQ(Count("audit"), 0) << "neither the write before nor after the failure was committed";
  // Next batch is fine.
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->Audit(0, "next", "t", "{}", AtMs(3)).ok());
  EXPECT_TRUE(store_->Commit().ok());
  EXPECT_EQ(Count("audit"), 1);
}

TEST_F(StoreTest, FailedSingleRowWriteDoesNotDoomTheBatch) {
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->Audit(0, "a", "t", "{}", AtMs(1)).ok());
  EXPECT_EQ(store_->UpdateRunState("nope", RunState::kRunning, std::nullopt, std::nullopt).code(),
            StatusCode::kNotFound);
  EXPECT_TRUE(store_->Commit().ok());
  EXPECT_EQ(Count("audit"), 1);
}

TEST_F(StoreTest, CommitWithoutBeginIsAnError) {
  Status st = store_->Commit();
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_EQ(st.message(), "Commit() without a matching Begin()");
}

TEST_F(StoreTest, LogsOfAPurgeInARolledBackBatchAreKept) {
  ASSERT_TRUE(store_->SetCurrentDag("billing", "h", "file", "p", AtMs(1)).ok());
  AddRun("r1", "billing", 1);
  fs::create_directories(store_->LogDir() + "/r1/t");
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->PurgeDag("billing").ok());
  EXPECT_TRUE(fs::exists(store_->LogDir() + "/r1/t")) << "removed only after the outermost commit";
  store_->Rollback();
  EXPECT_TRUE(fs::exists(store_->LogDir() + "/r1/t"));
  EXPECT_TRUE(store_->GetRun("r1")->has_value());
  // Committed this time: rows and logs go.
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->PurgeDag("billing").ok());
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_FALSE(fs::exists(store_->LogDir() + "/r1"));
}

// --- Damaged rows ---

TEST_F(StoreTest, UnknownStateNameInTheDatabaseIsCorruption) {
  AddRun("r1", "billing", 1);
  auto instances = AddInstances({MakeInstance("r1", "a")});
  AttemptRecord a = MakeAttempt(instances[0].id, 1);
  ASSERT_TRUE(store_->InsertAttempt(a).ok());
  ASSERT_TRUE(ExecSql(tmp_ / "batchd.db", "UPDATE runs SET state = 'exploded'; "
                                          "UPDATE task_instances SET state = 'melted'; "
                                          "UPDATE attempts SET outcome = 'vanished'")
                  .ok());
  auto run = store_->GetRun("r1");
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(run.status().message(), "run 'r1' has unknown state 'exploded'");
  EXPECT_EQ(store_->ListRuns({}).status().message(), "cannot list runs: run 'r1' has unknown state 'exploded'");
  EXPECT_EQ(store_->ListInstances("r1").status().message(),
            "cannot list task instances of run 'r1': task instance " + std::to_string(instances[0].id) +
                " has unknown state 'melted'");
  EXPECT_EQ(store_->ListAttempts(instances[0].id).status().message(),
            "cannot list attempts of task instance " + std::to_string(instances[0].id) + ": attempt " +
                std::to_string(a.id) + " has unknown outcome 'vanished'");
}

// --- Run ids ---

TEST(NewRunIdTest, IsTwelveLowercaseHexCharactersAndDoesNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    std::string id = NewRunId();
    ASSERT_EQ(id.size(), 12u);
    for (char c : id) ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 2000u);
}

}  // namespace
}  // namespace batchd::store
