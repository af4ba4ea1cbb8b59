// End-to-end tests of file triggers (SPEC 6: "A file trigger runs each distinct file (path,
// size, mtime) exactly once, however close together files arrive and whatever the
// retention"): the real daemon polling a real directory every 200 ms, each task appending
// its file's path to a ledger file that the test compares with what was dropped, across
// a clean restart and a SIGKILL.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

namespace fs = std::filesystem;

// Every run appends its file's path (exact bytes, shell-quoted by the template) to @TMP@/ledger.
constexpr const char* kFilesDag = R"(dag: files
max_active_runs: 4
triggers:
  - file: @TMP@/in/*.csv
tasks:
  - id: record
    retry: {retries: 3, delay: 100ms, backoff: fixed}   # an attempt a SIGKILL interrupted runs again
    command: printf '%s\n' {{ params.trigger_file }} >> @TMP@/ledger
)";

class FileTriggerE2eTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    fs::create_directories(tmp_ / "in");
    options_.config_yaml = "scheduler_tick: 200ms\n";
  }

  // The ledger's lines, sorted (tasks of different runs may finish in any order).
  std::vector<std::string> LedgerLines() {
    std::vector<std::string> lines;
    std::istringstream in(ReadFile(tmp_ / "ledger").value_or(""));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    std::sort(lines.begin(), lines.end());
    return lines;
  }
  // Waits until `n` runs of `files` succeeded and the ledger has `n` lines.
  ::testing::AssertionResult WaitForRuns(size_t n) {
    const bool done = WaitFor(
        [&] {
          return Count("SELECT COUNT(*) FROM runs WHERE dag = 'files' AND state = 'success'") == static_cast<long>(n) &&
                 LedgerLines().size() >= n;
        },
        milliseconds(30000), milliseconds(50));
    if (done) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "expected " << n << " successful runs; runs: "
                                         << Q("SELECT run_key, state FROM runs").dump() << "\n"
                                         << DaemonLog();
  }
  // Several polls' time: anything that would fire again has fired by then.
  static void SeveralPolls() { std::this_thread::sleep_for(milliseconds(1500)); }

  DaemonOptions options_;
};

TEST_F(FileTriggerE2eTest, TwentyFilesInOneSecondEachRunOnceAcrossRestartAndKillNine) {
  WriteDag("files.yaml", kFilesDag, /*in_dags_dir=*/true);
  ASSERT_TRUE(StartDaemon(options_));
  std::vector<std::string> expected;
  const double start = RealNow();
  for (int i = 0; i < 20; ++i) {
    const std::string path = tmp_ / ("in/f" + std::to_string(100 + i) + ".csv");
    WriteFile(path, "row " + std::to_string(i) + "\n");
    expected.push_back(path);
  }
  ASSERT_LT(RealNow() - start, 1.0) << "the files must arrive within one second";
  // Not matched: a hidden file (a writer's temporary) and a directory.
  WriteFile(tmp_ / "in/.f200.csv", "partial");
  fs::create_directories(tmp_ / "in/dir.csv");
  std::sort(expected.begin(), expected.end());

  ASSERT_TRUE(WaitForRuns(20));
  SeveralPolls();
  EXPECT_EQ(LedgerLines(), expected);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 20);
  EXPECT_EQ(Count("SELECT COUNT(DISTINCT run_key) FROM runs WHERE trigger = 'file'"), 20);
  EXPECT_EQ(Count("SELECT COUNT(DISTINCT idempotency_key) FROM task_instances WHERE state = 'success'"), 20);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM trigger_files WHERE dag = 'files'"), 20);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM trigger_files t JOIN runs r USING (run_id)"), 20);

  // A clean restart, then a SIGKILL and a start: nothing runs again.
  StopDaemon();
  ASSERT_TRUE(StartDaemon(options_));
  SeveralPolls();
  KillDaemon();
  ASSERT_TRUE(StartDaemon(options_));
  SeveralPolls();
  EXPECT_EQ(LedgerLines(), expected);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 20) << Q("SELECT run_key FROM runs").dump();

  // A file name that is not UTF-8 runs once, and the daemon keeps serving.
  const std::string latin1 = tmp_ / "in/caf\xe9.csv";
  WriteFile(latin1, "x\n");
  ASSERT_TRUE(WaitForRuns(21));
  SeveralPolls();
  expected.push_back(latin1);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(LedgerLines(), expected);
  ASSERT_TRUE(DaemonRunning()) << DaemonLog();
  const std::string run_id = V("SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1");
  OrderedJson status = CtlJson({"status", run_id});
  ASSERT_EQ(status["tasks"].size(), 1u) << status.dump();
  EXPECT_EQ(status["state"], "success");
  EXPECT_THAT(status["tasks"][0]["idempotency_key"].get<std::string>(),
              ::testing::HasSubstr("@file:" + tmp_.path() + "/in/caf%E9.csv:2:"));
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);

  // Rewritten with new content: a new version, which runs once more.
  WriteFile(tmp_ / "in/f100.csv", "row 0, corrected\n");
  ASSERT_TRUE(WaitForRuns(22));
  SeveralPolls();
  expected.push_back(tmp_ / "in/f100.csv");
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(LedgerLines(), expected);
}

// SIGKILL as soon as the first runs of 20 files are stored, while they execute: each file's run
// and ledger row committed together, so after the restart every file has exactly one run, and
// the runs the kill interrupted finish.
TEST_F(FileTriggerE2eTest, KillNineWhileFileRunsExecuteLosesAndRepeatsNoFile) {
  WriteDag("files.yaml", kFilesDag, /*in_dags_dir=*/true);
  ASSERT_TRUE(StartDaemon(options_));
  std::set<std::string> expected;
  for (int i = 0; i < 20; ++i) {
    const std::string path = tmp_ / ("in/g" + std::to_string(100 + i) + ".csv");
    WriteFile(path, "row\n");
    expected.insert(path);
  }
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT COUNT(*) FROM runs") > 0; }, milliseconds(10000),
                      milliseconds(5)));
  KillDaemon();
  ASSERT_TRUE(StartDaemon(options_));
  ASSERT_TRUE(WaitForRuns(20));
  SeveralPolls();
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 20);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM trigger_files"), 20);
  // A task the kill interrupted may have run twice (at-least-once execution); no file is
  // missing and none has a second run.
  const auto lines = LedgerLines();
  EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()), expected);
}

}  // namespace
}  // namespace batchd::e2e
