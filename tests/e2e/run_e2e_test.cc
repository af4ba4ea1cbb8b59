// End-to-end tests of `batchd run FILE`: the real binary, real subprocesses, the real
// SQLite file (read with the sqlite3 command-line tool), real log files.
//
// Every test works in its own temporary directory: DAG files, counter and pid files that
// the task commands write, and the data directory (DATA/batchd.db, DATA/logs/...).
// Waiting is done by polling the database or files with short intervals, never by
// fixed sleeps.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "e2e_util.h"

namespace batchd::e2e {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr const char* kDate = "2026-03-01";

// `text` with every "@KEY@" replaced by its value.
std::string Subst(std::string text, const std::map<std::string, std::string>& vars) {
  for (const auto& [k, v] : vars) {
    const std::string pat = "@" + k + "@";
    for (size_t pos = text.find(pat); pos != std::string::npos; pos = text.find(pat, pos + v.size()))
      text.replace(pos, pat.size(), v);
  }
  return text;
}

double SecondsSince(steady_clock::time_point t0) {
  return std::chrono::duration<double>(steady_clock::now() - t0).count();
}

class BatchdRunTest : public ::testing::Test {
 protected:
  // Writes a DAG file into the temp dir; "@TMP@" in `yaml` is the temp dir's path.
  std::string WriteDag(const std::string& yaml, const std::string& name = "dag.yaml") {
    std::string path = tmp_ / name;
    WriteFile(path, Subst(yaml, {{"TMP", tmp_.path()}}));
    return path;
  }

