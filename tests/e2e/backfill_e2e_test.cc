// End-to-end tests of `batchctl backfill`: the range clipped to the DAG's start_date/end_date
// (and refused when entirely outside them), --dry-run, the confirmation above 100 runs and
// the hard cap, and backfilled runs queueing behind max_active_runs, oldest first. The real
// daemon, driven through the real batchctl.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A daily DAG at midnight UTC of one `true` task; `extra` adds top-level keys.
std::string DailyDag(const std::string& name, const std::string& extra = "") {
  return "dag: " + name + "\nschedule: \"0 0 * * *\"\n" + extra + "tasks:\n  - id: a\n    command: \"true\"\n";
}

TEST_F(DaemonTest, BackfillIsClippedToTheDagsStartAndEndDates) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("window.yaml", DailyDag("window", "start_date: 2026-03-03\nend_date: 2026-03-05\n"));
  SubmitDag("until.yaml", "dag: until\nend_date: 2026-03-31\ntasks:\n  - id: a\n    command: \"true\"\n");

  // Entirely outside: refused with the DAG's dates, nothing created.
  ProcResult before = Ctl({"backfill", "window", "--from", "2026-01-01", "--to", "2026-01-31"});
  EXPECT_EQ(before.exit_code, 1) << before.Describe();
  EXPECT_EQ(before.out, "");
  EXPECT_EQ(before.err,
            "batchctl: DAG 'window' runs only from start_date 2026-03-03T00:00:00+00:00 to end_date "
            "2026-03-05T00:00:00+00:00; the range 2026-01-01 to 2026-01-31 is entirely outside it, nothing was "
            "created\n");
  OrderedJson after = CtlJson({"backfill", "window", "--from", "2026-03-06", "--to", "2026-03-07"}, 1);
  EXPECT_EQ(after["error"]["code"], "bad_request");
  EXPECT_EQ(after["error"]["message"],
            "DAG 'window' runs only from start_date 2026-03-03T00:00:00+00:00 to end_date 2026-03-05T00:00:00+00:00; "
            "the range 2026-03-06 to 2026-03-07 is entirely outside it, nothing was created");
  // A DAG without a schedule, bounded on one side only.
  ProcResult late = Ctl({"backfill", "until", "--from", "2026-04-01", "--to", "2026-04-02"});
  EXPECT_EQ(late.exit_code, 1) << late.Describe();
  EXPECT_EQ(late.err,
            "batchctl: DAG 'until' runs only until end_date 2026-03-31T00:00:00+00:00; the range 2026-04-01 to "
            "2026-04-02 is entirely outside it, nothing was created\n");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM audit WHERE action = 'backfill'"), 0);

  // Partly outside: only the dates inside are created, and the output says what was left out.
  ProcResult clipped = Ctl({"backfill", "window", "--from", "2026-03-01", "--to", "2026-03-10"});
  ASSERT_EQ(clipped.exit_code, 0) << clipped.Describe();
  EXPECT_THAT(clipped.out,
              StartsWith("left out 2026-03-01T00:00:00+00:00 .. 2026-03-02T23:59:59+00:00: before start_date "
                         "2026-03-03T00:00:00+00:00\n"
                         "left out 2026-03-05T00:00:01+00:00 .. 2026-03-10T23:59:59+00:00: after end_date "
                         "2026-03-05T00:00:00+00:00\n"
                         "backfill window: 3 runs (3 created, 0 already existed)\n"));
  EXPECT_EQ(clipped.err, "");
  EXPECT_EQ(Q("SELECT trigger, logical_date FROM runs WHERE dag = 'window' ORDER BY logical_date"),
            Json::parse(R"([{"trigger": "backfill", "logical_date": 1772496000},
                            {"trigger": "backfill", "logical_date": 1772582400},
                            {"trigger": "backfill", "logical_date": 1772668800}])"));

  // The same range again, with --json: the clipping in the reply, the runs already there.
  OrderedJson again = CtlJson({"backfill", "window", "--from", "2026-03-01", "--to", "2026-03-10"});
  EXPECT_EQ(again["clipped"], OrderedJson::parse(R"({
      "from": "2026-03-03T00:00:00+00:00", "left_out": [
        {"from": "2026-03-01T00:00:00+00:00", "reason": "before start_date 2026-03-03T00:00:00+00:00",
         "to": "2026-03-02T23:59:59+00:00"},
        {"from": "2026-03-05T00:00:01+00:00", "reason": "after end_date 2026-03-05T00:00:00+00:00",
         "to": "2026-03-10T23:59:59+00:00"}],
      "to": "2026-03-05T00:00:00+00:00"})"));
  ASSERT_EQ(again["runs"].size(), 3u) << again.dump();
  std::vector<std::string> dates;
  for (const auto& r : again["runs"]) {
    EXPECT_EQ(r["created"], false);
    dates.push_back(r["logical_date"]);
  }
  EXPECT_EQ(dates, (std::vector<std::string>{"2026-03-03T00:00:00+00:00", "2026-03-04T00:00:00+00:00",
                                             "2026-03-05T00:00:00+00:00"}));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 3);
  // A range inside the dates has no clipping to report.
  OrderedJson inside = CtlJson({"backfill", "window", "--from", "2026-03-04", "--to", "2026-03-04"});
  EXPECT_FALSE(inside.contains("clipped")) << inside.dump();
  EXPECT_EQ(inside["runs"].size(), 1u);
}

