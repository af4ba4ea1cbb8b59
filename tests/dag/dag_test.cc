// The pure helpers of the DAG model: names, partitions, trigger rules. (Retry delays are
// the engine's: engine::RetryDelay in src/engine/policy.h.)

#include <gtest/gtest.h>

#include "dag/dag.h"

namespace batchd::dag {
namespace {

TEST(DagTest, ValidNamesUseOnlyTheAllowedCharacters) {
  EXPECT_TRUE(IsValidName("nightly_billing"));
  EXPECT_TRUE(IsValidName("A-z.0_9"));
  EXPECT_TRUE(IsValidName(std::string(128, 'a')));
  EXPECT_TRUE(IsValidName("-"));
  EXPECT_TRUE(IsValidName("..."));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName(std::string(129, 'a')));
  EXPECT_FALSE(IsValidName("."));
  EXPECT_FALSE(IsValidName(".."));
  EXPECT_FALSE(IsValidName("../../etc"));
  EXPECT_FALSE(IsValidName("a b"));
  EXPECT_FALSE(IsValidName("café"));
  EXPECT_FALSE(IsValidName(std::string("a\0b", 3)));
}

TEST(DagTest, StaticPartitionNames) {
  Partitions none;
  EXPECT_EQ(StaticPartitionNames(none), std::vector<std::string>{"-"});
  Partitions values;
  values.kind = Partitions::Kind::kValues;
  values.values = {"us", "eu"};
  EXPECT_EQ(StaticPartitionNames(values), (std::vector<std::string>{"us", "eu"}));
  Partitions range;
  range.kind = Partitions::Kind::kRange;
  range.range_begin = -1;
  range.range_end = 2;
  EXPECT_EQ(StaticPartitionNames(range), (std::vector<std::string>{"-1", "0", "1"}));
}

TEST(DagTest, TriggerRuleNamesRoundTrip) {
  for (TriggerRule rule : {TriggerRule::kAllSuccess, TriggerRule::kAllDone, TriggerRule::kOneSuccess,
                           TriggerRule::kOneFailed, TriggerRule::kNoneFailed, TriggerRule::kAllFailed}) {
    EXPECT_EQ(ParseTriggerRule(TriggerRuleName(rule)), rule);
  }
  EXPECT_EQ(ParseTriggerRule("All_Success"), std::nullopt);
  EXPECT_STREQ(BackoffName(Backoff::kFixed), "fixed");
  EXPECT_STREQ(BackoffName(Backoff::kExponential), "exponential");
}

TEST(DagTest, FindTaskByIdOrNull) {
  Dag dag;
  dag.tasks.resize(2);
  dag.tasks[0].id = "a";
  dag.tasks[1].id = "b";
  EXPECT_EQ(dag.FindTask("b"), &dag.tasks[1]);
  EXPECT_EQ(dag.FindTask("c"), nullptr);
}

}  // namespace
}  // namespace batchd::dag
