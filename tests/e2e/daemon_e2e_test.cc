// End-to-end tests of `batchd serve`: the real daemon on a temporary data directory, DAGs
// directory and control socket, driven only through `batchctl` (and, for hostile input, a
// raw client on the same socket), with the SQLite file read to check what was persisted.
// Cron firing is tested without waiting minutes: `--clock-offset` puts the daemon's clock a
// few seconds before a minute boundary, and `scheduler_tick: 500ms` makes it notice fast.
// Every wait polls with a deadline (daemon_fixture.h).

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <regex>
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

using std::chrono::steady_clock;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Keys of a JSON object in the order they were printed.
std::vector<std::string> Keys(const OrderedJson& obj) {
  std::vector<std::string> keys;
  if (obj.is_object())
    for (const auto& [k, _] : obj.items()) keys.push_back(k);
  return keys;
}

std::set<std::string> KeySet(const OrderedJson& obj) {
  auto keys = Keys(obj);
  return {keys.begin(), keys.end()};
}

bool IsRunId(const OrderedJson& v) {
  static const std::regex kRunId("^[0-9a-f]{12}$");
  return v.is_string() && std::regex_match(v.get<std::string>(), kRunId);
}

bool IsUtcMillis(const OrderedJson& v) {
  static const std::regex kTime(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$)");
  return v.is_string() && std::regex_match(v.get<std::string>(), kTime);
}

// Rows of a table padded like batchctl's Table: two spaces between columns, each column as
// wide as its widest cell, the last one not padded.
std::string TableText(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size()) out += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += "\n";
  }
  return out;
}

int64_t FloorMinute(double unix_seconds) { return static_cast<int64_t>(std::floor(unix_seconds / 60)) * 60; }

// A manual DAG whose schedule starts in 2030 so its fire times do not depend on today:
// 2030-03-31 is the spring-forward Sunday in Berlin, 02:30 does not exist and fires at 03:00.
constexpr const char* kHelloDag = R"(dag: hello
description: e2e daemon test
schedule: "30 2 * * *"
timezone: Europe/Berlin
start_date: 2030-03-28
tasks:
  - id: extract
    command: echo "$BATCHD_IDEMPOTENCY_KEY" >> @TMP@/extract.out
  - id: load
    depends_on: [extract]
    command: echo loaded >> @TMP@/load.out
)";

// --- Submit, inspect, trigger, idempotent triggers --------------------------------------

TEST_F(DaemonTest, SubmitShowTriggerAndDuplicateTriggersCreateNothing) {
  ASSERT_TRUE(StartDaemon());
  struct stat st{};
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u) << "SPEC 5: the control socket has mode 0660";

  const std::string file = WriteDag("hello.yaml", kHelloDag);
  ProcResult submit = Ctl({"submit", file});
  ASSERT_EQ(submit.exit_code, 0) << submit.Describe();
  const std::string version = V("SELECT substr(current_hash, 1, 12) FROM dags WHERE name = 'hello'");
  ASSERT_EQ(version.size(), 12u);
  EXPECT_EQ(submit.out, "submitted hello version " + version + "\n");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dag_versions WHERE dag = 'hello'"), 1);
  EXPECT_EQ(V("SELECT origin FROM dags WHERE name = 'hello'"), "submit");

  // The same file again is no new version.
  OrderedJson again = CtlJson({"submit", file});
  ASSERT_TRUE(again.is_array() && again.size() == 1) << again.dump();
  EXPECT_EQ(again[0]["dag"], "hello");
  EXPECT_EQ(again[0]["changed"], false);
  EXPECT_EQ(again[0]["version"], version);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dag_versions WHERE dag = 'hello'"), 1);

  // dags: the shape of GET /v1/dags (docs/http-api.md).
  OrderedJson dags = CtlJson({"dags"});
  ASSERT_TRUE(dags.is_array() && dags.size() == 1) << dags.dump();
  EXPECT_EQ(KeySet(dags[0]), (std::set<std::string>{"dag", "version", "origin", "source_path", "paused", "schedule",
                                                     "timezone", "tasks", "next_fire", "last_run", "last_success",
                                                     "slo"}));
  EXPECT_EQ(dags[0]["dag"], "hello");
  EXPECT_EQ(dags[0]["version"], version);
  EXPECT_EQ(dags[0]["origin"], "submit");
  EXPECT_EQ(dags[0]["paused"], false);
  EXPECT_EQ(dags[0]["schedule"], "30 2 * * *");
  EXPECT_EQ(dags[0]["timezone"], "Europe/Berlin");
  EXPECT_EQ(dags[0]["tasks"], 2);
  EXPECT_EQ(dags[0]["next_fire"], "2030-03-28T02:30:00+01:00");
  EXPECT_TRUE(dags[0]["last_run"].is_null());
  EXPECT_TRUE(dags[0]["last_success"].is_null());
  EXPECT_EQ(dags[0]["slo"]["state"], "none");
  ProcResult human_dags = Ctl({"dags"});
  EXPECT_EQ(human_dags.exit_code, 0);
  EXPECT_EQ(human_dags.out, TableText({{"DAG", "SCHEDULE", "TZ", "PAUSED", "NEXT RUN", "LAST RUN", "LAST SUCCESS",
                                        "FRESHNESS", "SLO"},
                                       {"hello", "30 2 * * *", "Europe/Berlin", "no", "2030-03-28T02:30:00+01:00",
                                        "-", "-", "-", "-"}}));

  // show: the next five fire times, across the spring-forward gap.
  OrderedJson show = CtlJson({"show", "hello"});
  EXPECT_EQ(show["next_fires"], OrderedJson({"2030-03-28T02:30:00+01:00", "2030-03-29T02:30:00+01:00",
                                             "2030-03-30T02:30:00+01:00", "2030-03-31T03:00:00+02:00",
                                             "2030-04-01T02:30:00+02:00"}));
  for (const char* key : {"description", "hash", "catchup", "max_active_runs", "params", "tasks", "recent_runs"})
    EXPECT_TRUE(show.contains(key)) << key << " missing in " << show.dump();
  EXPECT_EQ(show["description"], "e2e daemon test");
  ProcResult human_show = Ctl({"show", "hello"});
  EXPECT_EQ(human_show.exit_code, 0) << human_show.Describe();
  EXPECT_THAT(human_show.out, HasSubstr("next fires       2030-03-28T02:30:00+01:00\n"
                                        "                 2030-03-29T02:30:00+01:00\n"
                                        "                 2030-03-30T02:30:00+01:00\n"
                                        "                 2030-03-31T03:00:00+02:00\n"
                                        "                 2030-04-01T02:30:00+02:00\n"));

  // trigger --wait --json: {"run_id", "dag", "state", "created"}, in that order.
  ProcResult trig = Ctl({"--json", "trigger", "hello", "--date", "2026-03-01", "--wait"});
  ASSERT_EQ(trig.exit_code, 0) << trig.Describe();
  OrderedJson t = OrderedJson::parse(trig.out, nullptr, false);
  ASSERT_FALSE(t.is_discarded()) << trig.Describe();
  EXPECT_THAT(Keys(t), ElementsAre("run_id", "dag", "state", "created"));
  EXPECT_TRUE(IsRunId(t["run_id"])) << t.dump();
  EXPECT_EQ(t["dag"], "hello");
  EXPECT_EQ(t["state"], "success");
  EXPECT_EQ(t["created"], true);
  const std::string run_id = t["run_id"];
  EXPECT_EQ(ReadFile(tmp_ / "extract.out").value_or(""), "hello/extract/-/2026-03-01T00:00:00+01:00\n");
  EXPECT_EQ(ReadFile(tmp_ / "load.out").value_or(""), "loaded\n");

  // status --json: the SPEC's keys, in order.
  OrderedJson status = CtlJson({"status", run_id});
  EXPECT_THAT(Keys(status),
              ElementsAre("run_id", "dag", "state", "trigger", "logical_date", "started_at", "ended_at", "counts",
                          "tasks", "more", "dag_version"));
  EXPECT_EQ(status["counts"], OrderedJson::parse(R"({"extract": {"success": 1}, "load": {"success": 1}})"));
  EXPECT_EQ(status["more"], false);
  EXPECT_EQ(status["run_id"], run_id);
  EXPECT_EQ(status["dag"], "hello");
  EXPECT_EQ(status["state"], "success");
  EXPECT_EQ(status["trigger"], "manual");
  EXPECT_EQ(status["logical_date"], "2026-03-01T00:00:00+01:00");
  EXPECT_TRUE(IsUtcMillis(status["started_at"])) << status.dump();
  EXPECT_TRUE(IsUtcMillis(status["ended_at"])) << status.dump();
  ASSERT_EQ(status["tasks"].size(), 2u) << status.dump();
  for (const auto& task : status["tasks"]) {
    EXPECT_THAT(Keys(task), ElementsAre("task", "partition", "state", "attempts", "exit_code", "reason",
                                        "idempotency_key", "last_attempt", "duration_seconds", "total_seconds"));
    EXPECT_EQ(task["reason"], "");
    EXPECT_EQ(task["last_attempt"]["number"], 1);
    EXPECT_EQ(task["last_attempt"]["outcome"], "success");
    EXPECT_EQ(task["last_attempt"]["reason"], "exit code 0");
    EXPECT_EQ(task["total_seconds"], task["duration_seconds"]);
    EXPECT_EQ(task["partition"], "-");
    EXPECT_EQ(task["state"], "success");
    EXPECT_EQ(task["attempts"], 1);
    EXPECT_EQ(task["exit_code"], 0);
    EXPECT_EQ(task["idempotency_key"],
              "hello/" + task["task"].get<std::string>() + "/-/2026-03-01T00:00:00+01:00");
  }

  // runs --json: [{"run_id", "dag", "state", "trigger", "logical_date"}].
  OrderedJson runs = CtlJson({"runs"});
  ASSERT_TRUE(runs.is_array() && runs.size() == 1) << runs.dump();
  EXPECT_EQ(runs[0], OrderedJson({{"run_id", run_id},
                                  {"dag", "hello"},
                                  {"state", "success"},
                                  {"trigger", "manual"},
                                  {"logical_date", "2026-03-01T00:00:00+01:00"}}));
  EXPECT_THAT(Keys(runs[0]), ElementsAre("run_id", "dag", "state", "trigger", "logical_date"));

  // The same date again: the existing run, created false, nothing new.
  OrderedJson dup = CtlJson({"trigger", "hello", "--date", "2026-03-01"});
  EXPECT_EQ(dup, OrderedJson({{"run_id", run_id}, {"dag", "hello"}, {"state", "success"}, {"created", false}}));
  ProcResult dup_human = Ctl({"trigger", "hello", "--date", "2026-03-01T00:00:00+01:00"});
  EXPECT_EQ(dup_human.exit_code, 0) << dup_human.Describe();
  EXPECT_EQ(dup_human.out, "run " + run_id + " of hello already exists for this run key (success); nothing was triggered\n");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 1);
  EXPECT_EQ(V("SELECT run_key FROM runs WHERE run_id = '" + run_id + "'"), "hello@2026-03-01T00:00:00+01:00");

  // An explicit key: the first trigger creates, the second finds it.
  OrderedJson keyed = CtlJson({"trigger", "hello", "--key", "reprocess-42", "--date", "2026-03-02"});
  ASSERT_EQ(keyed["created"], true) << keyed.dump();
  const std::string keyed_id = keyed["run_id"];
  EXPECT_NE(keyed_id, run_id);
  ASSERT_TRUE(WaitRunState(keyed_id, "success"));
  OrderedJson keyed_again = CtlJson({"trigger", "hello", "--key", "reprocess-42", "--date", "2026-03-05"});
  EXPECT_EQ(keyed_again,
            OrderedJson({{"run_id", keyed_id}, {"dag", "hello"}, {"state", "success"}, {"created", false}}));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 2);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE run_key = 'reprocess-42'"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM task_instances"), 4);

  // Every mutation is audited with the caller's uid.
  Json audit = Q("SELECT uid, action, target FROM audit ORDER BY id");
  std::vector<std::string> actions;
  for (const auto& row : audit) {
    actions.push_back(row["action"].get<std::string>() + ":" + row["target"].get<std::string>());
    EXPECT_EQ(row["uid"], static_cast<int>(::getuid())) << row.dump();
  }
  EXPECT_THAT(actions, ElementsAre("submit:hello", "submit:hello", "trigger:hello", "trigger:hello", "trigger:hello",
                                   "trigger:hello", "trigger:hello"));

  // delete stops scheduling and keeps the history.
  ProcResult del = Ctl({"delete", "hello"});
  ASSERT_EQ(del.exit_code, 0) << del.Describe();
  EXPECT_EQ(del.out, "deleted hello (no longer scheduled; its history is kept, --purge removes it)\n");
  EXPECT_EQ(CtlJson({"dags"}), OrderedJson::array());
  EXPECT_EQ(CtlJson({"runs"}).size(), 2u);
  OrderedJson kept = CtlJson({"status", run_id});
  EXPECT_EQ(kept["state"], "success");
  EXPECT_EQ(kept["logical_date"], "2026-03-01T00:00:00+01:00") << "the history keeps the DAG's zone offset";
  EXPECT_EQ(CtlJson({"runs", "hello"}).back()["logical_date"], "2026-03-01T00:00:00+01:00");
  EXPECT_EQ(V("SELECT deleted FROM dags WHERE name = 'hello'"), "1");
  EXPECT_EQ(Ctl({"trigger", "hello"}).exit_code, 4);
  EXPECT_EQ(Ctl({"show", "hello"}).exit_code, 4);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 2);
}