  std::vector<std::string> RunArgs(const std::string& dag_file, std::vector<std::string> extra = {},
                                   const std::string& date = kDate) {
    std::vector<std::string> argv = {BATCHD_BIN, "run", dag_file, "--data-dir", data_, "--workers", "4"};
    if (!date.empty()) {
      argv.push_back("--date");
      argv.push_back(date);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  ProcResult RunBatchd(const std::string& dag_file, std::vector<std::string> extra = {},
                       const std::string& date = kDate, milliseconds timeout = milliseconds(20000)) {
    return RunProcess(RunArgs(dag_file, std::move(extra), date), timeout);
  }

  Json Q(const std::string& sql) { return Query(db_, sql); }
  std::string V(const std::string& sql) { return QueryValue(db_, sql); }

  // Attempts of one instance of the newest run, oldest first.
  Json Attempts(const std::string& task, const std::string& partition = "-", const std::string& run_id = "") {
    return Q("SELECT a.number, a.outcome, a.exit_code, a.signal, a.pid, a.log_path, a.error "
             "FROM attempts a JOIN task_instances i ON i.id = a.instance_id "
             "WHERE i.task = '" + task + "' AND i.partition = '" + partition + "' AND i.run_id = '" +
             (run_id.empty() ? LatestRunId() : run_id) + "' ORDER BY a.number");
  }
  // state, reason, attempts, exit_code of one instance of a run (default: the newest).
  Json Instance(const std::string& task, const std::string& partition = "-", const std::string& run_id = "") {
    Json rows = Q("SELECT state, reason, attempts, exit_code, idempotency_key FROM task_instances "
                  "WHERE task = '" + task + "' AND partition = '" + partition + "' AND run_id = '" +
                  (run_id.empty() ? LatestRunId() : run_id) + "'");
    return rows.empty() ? Json::object() : rows[0];
  }
  std::string LatestRunId() { return V("SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1"); }
  std::string LogOf(const std::string& run_id, const std::string& task, const std::string& partition, int attempt) {
    return ReadFile(AttemptLogPath(data_, run_id, task, partition, attempt)).value_or("<missing log>");
  }
  // Outcomes of the attempts in `rows`, in order.
  static std::vector<std::string> Outcomes(const Json& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.at("outcome").get<std::string>());
    return out;
  }

  // Waits (up to 10 s) for a task of `batchd` to write its pid to @TMP@/`name`, and returns
  // it; fails with batchd's output if it never does.
  pid_t WaitForTaskPid(const Process& batchd, const std::string& name) {
    if (!WaitFor([&] { return ReadNumber(tmp_ / name).has_value(); }, milliseconds(10000))) {
      ADD_FAILURE() << "no " << name << "; batchd wrote:\n" << batchd.Stdout() << batchd.Stderr();
      return 0;
    }
    return static_cast<pid_t>(*ReadNumber(tmp_ / name));
  }

  // SIGKILLs `batchd` and waits for it; false (with its output) if it ended otherwise.
  bool KillBatchd(Process& batchd) {
    batchd.Signal(SIGKILL);
    ProcResult r = batchd.Wait(milliseconds(5000));
    if (r.signal == SIGKILL) return true;
    ADD_FAILURE() << "batchd was not killed by SIGKILL: " << r.Describe();
    return false;
  }

  // Starts `batchd run` on `dag_file`, whose command (a task's, or a partitions command)
  // writes @TMP@/shell.pid and @TMP@/background.pid (a `sleep 300 &` of it) and waits;
  // SIGKILLs batchd once both exist, then expects both processes to die. `what` names the
  // command in failure messages.
  void ExpectGroupDiesWithKilledBatchd(const std::string& dag_file, const std::string& what) {
    Process run(RunArgs(dag_file));
    const pid_t shell = WaitForTaskPid(run, "shell.pid");
    ASSERT_NE(shell, 0);
    const pid_t background = static_cast<pid_t>(*ReadNumber(tmp_ / "background.pid"));
    ASSERT_TRUE(PidAlive(background));
    ASSERT_TRUE(KillBatchd(run));
    EXPECT_TRUE(WaitFor([&] { return !PidAlive(shell); }, milliseconds(2000)))
        << what << " " << shell << " outlived batchd";
    EXPECT_TRUE(WaitFor([&] { return !PidAlive(background); }, milliseconds(2000)))
        << "background job " << background << " of " << what << " outlived batchd";
    for (pid_t pid : {shell, background})
      if (PidAlive(pid)) ::kill(pid, SIGKILL);
  }

  TempDir tmp_;
  std::string data_ = tmp_ / "data";
  std::string db_ = data_ + "/batchd.db";
};

// --- Retries -------------------------------------------------------------------------

TEST_F(BatchdRunTest, RetriesAFlakyTaskUntilItSucceeds) {
  // Fails with exit 7 on its first two executions, succeeds on the third.
  std::string dag = WriteDag(R"(
dag: flaky
tasks:
  - id: flaky
    retry: {retries: 2, delay: 100ms, backoff: fixed}
    command: |
      n=$(cat @TMP@/counter 2>/dev/null || echo 0); n=$((n + 1)); echo $n > @TMP@/counter
      echo "execution $n attempt $BATCHD_ATTEMPT"
      [ $n -ge 3 ] || exit 7
)");
  auto t0 = steady_clock::now();
  ProcResult r = RunBatchd(dag);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_GE(SecondsSince(t0), 0.2) << "two retry delays of 100ms";
  EXPECT_EQ(ReadNumber(tmp_ / "counter"), 3);

  std::string run_id = LatestRunId();
  EXPECT_EQ(V("SELECT state FROM runs"), "success");
  Json inst = Instance("flaky");
  EXPECT_EQ(inst["state"], "success");
  EXPECT_EQ(inst["attempts"], 3);
  EXPECT_EQ(inst["exit_code"], 0);
  Json attempts = Attempts("flaky");
  ASSERT_EQ(attempts.size(), 3u) << attempts.dump();
  EXPECT_THAT(Outcomes(attempts), ElementsAre("failed", "failed", "success"));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(attempts[i]["number"], i + 1);
    EXPECT_EQ(attempts[i]["exit_code"], i < 2 ? 7 : 0);
    EXPECT_EQ(attempts[i]["log_path"], AttemptLogPath(data_, run_id, "flaky", "-", i + 1));
    EXPECT_EQ(LogOf(run_id, "flaky", "-", i + 1),
              "execution " + std::to_string(i + 1) + " attempt " + std::to_string(i + 1) + "\n");
  }
  EXPECT_THAT(r.out, HasSubstr("flaky[-] attempt 1 failed exit=7, retrying"));
  EXPECT_THAT(r.out, HasSubstr("flaky[-] success attempts=3"));
}

TEST_F(BatchdRunTest, ExhaustedRetriesFailTheRunAndItsDependents) {
  std::string dag = WriteDag(R"(
dag: doomed
tasks:
  - id: broken
    retry: {retries: 1, delay: 100ms}
    command: echo try >> @TMP@/tries; exit 5
  - id: after
    depends_on: [broken]
    command: touch @TMP@/after-ran
  - id: last
    depends_on: [after]
    command: touch @TMP@/last-ran
  - id: independent
    command: "true"
)");
  ProcResult r = RunBatchd(dag);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(V("SELECT state FROM runs"), "failed");
  EXPECT_EQ(ReadFile(tmp_ / "tries"), "try\ntry\n");

  Json broken = Instance("broken");
  EXPECT_EQ(broken["state"], "failed");
  EXPECT_EQ(broken["attempts"], 2);
  EXPECT_EQ(broken["exit_code"], 5);
  Json attempts = Attempts("broken");
  EXPECT_THAT(Outcomes(attempts), ElementsAre("failed", "failed"));
  for (const auto& a : attempts) EXPECT_EQ(a["exit_code"], 5);

  for (const char* task : {"after", "last"}) {
    Json inst = Instance(task);
    EXPECT_EQ(inst["state"], "upstream_failed") << task;
    EXPECT_EQ(inst["attempts"], 0) << task;
    EXPECT_TRUE(Attempts(task).empty()) << task;
  }
  EXPECT_FALSE(Exists(tmp_ / "after-ran"));
  EXPECT_FALSE(Exists(tmp_ / "last-ran"));
  EXPECT_EQ(Instance("independent")["state"], "success");
  EXPECT_THAT(r.out, HasSubstr("broken[-] failed"));
}

TEST_F(BatchdRunTest, RetriesOnlyListedExitCodes) {
  std::string dag = WriteDag(R"(
dag: codes
defaults:
  retry: {retries: 2, delay: 100ms, backoff: fixed, retry_on_exit_codes: [3]}
tasks:
  - id: three
    command: |
      n=$(cat @TMP@/three 2>/dev/null || echo 0); echo $((n + 1)) > @TMP@/three
      [ $n -ge 1 ] || exit 3
  - id: four
    command: echo x >> @TMP@/four; exit 4
)");
  ProcResult r = RunBatchd(dag);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();

  Json three = Instance("three");
  EXPECT_EQ(three["state"], "success");
  EXPECT_EQ(three["attempts"], 2);
  Json a3 = Attempts("three");
  EXPECT_THAT(Outcomes(a3), ElementsAre("failed", "success"));
  EXPECT_EQ(a3[0]["exit_code"], 3);

  Json four = Instance("four");
  EXPECT_EQ(four["state"], "failed");
  EXPECT_EQ(four["attempts"], 1);
  Json a4 = Attempts("four");
  EXPECT_THAT(Outcomes(a4), ElementsAre("failed"));
  EXPECT_EQ(a4[0]["exit_code"], 4);
  EXPECT_EQ(ReadFile(tmp_ / "four"), "x\n");
}

// --- Timeouts ------------------------------------------------------------------------

TEST_F(BatchdRunTest, TimeoutKillsTheAttempt) {
  std::string dag = WriteDag(R"(
dag: slow
tasks:
  - id: sleeper
    timeout: 500ms
    command: sleep 30
)");
  auto t0 = steady_clock::now();
  ProcResult r = RunBatchd(dag);
  double took = SecondsSince(t0);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_GE(took, 0.5);
  EXPECT_LT(took, 5.0) << "sleep dies on the SIGTERM; kill_grace must not be waited out";
  Json attempts = Attempts("sleeper");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0]["outcome"], "timeout");
  EXPECT_EQ(attempts[0]["signal"], SIGTERM);
  EXPECT_EQ(Instance("sleeper")["state"], "failed");
  EXPECT_EQ(V("SELECT state FROM runs"), "failed");
}

