// ExpandPartitions: static partition sets, and partitions commands run with /bin/sh -c
// whose failures are reported word for word.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dag/loader.h"
#include "engine/partition_expander.h"
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

// --- command process -----------------------------------------------------------------------

// True once `pid` no longer exists or is a zombie (reparented orphans may wait for a reaper).
bool ProcessGone(int pid, std::chrono::milliseconds within = 3s) {
  auto deadline = std::chrono::steady_clock::now() + within;
  for (;;) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    if (!in) return true;
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

TEST(ExpandPartitionsTest, CommandStartsWithDefaultSignalDispositionsAndEmptyMask) {
  // The daemon ignores SIGPIPE and blocks signals in its threads; commands must not inherit that.
  struct sigaction ign {}, old_pipe;
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old_pipe);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  auto names = MustExpand(CommandTask("grep -e SigBlk -e SigIgn /proc/self/status; yes | head -1"));
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[0], "SigBlk:\t0000000000000000");
  // posix_spawn leaves glibc's two internal signals (32 and 33, which no program sets
  // itself) ignored in the child; every other signal must be at its default.
  ASSERT_EQ(names[1].substr(0, 8), "SigIgn:\t");
  EXPECT_EQ(std::strtoull(names[1].c_str() + 8, nullptr, 16) & ~0x180000000ull, 0u) << names[1];
  EXPECT_EQ(names[2], "y");
}

TEST(ExpandPartitionsTest, CommandThatClosesItsOutputMustExitSoonAfter) {
  PartitionCommandLimits limits;
  limits.exit_after_output = 500ms;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ExpandError(CommandTask("echo a; exec >&-; sleep 100"), limits),
            "task 'extract': partitions command closed its output but did not exit within 500ms");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(ExpandPartitionsTest, WaitAfterTheOutputEndsIsWithinTheOverallTimeout) {
  PartitionCommandLimits limits;
  limits.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ExpandError(CommandTask("echo a; exec >&-; sleep 100"), limits),
            "task 'extract': partitions command timed out after 300ms");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(ExpandPartitionsTest, BackgroundJobsOfTheCommandAreKilledWhenItExits) {
  auto start = std::chrono::steady_clock::now();
  auto names = MustExpand(CommandTask("sleep 100 >/dev/null 2>&1 & echo $!"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_TRUE(ProcessGone(std::atoi(names[0].c_str())));
}

TEST(ExpandPartitionsTest, LinesThatAreNotUtf8AreKeptAsBytes) {
  EXPECT_THAT(MustExpand(CommandTask(R"(printf 'caf\351\n\377\376\n')")), ElementsAre("caf\xe9", "\xff\xfe"));
}

// --- PartitionExpander ---------------------------------------------------------------------

// Collects the expander's callbacks in arrival order.
class Outputs {
 public:
  std::function<void(std::string, PartitionCommandOutputs)> Callback() {
    return [this](std::string run_id, PartitionCommandOutputs outputs) {
      std::lock_guard lock(mu_);
      order_.push_back(run_id);
      outputs_[run_id] = std::move(outputs);
      cv_.notify_all();
    };
  }
  bool WaitFor(const std::string& run_id, std::chrono::milliseconds within = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, within, [&] { return outputs_.count(run_id) > 0; });
  }
  std::vector<std::string> Order() {
    std::lock_guard lock(mu_);
    return order_;
  }
  // The error of the run's only command, or its partitions joined by ','.
  std::string Of(const std::string& run_id) {
    std::lock_guard lock(mu_);
    const auto& outputs = outputs_.at(run_id);
    if (outputs.size() != 1) return std::to_string(outputs.size()) + " outputs";
    const auto& r = outputs.begin()->second;
    if (!r.ok()) return r.status().message();
    std::string joined;
    for (const auto& name : *r) joined += (joined.empty() ? "" : ",") + name;
    return joined;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> order_;
  std::map<std::string, PartitionCommandOutputs> outputs_;
};

PartitionExpander::Job JobOf(std::string run_id, std::string command, Outputs& outputs) {
  return {std::move(run_id), {CommandTask(std::move(command))}, kEnv, {}, outputs.Callback()};
}

// A scratch file name for a pid a command writes.
std::string PidFile(const std::string& name) {
  return ::testing::TempDir() + "/partitions_test_" + std::to_string(getpid()) + "_" + name;
}

int ReadPid(const std::string& file, std::chrono::milliseconds within = 5s) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(file);
    std::string s;
    if (std::getline(in, s) && in.good() && !s.empty()) return std::atoi(s.c_str());
    std::this_thread::sleep_for(5ms);
  }
  return 0;
}

