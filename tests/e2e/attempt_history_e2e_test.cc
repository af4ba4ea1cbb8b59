// End-to-end tests of the operator's view of a run through the real daemon and batchctl:
// why each attempt ended (`status`, `attempts`, GET /v1/runs/{id}/attempts), a partitioned
// run's status grouped per task, and `logs` naming the attempt it shows.

#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Rows = std::vector<std::vector<std::string>>;

std::vector<std::string> Keys(const OrderedJson& object) {
  std::vector<std::string> keys;
  for (const auto& [k, _] : object.items()) keys.push_back(k);
  return keys;
}

// batchctl's human output as rows of cells (columns are separated by two or more spaces),
// with every duration cell ("12ms", "1.0s", "1m5s") as "<d>": durations differ per run.
Rows Cells(const std::string& text) {
  static const std::regex kDuration("^[0-9]+(\\.[0-9]+)?(ms|s)$|^[0-9]+m[0-9]+s$");
  static const std::regex kGap(" {2,}");
  Rows rows;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(pos, nl - pos);
    std::vector<std::string> cells;
    for (std::sregex_token_iterator it(line.begin(), line.end(), kGap, -1), end; it != end; ++it) {
      std::string cell = *it;
      cells.push_back(std::regex_match(cell, kDuration) ? "<d>" : cell);
    }
    rows.push_back(cells);
    pos = nl + 1;
  }
  return rows;
}

// The rows after the run's details block (from the first empty line on).
Rows AfterDetails(const std::string& status_text) {
  Rows rows = Cells(status_text);
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i].size() == 1 && rows[i][0].empty()) return Rows(rows.begin() + static_cast<long>(i), rows.end());
  return {};
}

class AttemptHistoryTest : public DaemonTest {};

// A run whose tasks end every way an attempt can end.
constexpr const char* kEndings = R"(dag: endings
tasks:
  - id: slow
    command: echo "slow $BATCHD_ATTEMPT"; sleep 30
    timeout: 1s
    kill_grace: 1s
    retry: {retries: 1, delay: 0s}
  - id: crash
    command: kill -KILL $$
    retry: {retries: 0}
  - id: boom
    command: echo boom >&2; exit 7
    retry: {retries: 0}
  - id: nowhere
    command: "true"
    working_dir: @TMP@/missing
    retry: {retries: 0}
  - id: after
    depends_on: [boom]
    command: "true"
  - id: quiet
    command: "true"
)";