// --- Failure, dead letters, retry ------------------------------------------------------

TEST_F(DaemonTest, FailedTaskIsADeadLetterAndRetryRerunsOnlyWhatFailed) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("fl.yaml", R"(dag: fl
tasks:
  - id: prepare
    command: echo run >> @TMP@/prepare.count
  - id: check
    depends_on: [prepare]
    retry: {retries: 0}
    command: test -f @TMP@/fixed
  - id: publish
    depends_on: [check]
    command: echo run >> @TMP@/publish.count
)");
  ProcResult trig = Ctl({"trigger", "fl", "--date", "2026-03-01", "--wait"});
  EXPECT_EQ(trig.exit_code, 1) << "SPEC 5: exit 1 when the awaited run failed\n" << trig.Describe();
  const std::string run_id = V("SELECT run_id FROM runs WHERE dag = 'fl'");
  ASSERT_EQ(run_id.size(), 12u);
  EXPECT_THAT(trig.out, HasSubstr("run " + run_id + " failed"));
  EXPECT_THAT(trig.out, HasSubstr("\n  check  failed, exit 1, 1 attempt\n"));
  EXPECT_THAT(trig.out, HasSubstr("\n  publish  upstream_failed"));
  EXPECT_EQ(RunState(run_id), "failed");

  OrderedJson status = CtlJson({"status", run_id});
  ASSERT_EQ(status["tasks"].size(), 3u) << status.dump();
  std::map<std::string, std::string> states;
  for (const auto& task : status["tasks"]) states[task["task"]] = task["state"];
  EXPECT_EQ(states, (std::map<std::string, std::string>{
                        {"prepare", "success"}, {"check", "failed"}, {"publish", "upstream_failed"}}));

  // The dead letter.
  OrderedJson failed = CtlJson({"failed"});
  ASSERT_TRUE(failed.is_array() && failed.size() == 1) << failed.dump();
  EXPECT_EQ(KeySet(failed[0]), (std::set<std::string>{"run_id", "dag", "task", "partition", "attempts", "exit_code",
                                                       "reason", "ended_at", "idempotency_key"}));
  EXPECT_EQ(failed[0]["run_id"], run_id);
  EXPECT_EQ(failed[0]["dag"], "fl");
  EXPECT_EQ(failed[0]["task"], "check");
  EXPECT_EQ(failed[0]["partition"], "-");
  EXPECT_EQ(failed[0]["attempts"], 1);
  EXPECT_EQ(failed[0]["exit_code"], 1);
  EXPECT_EQ(failed[0]["reason"], "exit code 1");
  EXPECT_EQ(failed[0]["idempotency_key"], "fl/check/-/2026-03-01T00:00:00+00:00");
  EXPECT_TRUE(IsUtcMillis(failed[0]["ended_at"])) << failed.dump();
  EXPECT_EQ(CtlJson({"failed", "fl"}), failed);
  EXPECT_EQ(CtlJson({"failed", "other"}), OrderedJson::array());
  ProcResult failed_human = Ctl({"failed"});
  EXPECT_EQ(failed_human.exit_code, 0);
  EXPECT_THAT(failed_human.out, StartsWith("RUN ID        DAG  TASK   PARTITION  ATTEMPTS  EXIT  ENDED"));
  EXPECT_THAT(failed_human.out, HasSubstr(run_id + "  fl   check  -          1         1     "));
  EXPECT_THAT(failed_human.out, HasSubstr("  exit code 1\n"));

  // Fix the cause and retry: only check and publish run again.
  WriteFile(tmp_ / "fixed", "");
  ProcResult retry = Ctl({"retry", run_id});
  ASSERT_EQ(retry.exit_code, 0) << retry.Describe();
  const std::string version = CtlJson({"status", run_id})["dag_version"];
  EXPECT_EQ(retry.out, "run " + run_id + ": 2 instances reset for another attempt with DAG version " + version + "\n");
  ASSERT_TRUE(WaitRunState(run_id, "success"));
  EXPECT_EQ(ReadFile(tmp_ / "prepare.count").value_or(""), "run\n") << "a succeeded instance ran again";
  EXPECT_EQ(ReadFile(tmp_ / "publish.count").value_or(""), "run\n");
  EXPECT_EQ(AttemptOutcomes(run_id, "prepare"), std::vector<std::string>{"success"});
  EXPECT_THAT(AttemptOutcomes(run_id, "check"), ElementsAre("failed", "success"));
  EXPECT_THAT(AttemptOutcomes(run_id, "publish"), ElementsAre("success"));
  status = CtlJson({"status", run_id});
  EXPECT_EQ(status["state"], "success");
  for (const auto& task : status["tasks"]) {
    EXPECT_EQ(task["state"], "success") << task.dump();
    EXPECT_EQ(task["attempts"], task["task"] == "check" ? 2 : 1) << task.dump();
  }
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 1) << "retry re-runs instances, it creates no run";

  // Nothing is dead any more, and there is nothing left to retry.
  EXPECT_EQ(CtlJson({"failed"}), OrderedJson::array());
  ProcResult again = Ctl({"retry", run_id});
  EXPECT_EQ(again.exit_code, 1) << again.Describe();
  EXPECT_EQ(again.err, "batchctl: run '" + run_id + "' has no failed or upstream_failed instances\n");
}

// --- Cancel ----------------------------------------------------------------------------

