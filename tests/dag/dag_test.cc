// The pure helpers of the DAG model: names, retry delays, partitions, trigger rules.

#include <gtest/gtest.h>

#include "dag/dag.h"

namespace batchd::dag {
namespace {

using namespace std::chrono_literals;

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

TEST(DagTest, FixedBackoffAlwaysWaitsTheDelay) {
  RetryPolicy p;
  p.backoff = Backoff::kFixed;
  p.delay = 7s;
  p.max_delay = 1s;  // irrelevant for fixed
  EXPECT_EQ(RetryDelay(p, 1), Millis(7s));
  EXPECT_EQ(RetryDelay(p, 10), Millis(7s));
}

TEST(DagTest, ExponentialBackoffGrowsByFactorUpToMaxDelay) {
  RetryPolicy p;
  p.backoff = Backoff::kExponential;
  p.delay = 10s;
  p.factor = 2;
  p.max_delay = 1min;
  EXPECT_EQ(RetryDelay(p, 1), Millis(10s));
  EXPECT_EQ(RetryDelay(p, 2), Millis(20s));
  EXPECT_EQ(RetryDelay(p, 3), Millis(40s));
  EXPECT_EQ(RetryDelay(p, 4), Millis(1min));
  EXPECT_EQ(RetryDelay(p, 1000000), Millis(1min));  // no overflow
  p.factor = 1.5;
  p.delay = 1s;
  EXPECT_EQ(RetryDelay(p, 3), Millis(2250ms));
}

TEST(DagTest, JitterDrawsFromHalfToFullDelay) {
  RetryPolicy p;
  p.backoff = Backoff::kFixed;
  p.delay = 10s;
  p.jitter = true;
  EXPECT_EQ(RetryDelay(p, 1, 0.0), Millis(5s));
  EXPECT_EQ(RetryDelay(p, 1, 0.5), Millis(7500ms));
  EXPECT_EQ(RetryDelay(p, 1, 1.0), Millis(10s));
  EXPECT_EQ(RetryDelay(p, 1, 7.0), Millis(10s));  // clamped
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
