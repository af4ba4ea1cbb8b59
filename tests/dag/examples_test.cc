// The example DAGs in dags/ must load cleanly: they are documentation and ship with
// the package (SPEC section 8).

#include <gtest/gtest.h>

#include <filesystem>

#include "dag/loader.h"

namespace batchd::dag {
namespace {

std::string ExamplePath(const std::string& name) { return std::string(BATCHD_SOURCE_DIR) + "/dags/" + name; }

std::string Errors(const LoadResult& r) {
  std::string out;
  for (const Diagnostic& d : r.errors) out += d.ToString() + "\n";
  return out;
}

TEST(ExamplesTest, EveryExampleDagLoads) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(BATCHD_SOURCE_DIR) + "/dags")) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    LoadResult r = LoadDagFile(entry.path().string());
    EXPECT_TRUE(r.ok()) << Errors(r);
    if (r.ok()) {
      EXPECT_EQ(r.dag->name + ".yaml", entry.path().filename().string());
    }
  }
  EXPECT_GE(count, 3);
}

TEST(ExamplesTest, NightlyBillingShowsPartitionsAndTriggerRules) {
  LoadResult r = LoadDagFile(ExamplePath("nightly_billing.yaml"));
  ASSERT_TRUE(r.ok()) << Errors(r);
  const Dag& dag = *r.dag;
  EXPECT_EQ(dag.timezone, "Europe/Berlin");
  EXPECT_EQ(dag.schedule, "30 2 * * *");
  EXPECT_TRUE(dag.slo.max_duration && dag.slo.freshness);
  const Task* reconcile = dag.FindTask("reconcile");
  ASSERT_NE(reconcile, nullptr);
  EXPECT_EQ(reconcile->partitions.kind, Partitions::Kind::kValues);
  ASSERT_EQ(reconcile->depends_on.size(), 2u);
  EXPECT_TRUE(reconcile->depends_on[0].same_partition);
  EXPECT_EQ(reconcile->retry.retry_on_exit_codes, std::vector<int>{75});
  EXPECT_EQ(dag.FindTask("cleanup")->trigger_rule, TriggerRule::kAllDone);
  EXPECT_EQ(dag.FindTask("prepare")->retry.retries, 0);
  EXPECT_EQ(dag.FindTask("prepare")->retry.max_delay, std::chrono::seconds(30));  // kept from defaults
}

TEST(ExamplesTest, BackupHasTriggers) {
  LoadResult r = LoadDagFile(ExamplePath("backup.yaml"));
  ASSERT_TRUE(r.ok()) << Errors(r);
  ASSERT_EQ(r.dag->triggers.size(), 2u);
  EXPECT_EQ(r.dag->triggers[0].kind, Trigger::Kind::kAfterDag);
  EXPECT_EQ(r.dag->triggers[1].kind, Trigger::Kind::kFile);
}

TEST(ExamplesTest, MlBatchInferenceFansOutOverARange) {
  LoadResult r = LoadDagFile(ExamplePath("ml_batch_inference.yaml"));
  ASSERT_TRUE(r.ok()) << Errors(r);
  const Task* infer = r.dag->FindTask("infer");
  ASSERT_NE(infer, nullptr);
  EXPECT_EQ(infer->partitions.kind, Partitions::Kind::kRange);
  EXPECT_EQ(StaticPartitionNames(infer->partitions).size(), 16u);
  EXPECT_EQ(infer->pool, "inference");
  EXPECT_EQ(infer->retry.retries, 3);
  EXPECT_EQ(r.dag->FindTask("gather")->depends_on[0].same_partition, false);
}

}  // namespace
}  // namespace batchd::dag