TEST_F(DaemonTest, CancelKillsTheRunningProcessAndEndsTheRun) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("slow.yaml", R"(dag: slow
tasks:
  - id: sleeper
    command: echo $$ > @TMP@/pid; exec sleep 30
  - id: after
    depends_on: [sleeper]
    command: "true"
)");
  const std::string run_id = Trigger("slow", {"--date", "2026-03-01"});
  ASSERT_FALSE(run_id.empty());
  const pid_t pid = WaitRunningAttempt(run_id, "sleeper", tmp_ / "pid");
  ASSERT_GT(pid, 0);

  // A second run waits in `queued` (max_active_runs: 1); cancelling it ends it at once.
  const std::string queued_id = Trigger("slow", {"--date", "2026-03-02"});
  ASSERT_FALSE(queued_id.empty());
  EXPECT_EQ(RunState(queued_id), "queued");
  ProcResult cancel_queued = Ctl({"cancel", queued_id});
  ASSERT_EQ(cancel_queued.exit_code, 0) << cancel_queued.Describe();
  EXPECT_EQ(cancel_queued.out, "run " + queued_id + " cancelled\n");
  EXPECT_EQ(RunState(queued_id), "cancelled") << "committed before the reply";
  EXPECT_TRUE(PidAlive(pid)) << "cancelling the queued run touched the running one";

  auto t0 = steady_clock::now();
  ProcResult cancel = Ctl({"cancel", run_id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.Describe();
  EXPECT_EQ(cancel.out, "run " + run_id + " cancelled\n");
  EXPECT_TRUE(WaitFor([&] { return !PidAlive(pid); }, milliseconds(10000)))
      << "the task process " << pid << " still runs after cancel";
  EXPECT_LT(steady_clock::now() - t0, seconds(10));
  ASSERT_TRUE(WaitRunState(run_id, "cancelled"));
  EXPECT_TRUE(WaitFor([&] { return AttemptOutcomes(run_id, "sleeper") == std::vector<std::string>{"cancelled"}; },
                      milliseconds(5000)))
      << ::testing::PrintToString(AttemptOutcomes(run_id, "sleeper"));
  EXPECT_EQ(V("SELECT state FROM task_instances WHERE run_id = '" + run_id + "' AND task = 'sleeper'"), "cancelled");
  EXPECT_EQ(V("SELECT state FROM task_instances WHERE run_id = '" + run_id + "' AND task = 'after'"), "cancelled");
  EXPECT_EQ(V("SELECT ended_at IS NOT NULL FROM runs WHERE run_id = '" + run_id + "'"), "1");
  OrderedJson status = CtlJson({"status", run_id});
  EXPECT_EQ(status["state"], "cancelled");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM attempts a JOIN task_instances i ON i.id = a.instance_id WHERE i.run_id = '" +
                  queued_id + "'"),
            0);
  EXPECT_EQ(RunState(queued_id), "cancelled");

  // A finished run cannot be cancelled again (409 -> exit 1).
  ProcResult again = Ctl({"cancel", run_id});
  EXPECT_EQ(again.exit_code, 1) << again.Describe();
  EXPECT_EQ(again.err, "batchctl: run '" + run_id + "' is already cancelled\n");
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);
}

// --- Pause / unpause -------------------------------------------------------------------

TEST_F(DaemonTest, PausedDagDoesNotFireAndUnpauseCreatesOnlyTheLatestMissedRun) {
  WriteDag("pz.yaml", R"(dag: pz
schedule: "* * * * *"
catchup: false
tasks:
  - id: a
    command: "true"
)",
           /*in_dags_dir=*/true);
  WriteDag("pz_all.yaml", R"(dag: pz_all
schedule: "* * * * *"
catchup: true
max_active_runs: 3
tasks:
  - id: a
    command: "true"
)",
           /*in_dags_dir=*/true);
  // The daemon's clock starts 30 s before a minute boundary B.
  int64_t boundary = 0;
  const double offset = OffsetBeforeMinute(30, &boundary);
  DaemonOptions options;
  options.clock_offset = offset;
  options.config_yaml = "scheduler_tick: 500ms\n";
  ASSERT_TRUE(StartDaemon(options));
  ProcResult pause = Ctl({"pause", "pz"});
  ASSERT_EQ(pause.exit_code, 0) << pause.Describe();
  EXPECT_EQ(pause.out, "paused pz\n");
  EXPECT_EQ(CtlJson({"pause", "pz_all"}), OrderedJson({{"dag", "pz_all"}, {"paused", true}}));
  EXPECT_EQ(V("SELECT paused FROM dags WHERE name = 'pz'"), "1");
  OrderedJson dags = CtlJson({"dags"});
  ASSERT_EQ(dags.size(), 2u) << dags.dump();
  EXPECT_EQ(dags[0]["dag"], "pz");
  EXPECT_EQ(dags[0]["paused"], true);
  EXPECT_TRUE(dags[0]["next_fire"].is_null()) << dags.dump();
  ASSERT_LT(RealNow() + offset, static_cast<double>(boundary)) << "too slow: B passed before the pause";

  // Three minutes later (B, B+1m and B+2m have passed): still nothing while paused.
  StopDaemon();
  const double later = offset + 180;
  options.clock_offset = later;
  ASSERT_TRUE(StartDaemon(options));
  EXPECT_EQ(CtlJson({"dags"})[0]["paused"], true) << "pause must survive a restart";
  std::this_thread::sleep_for(milliseconds(1500));  // three scheduler ticks
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 0) << "a paused DAG fired";

  const double unpaused_at = RealNow() + later;
  ProcResult unpause = Ctl({"unpause", "pz"});
  ASSERT_EQ(unpause.exit_code, 0) << unpause.Describe();
  EXPECT_EQ(unpause.out, "unpaused pz\n");
  ProcResult unpause_all = Ctl({"unpause", "pz_all"});
  ASSERT_EQ(unpause_all.exit_code, 0) << unpause_all.Describe();
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT COUNT(*) FROM runs WHERE dag = 'pz'") >= 1; }, milliseconds(10000)))
      << DaemonLog();
  std::this_thread::sleep_for(milliseconds(1000));  // two more ticks: nothing else may come
  const double settled_at = RealNow() + later;
  Json runs = Q("SELECT trigger, logical_date, interval_start FROM runs WHERE dag = 'pz'");
  ASSERT_EQ(runs.size(), 1u) << "catchup: false creates only the latest missed run: " << runs.dump();
  EXPECT_EQ(runs[0]["trigger"], "schedule");
  const int64_t logical = runs[0]["logical_date"].get<int64_t>();
  EXPECT_GE(logical, boundary + 60) << "more than one fire was missed";
  if (FloorMinute(unpaused_at) == FloorMinute(settled_at)) {
    EXPECT_EQ(logical, FloorMinute(unpaused_at)) << IsoUtc(logical);
  }
  EXPECT_EQ(runs[0]["interval_start"].get<int64_t>(), logical - 60);
  OrderedJson listed = CtlJson({"runs", "pz"});
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["logical_date"], IsoUtc(logical));
  EXPECT_EQ(listed[0]["trigger"], "schedule");
  // catchup: true gets every fire it missed while paused, oldest first.
  std::vector<int64_t> all;
  for (const auto& r : Q("SELECT logical_date FROM runs WHERE dag = 'pz_all' ORDER BY created_at, rowid"))
    all.push_back(r["logical_date"].get<int64_t>());
  std::vector<int64_t> expected;
  for (int64_t t = boundary; t <= logical; t += 60) expected.push_back(t);
  EXPECT_EQ(all, expected);
  EXPECT_EQ(all.size(), 3u);
}

// --- Cron firing, restarts, catchup ----------------------------------------------------

TEST_F(DaemonTest, CronFiresOnceAcrossRestartsAndCatchesUpMissedFires) {
  for (const char* name : {"every_on", "every_off"}) {
    WriteDag(std::string(name) + ".yaml",
             Substitute(R"(dag: @NAME@
schedule: "* * * * *"
catchup: @CATCHUP@
max_active_runs: 1
tasks:
  - id: a
    command: "true"
)",
                        {{"NAME", name}, {"CATCHUP", std::string(name) == "every_on" ? "true" : "false"}}),
             /*in_dags_dir=*/true);
  }
  int64_t boundary = 0;
  const double offset = OffsetBeforeMinute(4, &boundary);
  DaemonOptions options;
  options.clock_offset = offset;
  options.config_yaml = "scheduler_tick: 500ms\n";
  ASSERT_TRUE(StartDaemon(options));

  // The scheduler starts from its first look at the clock (dags.last_fire): the first run is
  // the next minute boundary after it (B, unless the daemon was slower to start than 3 s).
  const std::string anchor = V("SELECT last_fire FROM dags WHERE name = 'every_on'");
  ASSERT_FALSE(anchor.empty() || anchor == "null") << "the scheduler recorded no starting point";
  const int64_t first = FloorMinute(std::stod(anchor)) + 60;
  // (first is B + 1 minute only if the daemon took more than 4 s to start.)
  const std::string key_on = "every_on@" + IsoUtc(first);
  const std::string key_off = "every_off@" + IsoUtc(first);
  ASSERT_TRUE(WaitFor(
      [&] {
        return Count("SELECT COUNT(*) FROM runs WHERE run_key IN ('" + key_on + "', '" + key_off +
                     "') AND state = 'success'") == 2;
      },
      milliseconds(first == boundary ? 20000 : 80000), milliseconds(100)))
      << Q("SELECT * FROM runs").dump() << "\n" << DaemonLog();
  Json run = Q("SELECT trigger, logical_date, interval_start, interval_end FROM runs WHERE run_key = '" + key_on + "'");
  ASSERT_EQ(run.size(), 1u);
  EXPECT_EQ(run[0]["trigger"], "schedule");
  EXPECT_EQ(run[0]["logical_date"], first);
  EXPECT_EQ(run[0]["interval_start"], first - 60);
  EXPECT_EQ(run[0]["interval_end"], first);
  OrderedJson listed = CtlJson({"runs", "every_on"});
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0]["trigger"], "schedule");
  EXPECT_EQ(listed[0]["logical_date"], IsoUtc(first));
  EXPECT_EQ(V("SELECT last_fire FROM dags WHERE name = 'every_on'"), std::to_string(first));

  // Restart on the same clock: the fire at B is not repeated.
  StopDaemon();
  ASSERT_TRUE(StartDaemon(options));
  std::this_thread::sleep_for(milliseconds(1500));  // three scheduler ticks
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE run_key = '" + key_on + "'"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE run_key = '" + key_off + "'"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 2) << Q("SELECT run_key FROM runs").dump();

  // Down for three minutes: catchup: true creates the three missed runs, oldest first;
  // catchup: false only the latest.
  StopDaemon();
  ASSERT_LT(RealNow() + offset, static_cast<double>(first + 55)) << "too slow for the 3-minute arithmetic";
  options.clock_offset = offset + 180;
  ASSERT_TRUE(StartDaemon(options));
  ASSERT_TRUE(WaitFor(
      [&] {
        return Count("SELECT COUNT(*) FROM runs WHERE dag = 'every_on' AND state = 'success'") >= 4 &&
               Count("SELECT COUNT(*) FROM runs WHERE dag = 'every_off' AND state = 'success'") >= 2;
      },
      milliseconds(20000), milliseconds(100)))
      << Q("SELECT dag, run_key, state FROM runs").dump() << "\n" << DaemonLog();
  std::this_thread::sleep_for(milliseconds(1000));  // two more ticks: nothing else may come
  std::vector<int64_t> on, off;
  for (const auto& r : Q("SELECT logical_date FROM runs WHERE dag = 'every_on' ORDER BY created_at, rowid"))
    on.push_back(r["logical_date"].get<int64_t>());
  for (const auto& r : Q("SELECT logical_date FROM runs WHERE dag = 'every_off' ORDER BY created_at, rowid"))
    off.push_back(r["logical_date"].get<int64_t>());
  EXPECT_THAT(on, ElementsAre(first, first + 60, first + 120, first + 180));
  EXPECT_THAT(off, ElementsAre(first, first + 180));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE trigger != 'schedule'"), 0);
  // Contiguous data intervals.
  for (const auto& r : Q("SELECT logical_date, interval_start FROM runs WHERE dag = 'every_on'"))
    EXPECT_EQ(r["interval_start"].get<int64_t>(), r["logical_date"].get<int64_t>() - 60);
  // max_active_runs: 1: the caught-up runs ran one after the other, oldest first.
  Json timed = Q("SELECT started_at, ended_at FROM runs WHERE dag = 'every_on' ORDER BY logical_date");
  for (size_t i = 1; i < timed.size(); ++i)
    EXPECT_GE(timed[i]["started_at"].get<int64_t>(), timed[i - 1]["ended_at"].get<int64_t>()) << timed.dump();
}