TEST_F(BatchdRunTest, TimeoutKillsBackgroundChildrenToo) {
  std::string dag = WriteDag(R"(
dag: forks
tasks:
  - id: forker
    timeout: 500ms
    command: sleep 30 & echo $! > @TMP@/child.pid; wait
)");
  auto t0 = steady_clock::now();
  ProcResult r = RunBatchd(dag);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_LT(SecondsSince(t0), 5.0);
  EXPECT_EQ(Attempts("forker")[0]["outcome"], "timeout");
  auto child = ReadNumber(tmp_ / "child.pid");
  ASSERT_TRUE(child.has_value());
  EXPECT_TRUE(WaitFor([&] { return !PidAlive(static_cast<pid_t>(*child)); }, milliseconds(2000)))
      << "background child " << *child << " survived the timeout";
}

TEST_F(BatchdRunTest, BackgroundJobDoesNotOutliveASuccessfulAttempt) {
  std::string dag = WriteDag(R"(
dag: leaks
tasks:
  - id: leaker
    command: sleep 30 & echo $! > @TMP@/child.pid
)");
  ProcResult r = RunBatchd(dag);
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  auto child = ReadNumber(tmp_ / "child.pid");
  ASSERT_TRUE(child.has_value());
  EXPECT_TRUE(WaitFor([&] { return !PidAlive(static_cast<pid_t>(*child)); }, milliseconds(2000)))
      << "background job " << *child << " outlived its attempt";
}

TEST_F(BatchdRunTest, TimeoutEscalatesToSigkillAfterKillGrace) {
  std::string dag = WriteDag(R"(
dag: sigterm_ignored
tasks:
  - id: ignores_term
    timeout: 300ms
    kill_grace: 300ms
    command: trap '' TERM; echo $$ > @TMP@/pid; sleep 20; sleep 20
)");
  auto t0 = steady_clock::now();
  ProcResult r = RunBatchd(dag);
  double took = SecondsSince(t0);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_GE(took, 0.6) << "timeout + kill_grace";
  EXPECT_LT(took, 4.0);
  Json a = Attempts("ignores_term");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0]["outcome"], "timeout");
  EXPECT_EQ(a[0]["signal"], SIGKILL);
  auto pid = ReadNumber(tmp_ / "pid");
  ASSERT_TRUE(pid.has_value());
  EXPECT_TRUE(WaitFor([&] { return !PidAlive(static_cast<pid_t>(*pid)); }, milliseconds(2000)));
}

// --- Failures before or outside the command ------------------------------------------

TEST_F(BatchdRunTest, SpawnErrorIsAFailedAttemptWithItsReason) {
  std::string dag = WriteDag(R"(
dag: nowhere
tasks:
  - id: lost_dir
    working_dir: @TMP@/does-not-exist
    command: "true"
  - id: cleanup
    depends_on: [lost_dir]
    trigger_rule: all_done
    command: echo cleaned
)");
  ProcResult r = RunBatchd(dag);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  Json a = Attempts("lost_dir");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0]["outcome"], "failed");
  EXPECT_EQ(a[0]["error"], "working directory '" + (tmp_ / "does-not-exist") + "' does not exist");
  EXPECT_THAT(r.out, HasSubstr("lost_dir[-] failed: working directory '" + (tmp_ / "does-not-exist") +
                               "' does not exist"));
  EXPECT_EQ(Instance("cleanup")["state"], "success") << "all_done runs after a failure";
  EXPECT_EQ(V("SELECT state FROM runs"), "failed");
}

// A run that fails before any task starts (its partitions command fails) must end the
// invocation with exit 1, like any failed run.
TEST_F(BatchdRunTest, FailingPartitionsCommandFailsTheRun) {
  std::string dag = WriteDag(R"(
dag: nolist
tasks:
  - id: fan
    partitions: {command: "exit 3"}
    command: "true"
)");
  ProcResult r = RunBatchd(dag, {}, kDate, milliseconds(5000));
  EXPECT_FALSE(r.timed_out) << "batchd run did not return after its run failed: " << r.Describe();
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(V("SELECT state FROM runs"), "failed");
  EXPECT_EQ(V("SELECT error FROM runs"), "task 'fan': partitions command failed with exit code 3");
  EXPECT_THAT(r.out + r.err, HasSubstr("partitions command failed with exit code 3"));
}

TEST_F(BatchdRunTest, MaxActiveTasksLimitsConcurrentInstances) {
  // mkdir is atomic: a second instance running at the same time fails with exit 9.
  std::string dag = WriteDag(R"(
dag: narrow
max_active_tasks: 1
tasks:
  - id: one_at_a_time
    partitions: {range: [0, 4]}
    command: mkdir @TMP@/lock || exit 9; sleep 0.05; rmdir @TMP@/lock
)");
  ProcResult r = RunBatchd(dag);
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(V("SELECT count(*) FROM task_instances WHERE state = 'success'"), "4");
}

// --- Environment, templates, logs ----------------------------------------------------

