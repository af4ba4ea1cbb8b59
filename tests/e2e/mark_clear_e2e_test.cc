// End-to-end tests of `batchctl mark` and `batchctl clear`: an operator's decisions on task
// instances, their downstream effects through the trigger rules, their idempotency keys,
// their audit entries, the refusals that change nothing, and a cleared run that waits for a
// slot surviving kill -9. The real daemon, driven through the real batchctl; states are read
// from the real store.
#include <algorithm>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using ::testing::HasSubstr;

// extract[eu, us] -> load -> report. Each task appends a line to <task>.out; extract fails
// for a partition named in the file `fail` (if it exists).
constexpr const char* kOpsDag = R"yaml(dag: ops
defaults:
  retry: {retries: 0}
tasks:
  - id: extract
    partitions: {values: [eu, us]}
    command: "echo {{ partition }} >> @TMP@/extract.out; ! grep -qx {{ partition }} @TMP@/fail 2>/dev/null"
  - id: load
    depends_on: [extract]
    command: "echo load >> @TMP@/load.out"
  - id: report
    depends_on: [load]
    command: "echo report >> @TMP@/report.out"
)yaml";

class MarkClearTest : public DaemonTest {
 protected:
  // A finished run of `ops` for 2026-01-05; `fail` names a partition that fails.
  std::string FinishedRun(const std::string& fail, const std::string& state) {
    if (!fail.empty()) WriteFile(tmp_ / "fail", fail + "\n");
    SubmitDag("ops.yaml", kOpsDag);
    const std::string run_id = Trigger("ops", {"--date", "2026-01-05"});
    EXPECT_TRUE(WaitRunState(run_id, state)) << DaemonLog();
    return run_id;
  }

  // task[partition]=state(reason) of every instance of the run, in instance order.
  std::vector<std::string> Instances(const std::string& run_id) {
    std::vector<std::string> out;
    for (const auto& row : Q("SELECT task, partition, state, reason FROM task_instances WHERE run_id = '" + run_id +
                             "' ORDER BY id")) {
      std::string line = row["task"].get<std::string>() + "[" + row["partition"].get<std::string>() +
                         "]=" + row["state"].get<std::string>();
      if (!row["reason"].get<std::string>().empty()) line += "(" + row["reason"].get<std::string>() + ")";
      out.push_back(line);
    }
    return out;
  }

  std::string Out(const std::string& task) { return ReadFile(tmp_ / (task + ".out")).value_or(""); }
  // extract.out's lines, sorted: partitions run in parallel.
  std::string ExtractLines() {
    std::vector<std::string> lines;
    std::string text = Out("extract"), line;
    for (char c : text) {
      if (c != '\n') { line += c; continue; }
      lines.push_back(line);
      line.clear();
    }
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (const auto& l : lines) out += l + " ";
    return out;
  }
};

TEST_F(MarkClearTest, MarkingAFailedPartitionSuccessRunsItsDownstreamAndRecordsItsKey) {
  ASSERT_TRUE(StartDaemon());
  const std::string run_id = FinishedRun("us", "failed");
  EXPECT_EQ(Instances(run_id), (std::vector<std::string>{"extract[eu]=success", "extract[us]=failed",
                                                         "load[-]=upstream_failed(upstream extract[us] failed)",
                                                         "report[-]=upstream_failed(upstream extract[us] failed)"}));

  ProcResult mark = Ctl({"mark", run_id, "extract", "--partition", "us", "success", "--reason",
                         "loaded by hand, ticket OPS-12"});
  ASSERT_EQ(mark.exit_code, 0) << mark.Describe();
  EXPECT_EQ(mark.out, "run " + run_id + ": 1 instance of task extract partition us marked success "
                        "(loaded by hand, ticket OPS-12)\n");
  ASSERT_TRUE(WaitRunState(run_id, "success")) << DaemonLog();
  EXPECT_EQ(Instances(run_id),
            (std::vector<std::string>{"extract[eu]=success",
                                      "extract[us]=success(marked success: loaded by hand, ticket OPS-12)",
                                      "load[-]=success", "report[-]=success"}));
  EXPECT_EQ(ExtractLines(), "eu us ") << "the marked partition does not run again";
  EXPECT_EQ(Out("load"), "load\n");
  EXPECT_EQ(Out("report"), "report\n");

  // status shows the reason; the audit log has who, what and why.
  OrderedJson status = CtlJson({"status", run_id});
  EXPECT_EQ(status["tasks"][1]["reason"], "marked success: loaded by hand, ticket OPS-12");
  Json audit = Q("SELECT target, detail FROM audit WHERE action = 'mark'");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0]["target"], run_id);
  EXPECT_EQ(Json::parse(audit[0]["detail"].get<std::string>()),
            Json::parse(R"({"task": "extract", "partition": "us", "state": "success",
                            "reason": "loaded by hand, ticket OPS-12", "marked": 1})"));

  // Marked success records the key: another run of the same date does none of the work.
  EXPECT_EQ(Count("SELECT COUNT(*) FROM idempotency_keys WHERE key = 'ops/extract/us/2026-01-05T00:00:00+00:00'"), 1);
  const std::string again = Trigger("ops", {"--date", "2026-01-05", "--key", "again"});
  ASSERT_TRUE(WaitRunState(again, "success"));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM task_instances WHERE run_id = '" + again +
                  "' AND state = 'skipped' AND reason = 'already_succeeded'"),
            4);
  EXPECT_EQ(ExtractLines(), "eu us ");
}