TEST_F(AttemptHistoryTest, StatusShowsWhyTheLastAttemptEndedAndItsDurationApartFromTheTotal) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("endings.yaml", Substitute(kEndings, {{"TMP", tmp_.path()}}));
  const std::string run_id = Trigger("endings", {"--date", "2026-03-01"});
  ASSERT_TRUE(WaitRunState(run_id, "failed"));

  ProcResult status = Ctl({"status", run_id});
  ASSERT_EQ(status.exit_code, 0) << status.Describe();
  EXPECT_EQ(AfterDetails(status.out),
            (Rows{{""},
                  {"TASK", "PARTITION", "STATE", "ATTEMPTS", "LAST ATTEMPT", "DURATION", "TOTAL", "REASON"},
                  {"slow", "-", "failed", "2", "#2 timeout", "<d>", "<d>", "-"},
                  {"crash", "-", "failed", "1", "#1 signal SIGKILL", "<d>", "<d>", "-"},
                  {"boom", "-", "failed", "1", "#1 exit code 7", "<d>", "<d>", "-"},
                  {"nowhere", "-", "failed", "1", "#1 working directory '" + tmp_.path() + "/missing' does not exist",
                   "<d>", "<d>", "-"},
                  {"after", "-", "upstream_failed", "0", "-", "-", "-", "upstream boom failed"},
                  {"quiet", "-", "success", "1", "#1 exit code 0", "<d>", "<d>", "-"}}))
      << status.out;

  OrderedJson json = CtlJson({"status", run_id});
  ASSERT_EQ(json["tasks"].size(), 6u) << json.dump();
  const OrderedJson& slow = json["tasks"][0];
  EXPECT_EQ(slow["reason"], "timeout");
  EXPECT_EQ(slow["exit_code"], nullptr);
  EXPECT_THAT(Keys(slow["last_attempt"]), ElementsAre("number", "outcome", "reason", "exit_code", "signal", "error",
                                                      "started_at", "ended_at", "duration_seconds", "dag_version"));
  EXPECT_EQ(slow["last_attempt"]["number"], 2);
  EXPECT_EQ(slow["last_attempt"]["outcome"], "timeout");
  EXPECT_EQ(slow["last_attempt"]["reason"], "timeout");
  // Each attempt ran about its 1 s timeout: the total is both, the duration the last one.
  const double last = slow["duration_seconds"].get<double>(), total = slow["total_seconds"].get<double>();
  EXPECT_GE(last, 1.0);
  EXPECT_LT(last, 5.0);
  EXPECT_GE(total, 2.0);
  EXPECT_NEAR(total, last * 2, 1.0);
  EXPECT_EQ(json["tasks"][1]["last_attempt"]["signal"], "SIGKILL");
  EXPECT_EQ(json["tasks"][1]["last_attempt"]["outcome"], "failed");
  EXPECT_EQ(json["tasks"][2]["last_attempt"]["exit_code"], 7);
  EXPECT_EQ(json["tasks"][2]["reason"], "exit code 7");
  EXPECT_EQ(json["tasks"][3]["last_attempt"]["error"],
            "working directory '" + tmp_.path() + "/missing' does not exist");
  EXPECT_EQ(json["tasks"][4]["last_attempt"], nullptr);
  EXPECT_EQ(json["tasks"][4]["total_seconds"], nullptr);
  EXPECT_EQ(json["tasks"][4]["reason"], "upstream boom failed");
}