TEST(PartitionExpanderTest, ASlowCommandOfOneRunDoesNotDelayAnothersRun) {
  Outputs outputs;
  PartitionExpander expander;
  auto start = std::chrono::steady_clock::now();
  expander.Submit(JobOf("run_a", "sleep 3; echo a", outputs));
  expander.Submit(JobOf("run_b", "echo b", outputs));
  ASSERT_TRUE(outputs.WaitFor("run_b"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  ASSERT_TRUE(outputs.WaitFor("run_a"));
  EXPECT_THAT(outputs.Order(), ElementsAre("run_b", "run_a"));
  EXPECT_EQ(outputs.Of("run_a"), "a");
  EXPECT_EQ(outputs.Of("run_b"), "b");
}

TEST(PartitionExpanderTest, CancelKillsTheRunsCommandAndReportsItCancelled) {
  Outputs outputs;
  PartitionExpander expander;
  const std::string pid_file = PidFile("cancel");
  std::remove(pid_file.c_str());
  expander.Submit(JobOf("run_a", "echo $$ > " + pid_file + "; sleep 100 & wait", outputs));
  int pid = ReadPid(pid_file);
  ASSERT_GT(pid, 0);
  auto start = std::chrono::steady_clock::now();
  expander.Cancel("run_a");
  ASSERT_TRUE(outputs.WaitFor("run_a", 3s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(outputs.Of("run_a"), "task 'extract': partitions command cancelled with its run");
  EXPECT_TRUE(ProcessGone(pid));
  std::remove(pid_file.c_str());
}

TEST(PartitionExpanderTest, CancelDropsTheRunsQueuedJobAndLeavesOtherRuns) {
  Outputs outputs;
  PartitionExpander expander(nullptr, 1);
  const std::string pid_file = PidFile("queued");
  std::remove(pid_file.c_str());
  expander.Submit(JobOf("run_a", "echo $$ > " + pid_file + "; exec sleep 100", outputs));
  ASSERT_GT(ReadPid(pid_file), 0);
  expander.Submit(JobOf("run_b", "echo b", outputs));
  expander.Submit(JobOf("run_c", "echo c", outputs));
  expander.Cancel("run_b");  // queued behind run_a: reported at once, never run
  ASSERT_TRUE(outputs.WaitFor("run_b", 1s));
  EXPECT_EQ(outputs.Of("run_b"), "task 'extract': partitions command cancelled with its run");
  expander.Cancel("run_a");
  ASSERT_TRUE(outputs.WaitFor("run_c", 3s));
  EXPECT_EQ(outputs.Of("run_c"), "c");
  EXPECT_EQ(outputs.Of("run_a"), "task 'extract': partitions command cancelled with its run");
  expander.Cancel("run_unknown");
  std::remove(pid_file.c_str());
}

TEST(PartitionExpanderTest, DestructorKillsRunningCommandsWithoutCallingBack) {
  Outputs outputs;
  const std::string pid_file = PidFile("destructor");
  std::remove(pid_file.c_str());
  int pid = 0;
  auto start = std::chrono::steady_clock::now();
  {
    PartitionExpander expander;
    expander.Submit(JobOf("run_a", "echo $$ > " + pid_file + "; exec sleep 100", outputs));
    expander.Submit(JobOf("run_b", "sleep 100", outputs));
    pid = ReadPid(pid_file);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_TRUE(outputs.Order().empty());
  std::remove(pid_file.c_str());
}

}  // namespace
}  // namespace batchd::engine