TEST_F(MarkClearTest, MarkingFailedOrSkippedEndsTheRunByItsOutcomeAndKeepsWhatAlreadyRan) {
  ASSERT_TRUE(StartDaemon());
  const std::string run_id = FinishedRun("", "success");

  ProcResult mark = Ctl({"mark", run_id, "load", "failed", "--reason", "loaded yesterday's file"});
  ASSERT_EQ(mark.exit_code, 0) << mark.Describe();
  EXPECT_EQ(mark.out, "run " + run_id + ": 1 instance of task load marked failed (loaded yesterday's file)\n");
  ASSERT_TRUE(WaitRunState(run_id, "failed")) << DaemonLog();
  EXPECT_EQ(Instances(run_id),
            (std::vector<std::string>{"extract[eu]=success", "extract[us]=success",
                                      "load[-]=failed(marked failed: loaded yesterday's file)", "report[-]=success"}))
      << "report already ran: it keeps its outcome";
  OrderedJson failed = CtlJson({"failed"});
  ASSERT_EQ(failed.size(), 1u) << failed.dump();
  EXPECT_EQ(failed[0]["task"], "load");

  // Every partition of a task at once; skipped counts as done for the run's outcome.
  mark = Ctl({"mark", run_id, "load", "skipped", "--reason", "not needed today"});
  ASSERT_EQ(mark.exit_code, 0) << mark.Describe();
  ASSERT_TRUE(WaitRunState(run_id, "success")) << DaemonLog();
  mark = Ctl({"mark", run_id, "extract", "skipped", "--reason", "source was empty", "--json"});
  ASSERT_EQ(mark.exit_code, 0) << mark.Describe();
  EXPECT_EQ(Json::parse(mark.out), Json::parse(R"({"run_id": ")" + run_id +
                                               R"(", "task": "extract", "state": "skipped", "marked": 2})"));
  ASSERT_TRUE(WaitRunState(run_id, "success"));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM task_instances WHERE run_id = '" + run_id +
                  "' AND task = 'extract' AND state = 'skipped' AND reason = 'marked skipped: source was empty'"),
            2);
  EXPECT_EQ(Out("load"), "load\n") << "marks run nothing";
}