// --- Versions --------------------------------------------------------------------------

TEST_F(DaemonTest, ResubmittedDagRunsKeepTheVersionTheyStartedWith) {
  ASSERT_TRUE(StartDaemon());
  const std::string v1 = R"(dag: ver
tasks:
  - id: gate
    command: echo $$ > @TMP@/pid; while [ ! -f @TMP@/go ]; do sleep 0.05; done
  - id: write
    depends_on: [gate]
    command: echo @VERSION@ >> @TMP@/out
)";
  SubmitDag("ver.yaml", Substitute(v1, {{"VERSION", "one"}}));
  const std::string run1 = Trigger("ver", {"--date", "2026-03-01"});
  ASSERT_GT(WaitRunningAttempt(run1, "gate", tmp_ / "pid"), 0);
  ProcResult resubmit = Ctl({"submit", WriteDag("ver.yaml", Substitute(v1, {{"VERSION", "two"}}))});
  ASSERT_EQ(resubmit.exit_code, 0) << resubmit.Describe();
  EXPECT_THAT(resubmit.out, StartsWith("submitted ver version "));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dag_versions WHERE dag = 'ver'"), 2);
  WriteFile(tmp_ / "go", "");
  ASSERT_TRUE(WaitRunState(run1, "success"));
  EXPECT_EQ(ReadFile(tmp_ / "out").value_or(""), "one\n") << "the running run switched versions";
  const std::string run2 = Trigger("ver", {"--date", "2026-03-02"});
  ASSERT_TRUE(WaitRunState(run2, "success"));
  EXPECT_EQ(ReadFile(tmp_ / "out").value_or(""), "one\ntwo\n");
  EXPECT_NE(V("SELECT dag_hash FROM runs WHERE run_id = '" + run1 + "'"),
            V("SELECT dag_hash FROM runs WHERE run_id = '" + run2 + "'"));
}

// --- SIGHUP / reload -------------------------------------------------------------------

TEST_F(DaemonTest, SighupLoadsNewDagFilesAndABrokenFileChangesNothing) {
  const std::string first_yaml = "dag: alpha\ntasks:\n  - id: a\n    command: \"true\"\n";
  WriteDag("alpha.yaml", first_yaml, /*in_dags_dir=*/true);
  ASSERT_TRUE(StartDaemon());
  OrderedJson dags = CtlJson({"dags"});
  ASSERT_EQ(dags.size(), 1u) << dags.dump();
  EXPECT_EQ(dags[0]["dag"], "alpha");
  EXPECT_EQ(dags[0]["origin"], "file");
  EXPECT_EQ(dags[0]["source_path"], dags_ + "/alpha.yaml");
  const std::string alpha_hash = V("SELECT current_hash FROM dags WHERE name = 'alpha'");

  WriteDag("beta.yaml", "dag: beta\ntasks:\n  - id: b\n    command: \"true\"\n", /*in_dags_dir=*/true);
  SignalDaemon(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return Ctl({"dags"}).out.find("\nbeta ") != std::string::npos; }, milliseconds(10000),
                      milliseconds(100)))
      << Ctl({"dags"}).Describe() << DaemonLog();
  EXPECT_EQ(V("SELECT origin FROM dags WHERE name = 'beta'"), "file");
  EXPECT_TRUE(DaemonRunning()) << "SIGHUP must not stop the daemon";

  // A broken file (an unknown key at line 4, column 5) and a broken edit of alpha.
  WriteDag("gamma.yaml", "dag: gamma\ntasks:\n  - id: g\n    comand: \"true\"\n", /*in_dags_dir=*/true);
  WriteDag("alpha.yaml", "dag: alpha\ntasks:\n  - id: a\n    command: \"true\"\n    depends_on: [a]\n",
           /*in_dags_dir=*/true);
  const std::string dags_before = Q("SELECT name, current_hash, paused, deleted FROM dags ORDER BY name").dump();
  const long versions_before = Count("SELECT COUNT(*) FROM dag_versions");
  SignalDaemon(SIGHUP);
  // The reload triggered by the signal reports the broken files in the daemon's log.
  EXPECT_TRUE(WaitFor([&] { return DaemonLog().find(dags_ + "/gamma.yaml:4:5") != std::string::npos; },
                      milliseconds(10000), milliseconds(50)))
      << DaemonLog();
  ASSERT_EQ(Ctl({"health"}).exit_code, 0) << DaemonLog();

  ProcResult reload = Ctl({"--json", "reload"});
  EXPECT_EQ(reload.exit_code, 1) << "reload with a broken file exits 1\n" << reload.Describe();
  OrderedJson report = OrderedJson::parse(reload.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << reload.Describe();
  EXPECT_EQ(report["loaded"], OrderedJson::array());
  EXPECT_EQ(report["unchanged"], OrderedJson({"beta"}));
  bool found_gamma = false, found_alpha = false;
  for (const auto& e : report["errors"]) {
    EXPECT_EQ(KeySet(e), (std::set<std::string>{"file", "line", "column", "message"})) << e.dump();
    if (e["file"] == dags_ + "/gamma.yaml" && e["line"] == 4 && e["column"] == 5) {
      found_gamma = true;
      EXPECT_THAT(e["message"].get<std::string>(), HasSubstr("unknown key 'comand'")) << e.dump();
    }
    if (e["file"] == dags_ + "/alpha.yaml") {
      found_alpha = true;
      EXPECT_GT(e["line"].get<int>(), 0) << e.dump();
      EXPECT_GT(e["column"].get<int>(), 0) << e.dump();
      EXPECT_THAT(e["message"].get<std::string>(), HasSubstr("cycle")) << e.dump();
    }
  }
  EXPECT_TRUE(found_gamma) << "gamma.yaml:4:5 not reported: " << report.dump();
  EXPECT_TRUE(found_alpha) << "the broken alpha.yaml not reported: " << report.dump();

  ProcResult human = Ctl({"reload"});
  EXPECT_EQ(human.exit_code, 1);
  EXPECT_EQ(human.out, "loaded: -\nunchanged: beta\n");
  EXPECT_THAT(human.err, HasSubstr(dags_ + "/gamma.yaml:4:5: unknown key 'comand'"));
  EXPECT_THAT(human.err, HasSubstr("batchctl: " + std::to_string(report["errors"].size()) +
                                   " errors in the DAGs directory; those files were skipped\n"));

  // The DAGs already loaded stay, alpha at its old version; gamma never appears.
  std::vector<std::string> names;
  for (const auto& d : CtlJson({"dags"})) names.push_back(d["dag"]);
  EXPECT_THAT(names, ElementsAre("alpha", "beta"));
  EXPECT_EQ(V("SELECT current_hash FROM dags WHERE name = 'alpha'"), alpha_hash);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dag_versions WHERE dag = 'alpha'"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dags WHERE name = 'gamma'"), 0);
  // Nothing stored changed (the two reload requests are audited).
  EXPECT_EQ(Q("SELECT name, current_hash, paused, deleted FROM dags ORDER BY name").dump(), dags_before);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dag_versions"), versions_before);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM audit WHERE action = 'reload'"), 2);
  ASSERT_EQ(Ctl({"trigger", "alpha", "--wait"}).exit_code, 0) << "alpha (old version) still runs";
}

