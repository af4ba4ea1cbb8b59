// End-to-end tests of fix-and-retry: after a DAG file is fixed, `batchctl retry` runs the
// DAG's current version when it has the same tasks as the run's, `--same-version` keeps the
// run's own, each attempt records the version it ran, and `status` shows it. The real
// daemon, driven through the real batchctl; versions are read from the real store.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using ::testing::HasSubstr;

// Task `a` appends `label` to a.out and exits `code`; `b` runs after it.
std::string TwoTaskDag(const std::string& label, int code, const std::string& second = "b") {
  return "dag: fix\n"
         "defaults:\n"
         "  retry: {retries: 0}\n"
         "tasks:\n"
         "  - id: a\n"
         "    command: \"echo " + label + " >> @TMP@/a.out; exit " + std::to_string(code) + "\"\n"
         "  - id: " + second + "\n"
         "    depends_on: [a]\n"
         "    command: \"echo " + label + " >> @TMP@/" + second + ".out\"\n";
}

class RetryVersionTest : public DaemonTest {
 protected:
  std::string CurrentVersion() { return V("SELECT current_hash FROM dags WHERE name = 'fix'"); }

  // Triggers `fix` at version `label` (exit 1) and waits for it to fail.
  std::string FailedRun(std::string* version) {
    SubmitDag("fix.yaml", TwoTaskDag("v1", 1));
    *version = CurrentVersion();
    const std::string run_id = Trigger("fix");
    EXPECT_TRUE(WaitRunState(run_id, "failed"));
    return run_id;
  }

  // (task, attempt, dag_version) of every attempt of the run, from `attempts --json`.
  std::vector<std::string> AttemptVersions(const std::string& run_id) {
    std::vector<std::string> out;
    for (const auto& a : CtlJson({"attempts", run_id}))
      out.push_back(a["task"].get<std::string>() + "#" + std::to_string(a["attempt"].get<int>()) + "@" +
                    a["dag_version"].get<std::string>());
    return out;
  }
};

TEST_F(RetryVersionTest, RetryRunsTheFixedVersionAndEachAttemptRecordsItsVersion) {
  ASSERT_TRUE(StartDaemon());
  std::string v1;
  const std::string run_id = FailedRun(&v1);
  SubmitDag("fix.yaml", TwoTaskDag("v2", 0));
  const std::string v2 = CurrentVersion();
  ASSERT_NE(v1, v2);

  ProcResult retry = Ctl({"retry", run_id});
  ASSERT_EQ(retry.exit_code, 0) << retry.Describe();
  EXPECT_EQ(retry.out, "run " + run_id + ": 2 instances reset for another attempt with the DAG's current version " +
                           v2.substr(0, 12) + " (was " + v1.substr(0, 12) + ")\n");
  ASSERT_TRUE(WaitRunState(run_id, "success")) << DaemonLog();
  EXPECT_EQ(ReadFile(tmp_ / "a.out").value_or(""), "v1\nv2\n");
  EXPECT_EQ(ReadFile(tmp_ / "b.out").value_or(""), "v2\n");

  EXPECT_EQ(V("SELECT dag_hash FROM runs WHERE run_id = '" + run_id + "'"), v2);
  EXPECT_EQ(AttemptVersions(run_id),
            (std::vector<std::string>{"a#1@" + v1.substr(0, 12), "a#2@" + v2.substr(0, 12), "b#1@" + v2.substr(0, 12)}));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM attempts WHERE dag_hash = '" + v2 + "'"), 2);

  OrderedJson status = CtlJson({"status", run_id});
  EXPECT_EQ(status["dag_version"], v2.substr(0, 12));
  EXPECT_EQ(status["tasks"][0]["last_attempt"]["dag_version"], v2.substr(0, 12));
  ProcResult text = Ctl({"status", run_id});
  EXPECT_THAT(text.out, HasSubstr("dag version   " + v2.substr(0, 12) + "\n")) << text.out;

  Json audit = Q("SELECT detail FROM audit WHERE action = 'retry'");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(Json::parse(audit[0]["detail"].get<std::string>())["dag_version"], v2);
  EXPECT_EQ(Json::parse(audit[0]["detail"].get<std::string>())["previous_dag_version"], v1);
}