TEST_F(BatchdRunTest, CommandSeesBatchdEnvironmentAndTemplates) {
  std::string dag = WriteDag(R"(
dag: envdag
timezone: Europe/Berlin
params: {region: eu}
env: {FROM_DAG: dag-level}
tasks:
  - id: show
    command: |
      env | grep -E '^(BATCHD_|FROM_DAG=|INHERITED=|LANGUAGE=)' | sort
      echo "ds={{ ds }} region={{ params.region }} task={{ task }} partition={{ partition }} attempt={{ attempt }}"
      echo "stderr line" >&2
)");
  ProcResult r = RunProcess(RunArgs(dag, {"--param", "region=us"}), milliseconds(20000),
                     {"INHERITED=yes", "LANGUAGE=inherited", "BATCHD_LEAK=from-parent"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::string run_id = LatestRunId();
  EXPECT_EQ(LogOf(run_id, "show", "-", 1),
            "BATCHD_ATTEMPT=1\n"
            "BATCHD_DAG=envdag\n"
            "BATCHD_IDEMPOTENCY_KEY=envdag/show/-/2026-03-01T00:00:00+01:00\n"
            "BATCHD_LOGICAL_DATE=2026-03-01T00:00:00+01:00\n"
            "BATCHD_PARAM_REGION=us\n"
            "BATCHD_PARTITION=-\n"
            "BATCHD_RUN_ID=" + run_id + "\n"
            "BATCHD_TASK=show\n"
            "FROM_DAG=dag-level\n"
            "LANGUAGE=inherited\n"
            "ds=2026-03-01 region=us task=show partition=- attempt=1\n"
            "stderr line\n");
  EXPECT_EQ(V("SELECT run_key FROM runs"), "envdag@2026-03-01T00:00:00+01:00");
  EXPECT_EQ(Instance("show")["idempotency_key"], "envdag/show/-/2026-03-01T00:00:00+01:00");
  // The summary table names the run and its outcome.
  EXPECT_THAT(r.out, HasSubstr("run " + run_id + " (envdag, key envdag@2026-03-01T00:00:00+01:00): success"));
}

// --- Idempotency ---------------------------------------------------------------------

TEST_F(BatchdRunTest, SecondRunOfTheSameDateSkipsSucceededInstances) {
  std::string dag = WriteDag(R"(
dag: idem
tasks:
  - id: count
    command: echo x >> @TMP@/count
  - id: after
    depends_on: [count]
    command: echo y >> @TMP@/after
)");
  ProcResult first = RunBatchd(dag);
  ASSERT_EQ(first.exit_code, 0) << first.Describe();
  std::string run1 = LatestRunId();

  ProcResult second = RunBatchd(dag);
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  std::string run2 = LatestRunId();
  ASSERT_NE(run1, run2);
  EXPECT_EQ(ReadFile(tmp_ / "count"), "x\n") << "the command ran again";
  EXPECT_EQ(ReadFile(tmp_ / "after"), "y\n") << "the command ran again";
  EXPECT_EQ(V("SELECT run_key FROM runs WHERE run_id = '" + run2 + "'"), "idem@2026-03-01T00:00:00+00:00#2");
  EXPECT_EQ(V("SELECT state FROM runs WHERE run_id = '" + run2 + "'"), "success");
  for (const char* task : {"count", "after"}) {
    Json inst = Instance(task, "-", run2);
    EXPECT_EQ(inst["state"], "skipped") << task;
    EXPECT_EQ(inst["reason"], "already_succeeded") << task;
    EXPECT_EQ(inst["attempts"], 0) << task;
  }
  EXPECT_FALSE(Exists(data_ + "/logs/" + run2)) << "no attempt, no log";

  // --force executes everything again, as a third run.
  ProcResult forced = RunBatchd(dag, {"--force"});
  ASSERT_EQ(forced.exit_code, 0) << forced.Describe();
  std::string run3 = LatestRunId();
  EXPECT_EQ(ReadFile(tmp_ / "count"), "x\nx\n");
  EXPECT_EQ(ReadFile(tmp_ / "after"), "y\ny\n");
  EXPECT_EQ(V("SELECT run_key FROM runs WHERE run_id = '" + run3 + "'"), "idem@2026-03-01T00:00:00+00:00#3");
  EXPECT_EQ(Instance("count", "-", run3)["state"], "success");
  EXPECT_EQ(Instance("count", "-", run3)["attempts"], 1);
  EXPECT_EQ(V("SELECT count(*) FROM runs"), "3");
}

TEST_F(BatchdRunTest, CustomIdempotencyKeyWithoutDateSkipsAcrossDates) {
  std::string dag = WriteDag(R"(
dag: once
tasks:
  - id: setup
    idempotency_key: "{{ dag }}/{{ task }}/forever"
    command: echo x >> @TMP@/setup
  - id: daily
    depends_on: [setup]
    command: echo "$BATCHD_LOGICAL_DATE" >> @TMP@/daily
)");
  ProcResult d1 = RunBatchd(dag, {}, "2026-03-01");
  ASSERT_EQ(d1.exit_code, 0) << d1.Describe();
  ProcResult d2 = RunBatchd(dag, {}, "2026-03-02");
  ASSERT_EQ(d2.exit_code, 0) << d2.Describe();
  EXPECT_EQ(ReadFile(tmp_ / "setup"), "x\n");
  EXPECT_EQ(ReadFile(tmp_ / "daily"), "2026-03-01T00:00:00+00:00\n2026-03-02T00:00:00+00:00\n");
  std::string run2 = LatestRunId();
  EXPECT_EQ(V("SELECT run_key FROM runs WHERE run_id = '" + run2 + "'"), "once@2026-03-02T00:00:00+00:00");
  Json setup = Instance("setup", "-", run2);
  EXPECT_EQ(setup["state"], "skipped");
  EXPECT_EQ(setup["reason"], "already_succeeded");
  EXPECT_EQ(setup["idempotency_key"], "once/setup/forever");
  EXPECT_EQ(Instance("daily", "-", run2)["state"], "success") << "a skipped upstream counts as succeeded";
}

// --- Partitions ----------------------------------------------------------------------

// Every file under `dir`, relative to it, sorted.
std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file()) files.push_back(std::filesystem::relative(e.path(), dir).string());
  std::sort(files.begin(), files.end());
  return files;
}