TEST_F(DaemonTest, ReloadRemovesADagWhoseFileIsGoneAndTheFileComingBackRestoresIt) {
  const std::string beta_yaml = "dag: beta\ntasks:\n  - id: b\n    command: \"true\"\n";
  WriteDag("alpha.yaml", "dag: alpha\ntasks:\n  - id: a\n    command: \"true\"\n", /*in_dags_dir=*/true);
  WriteDag("beta.yaml", beta_yaml, /*in_dags_dir=*/true);
  ASSERT_TRUE(StartDaemon());
  SubmitDag("gamma.yaml", "dag: gamma\ntasks:\n  - id: g\n    command: \"true\"\n");
  const std::string run = Trigger("beta");
  ASSERT_FALSE(run.empty());

  std::filesystem::remove(dags_ + "/beta.yaml");
  ProcResult reload = Ctl({"reload"});
  EXPECT_EQ(reload.exit_code, 0) << reload.Describe();
  EXPECT_EQ(reload.out, "loaded: -\nunchanged: alpha\nremoved: beta\n");
  std::vector<std::string> names;
  for (const auto& d : CtlJson({"dags"})) names.push_back(d["dag"]);
  EXPECT_THAT(names, ElementsAre("alpha", "gamma")) << "a submitted DAG is not the directory's to remove";
  EXPECT_EQ(V("SELECT deleted || ' ' || origin FROM dags WHERE name = 'beta'"), "1 file-removed");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE run_id = '" + run + "'"), 1) << "its history stays";
  ProcResult trigger = Ctl({"trigger", "beta"});
  EXPECT_EQ(trigger.exit_code, 4) << trigger.Describe();
  EXPECT_EQ(trigger.err, "batchctl: DAG 'beta' not found\n");

  WriteDag("beta.yaml", beta_yaml, /*in_dags_dir=*/true);  // back, unchanged
  OrderedJson report = CtlJson({"reload"});
  EXPECT_EQ(report["loaded"], OrderedJson({"beta"})) << report.dump();
  EXPECT_EQ(report["removed"], OrderedJson::array());
  EXPECT_EQ(V("SELECT deleted || ' ' || origin FROM dags WHERE name = 'beta'"), "0 file");
  EXPECT_EQ(Ctl({"trigger", "beta", "--wait"}).exit_code, 0);
}

// --- SIGTERM ---------------------------------------------------------------------------

TEST_F(DaemonTest, SigtermLetsARunningTaskFinishWithinTheGrace) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("short.yaml", R"(dag: short
tasks:
  - id: t
    command: echo $$ > @TMP@/pid; sleep 2; echo done > @TMP@/done
)");
  const std::string run_id = Trigger("short", {"--date", "2026-03-01"});
  ASSERT_FALSE(run_id.empty());
  ASSERT_GT(WaitRunningAttempt(run_id, "t", tmp_ / "pid"), 0);

  auto t0 = steady_clock::now();
  SignalDaemon(SIGTERM);
  // While it drains, reads are served and mutations refused (503 -> exit 1). `pause` of an
  // unknown DAG is 404 until the signal has been handled, and changes nothing either way.
  ProcResult refused;
  EXPECT_TRUE(WaitFor([&] { return (refused = Ctl({"pause", "nope"})).exit_code != 4; }, milliseconds(1500),
                      milliseconds(20)));
  if (ReadFile(tmp_ / "done").value_or("").empty()) {  // still draining
    EXPECT_EQ(refused.exit_code, 1) << refused.Describe();
    EXPECT_EQ(refused.err, "batchctl: batchd is shutting down\n");
    ProcResult trig = Ctl({"trigger", "short", "--date", "2026-03-02"});
    EXPECT_EQ(trig.exit_code, 1) << trig.Describe();
    EXPECT_EQ(trig.err, "batchctl: batchd is shutting down\n");
    ProcResult status = Ctl({"status", run_id});
    EXPECT_EQ(status.exit_code, 0) << status.Describe();
  }
  ProcResult stopped = StopDaemon(milliseconds(20000));
  EXPECT_EQ(stopped.exit_code, 0);
  EXPECT_LT(steady_clock::now() - t0, seconds(10)) << "draining a 1 s task took too long";
  EXPECT_EQ(ReadFile(tmp_ / "done").value_or(""), "done\n") << "the task was not allowed to finish";
  EXPECT_THAT(AttemptOutcomes(run_id, "t"), ElementsAre("success"));
  EXPECT_EQ(V("SELECT state FROM task_instances WHERE run_id = '" + run_id + "'"), "success");
  EXPECT_EQ(RunState(run_id), "success");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 1) << "a trigger during the drain created a run";
  EXPECT_FALSE(Exists(socket_)) << "the socket file is removed on exit";
  ProcResult down = Ctl({"health"});
  EXPECT_EQ(down.exit_code, 3) << down.Describe();
}

TEST_F(DaemonTest, SigtermAfterTheGraceCancelsTheAttemptAndItRunsAgainOnRestart) {
  DaemonOptions options;
  options.config_yaml = "shutdown_grace: 1s\n";
  ASSERT_TRUE(StartDaemon(options));
  // The first execution sleeps for 30 s; later ones succeed at once. No retries: an
  // attempt killed by shutdown is not a failure.
  SubmitDag("long.yaml", R"(dag: long
tasks:
  - id: t
    retry: {retries: 0}
    command: |
      n=$(cat @TMP@/count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > @TMP@/count
      echo $$ > @TMP@/pid
      if [ $n -lt 2 ]; then exec sleep 30; fi
)");
  const std::string run_id = Trigger("long", {"--date", "2026-03-01"});
  ASSERT_FALSE(run_id.empty());
  const pid_t pid = WaitRunningAttempt(run_id, "t", tmp_ / "pid");
  ASSERT_GT(pid, 0);

  auto t0 = steady_clock::now();
  StopDaemon(milliseconds(20000));
  EXPECT_LT(steady_clock::now() - t0, seconds(8)) << "shutdown_grace is 1s";
  EXPECT_TRUE(WaitFor([&] { return !PidAlive(pid); }, milliseconds(5000))) << "task process " << pid << " survived";
  EXPECT_THAT(AttemptOutcomes(run_id, "t"), ElementsAre("cancelled"));
  // Not a failure: the instance waits for the next start (queued), the run stays active.
  EXPECT_EQ(V("SELECT state FROM task_instances WHERE run_id = '" + run_id + "'"), "queued");
  EXPECT_EQ(RunState(run_id), "running");
  EXPECT_EQ(CtlJson({"failed"}, 3).is_object(), true);  // daemon down: exit 3

  ASSERT_TRUE(StartDaemon(options));
  ASSERT_TRUE(WaitRunState(run_id, "success"));
  EXPECT_THAT(AttemptOutcomes(run_id, "t"), ElementsAre("cancelled", "success"));
  EXPECT_EQ(ReadNumber(tmp_ / "count").value_or(-1), 2);
  EXPECT_EQ(CtlJson({"failed"}), OrderedJson::array());
}

// --- kill -9 ---------------------------------------------------------------------------

TEST_F(DaemonTest, KillNineLosesNoAcknowledgedRunAndRunningAttemptsRetry) {
  ASSERT_TRUE(StartDaemon());
  // Before the restart marker exists every execution sleeps; after it, each succeeds.
  SubmitDag("k9.yaml", R"(dag: k9
max_active_runs: 10
tasks:
  - id: t
    retry: {retries: 2, delay: 100ms, backoff: fixed}
    command: |
      echo $$ >> @TMP@/pids
      echo $$ > @TMP@/pid.$BATCHD_RUN_ID
      [ -f @TMP@/restarted ] && exit 0
      exec sleep 30
)");
  std::vector<std::string> run_ids;
  run_ids.push_back(Trigger("k9", {"--date", "2026-01-01"}));
  ASSERT_FALSE(run_ids[0].empty());
  const pid_t pid = WaitRunningAttempt(run_ids[0], "t", tmp_ / ("pid." + run_ids[0]));
  ASSERT_GT(pid, 0);
  for (const char* date : {"2026-01-02", "2026-01-03", "2026-01-04"}) {
    run_ids.push_back(Trigger("k9", {"--date", date}));  // acknowledged: exit 0 with a run id
    ASSERT_FALSE(run_ids.back().empty());
  }
  // A client following a run rides out the daemon's crash and restart.
  Process waiter({BATCHCTL_BIN, "--socket", socket_, "--json", "trigger", "k9", "--date", "2026-01-05", "--wait"});
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT COUNT(*) FROM runs") == 5; }, milliseconds(10000)));
  KillDaemon();

  // Every acknowledged run is in the store; the first one's attempt is still `running` there.
  for (const auto& id : run_ids) EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE run_id = '" + id + "'"), 1) << id;
  EXPECT_THAT(AttemptOutcomes(run_ids[0], "t"), ElementsAre("running"));
  // Task processes die with the daemon (pdeathsig on the group leader).
  EXPECT_TRUE(WaitFor([&] { return !PidAlive(pid); }, milliseconds(5000))) << "task process " << pid << " survived";
  // Nobody answers on the stale socket.
  ProcResult down = Ctl({"status", run_ids[0]});
  EXPECT_EQ(down.exit_code, 3) << down.Describe();
  EXPECT_THAT(down.err, StartsWith("batchctl: cannot reach batchd at " + socket_ + ": "));
  EXPECT_THAT(down.err, HasSubstr("(is the daemon running?)\n"));

  WriteFile(tmp_ / "restarted", "");
  ASSERT_TRUE(StartDaemon());
  for (const auto& id : run_ids) ASSERT_TRUE(WaitRunState(id, "success")) << id;
  ProcResult waited = waiter.Wait(milliseconds(20000));
  EXPECT_EQ(waited.exit_code, 0) << waited.Describe();
  OrderedJson final_state = OrderedJson::parse(waited.out, nullptr, false);
  EXPECT_EQ(final_state.is_object() ? final_state["state"] : OrderedJson(), "success") << waited.Describe();
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 5);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE state = 'success'"), 5);
  // The attempt that was running is lost and retried; no instance succeeded twice.
  EXPECT_THAT(AttemptOutcomes(run_ids[0], "t"), ElementsAre("lost", "success"));
  for (const auto& id : run_ids) {
    auto outcomes = AttemptOutcomes(id, "t");
    EXPECT_EQ(std::count(outcomes.begin(), outcomes.end(), "success"), 1) << id;
    for (size_t i = 0; i + 1 < outcomes.size(); ++i) EXPECT_EQ(outcomes[i], "lost") << id;
  }
  EXPECT_EQ(Count("SELECT COUNT(*) FROM attempts WHERE outcome = 'running'"), 0);
  OrderedJson status = CtlJson({"status", run_ids[0]});
  ASSERT_EQ(status["tasks"].size(), 1u);
  EXPECT_EQ(status["tasks"][0]["attempts"], 2);
  EXPECT_EQ(status["tasks"][0]["state"], "success");
}