TEST_F(MarkClearTest, AMarkedPendingInstanceStaysAndItsDownstreamFollowsTheTriggerRule) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("gate.yaml", R"yaml(dag: gate
tasks:
  - id: wait
    command: "echo $$ > @TMP@/wait.pid; while [ ! -e @TMP@/go ]; do sleep 0.05; done"
  - id: publish
    depends_on: [wait]
    command: "echo publish >> @TMP@/publish.out"
  - id: notify
    depends_on: [publish]
    command: "echo notify >> @TMP@/notify.out"
)yaml");
  const std::string run_id = Trigger("gate");
  ASSERT_GT(WaitRunningAttempt(run_id, "wait", tmp_ / "wait.pid"), 0) << DaemonLog();

  // The running instance cannot be marked; nothing changes.
  const std::string before = DbFingerprint();
  ProcResult running = Ctl({"mark", run_id, "wait", "success", "--reason", "x"});
  EXPECT_EQ(running.exit_code, 1) << running.Describe();
  EXPECT_EQ(running.err, "batchctl: task 'wait' partition '-' of run '" + run_id +
                             "' is running (attempt 1): wait for it to end, or cancel the run, then mark it\n");
  EXPECT_EQ(DbFingerprint(), before);

  ProcResult mark = Ctl({"mark", run_id, "publish", "skipped", "--reason", "embargo until Monday"});
  ASSERT_EQ(mark.exit_code, 0) << mark.Describe();
  EXPECT_EQ(RunState(run_id), "running");
  WriteFile(tmp_ / "go", "");
  ASSERT_TRUE(WaitRunState(run_id, "success")) << DaemonLog();
  EXPECT_EQ(Instances(run_id),
            (std::vector<std::string>{"wait[-]=success", "publish[-]=skipped(marked skipped: embargo until Monday)",
                                      "notify[-]=skipped(trigger_rule)"}));
  EXPECT_EQ(Out("publish"), "");
  EXPECT_EQ(Out("notify"), "");
}

TEST_F(MarkClearTest, BadMarksAndClearsGetAClearErrorAndChangeNothing) {
  ASSERT_TRUE(StartDaemon());
  const std::string run_id = FinishedRun("us", "failed");
  const std::string before = DbFingerprint();
  const std::vector<std::string> states_before = Instances(run_id);
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string err;  // empty: only the exit code is checked (CLI11's usage text)
  };
  const std::vector<Case> cases = {
      {{"mark", run_id, "nope", "success", "--reason", "r"}, 4, "batchctl: run '" + run_id + "' has no task 'nope'\n"},
      {{"mark", run_id, "extract", "--partition", "asia", "success", "--reason", "r"},
       4,
       "batchctl: task 'extract' of run '" + run_id + "' has no partition 'asia'\n"},
      {{"mark", "000000000000", "extract", "success", "--reason", "r"},
       4,
       "batchctl: run '000000000000' not found\n"},
      {{"mark", run_id, "extract", "done", "--reason", "r"}, 2, ""},
      {{"mark", run_id, "extract", "success"}, 2, ""},
      {{"mark", run_id, "extract", "success", "--reason", "line\nbreak"},
       1,
       "batchctl: field 'reason' must not hold control characters\n"},
      {{"mark", run_id, "extract", "success", "--reason", std::string(501, 'x')},
       1,
       "batchctl: field 'reason' is too long: 501 bytes (the limit is 500)\n"},
      {{"clear", run_id, "nope"}, 4, "batchctl: run '" + run_id + "' has no task 'nope'\n"},
      {{"clear", run_id}, 2, ""},
  };
  for (const auto& c : cases) {
    ProcResult r = Ctl(c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << r.Describe();
    if (!c.err.empty()) EXPECT_EQ(r.err, c.err) << r.Describe();
  }
  EXPECT_EQ(DbFingerprint(), before);
  EXPECT_EQ(Instances(run_id), states_before);
  EXPECT_TRUE(DaemonRunning());
}