TEST_F(BatchdRunTest, AnAttemptThatPrintedSomethingHasItsOwnLogFileAndASilentOneNone) {
  std::string dag = WriteDag(R"(
dag: quiet
tasks:
  - id: silent
    command: "true"
  - id: silent_failure
    command: exit 3
  - id: talker
    command: echo said
  - id: spawn_error
    working_dir: /nonexistent-dir
    command: echo never
)");
  ProcResult r = RunBatchd(dag);
  ASSERT_EQ(r.exit_code, 1) << r.Describe();
  std::string run_id = LatestRunId();
  const std::string silent_failure = AttemptLogPath(data_, run_id, "silent_failure", "-", 1);
  EXPECT_EQ(Attempts("silent").at(0).at("log_path"), AttemptLogPath(data_, run_id, "silent", "-", 1));
  EXPECT_EQ(Attempts("silent_failure").at(0).at("log_path"), silent_failure);
  EXPECT_NE(r.out.find("silent_failure[-] failed; log: " + silent_failure), std::string::npos) << r.Describe();
  EXPECT_EQ(LogOf(run_id, "talker", "-", 1), "said\n");
  // Only the attempt that printed something left a file.
  const std::string shard = std::to_string(std::stoll(V("SELECT id FROM task_instances WHERE task = 'talker'")) / 1000);
  EXPECT_THAT(FilesUnder(data_ + "/logs/" + run_id), ElementsAre(shard + "/talker@-.1.log"));
  EXPECT_FALSE(Exists(silent_failure));
}

TEST_F(BatchdRunTest, ARunWhoseAttemptsPrintedNothingLeavesNoLogDirectory) {
  std::string dag = WriteDag(R"(
dag: mute
tasks:
  - id: a
    command: "true"
  - id: b
    depends_on: [a]
    partitions: {values: [x, y, z]}
    command: "true"
)");
  ProcResult r = RunBatchd(dag);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(V("SELECT count(*) FROM attempts"), "4");
  EXPECT_FALSE(Exists(data_ + "/logs/" + LatestRunId()));
}

TEST_F(BatchdRunTest, LogFilesAreShardedByInstanceSoNoDirectoryGrowsWithTheRun) {
  std::string dag = WriteDag(R"(
dag: wide
tasks:
  - id: w
    partitions: {range: [1, 1201]}
    command: echo p$BATCHD_PARTITION
)");
  ProcResult r = RunBatchd(dag);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const std::string run_dir = data_ + "/logs/" + LatestRunId();
  std::map<std::string, int> per_dir;
  for (const auto& f : FilesUnder(run_dir)) per_dir[f.substr(0, f.find('/'))]++;
  int total = 0;
  for (const auto& [dir, n] : per_dir) {
    EXPECT_LE(n, 1000) << dir;
    total += n;
  }
  EXPECT_EQ(total, 1200);
  EXPECT_GE(per_dir.size(), 2u);
  EXPECT_EQ(LogOf(LatestRunId(), "w", "1177", 1), "p1177\n");
}

// Each log file holds exactly its own attempt's output, and there is none for instances
// that never started.
TEST_F(BatchdRunTest, LogFilesHoldTheirAttemptAndNoneIsLeftForWhatDidNotRun) {
  std::string dag = WriteDag(R"(
dag: ahead
tasks:
  - id: a
    command: echo a
  - id: b
    depends_on: [a]
    retry: {retries: 1, delay: 10ms, backoff: fixed}
    command: echo b; exit 3
  - id: c
    depends_on: [b]
    command: echo c
  - id: d
    depends_on: [c]
    command: echo d
  - id: side
    depends_on: [a]
    command: echo side
)");
  ProcResult r = RunBatchd(dag);
  ASSERT_EQ(r.exit_code, 1) << r.Describe();
  std::string run_id = LatestRunId();
  EXPECT_EQ(Instance("c")["state"], "upstream_failed");
  EXPECT_EQ(LogOf(run_id, "a", "-", 1), "a\n");
  EXPECT_EQ(LogOf(run_id, "b", "-", 1), "b\n");
  EXPECT_EQ(LogOf(run_id, "b", "-", 2), "b\n");
  EXPECT_EQ(LogOf(run_id, "side", "-", 1), "side\n");
  std::vector<std::string> files;
  for (const auto& f : FilesUnder(data_ + "/logs/" + run_id)) files.push_back(f.substr(f.find('/') + 1));
  EXPECT_THAT(files, ElementsAre("a@-.1.log", "b@-.1.log", "b@-.2.log", "side@-.1.log"));
}

TEST_F(BatchdRunTest, PartitionsRunPerPartitionWithTheirOwnLogs) {
  std::string dag = WriteDag(R"(
dag: parts
tasks:
  - id: extract
    partitions: {values: [us, eu, apac]}
    command: echo "extract {{ partition }} $BATCHD_PARTITION" && date +%s%N > @TMP@/extract-{{ partition }}.done
  - id: transform
    depends_on: [{task: extract, partitions: same}]
    partitions: {values: [apac, us, eu]}
    command: test -e @TMP@/extract-{{ partition }}.done && echo "transform $BATCHD_PARTITION"
  - id: shard
    partitions: {range: [0, 3]}
    command: echo "shard $BATCHD_PARTITION"
  - id: reduce
    depends_on: [{task: shard, partitions: same}]
    partitions: {range: [0, 3]}
    command: echo "reduce $BATCHD_PARTITION"
  - id: listed
    partitions: {command: "printf 'a\\nb c\\n'"}
    command: echo "listed $BATCHD_PARTITION"
  - id: relisted
    depends_on: [{task: listed, partitions: same}]
    partitions: {command: "printf 'a\\nb c\\n'"}
    command: echo "relisted $BATCHD_PARTITION"
  - id: publish
    depends_on: [transform, reduce, relisted]
    command: echo "publish $BATCHD_PARTITION"
)");
  ProcResult r = RunBatchd(dag);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::string run_id = LatestRunId();
  EXPECT_EQ(V("SELECT count(*) FROM task_instances WHERE state = 'success'"), "17");
  for (const char* p : {"us", "eu", "apac"}) {
    EXPECT_EQ(LogOf(run_id, "extract", p, 1), std::string("extract ") + p + " " + p + "\n");
    EXPECT_EQ(LogOf(run_id, "transform", p, 1), std::string("transform ") + p + "\n");
  }
  for (const char* p : {"0", "1", "2"}) {
    EXPECT_EQ(LogOf(run_id, "shard", p, 1), std::string("shard ") + p + "\n");
    EXPECT_EQ(LogOf(run_id, "reduce", p, 1), std::string("reduce ") + p + "\n");
  }
  EXPECT_EQ(LogOf(run_id, "listed", "a", 1), "listed a\n");
  // A partition name unsafe in a file name is escaped in the log path.
  EXPECT_EQ(LogOf(run_id, "relisted", "b c", 1), "relisted b c\n");
  EXPECT_EQ(Instance("relisted", "b c")["state"], "success");
  EXPECT_EQ(LogOf(run_id, "publish", "-", 1), "publish -\n");
  EXPECT_EQ(Instance("extract", "eu")["idempotency_key"], "parts/extract/eu/2026-03-01T00:00:00+00:00");
}