// The daemon SIGKILLed at random moments while clients trigger runs (a new one every 5-40 ms,
// concurrently), six times over. Every trigger batchctl acknowledged (exit 0, a run id) must be in the store and end
// in success; every task execution (a ledger line, LedgerViolations) must have its attempt
// row, and nothing may run twice or after its success.
TEST_F(DaemonTest, RandomKillNinesLoseNoAcknowledgedTriggerAndRepeatNoWork) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("ledger.yaml", R"(dag: ledger
max_active_runs: 4
tasks:
  - id: charge
    partitions: {range: [0, 4]}
)" + std::string(kLedgerTaskBody));
  std::random_device seed_source;
  const unsigned seed = seed_source();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> window_ms(30 * kSlowdown, 300 * kSlowdown), gap_ms(5 * kSlowdown, 40 * kSlowdown);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::vector<std::string> acknowledged;  // run ids
  int day = 0, refused = 0;
  for (int round = 0; round < 6; ++round) {
    if (round > 0) {
      ASSERT_TRUE(StartDaemon());
    }
    std::vector<std::unique_ptr<Process>> clients;
    const auto kill_at = steady_clock::now() + milliseconds(window_ms(rng));
    while (steady_clock::now() < kill_at) {
      const std::string date = IsoUtc(1767225600 + 86400 * int64_t{day++}).substr(0, 10);  // from 2026-01-01
      clients.push_back(std::make_unique<Process>(
          std::vector<std::string>{BATCHCTL_BIN, "--socket", socket_, "--json", "trigger", "ledger", "--date", date}));
      std::this_thread::sleep_for(milliseconds(gap_ms(rng)));
    }
    KillDaemon();
    for (auto& client : clients) {
      ProcResult r = client->Wait(milliseconds(10000));
      Json reply = Json::parse(r.out, nullptr, false);
      if (r.exit_code == 0 && reply.is_object() && reply.contains("run_id")) {
        acknowledged.push_back(reply["run_id"].get<std::string>());
      } else {
        ++refused;  // cut off by the kill: may or may not have been committed
      }
    }
  }
  ASSERT_TRUE(StartDaemon());
  EXPECT_GE(acknowledged.size(), 6u) << refused << " refused";
  for (const auto& id : acknowledged) ASSERT_TRUE(WaitRunState(id, "success", milliseconds(60000))) << id;
  // Runs committed without their reply reaching the client finish too.
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT COUNT(*) FROM runs WHERE state NOT IN ('success', 'failed')") == 0; },
                      milliseconds(60000)));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE state != 'success'"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM task_instances WHERE state != 'success'"), 0);
  size_t keys = 0;
  EXPECT_THAT(LedgerViolations(tmp_ / "ledger", db_, &keys), ::testing::IsEmpty());
  EXPECT_EQ(keys, static_cast<size_t>(Count("SELECT COUNT(*) FROM task_instances")));
  EXPECT_GT(Count("SELECT COUNT(*) FROM attempts WHERE outcome = 'lost'"), 0)
      << "no kill landed while a task ran: the test tested nothing";
}

TEST_F(DaemonTest, KillNineLeavesNoOrphanedTaskProcesses) {
  ASSERT_TRUE(StartDaemon());
  // The task's shell starts a background job in its process group and waits for it.
  SubmitDag("orphan.yaml", R"(dag: orphan
tasks:
  - id: t
    command: sleep 60 & echo $! > @TMP@/child; echo $$ > @TMP@/pid; wait
)");
  const std::string run_id = Trigger("orphan", {"--date", "2026-03-01"});
  ASSERT_GT(WaitRunningAttempt(run_id, "t", tmp_ / "pid"), 0);
  ASSERT_TRUE(WaitFor([&] { return ReadNumber(tmp_ / "child").has_value(); }, milliseconds(5000)));
  const pid_t child = static_cast<pid_t>(*ReadNumber(tmp_ / "child"));
  ASSERT_TRUE(PidAlive(child));
  // Whatever happens below, the test leaves no sleeper behind.
  std::shared_ptr<void> reap(nullptr, [child](void*) {
    if (PidAlive(child)) ::kill(child, SIGKILL);
  });

  KillDaemon();
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto outcomes = AttemptOutcomes(run_id, "t");
        return !outcomes.empty() && outcomes.front() == "lost";
      },
      milliseconds(10000)));
  // SPEC 6: task processes run in their own process group and die with the daemon (no
  // orphans) -- at the latest when the restarted daemon declares their attempt lost.
  EXPECT_TRUE(WaitFor([&] { return !PidAlive(child); }, milliseconds(5000)))
      << "pid " << child << " (a background job of the lost attempt, in its process group) survived kill -9 "
      << "and the restart";
}

// --- Hostile input ---------------------------------------------------------------------