TEST_F(RetryVersionTest, SameVersionRunsTheRunsOwnVersionAgain) {
  ASSERT_TRUE(StartDaemon());
  std::string v1;
  const std::string run_id = FailedRun(&v1);
  SubmitDag("fix.yaml", TwoTaskDag("v2", 0));

  OrderedJson reply = CtlJson({"retry", run_id, "--same-version"});
  EXPECT_EQ(reply["dag_version"], v1.substr(0, 12));
  EXPECT_EQ(reply["previous_dag_version"], v1.substr(0, 12));
  EXPECT_EQ(reply["reset"], 2);
  ASSERT_TRUE(WaitRunState(run_id, "failed"));
  EXPECT_EQ(ReadFile(tmp_ / "a.out").value_or(""), "v1\nv1\n");
  EXPECT_EQ(V("SELECT dag_hash FROM runs WHERE run_id = '" + run_id + "'"), v1);
  EXPECT_EQ(AttemptVersions(run_id), (std::vector<std::string>{"a#1@" + v1.substr(0, 12), "a#2@" + v1.substr(0, 12)}));
  // Without --same-version now, the fixed version runs.
  ProcResult retry = Ctl({"retry", run_id});
  ASSERT_EQ(retry.exit_code, 0) << retry.Describe();
  ASSERT_TRUE(WaitRunState(run_id, "success"));
  EXPECT_EQ(ReadFile(tmp_ / "a.out").value_or(""), "v1\nv1\nv2\n");
}

TEST_F(RetryVersionTest, AVersionWithOtherTasksLeavesTheRunOnItsOwnVersionAndSaysWhy) {
  ASSERT_TRUE(StartDaemon());
  std::string v1;
  const std::string run_id = FailedRun(&v1);
  SubmitDag("fix.yaml", TwoTaskDag("v2", 0, "c"));
  const std::string v2 = CurrentVersion();

  ProcResult retry = Ctl({"retry", run_id});
  ASSERT_EQ(retry.exit_code, 0) << retry.Describe();
  EXPECT_EQ(retry.out, "run " + run_id + ": 2 instances reset for another attempt with the run's own version " +
                           v1.substr(0, 12) + ": the current version " + v2.substr(0, 12) + " has no task 'b'\n");
  ASSERT_TRUE(WaitRunState(run_id, "failed"));
  EXPECT_EQ(ReadFile(tmp_ / "a.out").value_or(""), "v1\nv1\n");
  EXPECT_EQ(V("SELECT dag_hash FROM runs WHERE run_id = '" + run_id + "'"), v1);
}

TEST_F(RetryVersionTest, ARunStillRunningMovesToTheCurrentVersionWithoutDisturbingItsRunningTask) {
  ASSERT_TRUE(StartDaemon());
  const std::string dag_v1 =
      "dag: fix\n"
      "defaults:\n"
      "  retry: {retries: 0}\n"
      "tasks:\n"
      "  - id: slow\n"
      "    command: \"echo $$ > @TMP@/slow.pid; while [ ! -e @TMP@/go ]; do sleep 0.05; done; echo VER >> @TMP@/slow.out\"\n"
      "  - id: a\n"
      "    command: \"echo VER >> @TMP@/a.out; exit CODE\"\n";
  auto version = [&](const std::string& ver, const std::string& code) {
    std::string y = dag_v1;
    for (auto [from, to] : {std::pair<std::string, std::string>{"VER", ver}, {"CODE", code}})
      for (size_t p; (p = y.find(from)) != std::string::npos;) y.replace(p, from.size(), to);
    return y;
  };
  SubmitDag("fix.yaml", version("v1", "1"));
  const std::string v1 = CurrentVersion();
  const std::string run_id = Trigger("fix");
  ASSERT_NE(WaitRunningAttempt(run_id, "slow", tmp_ / "slow.pid"), 0);
  ASSERT_TRUE(WaitFor([&] { return AttemptOutcomes(run_id, "a") == std::vector<std::string>{"failed"}; },
                      std::chrono::milliseconds(10000)));
  SubmitDag("fix.yaml", version("v2", "0"));
  const std::string v2 = CurrentVersion();

  OrderedJson reply = CtlJson({"retry", run_id, "--task", "a"});
  EXPECT_EQ(reply["reset"], 1);
  EXPECT_EQ(reply["dag_version"], v2.substr(0, 12));
  EXPECT_TRUE(WaitFor([&] { return ReadFile(tmp_ / "a.out").value_or("") == "v1\nv2\n"; },
                      std::chrono::milliseconds(10000)));
  EXPECT_EQ(RunState(run_id), "running");
  WriteFile(tmp_ / "go", "");
  ASSERT_TRUE(WaitRunState(run_id, "success")) << DaemonLog();
  // The attempt already running keeps the version it started with.
  EXPECT_EQ(AttemptVersions(run_id), (std::vector<std::string>{"slow#1@" + v1.substr(0, 12), "a#1@" + v1.substr(0, 12),
                                                               "a#2@" + v2.substr(0, 12)}));
  EXPECT_EQ(ReadFile(tmp_ / "slow.out").value_or(""), "v1\n");
  ProcResult text = Ctl({"status", run_id});
  EXPECT_THAT(text.out, HasSubstr("#1 exit code 0 (version " + v1.substr(0, 12) + ")")) << text.out;
}

}  // namespace
}  // namespace batchd::e2e
