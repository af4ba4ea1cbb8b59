// ExpandPartitions: static partition sets, and partitions commands run with /bin/sh -c
// whose failures are reported word for word.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "dag/loader.h"
#include "engine/partitions.h"

namespace batchd::engine {
namespace {

using ::testing::ElementsAre;
using namespace std::chrono_literals;

const std::vector<std::string> kEnv = {"PATH=/usr/bin:/bin"};

dag::Task LoadTask(std::string_view yaml) {
  dag::LoadResult r = dag::LoadDagString(yaml, "d.yaml");
  for (const auto& d : r.errors) ADD_FAILURE() << d.ToString();
  if (!r.dag) return {};
  return r.dag->tasks.at(0);
}

dag::Task CommandTask(std::string command) {
  dag::Task t;
  t.id = "extract";
  t.command = "true";
  t.partitions.kind = dag::Partitions::Kind::kCommand;
  t.partitions.command = std::move(command);
  return t;
}

std::vector<std::string> MustExpand(const dag::Task& task, const std::vector<std::string>& env = kEnv,
                                    const PartitionCommandLimits& limits = {}) {
  auto r = ExpandPartitions(task, env, limits);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : std::vector<std::string>{};
}

// The error message (and that it is an InvalidArgument).
std::string ExpandError(const dag::Task& task, const PartitionCommandLimits& limits = {}) {
  auto r = ExpandPartitions(task, kEnv, limits);
  if (r.ok()) return "unexpectedly ok";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  return r.status().message();
}

// --- static sets --------------------------------------------------------------------------

TEST(ExpandPartitionsTest, ValuesAreTakenAsListed) {
  dag::Task t = LoadTask(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
    partitions: {values: [us, eu, apac]}
)yaml");
  EXPECT_THAT(MustExpand(t), ElementsAre("us", "eu", "apac"));
}

TEST(ExpandPartitionsTest, RangeIsHalfOpen) {
  dag::Task t = LoadTask(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
    partitions: {range: [0, 4]}
)yaml");
  EXPECT_THAT(MustExpand(t), ElementsAre("0", "1", "2", "3"));
}

TEST(ExpandPartitionsTest, RangeNeedNotStartAtZero) {
  dag::Task t = LoadTask(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
    partitions: {range: [8, 11]}
)yaml");
  EXPECT_THAT(MustExpand(t), ElementsAre("8", "9", "10"));
}

TEST(ExpandPartitionsTest, NoPartitionsIsTheSingleDashPartition) {
  dag::Task t = LoadTask(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
)yaml");
  EXPECT_THAT(MustExpand(t), ElementsAre("-"));
}

TEST(ExpandPartitionsTest, StaticSetsRunNothingAndIgnoreLimits) {
  dag::Task t = LoadTask(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
    partitions: {values: [a, b, c]}
)yaml");
  PartitionCommandLimits tiny;
  tiny.max_partitions = 1;
  tiny.timeout = 1ms;
  EXPECT_THAT(MustExpand(t, {}, tiny), ElementsAre("a", "b", "c"));
}

// --- command ------------------------------------------------------------------------------

TEST(ExpandPartitionsTest, CommandFromYamlTakesOneNamePerLine) {
  dag::Task t = LoadTask(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
    partitions: {command: "printf 'us\neu\napac\n'"}
)yaml");
  EXPECT_THAT(MustExpand(t), ElementsAre("us", "eu", "apac"));
}

TEST(ExpandPartitionsTest, CommandLinesAreTrimmedAndEmptyLinesIgnored) {
  dag::Task t = CommandTask(R"(printf '  us \n\n\t eu\t\r\n   \n\napac')");  // last line without newline
  EXPECT_THAT(MustExpand(t), ElementsAre("us", "eu", "apac"));
}

TEST(ExpandPartitionsTest, CommandKeepsInnerSpacesOfALine) {
  dag::Task t = CommandTask(R"(printf ' a b \n')");
  EXPECT_THAT(MustExpand(t), ElementsAre("a b"));
}

TEST(ExpandPartitionsTest, CommandSeesExactlyTheGivenEnvironment) {
  dag::Task t = CommandTask(R"(echo "${REGION:-unset}"; echo "${HOME:-nohome}")");
  EXPECT_THAT(MustExpand(t, {"REGION=eu"}), ElementsAre("eu", "nohome"));
}

TEST(ExpandPartitionsTest, CommandRunsInTheTasksWorkingDirectory) {
  dag::Task t = CommandTask("pwd");
  t.working_dir = "/";
  EXPECT_THAT(MustExpand(t), ElementsAre("/"));
}

TEST(ExpandPartitionsTest, CommandStdinIsEmpty) {
  dag::Task t = CommandTask("cat; echo done");
  EXPECT_THAT(MustExpand(t), ElementsAre("done"));
}

TEST(ExpandPartitionsTest, CommandStderrIsNotTakenAsPartitions) {
  dag::Task t = CommandTask("echo noise >&2; echo p1");
  EXPECT_THAT(MustExpand(t), ElementsAre("p1"));
}

TEST(ExpandPartitionsTest, CommandExactlyAtThePartitionLimitIsAccepted) {
  PartitionCommandLimits limits;
  limits.max_partitions = 3;
  EXPECT_THAT(MustExpand(CommandTask("printf 'a\nb\nc\n'"), kEnv, limits), ElementsAre("a", "b", "c"));
}

// --- command errors -----------------------------------------------------------------------

TEST(ExpandPartitionsTest, FailingCommandNamesTheTaskAndExitCode) {
  EXPECT_EQ(ExpandError(CommandTask("echo a; exit 3")), "task 'extract': partitions command failed with exit code 3");
}

TEST(ExpandPartitionsTest, MissingProgramReportsExitCode127) {
  EXPECT_EQ(ExpandError(CommandTask("/nonexistent/list-partitions")),
            "task 'extract': partitions command failed with exit code 127");
}

TEST(ExpandPartitionsTest, KilledCommandNamesTheSignal) {
  EXPECT_EQ(ExpandError(CommandTask("echo a; kill -9 $$")),
            "task 'extract': partitions command was killed by signal 9");
}

TEST(ExpandPartitionsTest, MissingWorkingDirectoryIsAnError) {
  dag::Task t = CommandTask("echo a");
  t.working_dir = "/nonexistent/dir";
  auto r = ExpandPartitions(t, kEnv);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_EQ(r.status().message(), "task 'extract': partitions command could not start: No such file or directory");
}

TEST(ExpandPartitionsTest, SlowCommandTimesOutAndIsKilled) {
  PartitionCommandLimits limits;
  limits.timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ExpandError(CommandTask("echo a; sleep 30"), limits),
            "task 'extract': partitions command timed out after 200ms");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(ExpandPartitionsTest, TimeoutCoversABackgroundChildHoldingTheOutput) {
  // The shell exits at once, but its child keeps stdout open: still bounded by the timeout.
  PartitionCommandLimits limits;
  limits.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ExpandError(CommandTask("echo a; sleep 30 &"), limits),
            "task 'extract': partitions command timed out after 300ms");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(ExpandPartitionsTest, TimeoutMessageUsesTheDurationFormat) {
  PartitionCommandLimits limits;
  limits.timeout = 1100ms;
  EXPECT_EQ(ExpandError(CommandTask("sleep 30"), limits), "task 'extract': partitions command timed out after 1.1s");
}

TEST(ExpandPartitionsTest, TooManyPartitionsIsAnError) {
  PartitionCommandLimits limits;
  limits.max_partitions = 3;
  EXPECT_EQ(ExpandError(CommandTask("printf 'a\nb\nc\nd\n'"), limits),
            "task 'extract': partitions command printed more than 3 partitions");
}

TEST(ExpandPartitionsTest, TooMuchOutputIsAnError) {
  PartitionCommandLimits limits;
  limits.max_output_bytes = 100;
  EXPECT_EQ(ExpandError(CommandTask("i=0; while [ $i -lt 100 ]; do echo partition_$i; i=$((i+1)); done"), limits),
            "task 'extract': partitions command printed more than 100 bytes");
}

TEST(ExpandPartitionsTest, EndlessOutputIsCutOffQuickly) {
  PartitionCommandLimits limits;
  limits.max_output_bytes = 1 << 16;
  limits.timeout = 10s;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ExpandError(CommandTask("yes p"), limits),
            "task 'extract': partitions command printed more than 65536 bytes");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(ExpandPartitionsTest, DuplicatePartitionsAreAnError) {
  EXPECT_EQ(ExpandError(CommandTask("printf 'a\nb\na\n'")),
            "task 'extract': partitions command printed the partition 'a' twice");
}

TEST(ExpandPartitionsTest, DuplicatesAreFoundAfterTrimming) {
  EXPECT_EQ(ExpandError(CommandTask("printf 'b\n  b  \n'")),
            "task 'extract': partitions command printed the partition 'b' twice");
}

TEST(ExpandPartitionsTest, NoOutputIsAnError) {
  EXPECT_EQ(ExpandError(CommandTask("true")), "task 'extract': partitions command printed no partitions");
}

TEST(ExpandPartitionsTest, BlankOutputIsAnError) {
  EXPECT_EQ(ExpandError(CommandTask("printf '\n  \n\t\n'")),
            "task 'extract': partitions command printed no partitions");
}

}  // namespace
}  // namespace batchd::engine