TEST_F(AttemptHistoryTest, AttemptsListsEveryAttemptWithItsOutcomeResourcesAndLog) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("endings.yaml", Substitute(kEndings, {{"TMP", tmp_.path()}}));
  const std::string run_id = Trigger("endings", {"--date", "2026-03-01"});
  ASSERT_TRUE(WaitRunState(run_id, "failed"));
  const std::string version = V("SELECT substr(dag_hash, 1, 12) FROM runs WHERE run_id = '" + run_id + "'");

  OrderedJson all = CtlJson({"attempts", run_id});
  ASSERT_EQ(all.size(), 6u) << all.dump();
  std::vector<std::string> seen;
  for (const auto& a : all)
    seen.push_back(a["task"].get<std::string>() + "#" + std::to_string(a["attempt"].get<int>()) + " " +
                   a["outcome"].get<std::string>() + ": " + a["reason"].get<std::string>());
  EXPECT_THAT(seen, ElementsAre("slow#1 timeout: timeout", "slow#2 timeout: timeout", "crash#1 failed: signal SIGKILL",
                                "boom#1 failed: exit code 7",
                                "nowhere#1 failed: working directory '" + tmp_.path() + "/missing' does not exist",
                                "quiet#1 success: exit code 0"));

  OrderedJson slow = CtlJson({"attempts", run_id, "slow"});
  ASSERT_EQ(slow.size(), 2u) << slow.dump();
  EXPECT_THAT(Keys(slow[0]), ElementsAre("task", "partition", "attempt", "outcome", "reason", "exit_code", "signal",
                                         "started_at", "ended_at", "cpu_seconds", "max_rss_bytes", "dag_version",
                                         "log"));
  EXPECT_EQ(slow[1]["partition"], "-");
  EXPECT_EQ(slow[1]["exit_code"], nullptr);
  EXPECT_EQ(slow[1]["dag_version"], version);
  EXPECT_EQ(slow[1]["log"], AttemptLogPath(data_, run_id, "slow", "-", 2));
  EXPECT_GT(slow[1]["max_rss_bytes"].get<int64_t>(), 0);
  EXPECT_GE(slow[1]["cpu_seconds"].get<double>(), 0.0);

  ProcResult text = Ctl({"attempts", run_id, "boom", "--partition", "-"});
  ASSERT_EQ(text.exit_code, 0) << text.Describe();
  Rows rows = Cells(text.out);
  ASSERT_EQ(rows.size(), 2u) << text.out;
  EXPECT_THAT(rows[0], ElementsAre("TASK", "PARTITION", "ATTEMPT", "OUTCOME", "REASON", "STARTED", "DURATION", "CPU",
                                   "MAX RSS", "LOG"));
  ASSERT_EQ(rows[1].size(), 10u) << text.out;
  EXPECT_THAT(std::vector<std::string>(rows[1].begin(), rows[1].begin() + 5),
              ElementsAre("boom", "-", "1", "failed", "exit code 7"));
  EXPECT_EQ(rows[1][5], all[3]["started_at"].get<std::string>());
  EXPECT_EQ(rows[1][6], "<d>");
  EXPECT_EQ(rows[1][9], AttemptLogPath(data_, run_id, "boom", "-", 1));

  // A task that has not run has no attempts; that is not an error.
  ProcResult none = Ctl({"attempts", run_id, "after"});
  EXPECT_EQ(none.exit_code, 0) << none.Describe();
  EXPECT_EQ(none.out, "");
  EXPECT_EQ(none.err, "no attempts yet\n");
  EXPECT_EQ(CtlJson({"attempts", run_id, "after"}), OrderedJson::array());

  // Unknown run, task and partition: exit 4 with the daemon's message, as `status` does.
  ProcResult unknown_run = Ctl({"attempts", "0123456789ab"});
  EXPECT_EQ(unknown_run.exit_code, 4) << unknown_run.Describe();
  EXPECT_EQ(unknown_run.err, "batchctl: run '0123456789ab' not found\n");
  ProcResult unknown_task = Ctl({"attempts", run_id, "nope"});
  EXPECT_EQ(unknown_task.exit_code, 4) << unknown_task.Describe();
  EXPECT_EQ(unknown_task.err, "batchctl: run '" + run_id + "' has no task 'nope'\n");
  ProcResult unknown_partition = Ctl({"attempts", run_id, "boom", "--partition", "eu"});
  EXPECT_EQ(unknown_partition.exit_code, 4) << unknown_partition.Describe();
  EXPECT_EQ(unknown_partition.err, "batchctl: task 'boom' of run '" + run_id + "' has no partition 'eu'\n");
  ProcResult no_task = Ctl({"attempts", run_id, "--partition", "eu"});
  EXPECT_EQ(no_task.exit_code, 2) << no_task.Describe();
  EXPECT_EQ(no_task.err, "batchctl: --partition needs a TASK\n");

  // The route itself.
  RawReply partition_only =
      RawUnixRequest(socket_, HttpRequestText("GET", "/v1/runs/" + run_id + "/attempts?partition=eu"));
  EXPECT_EQ(partition_only.status, 400) << partition_only.head;
  EXPECT_EQ(partition_only.JsonBody()["error"]["message"], "query parameter 'partition' needs 'task'");
  RawReply bad_query = RawUnixRequest(socket_, HttpRequestText("GET", "/v1/runs/" + run_id + "/attempts?x=1"));
  EXPECT_EQ(bad_query.status, 400) << bad_query.head;
  RawReply post = RawUnixRequest(socket_, HttpRequestText("POST", "/v1/runs/" + run_id + "/attempts"));
  EXPECT_EQ(post.status, 405) << post.head;
}

// 16 partitions: 07 fails, 12 runs until released, the others succeed.
constexpr const char* kWide = R"(dag: wide
tasks:
  - id: prepare
    command: "true"
  - id: transform
    depends_on: [prepare]
    partitions: {values: ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16"]}
    command: |
      if [ "$BATCHD_PARTITION" = 07 ]; then exit 1; fi
      if [ "$BATCHD_PARTITION" = 12 ]; then while [ ! -e @TMP@/release ]; do sleep 0.1; done; fi
    retry: {retries: 0}
)";