TEST_F(BatchdRunTest, SamePartitionDependencyIsolatesAFailedPartition) {
  std::string dag = WriteDag(R"(
dag: isolate
tasks:
  - id: extract
    partitions: {values: [us, eu, apac]}
    command: test {{ partition }} != eu
  - id: transform
    depends_on: [{task: extract, partitions: same}]
    partitions: {values: [us, eu, apac]}
    command: "true"
  - id: publish
    depends_on: [transform]
    command: "true"
)");
  ProcResult r = RunBatchd(dag);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(Instance("extract", "eu")["state"], "failed");
  EXPECT_EQ(Instance("transform", "eu")["state"], "upstream_failed");
  EXPECT_EQ(Instance("transform", "us")["state"], "success");
  EXPECT_EQ(Instance("transform", "apac")["state"], "success");
  EXPECT_EQ(Instance("publish")["state"], "upstream_failed");
}

// --- Crash recovery ------------------------------------------------------------------

// The first attempt blocks (exec'd, so $$ is the process that sleeps); batchd is killed
// with SIGKILL while it runs; the next `batchd run` resumes the run, records the attempt
// as lost and retries it.
TEST_F(BatchdRunTest, AttemptOfAKilledBatchdIsLostAndRetried) {
  std::string dag = WriteDag(R"(
dag: crash
tasks:
  - id: long
    retry: {retries: 1, delay: 100ms}
    command: |
      echo $$ > @TMP@/attempt$BATCHD_ATTEMPT.pid
      [ "$BATCHD_ATTEMPT" != 1 ] || exec sleep 30
      echo "second attempt"
)");
  Process first(RunArgs(dag));
  const pid_t task_pid = WaitForTaskPid(first, "attempt1.pid");
  ASSERT_NE(task_pid, 0);
  ASSERT_EQ(V("SELECT outcome FROM attempts"), "running");

  ASSERT_TRUE(KillBatchd(first));
  // What the dead process left: the attempt still running, the run unfinished.
  EXPECT_EQ(V("SELECT outcome FROM attempts"), "running");
  EXPECT_EQ(V("SELECT state FROM task_instances"), "running");
  EXPECT_EQ(V("SELECT state FROM runs"), "running");
  EXPECT_TRUE(WaitFor([&] { return !PidAlive(task_pid); }, milliseconds(2000)))
      << "task process " << task_pid << " survived the SIGKILL of batchd";

  ProcResult second = RunBatchd(dag);
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  std::string run_id = V("SELECT run_id FROM runs");
  EXPECT_THAT(second.out, HasSubstr("resuming run " + run_id + " (crash@2026-03-01T00:00:00+00:00) left unfinished"));
  EXPECT_EQ(V("SELECT count(*) FROM runs"), "1") << "the unfinished run is resumed, not a new one";
  EXPECT_EQ(V("SELECT state FROM runs"), "success");
  Json attempts = Attempts("long");
  EXPECT_THAT(Outcomes(attempts), ElementsAre("lost", "success"));
  Json inst = Instance("long");
  EXPECT_EQ(inst["state"], "success");
  EXPECT_EQ(inst["attempts"], 2);
  EXPECT_EQ(LogOf(run_id, "long", "-", 2), "second attempt\n");
  EXPECT_NE(V("SELECT ended_at FROM attempts WHERE number = 1"), "null");
  EXPECT_EQ(attempts[0]["error"], "the daemon stopped while the attempt ran");
}

TEST_F(BatchdRunTest, BackgroundChildrenOfATaskDieWithAKilledBatchd) {
  // PR_SET_PDEATHSIG reaches only the task's shell; its background job is the rest of the
  // process group, which the orphan guard kills when batchd dies.
  std::string dag = WriteDag(R"(
dag: orphans
tasks:
  - id: spawner
    command: |
      sleep 300 &
      echo $! > @TMP@/background.pid
      echo $$ > @TMP@/shell.pid
      wait
)");
  ExpectGroupDiesWithKilledBatchd(dag, "the task's shell");
}

TEST_F(BatchdRunTest, PartitionsCommandDiesWithAKilledBatchd) {
  // A partitions command is a child of batchd too (run on the expander's thread): it and
  // its background jobs must not outlive a batchd killed while the run is being planned.
  std::string dag = WriteDag(R"(
dag: slow_partitions
tasks:
  - id: fan
    partitions:
      command: |
        if [ ! -e @TMP@/second ]; then
          sleep 300 &
          echo $! > @TMP@/background.pid
          echo $$ > @TMP@/shell.pid
          wait
        fi
        echo eu; echo us
    command: "true"
)");
  ExpectGroupDiesWithKilledBatchd(dag, "the partitions command");
  EXPECT_EQ(V("SELECT state FROM runs"), "queued") << "killed while planning: nothing was started";

  // The next invocation plans the run afresh.
  WriteFile(tmp_ / "second", "");
  ProcResult second = RunBatchd(dag);
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  EXPECT_EQ(V("SELECT count(*) FROM runs"), "1");
  EXPECT_EQ(Instance("fan", "eu")["state"], "success");
  EXPECT_EQ(Instance("fan", "us")["state"], "success");
}

