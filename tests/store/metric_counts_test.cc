// The counts behind the Prometheus counters (docs/store-schema.md, "Counts"): kept by the
// schema's triggers in the statement that changes a state, so they agree with live
// counting, survive restarts and retention, and count nothing that was rolled back.

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>

#include "store/store.h"
#include "store/store_test_util.h"

namespace batchd::store {
namespace {

using testing::AtMs;
using testing::ExecSql;
using testing::MakeAttempt;
using testing::MakeInstance;
using testing::MakeRun;
using testing::OpenOrDie;
using testing::TempDir;

// (metric, dag, task, trigger, label) -> value.
using Counts = std::map<std::tuple<std::string, std::string, std::string, std::string, std::string>, double>;

Counts ReadCounts(Store& store) {
  auto listed = store.ListMetricCounts();
  EXPECT_TRUE(listed.ok()) << listed.status().ToString();
  Counts out;
  if (listed.ok())
    for (const auto& c : *listed) out[{c.metric, c.dag, c.task, c.trigger, c.label}] = c.value;
  return out;
}

class MetricCountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenOrDie(tmp_.path());
    ASSERT_NE(store_, nullptr);
  }
  // A running run of `dag` with one instance of `task`; returns the instance.
  InstanceRecord StartRun(const std::string& run_id, const std::string& dag, const std::string& task,
                          const std::string& trigger = "manual") {
    RunRecord run = MakeRun(run_id, dag, run_id, 1000, RunState::kRunning);
    run.trigger = trigger;
    EXPECT_TRUE(store_->CreateRun(run).ok());
    std::vector<InstanceRecord> instances{MakeInstance(run_id, task)};
    EXPECT_TRUE(store_->InsertInstances(instances).ok());
    return instances[0];
  }
  void SetRun(const std::string& run_id, RunState state, int64_t ended_ms = 5000) {
    ASSERT_TRUE(store_->UpdateRunState(run_id, state, std::nullopt,
                                       IsTerminal(state) ? std::optional(AtMs(ended_ms)) : std::nullopt)
                    .ok());
  }
  void SetInstance(InstanceRecord& i, InstanceState state, const std::string& reason = "") {
    i.state = state;
    i.reason = reason;
    ASSERT_TRUE(store_->UpdateInstance(i).ok());
  }

  TempDir tmp_;
  std::unique_ptr<Store> store_;
};

TEST_F(MetricCountsTest, ANewStoreCountsNothing) { EXPECT_TRUE(ReadCounts(*store_).empty()); }

TEST_F(MetricCountsTest, EachTimeARunEndsCountsOnceByTriggerAndState) {
  StartRun("r1", "billing", "charge", "schedule");
  SetRun("r1", RunState::kFailed);
  SetRun("r1", RunState::kFailed);  // the same ending written again is not a second ending
  SetRun("r1", RunState::kRunning);  // retried
  SetRun("r1", RunState::kFailed);
  SetRun("r1", RunState::kRunning);
  SetRun("r1", RunState::kSuccess, 9000);
  StartRun("r2", "billing", "charge", "manual");
  SetRun("r2", RunState::kCancelled);
  Counts c = ReadCounts(*store_);
  EXPECT_EQ((c[{"runs", "billing", "", "schedule", "failed"}]), 2);
  EXPECT_EQ((c[{"runs", "billing", "", "schedule", "success"}]), 1);
  EXPECT_EQ((c[{"runs", "billing", "", "manual", "cancelled"}]), 1);
  auto last = store_->ListLastSuccesses();
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, (std::map<std::string, SysMillis>{{"billing", AtMs(9000)}}));
}

TEST_F(MetricCountsTest, InstanceEndingsRetriesAndIdempotentSkips) {
  InstanceRecord i = StartRun("r1", "etl", "load");
  SetInstance(i, InstanceState::kRunning);
  SetInstance(i, InstanceState::kRetryWait);
  SetInstance(i, InstanceState::kQueued);
  SetInstance(i, InstanceState::kRunning);
  SetInstance(i, InstanceState::kFailed);
  SetInstance(i, InstanceState::kFailed, "again");  // same state: not a new ending
  SetInstance(i, InstanceState::kPending);          // a manual retry
  SetInstance(i, InstanceState::kSkipped, "already_succeeded");
  // Instances stored already ended (skipped when the run was planned) count too.
  std::vector<InstanceRecord> born{MakeInstance("r1", "load", "eu", InstanceState::kSkipped),
                                   MakeInstance("r1", "report", "-", InstanceState::kUpstreamFailed)};
  born[0].reason = "already_succeeded";
  ASSERT_TRUE(store_->InsertInstances(born).ok());
  Counts c = ReadCounts(*store_);
  EXPECT_EQ((c[{"retries", "etl", "load", "", ""}]), 1);
  EXPECT_EQ((c[{"partitions", "etl", "load", "", "failed"}]), 1);
  EXPECT_EQ((c[{"partitions", "etl", "load", "", "skipped"}]), 2);
  EXPECT_EQ((c[{"idempotent_skips", "etl", "load", "", ""}]), 2);
  EXPECT_EQ((c[{"partitions", "etl", "report", "", "upstream_failed"}]), 1);
  EXPECT_EQ(c.count({"partitions", "etl", "load", "", "running"}), 0u) << "only terminal states";
}