TEST_F(AttemptHistoryTest, StatusGroupsManyPartitionsPerTaskAndListsOnlyTheFailedAndRunningOnes) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("wide.yaml", Substitute(kWide, {{"TMP", tmp_.path()}}));
  struct Release {  // whatever fails below, partition 12 ends before the daemon is stopped
    std::string path;
    ~Release() { WriteFile(path, ""); }
  } release{tmp_ / "release"};
  const std::string run_id = Trigger("wide", {"--date", "2026-03-01"});
  ASSERT_FALSE(run_id.empty());
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (Count("SELECT COUNT(*) FROM task_instances WHERE run_id = '" + run_id +
               "' AND task = 'transform' AND state IN ('success', 'failed')") < 15 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(50));
  ASSERT_EQ(V("SELECT state FROM task_instances WHERE run_id = '" + run_id + "' AND partition = '12'"), "running");

  ProcResult status = Ctl({"status", run_id});
  ASSERT_EQ(status.exit_code, 0) << status.Describe();
  EXPECT_EQ(AfterDetails(status.out),
            (Rows{{""},
                  {"transform", "16 partitions: 14 success, 1 failed, 1 running"},
                  {""},
                  {"TASK", "PARTITION", "STATE", "ATTEMPTS", "LAST ATTEMPT", "DURATION", "TOTAL", "REASON"},
                  {"prepare", "-", "success", "1", "#1 exit code 0", "<d>", "<d>", "-"},
                  {"transform", "07", "failed", "1", "#1 exit code 1", "<d>", "<d>", "-"},
                  {"transform", "12", "running", "1", "#1 running", "<d>", "<d>", "-"},
                  {"(14 more instances not listed: batchctl status " + run_id + " --all)"}}))
      << status.out;

  // --all: one row per instance.
  ProcResult all = Ctl({"status", run_id, "--all"});
  ASSERT_EQ(all.exit_code, 0) << all.Describe();
  Rows rows = AfterDetails(all.out);
  ASSERT_EQ(rows.size(), 19u) << all.out;  // "", header, 17 instances
  EXPECT_EQ(rows[2], (std::vector<std::string>{"prepare", "-", "success", "1", "#1 exit code 0", "<d>", "<d>", "-"}));
  EXPECT_EQ(rows[3], (std::vector<std::string>{"transform", "01", "success", "1", "#1 exit code 0", "<d>", "<d>", "-"}));
  EXPECT_EQ(rows[18], (std::vector<std::string>{"transform", "16", "success", "1", "#1 exit code 0", "<d>", "<d>", "-"}));

  // Filters give the flat list of what they keep.
  ProcResult failed = Ctl({"status", run_id, "--task", "transform", "--state", "failed"});
  ASSERT_EQ(failed.exit_code, 0) << failed.Describe();
  EXPECT_EQ(AfterDetails(failed.out),
            (Rows{{""},
                  {"TASK", "PARTITION", "STATE", "ATTEMPTS", "LAST ATTEMPT", "DURATION", "TOTAL", "REASON"},
                  {"transform", "07", "failed", "1", "#1 exit code 1", "<d>", "<d>", "-"}}));
  ProcResult no_task = Ctl({"status", run_id, "--task", "nope"});
  EXPECT_EQ(no_task.exit_code, 4) << no_task.Describe();
  EXPECT_EQ(no_task.err, "batchctl: run '" + run_id + "' has no task 'nope'\n");

  // --json: every instance, counts per task for the whole run; --limit cuts the list only.
  OrderedJson json = CtlJson({"status", run_id});
  EXPECT_EQ(json["tasks"].size(), 17u);
  EXPECT_EQ(json["more"], false);
  EXPECT_EQ(json["counts"],
            OrderedJson::parse(R"({"prepare": {"success": 1}, "transform": {"failed": 1, "running": 1, "success": 14}})"));
  OrderedJson limited = CtlJson({"status", run_id, "--limit", "3"});
  EXPECT_EQ(limited["tasks"].size(), 3u);
  EXPECT_EQ(limited["more"], true);
  EXPECT_EQ(limited["counts"], json["counts"]);
  ProcResult limited_text = Ctl({"status", run_id, "--limit", "3"});
  EXPECT_THAT(limited_text.out, HasSubstr("\n(only the first 3 instances were read; --all reads every one)\n"));
  // Past the page, what needs attention is still listed: the failed instance (from its
  // index) and the running one (from the engine), after the page's own rows.
  Rows limited_rows = AfterDetails(limited_text.out);
  ASSERT_GE(limited_rows.size(), 7u) << limited_text.out;
  EXPECT_EQ(limited_rows[5], (std::vector<std::string>{"transform", "07", "failed", "1", "#1 exit code 1", "<d>", "<d>", "-"}))
      << limited_text.out;
  EXPECT_EQ(limited_rows[6], (std::vector<std::string>{"transform", "12", "running", "1", "#1 running", "<d>", "<d>", "-"}))
      << limited_text.out;
  OrderedJson running = CtlJson({"status", run_id, "--state", "running"});
  ASSERT_EQ(running["tasks"].size(), 1u) << running.dump();
  EXPECT_EQ(running["tasks"][0]["partition"], "12");
  EXPECT_EQ(running["tasks"][0]["state"], "running");
  EXPECT_EQ(running["tasks"][0]["last_attempt"]["outcome"], "running") << running.dump();
  EXPECT_EQ(running["more"], false);

  WriteFile(tmp_ / "release", "");
  ASSERT_TRUE(WaitRunState(run_id, "failed"));
  ProcResult done = Ctl({"status", run_id});
  EXPECT_THAT(done.out, HasSubstr("\ntransform  16 partitions: 15 success, 1 failed\n")) << done.out;
}