// A killed invocation of one date, then an invocation of another date: the unfinished
// run is finished first (its lost attempt retried), then the new one runs.
TEST_F(BatchdRunTest, UnfinishedRunOfAnotherDateIsFinishedFirst) {
  std::string dag = WriteDag(R"(
dag: dates
tasks:
  - id: work
    retry: {retries: 1, delay: 100ms}
    command: |
      echo "$BATCHD_LOGICAL_DATE attempt $BATCHD_ATTEMPT" >> @TMP@/order
      [ "$BATCHD_ATTEMPT" != 1 ] || [ "$BATCHD_LOGICAL_DATE" != 2026-03-01T00:00:00+00:00 ] || exec sleep 30
)");
  {
    Process first(RunArgs(dag, {}, "2026-03-01"));
    // The line, not the file: `>>` creates the file before echo writes, and the task dies
    // with batchd.
    ASSERT_TRUE(WaitFor([&] { return ReadFile(tmp_ / "order") == "2026-03-01T00:00:00+00:00 attempt 1\n"; },
                        milliseconds(10000)))
        << first.Stderr();
    first.Signal(SIGKILL);
    first.Wait(milliseconds(5000));
  }
  ProcResult r = RunBatchd(dag, {}, "2026-03-02");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(ReadFile(tmp_ / "order"),
            "2026-03-01T00:00:00+00:00 attempt 1\n"
            "2026-03-01T00:00:00+00:00 attempt 2\n"
            "2026-03-02T00:00:00+00:00 attempt 1\n");
  Json runs = Q("SELECT run_key, state, started_at, ended_at FROM runs ORDER BY logical_date");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["run_key"], "dates@2026-03-01T00:00:00+00:00");
  EXPECT_EQ(runs[0]["state"], "success");
  EXPECT_EQ(runs[1]["state"], "success");
  EXPECT_LE(runs[0]["ended_at"].get<int64_t>(), runs[1]["started_at"].get<int64_t>()) << "max_active_runs: 1";
}

// SPEC 6 under fire: `batchd run` is SIGKILLed at random moments, over and over, and then
// runs to the end. Every task appends "KEY ATTEMPT" to a ledger before it exits (`charge`
// fails one time in five). Whatever the timing: every execution is an attempt row (the row is
// committed before the spawn), no attempt number runs twice, nothing runs after its success,
// and in the end every instance has succeeded exactly once.
TEST_F(BatchdRunTest, RandomKillNinesNeitherLoseNorRepeatWork) {
  std::string dag = WriteDag(R"(
dag: ledger
max_active_tasks: 8
tasks:
  - id: charge
    partitions: {range: [0, 48]}
)" + std::string(kLedgerTaskBody) + R"(
  - id: settle
    depends_on:
      - {task: charge, partitions: same}
    partitions: {range: [0, 48]}
    retry: {retries: 40, delay: 10ms, backoff: fixed}
    command: sleep 0.02; echo "$BATCHD_IDEMPOTENCY_KEY $BATCHD_ATTEMPT" >> @TMP@/ledger
)");
  std::random_device seed_source;
  const unsigned seed = seed_source();
  std::mt19937 rng(seed);
  // Short enough that the run, which makes progress between kills, is killed at least five
  // times before it can finish (at up to 120 ms it sometimes finished after three).
  std::uniform_int_distribution<int> delay_ms(5 * kSlowdown, 60 * kSlowdown);
  std::string delays;  // for failure messages: the timing that broke it
  auto timing = [&] { return "seed " + std::to_string(seed) + ", kills after " + delays; };
  int killed = 0;
  bool finished = false;  // an invocation ended before its kill
  for (int kill = 0; kill < 20; ++kill) {
    Process run(RunArgs(dag));
    const int ms = delay_ms(rng);
    std::this_thread::sleep_for(milliseconds(ms));
    run.Signal(SIGKILL);
    ProcResult r = run.Wait(milliseconds(10000));
    delays += std::to_string(ms) + (r.signal == SIGKILL ? "ms " : "ms(finished first) ");
    ASSERT_FALSE(r.timed_out) << r.Describe() << timing();
    if (r.signal != SIGKILL) {
      ASSERT_EQ(r.exit_code, 0) << r.Describe() << timing();
      finished = true;
      break;
    }
    ++killed;
  }
  SCOPED_TRACE(timing());
  EXPECT_GE(killed, 5) << "the run finished before most kills: the test no longer tests much";
  if (!finished) {
    ProcResult last = RunBatchd(dag);
    ASSERT_EQ(last.exit_code, 0) << last.Describe();
  }
  EXPECT_GT(std::stoi(V("SELECT count(*) FROM attempts WHERE outcome = 'lost'")), 0)
      << "no kill landed while a task ran: the test tested nothing";

  EXPECT_EQ(V("SELECT count(*) FROM task_instances WHERE state = 'success'"), "96");
  EXPECT_EQ(V("SELECT count(*) FROM runs"), "1");
  size_t keys = 0;
  EXPECT_THAT(LedgerViolations(tmp_ / "ledger", db_, &keys), ::testing::IsEmpty());
  EXPECT_EQ(keys, 96u);
}

// --- Bad input, usage errors, the data directory lock --------------------------------