TEST_F(DaemonTest, BadRequestsGetClearErrorsAndChangeNothing) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("good.yaml", "dag: good\ntasks:\n  - id: a\n    command: \"true\"\n");
  ASSERT_EQ(Ctl({"trigger", "good", "--date", "2026-03-01", "--wait"}).exit_code, 0);
  const std::string before = DbFingerprint();

  auto expect_error = [&](const std::string& what, const RawReply& r, int status, const std::string& code) -> Json {
    SCOPED_TRACE(what);
    EXPECT_EQ(r.status, status) << r.error << "\n" << r.head << "\n" << r.body.substr(0, 500);
    Json body = r.JsonBody();
    if (!(body.is_object() && body.contains("error") && body["error"].is_object())) {
      ADD_FAILURE() << "not an API error body: " << r.body.substr(0, 500);
      body = {{"error", {{"code", nullptr}, {"message", ""}}}};
    }
    EXPECT_EQ(body["error"]["code"], code) << r.body;
    EXPECT_TRUE(body["error"]["message"].is_string() && !body["error"]["message"].get<std::string>().empty())
        << r.body;
    EXPECT_THAT(r.head, HasSubstr("application/json"));
    ProcResult health = Ctl({"health"});
    EXPECT_EQ(health.exit_code, 0) << "the daemon stopped answering: " << health.Describe() << DaemonLog();
    EXPECT_EQ(DbFingerprint(), before) << "the store changed";
    return body;
  };

  // A client that sends half a request and stalls does not hold up anyone else.
  const int stalled = ConnectUnix(socket_);
  ASSERT_GE(stalled, 0);
  std::shared_ptr<void> close_stalled(nullptr, [stalled](void*) { ::close(stalled); });
  const std::string partial = "POST /v1/dags HTTP/1.1\r\nHost: batchd\r\nContent-Length: 100\r\n\r\n{\"sou";
  ASSERT_EQ(::send(stalled, partial.data(), partial.size(), MSG_NOSIGNAL), static_cast<ssize_t>(partial.size()));
  auto t0 = steady_clock::now();
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);
  EXPECT_LT(steady_clock::now() - t0, seconds(5));

  // Malformed JSON.
  RawReply r = RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags/good/runs", "{\"date\": "));
  expect_error("malformed JSON", r, 400, "bad_request");
  EXPECT_THAT(r.JsonBody()["error"]["message"].get<std::string>(), StartsWith("malformed JSON body"));
  // Not an object, a wrong type, an unknown field.
  expect_error("array body", RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags/good/runs", "[1]")), 400,
               "bad_request");
  expect_error("wrong type",
               RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags/good/runs", R"({"date": 20260301})")), 400,
               "bad_request");
  r = RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags/good/runs", R"({"dat": "2026-03-02"})"));
  expect_error("unknown field", r, 400, "bad_request");
  EXPECT_THAT(r.JsonBody()["error"]["message"].get<std::string>(), HasSubstr("'dat'"));

  // 5 MB body.
  std::string big = R"({"source": ")" + std::string(5 * 1024 * 1024, 'x') + R"("})";
  expect_error("5 MB body", RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags", big), milliseconds(20000)),
               413, "payload_too_large");

  // Unknown routes.
  expect_error("unknown route", RawUnixRequest(socket_, HttpRequestText("GET", "/v1/nope")), 404, "not_found");
  expect_error("unknown root", RawUnixRequest(socket_, HttpRequestText("GET", "/etc/passwd")), 404, "not_found");
  expect_error("unknown action", RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags/good/explode", "{}")),
               404, "not_found");

  // Not HTTP at all; a known path with the wrong method; a body without Content-Length.
  expect_error("garbage", RawUnixRequest(socket_, "GARBAGE\r\n\r\n"), 400, "bad_request");
  expect_error("wrong method", RawUnixRequest(socket_, HttpRequestText("DELETE", "/v1/health")), 405,
               "method_not_allowed");

  // Hostile names, percent-encoded so they arrive as one path segment.
  r = RawUnixRequest(socket_, HttpRequestText("GET", "/v1/dags/..%2F..%2Fetc"));
  expect_error("../../etc", r, 400, "bad_request");
  EXPECT_EQ(r.JsonBody()["error"]["message"],
            "invalid DAG name '../../etc': names are 1-128 characters of [A-Za-z0-9_.-]");
  expect_error("trigger ../../etc", RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags/..%2F..%2Fetc/runs", "{}")),
               400, "bad_request");
  expect_error("delete ../../etc", RawUnixRequest(socket_, HttpRequestText("DELETE", "/v1/dags/..%2F..%2Fetc?purge=true")),
               400, "bad_request");
  expect_error("run id ../x", RawUnixRequest(socket_, HttpRequestText("GET", "/v1/runs/..%2Fx")), 400, "bad_request");
  expect_error("logs of a bad task",
               RawUnixRequest(socket_, HttpRequestText("GET", "/v1/runs/0123456789ab/logs?task=..%2F..%2Fetc")), 400,
               "bad_request");

  // An invalid DAG: 400 invalid_dag, every problem with file:line:column.
  Json submit = {{"source", "dag: bad\ntasks:\n  - id: a\n    comand: echo\n"}, {"path", "bad.yaml"}};
  r = RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags", submit.dump()));
  Json body = expect_error("invalid DAG", r, 400, "invalid_dag");
  EXPECT_THAT(body["error"]["message"].get<std::string>(), StartsWith("bad.yaml:"));
  ASSERT_TRUE(body["error"].contains("details") && body["error"]["details"].is_array()) << r.body;
  bool typo = false;
  for (const auto& d : body["error"]["details"]) {
    EXPECT_EQ(d["file"], "bad.yaml") << d.dump();
    EXPECT_TRUE(d["line"].is_number_integer() && d["line"].get<int>() > 0) << d.dump();
    EXPECT_TRUE(d["column"].is_number_integer() && d["column"].get<int>() > 0) << d.dump();
    if (d["line"] == 4 && d["column"] == 5) {
      typo = true;
      EXPECT_THAT(d["message"].get<std::string>(), HasSubstr("unknown key 'comand'"));
    }
  }
  EXPECT_TRUE(typo) << "bad.yaml:4:5 (the typo) not reported: " << r.body;
  expect_error("DAG with a hostile name",
               RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags",
                                                       Json{{"source", "dag: ../../etc\ntasks:\n  - id: a\n    command: x\n"},
                                                            {"path", "evil.yaml"}}
                                                           .dump())),
               400, "invalid_dag");
  expect_error("invalid YAML",
               RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags",
                                                       Json{{"source", "dag: [unclosed\n"}, {"path", "y.yaml"}}.dump())),
               400, "invalid_dag");

  // The same through batchctl: exit 1 and the daemon's message.
  ProcResult show = Ctl({"show", "../../etc"});
  EXPECT_EQ(show.exit_code, 1) << show.Describe();
  EXPECT_EQ(show.err, "batchctl: invalid DAG name '../../etc': names are 1-128 characters of [A-Za-z0-9_.-]\n");
  ProcResult trig = Ctl({"trigger", "../../etc"});
  EXPECT_EQ(trig.exit_code, 1) << trig.Describe();
  ProcResult bad_date = Ctl({"trigger", "good", "--date", "yesterday"});
  EXPECT_EQ(bad_date.exit_code, 1) << bad_date.Describe();
  EXPECT_THAT(bad_date.err, StartsWith("batchctl: field 'date': "));
  ProcResult bad_param = Ctl({"trigger", "good", "--param", "nope=1"});
  EXPECT_EQ(bad_param.exit_code, 1) << bad_param.Describe();
  EXPECT_EQ(bad_param.err, "batchctl: DAG 'good' has no parameter 'nope'\n");
  ProcResult bad_submit = Ctl({"submit", WriteDag("bad.yaml", "dag: bad\ntasks:\n  - id: a\n    comand: echo\n")});
  EXPECT_EQ(bad_submit.exit_code, 1) << bad_submit.Describe();
  EXPECT_THAT(bad_submit.err, HasSubstr(tmp_ / "bad.yaml" + ":4:5: unknown key 'comand'"));
  EXPECT_THAT(bad_submit.err, HasSubstr("nothing was submitted\n"));
  EXPECT_EQ(DbFingerprint(), before);
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);

  // Last, as it creates a run if it is accepted: docs/http-api.md answers a body without
  // Content-Length (here: chunked) with 411 length_required.
  const std::string chunk = R"({"date": "2026-03-09"})";
  char size_hex[16];
  std::snprintf(size_hex, sizeof size_hex, "%zx", chunk.size());
  r = RawUnixRequest(socket_, "POST /v1/dags/good/runs HTTP/1.1\r\nHost: batchd\r\nConnection: close\r\n"
                              "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                  std::string(size_hex) + "\r\n" + chunk + "\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 411) << "a chunked body without Content-Length: " << r.head << "\n" << r.body;
  EXPECT_EQ(r.JsonBody().value("/error/code"_json_pointer, ""), "length_required") << r.body;
  EXPECT_EQ(DbFingerprint(), before) << "the chunked request changed the store";
}

// --- batchctl exit codes, the data directory lock ---------------------------------------

TEST_F(DaemonTest, BatchctlExitCodesForNoDaemonAndUnknownIds) {
  // No daemon at all.
  const std::string nowhere = sock_dir_ + "/none";
  ProcResult r = RunProcess({BATCHCTL_BIN, "--socket", nowhere, "health"});
  EXPECT_EQ(r.exit_code, 3) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "batchctl: cannot reach batchd at " + nowhere +
                       ": No such file or directory (is the daemon running?)\n");
  ProcResult j = RunProcess({BATCHCTL_BIN, "--socket", nowhere, "--json", "runs"});
  EXPECT_EQ(j.exit_code, 3) << j.Describe();
  Json err = Json::parse(j.out, nullptr, false);
  ASSERT_TRUE(err.is_object()) << j.Describe();
  EXPECT_EQ(err["error"]["code"], "unreachable");
  EXPECT_THAT(err["error"]["message"].get<std::string>(), HasSubstr("cannot reach batchd at " + nowhere));
  // $BATCHD_SOCKET is used when --socket is not given.
  ProcResult env = RunProcess({BATCHCTL_BIN, "health"}, milliseconds(30000), {"BATCHD_SOCKET=" + nowhere});
  EXPECT_EQ(env.exit_code, 3) << env.Describe();
  EXPECT_THAT(env.err, HasSubstr(nowhere));

  ASSERT_TRUE(StartDaemon());
  ProcResult ok = RunProcess({BATCHCTL_BIN, "health"}, milliseconds(30000), {"BATCHD_SOCKET=" + socket_});
  EXPECT_EQ(ok.exit_code, 0) << ok.Describe();

  // Unknown run, DAG: exit 4.
  ProcResult status = Ctl({"status", "0123456789ab"});
  EXPECT_EQ(status.exit_code, 4) << status.Describe();
  EXPECT_EQ(status.err, "batchctl: run '0123456789ab' not found\n");
  OrderedJson status_json = CtlJson({"status", "0123456789ab"}, 4);
  EXPECT_EQ(status_json, OrderedJson::parse(R"({"error": {"code": "not_found", "message": "run '0123456789ab' not found"}})"));
  EXPECT_EQ(Ctl({"cancel", "0123456789ab"}).exit_code, 4);
  EXPECT_EQ(Ctl({"retry", "0123456789ab"}).exit_code, 4);
  ProcResult show = Ctl({"show", "nope"});
  EXPECT_EQ(show.exit_code, 4) << show.Describe();
  EXPECT_EQ(show.err, "batchctl: DAG 'nope' not found\n");
  EXPECT_EQ(Ctl({"trigger", "nope"}).exit_code, 4);
  EXPECT_EQ(Ctl({"pause", "nope"}).exit_code, 4);
  // A usage error is 2.
  EXPECT_EQ(Ctl({"trigger"}).exit_code, 2);
  EXPECT_EQ(Ctl({"frobnicate"}).exit_code, 2);
}

TEST_F(DaemonTest, SecondDaemonOnTheSameDataDirectoryFails) {
  ASSERT_TRUE(StartDaemon());
  ProcResult second = RunProcess({BATCHD_BIN, "serve", "--data-dir", data_, "--dags-dir", dags_, "--socket",
                                  sock_dir_ + "/t", "--http", ""},
                                 milliseconds(15000));
  EXPECT_EQ(second.exit_code, 1) << second.Describe();
  EXPECT_EQ(second.err, "batchd: data directory '" + data_ + "' is in use by another batchd process (pid " +
                            std::to_string(daemon_pid()) + ")\n");
  EXPECT_FALSE(Exists(sock_dir_ + "/t")) << "the second daemon must not have started listening";
  // The same socket with another data directory is refused too, and the first keeps it.
  ProcResult third = RunProcess({BATCHD_BIN, "serve", "--data-dir", tmp_ / "data2", "--dags-dir", dags_, "--socket",
                                 socket_, "--http", ""},
                                milliseconds(15000));
  EXPECT_EQ(third.exit_code, 1) << third.Describe();
  EXPECT_THAT(third.err, HasSubstr("another process is listening on socket '" + socket_ + "'"));
  EXPECT_TRUE(DaemonRunning());
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);
}

// --- Metrics ---------------------------------------------------------------------------

// The value of the sample `name{labels...}` in a Prometheus text exposition (the labels given
// must all match; others may be present), or nullopt when there is no such sample.
std::optional<double> Sample(const std::string& body, const std::string& name,
                             const std::map<std::string, std::string>& labels = {}) {
  static const std::regex kLine(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$)");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)")re");
  size_t pos = 0;
  while (pos < body.size()) {
    size_t eol = body.find('\n', pos);
    if (eol == std::string::npos) eol = body.size();
    std::string line = body.substr(pos, eol - pos);
    pos = eol + 1;
    std::smatch m;
    if (!std::regex_match(line, m, kLine) || m[1] != name) continue;
    std::map<std::string, std::string> have;
    std::string text = m[3];
    for (std::sregex_iterator it(text.begin(), text.end(), kLabel), end; it != end; ++it) have[(*it)[1]] = (*it)[2];
    bool match = true;
    for (const auto& [k, v] : labels) match &= have.count(k) && have[k] == v;
    if (match) return std::stod(m[4]);
  }
  return std::nullopt;
}