TEST_F(DaemonTest, BackfillDryRunListsTheDatesItWouldCreateAndCreatesNothing) {
  ASSERT_TRUE(StartDaemon());
  // Across the start of summer time: the dates in the DAG's zone, each with its offset.
  SubmitDag("berlin.yaml", "dag: berlin\nschedule: \"0 6 * * *\"\ntimezone: Europe/Berlin\nstart_date: 2026-03-27\n"
                           "tasks:\n  - id: a\n    command: \"true\"\n");
  const std::string existing = Trigger("berlin", {"--date", "2026-03-29T06:00", "--wait"});
  ASSERT_FALSE(existing.empty());
  const std::string fingerprint = DbFingerprint();

  ProcResult dry = Ctl({"backfill", "berlin", "--from", "2026-03-25", "--to", "2026-03-30", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
  EXPECT_EQ(dry.out,
            "left out 2026-03-25T00:00:00+01:00 .. 2026-03-26T23:59:59+01:00: before start_date "
            "2026-03-27T00:00:00+01:00\n"
            "2026-03-27T06:00:00+01:00\n"
            "2026-03-28T06:00:00+01:00\n"
            "2026-03-29T06:00:00+02:00  exists: run " + existing + " (success)\n"
            "2026-03-30T06:00:00+02:00\n"
            "dry run: backfill berlin would cover 4 runs (1 already exists); nothing was created\n");
  EXPECT_EQ(dry.err, "");

  OrderedJson reply = CtlJson({"backfill", "berlin", "--from", "2026-03-28", "--to", "2026-03-29", "--dry-run"});
  EXPECT_EQ(reply, OrderedJson::parse(R"({"dag": "berlin", "dry_run": true, "runs": [
      {"exists": false, "logical_date": "2026-03-28T06:00:00+01:00", "run_id": null, "state": null},
      {"exists": true, "logical_date": "2026-03-29T06:00:00+02:00", "run_id": ")" + existing +
                                      R"(", "state": "success"}]})"));

  // Nothing was written: no run, no audit entry.
  EXPECT_EQ(DbFingerprint(), fingerprint);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM audit WHERE action = 'backfill'"), 0);
  OrderedJson runs = CtlJson({"runs", "berlin"});
  ASSERT_EQ(runs.size(), 1u) << runs.dump();
  EXPECT_EQ(runs[0]["run_id"], existing);

  // --dry-run and --wait do not go together (a usage error).
  ProcResult both = Ctl({"backfill", "berlin", "--from", "2026-03-28", "--to", "2026-03-29", "--dry-run", "--wait"});
  EXPECT_EQ(both.exit_code, 2) << both.Describe();
  EXPECT_EQ(DbFingerprint(), fingerprint);
}

TEST_F(DaemonTest, BackfillOfMoreThan100RunsNeedsYes) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("big.yaml", DailyDag("big", "max_active_runs: 16\n"));
  const std::string fingerprint = DbFingerprint();

  // 2025-01-01 .. 2025-04-11: 101 days.
  ProcResult refused = Ctl({"backfill", "big", "--from", "2025-01-01", "--to", "2025-04-11"});
  EXPECT_EQ(refused.exit_code, 1) << refused.Describe();
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(refused.err,
            "batchctl: the range covers 101 runs, more than 100: pass --yes (\"yes\": true) to create them, or "
            "narrow the range\n");
  EXPECT_EQ(DbFingerprint(), fingerprint);

  // A dry run needs no confirmation: it creates nothing.
  ProcResult dry = Ctl({"backfill", "big", "--from", "2025-01-01", "--to", "2025-04-11", "--dry-run"});
  EXPECT_EQ(dry.exit_code, 0) << dry.Describe();
  EXPECT_THAT(dry.out, StartsWith("2025-01-01T00:00:00+00:00\n2025-01-02T00:00:00+00:00\n"));
  EXPECT_THAT(dry.out, HasSubstr("\n2025-04-11T00:00:00+00:00\n"
                                 "dry run: backfill big would cover 101 runs (0 already exist); nothing was created\n"));
  EXPECT_EQ(DbFingerprint(), fingerprint);

  // Exactly 100 is allowed as is.
  ProcResult hundred = Ctl({"--json", "backfill", "big", "--from", "2025-01-01", "--to", "2025-04-10"});
  ASSERT_EQ(hundred.exit_code, 0) << hundred.Describe();
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE dag = 'big' AND trigger = 'backfill'"), 100);

  // --yes confirms: the 100 already there are returned, one is created.
  ProcResult yes = Ctl({"backfill", "big", "--from", "2025-01-01", "--to", "2025-04-11", "--yes"});
  ASSERT_EQ(yes.exit_code, 0) << yes.Describe();
  EXPECT_THAT(yes.out, StartsWith("backfill big: 101 runs (1 created, 100 already existed)\n"));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE dag = 'big' AND trigger = 'backfill'"), 101);
  EXPECT_EQ(V("SELECT detail FROM audit WHERE action = 'backfill' ORDER BY id DESC LIMIT 1"),
            R"({"clipped":false,"from":"2025-01-01","runs":101,"to":"2025-04-11"})");

  // Beyond the hard cap even --yes is refused.
  ProcResult cap = Ctl({"backfill", "big", "--from", "2000-01-01", "--to", "2099-12-31", "--yes"});
  EXPECT_EQ(cap.exit_code, 1) << cap.Describe();
  EXPECT_EQ(cap.err, "batchctl: the range covers more than 10000 runs; split it\n");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE dag = 'big'"), 101);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM audit WHERE action = 'backfill'"), 2);
}