TEST_F(MetricCountsTest, AttemptEndingsByOutcomeWithTheirCpu) {
  InstanceRecord i = StartRun("r1", "etl", "load");
  AttemptRecord a = MakeAttempt(i.id, 1);
  ASSERT_TRUE(store_->InsertAttempt(a).ok());
  a.outcome = AttemptOutcome::kTimeout;
  a.ended_at = AtMs(2000);
  a.cpu_seconds = 1.5;
  ASSERT_TRUE(store_->FinishAttempt(a).ok());
  ASSERT_TRUE(store_->FinishAttempt(a).ok()) << "finishing it again is not a second ending";
  AttemptRecord b = MakeAttempt(i.id, 2);
  ASSERT_TRUE(store_->InsertAttempt(b).ok());
  AttemptRecord spawn_error = MakeAttempt(i.id, 3);
  spawn_error.outcome = AttemptOutcome::kFailed;  // stored already ended
  spawn_error.ended_at = AtMs(3000);
  ASSERT_TRUE(store_->InsertAttempt(spawn_error).ok());
  ASSERT_TRUE(store_->MarkRunningAttemptsLost(AtMs(9000)).ok());
  Counts c = ReadCounts(*store_);
  EXPECT_EQ((c[{"attempts", "etl", "load", "", "timeout"}]), 1);
  EXPECT_EQ((c[{"attempts", "etl", "load", "", "lost"}]), 1);
  EXPECT_EQ((c[{"attempts", "etl", "load", "", "failed"}]), 1);
  auto listed = store_->ListMetricCounts();
  ASSERT_TRUE(listed.ok());
  double cpu = 0;
  for (const auto& count : *listed) cpu += count.total;
  EXPECT_DOUBLE_EQ(cpu, 1.5) << "the CPU of the attempts, kept with their count";
}

TEST_F(MetricCountsTest, ADuplicateTriggerIsCountedPerDag) {
  ASSERT_TRUE(store_->CreateRun(MakeRun("r1", "billing", "billing@2026-01-01")).ok());
  auto again = store_->CreateRun(MakeRun("r2", "billing", "billing@2026-01-01"));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->second);
  Counts c = ReadCounts(*store_);
  EXPECT_EQ((c[{"duplicate_triggers", "billing", "", "", ""}]), 1);
}

TEST_F(MetricCountsTest, ARolledBackTransactionCountsNothing) {
  InstanceRecord i = StartRun("r1", "etl", "load");
  ASSERT_TRUE(store_->Begin().ok());
  SetInstance(i, InstanceState::kSuccess);
  SetRun("r1", RunState::kSuccess);
  store_->Rollback();
  EXPECT_TRUE(ReadCounts(*store_).empty());
  EXPECT_TRUE(store_->ListLastSuccesses()->empty());
}