TEST_F(AttemptHistoryTest, LogsNamesTheAttemptOnStderrAndListsPartitionsOfAPartitionedTask) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("endings.yaml", Substitute(kEndings, {{"TMP", tmp_.path()}}));
  SubmitDag("wide.yaml", Substitute(kWide, {{"TMP", tmp_.path()}}));
  WriteFile(tmp_ / "release", "");
  const std::string run_id = Trigger("endings", {"--date", "2026-03-01"});
  const std::string wide = Trigger("wide", {"--date", "2026-03-01"});
  ASSERT_TRUE(WaitRunState(run_id, "failed"));
  ASSERT_TRUE(WaitRunState(wide, "failed"));

  ProcResult latest = Ctl({"logs", run_id, "slow"});
  EXPECT_EQ(latest.exit_code, 0) << latest.Describe();
  EXPECT_EQ(latest.out, "slow 2\n");
  EXPECT_EQ(latest.err, "== run " + run_id + " task slow attempt 2 of 2 (timeout) ==\n");
  ProcResult first = Ctl({"logs", run_id, "slow", "--attempt", "1"});
  EXPECT_EQ(first.exit_code, 0) << first.Describe();
  EXPECT_EQ(first.out, "slow 1\n");
  EXPECT_EQ(first.err, "== run " + run_id + " task slow attempt 1 of 2 (timeout) ==\n");
  ProcResult boom = Ctl({"logs", run_id, "boom"});
  EXPECT_EQ(boom.out, "boom\n");
  EXPECT_EQ(boom.err, "== run " + run_id + " task boom attempt 1 of 1 (failed, exit code 7) ==\n");

  ProcResult missing = Ctl({"logs", run_id, "slow", "--attempt", "3"});
  EXPECT_EQ(missing.exit_code, 4) << missing.Describe();
  EXPECT_EQ(missing.out, "");
  EXPECT_EQ(missing.err, "batchctl: task 'slow' partition '-' of run '" + run_id +
                             "' has no attempt 3 (attempts: 1-2)\n");

  ProcResult quiet = Ctl({"logs", run_id, "quiet"});
  EXPECT_EQ(quiet.exit_code, 0) << quiet.Describe();
  EXPECT_EQ(quiet.out, "");
  EXPECT_EQ(quiet.err, "== run " + run_id + " task quiet attempt 1 of 1 (success, exit code 0) ==\n"
                       "(attempt 1 printed nothing)\n");
  ProcResult quiet_followed = Ctl({"logs", run_id, "quiet", "--follow"});
  EXPECT_EQ(quiet_followed.exit_code, 0) << quiet_followed.Describe();
  EXPECT_EQ(quiet_followed.err, quiet.err);

  // A partitioned task without --partition: its partitions, on stderr; stdout stays empty.
  ProcResult partitions = Ctl({"logs", wide, "transform"});
  EXPECT_EQ(partitions.exit_code, 2) << partitions.Describe();
  EXPECT_EQ(partitions.out, "");
  std::vector<std::vector<std::string>> table = {{"PARTITION", "STATE", "ATTEMPTS"}};
  for (int p = 1; p <= 16; ++p) {
    char name[3];
    std::snprintf(name, sizeof name, "%02d", p);
    table.push_back({name, p == 7 ? "failed" : "success", "1"});
  }
  Rows expected = {{"task transform of run " + wide + " has 16 partitions; show one with --partition P:"}};
  expected.insert(expected.end(), table.begin(), table.end());
  EXPECT_EQ(Cells(partitions.err), expected) << partitions.err;
  OrderedJson partitions_json = CtlJson({"logs", wide, "transform"}, 2);
  EXPECT_EQ(partitions_json["partitions"].size(), 16u);
  EXPECT_EQ(partitions_json["partitions"][6], OrderedJson::parse(R"({"partition": "07", "state": "failed", "attempts": 1})"));

  ProcResult one = Ctl({"logs", wide, "transform", "--partition", "07"});
  EXPECT_EQ(one.exit_code, 0) << one.Describe();
  EXPECT_EQ(one.err, "== run " + wide + " task transform[07] attempt 1 of 1 (failed, exit code 1) ==\n"
                     "(attempt 1 printed nothing)\n");
}