TEST_F(DaemonTest, BackfilledRunsQueueBehindMaxActiveRunsOldestFirst) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("q.yaml", DailyDag("q", "max_active_runs: 2\n"));
  ProcResult backfill = Ctl({"backfill", "q", "--from", "2026-03-01", "--to", "2026-03-06", "--wait"});
  ASSERT_EQ(backfill.exit_code, 0) << backfill.Describe() << DaemonLog();
  EXPECT_THAT(backfill.out, StartsWith("backfill q: 6 runs (6 created, 0 already existed)\n"));
  EXPECT_THAT(backfill.out, HasSubstr("all runs succeeded\n"));

  Json runs = Q("SELECT state, logical_date, started_at, ended_at FROM runs WHERE dag = 'q' ORDER BY logical_date");
  ASSERT_EQ(runs.size(), 6u) << runs.dump();
  for (const auto& r : runs) {
    EXPECT_EQ(r["state"], "success") << runs.dump();
    ASSERT_TRUE(r["started_at"].is_number() && r["ended_at"].is_number()) << runs.dump();
  }
  // Oldest first, two at a time: the i-th run (from 0) starts only once all but one of the
  // runs before it have ended, and no run starts before an older one.
  for (size_t i = 0; i < runs.size(); ++i) {
    const int64_t start = runs[i]["started_at"];
    size_t ended_before = 0;
    for (size_t j = 0; j < i; ++j) {
      EXPECT_LE(runs[j]["started_at"].get<int64_t>(), start) << "run " << j << " after run " << i << ": " << runs.dump();
      if (runs[j]["ended_at"].get<int64_t>() <= start) ++ended_before;
    }
    EXPECT_GE(ended_before + 1, i) << "run " << i << " started with more than 2 active: " << runs.dump();
  }
}

}  // namespace
}  // namespace batchd::e2e