// The label names used by any sample in the exposition.
std::set<std::string> LabelNames(const std::string& body) {
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="[^"]*")re");
  std::set<std::string> out;
  for (std::sregex_iterator it(body.begin(), body.end(), kLabel), end; it != end; ++it) out.insert((*it)[1]);
  return out;
}

TEST_F(DaemonTest, MetricsAndHealthzOnTheTcpListener) {
  const int port = FreeTcpPort();
  ASSERT_GT(port, 0);
  DaemonOptions options;
  options.http = "127.0.0.1:" + std::to_string(port);
  options.config_yaml = "pools:\n  warehouse: 2\n";
  ASSERT_TRUE(StartDaemon(options));
  SubmitDag("m.yaml", R"(dag: m
schedule: "0 0 * * *"
slo: {max_duration: 1h, freshness: 26h}
tasks:
  - id: a
    pool: warehouse
    command: "true"
)");
  SubmitDag("bad.yaml", R"(dag: bad
slo: {max_duration: 1s}
tasks:
  - id: flaky
    retry: {retries: 1, delay: 100ms, backoff: fixed}
    command: sleep 0.6; exit 3
)");
  ASSERT_EQ(Ctl({"trigger", "m", "--date", "2026-03-01", "--wait"}).exit_code, 0);
  ASSERT_EQ(Ctl({"trigger", "m", "--date", "2026-03-01"}).exit_code, 0);  // a duplicate
  // Another key, same logical date: `a` is skipped as already_succeeded.
  ASSERT_EQ(Ctl({"trigger", "m", "--date", "2026-03-01", "--key", "again", "--wait"}).exit_code, 0);
  ASSERT_EQ(Ctl({"backfill", "m", "--from", "2026-02-01", "--to", "2026-02-01", "--wait"}).exit_code, 0);
  // Fails twice (one retry), 1.2 s in all: a dead letter and a duration SLO miss.
  ASSERT_EQ(Ctl({"trigger", "bad", "--date", "2026-03-01", "--wait"}).exit_code, 1);

  RawReply healthz = RawTcpRequest(port, HttpRequestText("GET", "/healthz"));
  EXPECT_EQ(healthz.status, 200) << healthz.error << healthz.head;
  EXPECT_EQ(healthz.body, "ok\n");
  RawReply metrics = RawTcpRequest(port, HttpRequestText("GET", "/metrics"));
  ASSERT_EQ(metrics.status, 200) << metrics.error << metrics.head;
  EXPECT_THAT(metrics.head, HasSubstr("text/plain"));
  const std::string& body = metrics.body;

  using Labels = std::map<std::string, std::string>;
  struct Expect {
    std::string name;
    Labels labels;
    std::optional<double> value;  // nullopt: any value
  };
  const std::vector<Expect> expected = {
      {"batchd_runs_total", {{"dag", "m"}, {"trigger", "manual"}, {"state", "success"}}, 2},
      {"batchd_runs_total", {{"dag", "m"}, {"trigger", "backfill"}, {"state", "success"}}, 1},
      {"batchd_runs_total", {{"dag", "bad"}, {"trigger", "manual"}, {"state", "failed"}}, 1},
      {"batchd_run_duration_seconds_count", {{"dag", "m"}}, 3},
      {"batchd_runs_active", {{"dag", "m"}}, 0},
      {"batchd_task_attempts_total", {{"dag", "m"}, {"task", "a"}, {"outcome", "success"}}, 2},
      {"batchd_task_attempts_total", {{"dag", "bad"}, {"task", "flaky"}, {"outcome", "failed"}}, 2},
      {"batchd_task_retries_total", {{"dag", "bad"}, {"task", "flaky"}}, 1},
      {"batchd_task_duration_seconds_count", {{"dag", "bad"}, {"task", "flaky"}}, 2},
      {"batchd_task_cpu_seconds_total", {{"dag", "m"}, {"task", "a"}}, std::nullopt},
      {"batchd_partitions_total", {{"dag", "m"}, {"task", "a"}, {"state", "success"}}, 2},
      {"batchd_partitions_total", {{"dag", "m"}, {"task", "a"}, {"state", "skipped"}}, 1},
      {"batchd_idempotent_skips_total", {{"dag", "m"}, {"task", "a"}}, 1},
      // Fire to first attempt: the run whose only task was skipped started no attempt.
      {"batchd_run_schedule_delay_seconds_count", {{"dag", "m"}}, 2},
      {"batchd_run_schedule_delay_seconds_count", {{"dag", "bad"}}, 1},
      {"batchd_dead_letters", {{"dag", "bad"}, {"task", "flaky"}}, 1},
      {"batchd_duplicate_triggers_total", {{"dag", "m"}}, 1},
      {"batchd_slo_misses_total", {{"dag", "bad"}, {"kind", "duration"}}, 1},
      {"batchd_dag_freshness_slo_seconds", {{"dag", "m"}}, 26 * 3600},
      {"batchd_pool_slots", {{"pool", "warehouse"}}, 2},
      {"batchd_pool_slots_used", {{"pool", "warehouse"}}, 0},
      {"batchd_tasks_running", {}, 0},
      {"batchd_tasks_queued", {}, 0},
      {"batchd_executor_workers", {}, 4},
      {"batchd_build_info", {{"version", "0.1.0"}}, 1},
      {"process_resident_memory_bytes", {}, std::nullopt},
      {"process_cpu_seconds_total", {}, std::nullopt},
      {"process_start_time_seconds", {}, std::nullopt},
  };
  std::vector<std::string> wrong;
  for (const auto& e : expected) {
    auto v = Sample(body, e.name, e.labels);
    std::string labels;
    for (const auto& [k, val] : e.labels) labels += (labels.empty() ? "" : ",") + k + "=\"" + val + "\"";
    if (!v) wrong.push_back(e.name + "{" + labels + "} missing");
    else if (e.value && *v != *e.value)
      wrong.push_back(e.name + "{" + labels + "} is " + std::to_string(*v) + ", expected " + std::to_string(*e.value));
  }
  EXPECT_THAT(wrong, ::testing::IsEmpty()) << "SPEC section 7 samples\n--- /metrics ---\n" << body;
  EXPECT_NE(body.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos)
      << "process_cpu_seconds_total is a counter (Prometheus process metrics convention)";
  auto last_success = Sample(body, "batchd_dag_last_success_timestamp_seconds", {{"dag", "m"}});
  ASSERT_TRUE(last_success.has_value()) << body;
  EXPECT_NEAR(*last_success, RealNow(), 120);
  EXPECT_FALSE(Sample(body, "batchd_dag_last_success_timestamp_seconds", {{"dag", "bad"}})) << "never succeeded";
  EXPECT_FALSE(Sample(body, "batchd_dead_letters", {{"dag", "m"}})) << "m has none";
  // Prometheus's own linter accepts the exposition.
  std::ofstream(tmp() / "metrics.txt") << body;
  ProcResult lint = RunProcess({"/bin/sh", "-c", "promtool check metrics < \"$0\"", tmp() / "metrics.txt"});
  EXPECT_EQ(lint.exit_code, 0) << lint.Describe();
  EXPECT_EQ(lint.out + lint.err, "") << "promtool's complaints";
  // Only the SPEC's label names: never a run id or a partition.
  std::set<std::string> allowed = {"dag", "task", "state", "outcome", "trigger", "pool", "kind", "version", "le"};
  for (const auto& l : LabelNames(body)) {
    EXPECT_TRUE(allowed.count(l)) << "label " << l << " is not allowed";
  }

  // The TCP listener serves nothing else, and mutates nothing.
  const std::string runs_before = DbFingerprint();
  RawReply api = RawTcpRequest(port, HttpRequestText("GET", "/v1/runs"));
  EXPECT_EQ(api.status, 404) << api.head;
  RawReply post = RawTcpRequest(port, HttpRequestText("POST", "/v1/dags/m/runs", "{}"));
  EXPECT_EQ(post.status, 405) << post.head;
  EXPECT_EQ(DbFingerprint(), runs_before);


  // The series that describe stored history have the same values after kill -9 and a
  // restart: they are the store's counts, not counts this process made.
  auto stored_series = [](const std::string& exposition) {
    static const std::regex kStored(
        R"re(^((batchd_(runs|task_attempts|task_retries|task_cpu_seconds|partitions|idempotent_skips|duplicate_triggers|slo_misses)_total|batchd_dead_letters|batchd_dag_last_success_timestamp_seconds)(\{[^}]*\})?) (\S+)$)re");
    std::map<std::string, std::string> out;
    std::istringstream lines(exposition);
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (std::regex_match(line, m, kStored)) out[m[1]] = m[5];
    }
    return out;
  };
  const auto before = stored_series(body);
  EXPECT_GE(before.size(), 15u) << body;
  KillDaemon();
  ASSERT_TRUE(StartDaemon(options));
  RawReply again = RawTcpRequest(port, HttpRequestText("GET", "/metrics"));
  ASSERT_EQ(again.status, 200) << again.error << again.head;
  EXPECT_EQ(stored_series(again.body), before) << "--- before ---\n" << body << "\n--- after ---\n" << again.body;
  // The duration miss was counted once, not again by the new process.
  EXPECT_EQ(Count("SELECT COUNT(*) FROM slo_misses WHERE dag = 'bad' AND kind = 'duration'"), 1);
}

}  // namespace
}  // namespace batchd::e2e