TEST_F(BatchdRunTest, InvalidDagFileChangesNothing) {
  std::string good = WriteDag(R"(
dag: validated
tasks:
  - id: a
    command: "true"
)");
  std::string bad = WriteDag(R"(dag: validated
tasks:
  - id: a
    comand: "true"
)", "bad.yaml");
  // Nothing stored yet: the data directory is not even left behind (a new store is
  // created while the file parses, and removed again).
  ProcResult r = RunBatchd(bad);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr(bad + ":4:5: "));
  EXPECT_THAT(r.err, HasSubstr("comand"));
  EXPECT_FALSE(Exists(data_));

  // Nor are missing parents of it, and in a directory that exists only what batchd made
  // goes: an operator's file and the directory stay.
  r = RunProcess({BATCHD_BIN, "run", bad, "--data-dir", tmp_ / "new/deeper/data"}, milliseconds(20000));
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr(bad + ":4:5: "));
  EXPECT_FALSE(Exists(tmp_ / "new"));
  const std::string prepared = tmp_ / "prepared";
  ASSERT_TRUE(std::filesystem::create_directory(prepared));
  WriteFile(prepared + "/README", "batchd data\n");
  r = RunProcess({BATCHD_BIN, "run", bad, "--data-dir", prepared}, milliseconds(20000));
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(prepared)) left.push_back(e.path().filename());
  EXPECT_THAT(left, ElementsAre("README"));

  // With history stored, a bad file adds nothing to it.
  ASSERT_EQ(RunBatchd(good).exit_code, 0);
  std::string before = Q("SELECT * FROM runs").dump() + Q("SELECT dag, hash FROM dag_versions").dump() +
                       Q("SELECT count(*) FROM task_instances").dump();
  r = RunBatchd(bad, {}, "2026-03-02");
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr(bad + ":4:5: "));
  EXPECT_EQ(Q("SELECT * FROM runs").dump() + Q("SELECT dag, hash FROM dag_versions").dump() +
                Q("SELECT count(*) FROM task_instances").dump(),
            before);

  // A cycle names its tasks.
  std::string cyclic = WriteDag(R"(dag: cyc
tasks:
  - id: a
    depends_on: [b]
    command: "true"
  - id: b
    depends_on: [a]
    command: "true"
)", "cyclic.yaml");
  r = RunBatchd(cyclic);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr(cyclic + ":3:9: dependency cycle: "));
  EXPECT_EQ(V("SELECT count(*) FROM runs WHERE dag = 'cyc'"), "0");
}

TEST_F(BatchdRunTest, UnknownParamIsAUsageError) {
  std::string dag = WriteDag(R"(
dag: params
params: {region: eu}
tasks:
  - id: a
    command: "true"
)");
  ProcResult r = RunBatchd(dag, {"--param", "regoin=us"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(r.err, "batchd: --param regoin: DAG 'params' has no parameter 'regoin'\n");
  EXPECT_FALSE(Exists(data_));

  r = RunBatchd(dag, {"--param", "region"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("--param expects K=V, got 'region'"));

  r = RunBatchd(dag, {}, "yesterday");
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("--date"));
  EXPECT_FALSE(Exists(data_));

  r = RunBatchd(dag, {"--bogus"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_FALSE(Exists(db_));
}

TEST_F(BatchdRunTest, SecondBatchdOnTheSameDataDirIsRefused) {
  std::string dag = WriteDag(R"(
dag: held
tasks:
  - id: wait
    command: while [ ! -e @TMP@/release ]; do sleep 0.02; done
)");
  Process first(RunArgs(dag));
  ASSERT_TRUE(WaitFor([&] { return TryQueryValue(db_, "SELECT count(*) FROM attempts WHERE outcome = 'running'") == "1"; },
                      milliseconds(10000), milliseconds(50)))
      << first.Stdout() << first.Stderr();

  ProcResult second = RunBatchd(dag, {}, "2026-03-02");
  EXPECT_EQ(second.exit_code, 1) << second.Describe();
  EXPECT_EQ(second.err, "batchd: data directory '" + data_ + "' is in use by another batchd process (pid " +
                            std::to_string(first.pid()) + ")\n");
  EXPECT_EQ(V("SELECT count(*) FROM runs"), "1") << "the refused invocation stored nothing";

  WriteFile(tmp_ / "release", "");
  ProcResult done = first.Wait(milliseconds(10000));
  EXPECT_EQ(done.exit_code, 0) << done.Describe();
}

// --- Interruption --------------------------------------------------------------------

TEST_F(BatchdRunTest, SigintStopsTheRunAndTheNextInvocationResumesIt) {
  std::string dag = WriteDag(R"(
dag: interrupted
tasks:
  - id: first
    command: echo $$ > @TMP@/first.pid; [ "$BATCHD_ATTEMPT" != 1 ] || exec sleep 30
  - id: second
    depends_on: [first]
    command: echo "second ran"
)");
  Process batchd(RunArgs(dag));
  const pid_t task_pid = WaitForTaskPid(batchd, "first.pid");
  ASSERT_NE(task_pid, 0);
  std::string run_id = V("SELECT run_id FROM runs");
  const std::string second_log = AttemptLogPath(data_, run_id, "second", "-", 1);

  auto t0 = steady_clock::now();
  batchd.Signal(SIGINT);
  ProcResult r = batchd.Wait(milliseconds(10000));
  EXPECT_LT(SecondsSince(t0), 3.0) << "sleep dies on SIGTERM at once";
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(r.err, "batchd: interrupted; run " + run_id + " resumes on the next `batchd run`\n");
  EXPECT_FALSE(PidAlive(task_pid));
  EXPECT_EQ(V("SELECT state FROM runs"), "running");
  EXPECT_THAT(Outcomes(Attempts("first")), ElementsAre("cancelled"));
  EXPECT_EQ(Instance("first")["state"], "queued");
  EXPECT_EQ(Instance("second")["state"], "pending");
  EXPECT_FALSE(Exists(second_log)) << "a log file for a task that did not start";

  // Retries: 0, yet the instance runs again: a cancelled attempt is not a failure.
  ProcResult again = RunBatchd(dag);
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_THAT(again.out, HasSubstr("resuming run " + run_id));
  EXPECT_EQ(V("SELECT count(*) FROM runs"), "1");
  EXPECT_EQ(V("SELECT state FROM runs"), "success");
  EXPECT_THAT(Outcomes(Attempts("first")), ElementsAre("cancelled", "success"));
  EXPECT_EQ(Instance("second")["state"], "success");
  EXPECT_EQ(LogOf(run_id, "second", "-", 1), "second ran\n");
}

}  // namespace
}  // namespace batchd::e2e