TEST_F(AttemptHistoryTest, LogsFollowNamesEachAttemptOfARetryingTask) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("flaky.yaml", Substitute(R"(dag: flaky
tasks:
  - id: flaky
    command: |
      echo "try $BATCHD_ATTEMPT"
      if [ ! -e @TMP@/once ]; then : > @TMP@/once; exit 3; fi
    retry: {retries: 1, delay: 1s}
)", {{"TMP", tmp_.path()}}));
  const std::string run_id = Trigger("flaky", {"--date", "2026-03-01"});
  ProcResult follow = Ctl({"logs", run_id, "flaky", "--follow"});
  EXPECT_EQ(follow.exit_code, 0) << follow.Describe();
  EXPECT_EQ(follow.out, "try 1\ntry 2\n");
  EXPECT_THAT(follow.err, HasSubstr("== run " + run_id + " task flaky attempt 2 of 2 ("));
  ASSERT_TRUE(WaitRunState(run_id, "success"));
  EXPECT_EQ(Ctl({"logs", run_id, "flaky"}).err,
            "== run " + run_id + " task flaky attempt 2 of 2 (success, exit code 0) ==\n");
}

// The README's example against the shipped example DAG.
TEST_F(AttemptHistoryTest, ReadmeLogsExampleWorksWithTheShippedNightlyBilling) {
  ASSERT_TRUE(StartDaemon());
  std::filesystem::copy_file(std::string(BATCHD_SOURCE_DIR) + "/dags/nightly_billing.yaml",
                             tmp_ / "nightly_billing.yaml");
  ASSERT_EQ(Ctl({"submit", tmp_ / "nightly_billing.yaml"}).exit_code, 0);
  const std::string run_id =
      Trigger("nightly_billing", {"--date", "2026-01-05", "--param", "out_dir=" + (tmp_ / "billing")});
  ASSERT_TRUE(WaitRunState(run_id, "success", seconds(60))) << DaemonLog();
  ProcResult logs = Ctl({"logs", run_id, "reconcile", "--partition", "eu"});
  EXPECT_EQ(logs.exit_code, 0) << logs.Describe();
  EXPECT_EQ(logs.err, "== run " + run_id + " task reconcile[eu] attempt 1 of 1 (success, exit code 0) ==\n"
                      "(attempt 1 printed nothing)\n");
  OrderedJson attempts = CtlJson({"attempts", run_id, "reconcile"});
  EXPECT_EQ(attempts.size(), 3u) << attempts.dump();
}

}  // namespace
}  // namespace batchd::e2e