TEST_F(MarkClearTest, ClearHonoursTheIdempotencyKeyUnlessForcedAndCanTakeTheDownstream) {
  ASSERT_TRUE(StartDaemon());
  const std::string run_id = FinishedRun("", "success");
  ASSERT_EQ(ExtractLines(), "eu us ");

  ProcResult clear = Ctl({"clear", run_id, "extract", "--partition", "eu"});
  ASSERT_EQ(clear.exit_code, 0) << clear.Describe();
  EXPECT_EQ(clear.out, "run " + run_id + ": 1 instance of task extract partition eu cleared to run again\n"
                       "it already succeeded under the same idempotency key and will be skipped; "
                       "`batchctl clear --force` runs them anyway\n");
  ASSERT_TRUE(WaitRunState(run_id, "success")) << DaemonLog();
  EXPECT_EQ(Instances(run_id)[0], "extract[eu]=skipped(already_succeeded)");
  EXPECT_EQ(ExtractLines(), "eu us ") << "the key was honoured";

  clear = Ctl({"clear", run_id, "extract", "--partition", "eu", "--force"});
  ASSERT_EQ(clear.exit_code, 0) << clear.Describe();
  EXPECT_EQ(clear.out,
            "run " + run_id + ": 1 instance of task extract partition eu cleared to run again, idempotency keys ignored\n");
  ASSERT_TRUE(WaitRunState(run_id, "success")) << DaemonLog();
  EXPECT_EQ(ExtractLines(), "eu eu us ");
  EXPECT_EQ(Instances(run_id)[0], "extract[eu]=success");
  EXPECT_EQ(AttemptOutcomes(run_id, "extract", "eu"), (std::vector<std::string>{"success", "success"}));
  EXPECT_EQ(Out("load"), "load\n") << "without --downstream, what ran after it keeps its outcome";

  clear = Ctl({"clear", run_id, "load", "--downstream", "--force", "--json"});
  ASSERT_EQ(clear.exit_code, 0) << clear.Describe();
  EXPECT_EQ(Json::parse(clear.out),
            Json::parse(R"({"run_id": ")" + run_id + R"(", "task": "load", "cleared": 2, "skipped_for_key": 0})"));
  ASSERT_TRUE(WaitRunState(run_id, "success")) << DaemonLog();
  EXPECT_EQ(Out("load"), "load\nload\n");
  EXPECT_EQ(Out("report"), "report\nreport\n");
  Json audit = Q("SELECT detail FROM audit WHERE action = 'clear' ORDER BY id");
  ASSERT_EQ(audit.size(), 3u);
  EXPECT_EQ(Json::parse(audit[2]["detail"].get<std::string>()),
            Json::parse(R"({"task": "load", "partition": null, "downstream": true, "force": true, "cleared": 2})"));

  // Clearing what has not ended yet is refused.
  WriteFile(tmp_ / "fail", "");
  SubmitDag("hold.yaml", "dag: hold\ntasks:\n  - id: a\n    command: \"echo $$ > @TMP@/a.pid; sleep 30\"\n"
                         "  - id: b\n    depends_on: [a]\n    command: \"true\"\n");
  const std::string held = Trigger("hold");
  ASSERT_GT(WaitRunningAttempt(held, "a", tmp_ / "a.pid"), 0);
  ProcResult pending = Ctl({"clear", held, "b"});
  EXPECT_EQ(pending.exit_code, 1) << pending.Describe();
  EXPECT_EQ(pending.err, "batchctl: task 'b' of run '" + held + "' has no finished instance to clear: it has not ended yet\n");
  ASSERT_EQ(Ctl({"cancel", held}).exit_code, 0);
}

// A cleared run whose DAG has no free slot waits queued; the clear, its --force included,
// was committed before the reply and survives kill -9.
TEST_F(MarkClearTest, AClearedRunWaitingForASlotSurvivesKill9AndRunsWhenTheSlotFrees) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("gated.yaml", R"yaml(dag: gated
max_active_runs: 1
tasks:
  - id: work
    retry: {retries: 2, delay: 1s}
    command: "while [ ! -e @TMP@/go ]; do sleep 0.05; done; echo {{ ds }} >> @TMP@/work.out"
)yaml");
  WriteFile(tmp_ / "go", "");
  const std::string first = Trigger("gated", {"--date", "2026-01-01"});
  ASSERT_TRUE(WaitRunState(first, "success")) << DaemonLog();
  ASSERT_EQ(std::remove((tmp_ / "go").c_str()), 0);
  const std::string second = Trigger("gated", {"--date", "2026-01-02"});
  ASSERT_TRUE(WaitRunState(second, "running"));

  ProcResult clear = Ctl({"clear", first, "work", "--force"});
  ASSERT_EQ(clear.exit_code, 0) << clear.Describe();
  EXPECT_EQ(RunState(first), "queued") << "max_active_runs: 1 holds for a cleared run";
  EXPECT_EQ(V("SELECT state || ':' || force FROM task_instances WHERE run_id = '" + first + "'"), "pending:1");

  KillDaemon();
  ASSERT_TRUE(StartDaemon());
  WriteFile(tmp_ / "go", "");
  ASSERT_TRUE(WaitRunState(second, "success")) << DaemonLog();
  ASSERT_TRUE(WaitRunState(first, "success")) << DaemonLog();
  EXPECT_EQ(Out("work"), "2026-01-01\n2026-01-02\n2026-01-01\n");
  EXPECT_EQ(AttemptOutcomes(first, "work", "-"), (std::vector<std::string>{"success", "success"}));
}

}  // namespace
}  // namespace batchd::e2e