TEST_F(MetricCountsTest, RetentionAndRestartKeepEveryCount) {
  InstanceRecord i = StartRun("r1", "etl", "load");
  SetInstance(i, InstanceState::kSuccess);
  SetRun("r1", RunState::kSuccess, 5000);
  const Counts before = ReadCounts(*store_);
  ASSERT_EQ(before.size(), 2u);
  ASSERT_EQ(*store_->PruneRunsBefore(AtMs(10'000)), 1);
  store_.reset();
  store_ = OpenOrDie(tmp_.path());
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(ReadCounts(*store_), before);
  EXPECT_EQ(*store_->ListLastSuccesses(), (std::map<std::string, SysMillis>{{"etl", AtMs(5000)}}));
}

TEST_F(MetricCountsTest, PurgingADagForgetsItsCountsOnly) {
  InstanceRecord a = StartRun("r1", "etl", "load");
  SetRun("r1", RunState::kSuccess);
  StartRun("r2", "billing", "charge");
  SetRun("r2", RunState::kFailed);
  ASSERT_TRUE(store_->RecordSloMiss({0, "etl", "duration", "r1", AtMs(1), "long"}).ok());
  ASSERT_TRUE(store_->PurgeDag("etl").ok());
  Counts c = ReadCounts(*store_);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ((c[{"runs", "billing", "", "manual", "failed"}]), 1);
  EXPECT_TRUE(store_->ListLastSuccesses()->empty());
  EXPECT_TRUE(store_->ListSloMisses(std::nullopt, -1)->empty());
}

TEST_F(MetricCountsTest, DeadLettersAreCountedPerDagAndTask) {
  InstanceRecord a = StartRun("r1", "etl", "load");
  SetInstance(a, InstanceState::kFailed);
  std::vector<InstanceRecord> more{MakeInstance("r1", "load", "eu", InstanceState::kFailed),
                                   MakeInstance("r1", "report", "-", InstanceState::kUpstreamFailed)};
  ASSERT_TRUE(store_->InsertInstances(more).ok());
  auto counted = store_->CountDeadLetters();
  ASSERT_TRUE(counted.ok()) << counted.status().ToString();
  ASSERT_EQ(counted->size(), 1u) << "upstream_failed is not a dead letter";
  EXPECT_EQ((*counted)[0].dag, "etl");
  EXPECT_EQ((*counted)[0].task, "load");
  EXPECT_EQ((*counted)[0].count, 2);
}

TEST_F(MetricCountsTest, AnSloMissIsRecordedOncePerSubject) {
  auto first = store_->RecordSloMiss({0, "etl", "duration", "r1", AtMs(100), "ran 3s, longer than 1s"});
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*store_->RecordSloMiss({0, "etl", "duration", "r1", AtMs(200), "again"}));
  EXPECT_TRUE(*store_->RecordSloMiss({0, "etl", "freshness", "5000", AtMs(300), "stale"}));
  auto listed = store_->ListSloMisses("etl", -1);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].kind, "freshness");
  EXPECT_EQ((*listed)[1].detail, "ran 3s, longer than 1s");
  EXPECT_EQ(*store_->SloMissSubjects("etl", "duration"), std::set<std::string>{"r1"});
  Counts c = ReadCounts(*store_);
  EXPECT_EQ((c[{"slo_misses", "etl", "", "", "duration"}]), 1);
  EXPECT_EQ((c[{"slo_misses", "etl", "", "", "freshness"}]), 1);
}

// A version-4 file counts its history once when it is upgraded.
TEST_F(MetricCountsTest, UpgradingFromVersionFourCountsTheStoredHistory) {
  InstanceRecord i = StartRun("r1", "etl", "load");
  AttemptRecord a = MakeAttempt(i.id, 1);
  ASSERT_TRUE(store_->InsertAttempt(a).ok());
  a.outcome = AttemptOutcome::kFailed;
  a.cpu_seconds = 0.25;
  ASSERT_TRUE(store_->FinishAttempt(a).ok());
  AttemptRecord b = MakeAttempt(i.id, 2);
  ASSERT_TRUE(store_->InsertAttempt(b).ok());
  b.outcome = AttemptOutcome::kSuccess;
  ASSERT_TRUE(store_->FinishAttempt(b).ok());
  i.attempts = 2;
  SetInstance(i, InstanceState::kSuccess);
  SetRun("r1", RunState::kSuccess, 7000);
  Counts live = ReadCounts(*store_);
  live[{"retries", "etl", "load", "", ""}] = 1;  // the upgrade reads retries from attempt numbers
  store_.reset();
  ASSERT_TRUE(ExecSql(tmp_ / "batchd.db",
                      "DROP INDEX instances_attention; "  // version 8
                      "DROP INDEX runs_queued; DROP INDEX instances_by_run; "  // version 7
                      "ALTER TABLE attempts DROP COLUMN dag_hash; ALTER TABLE task_instances DROP COLUMN force; "  // version 6
                      "DROP TRIGGER count_run_endings; DROP TRIGGER count_instance_endings; DROP TRIGGER count_idempotent_skips; "
                      "DROP TRIGGER count_instances_born_ended; DROP TRIGGER count_attempt_endings; "
                      "DROP TRIGGER count_attempts_born_ended; DROP TRIGGER count_slo_misses; "
                      "DROP TABLE metric_counts; DROP TABLE dag_health; DROP TABLE slo_misses; "
                      "UPDATE schema_version SET version = 4")
                  .ok());
  store_ = OpenOrDie(tmp_.path());
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(ReadCounts(*store_), live);
  EXPECT_EQ(*store_->ListLastSuccesses(), (std::map<std::string, SysMillis>{{"etl", AtMs(7000)}}));
}

}  // namespace
}  // namespace batchd::store
