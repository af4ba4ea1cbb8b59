// SLOs from the DAG file's `slo:` block, tried on the real daemon: a duration miss is
// counted once while the run still runs, a freshness miss once per breach; both are
// stored (a restart neither loses nor repeats them), logged, and shown by `batchctl dags`.

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using ::testing::HasSubstr;

// Polls `probe` until it returns true or `timeout` passes.
template <typename Probe>
bool WaitFor(Probe probe, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout * kSlowdown;
  while (std::chrono::steady_clock::now() < deadline) {
    if (probe()) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return probe();
}

TEST_F(DaemonTest, DurationSloMissIsCountedOnceWhileTheRunStillRuns) {
  ASSERT_TRUE(StartDaemon());
  // The task runs until the test lets it end, however slow the machine.
  SubmitDag("slow.yaml", R"(dag: slow
slo: {max_duration: 1s}
tasks:
  - id: nap
    command: while [ ! -e @TMP@/go ]; do sleep 0.05; done
)");
  const std::string run = Trigger("slow", {"--date", "2026-03-01"});
  ASSERT_FALSE(run.empty());
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT COUNT(*) FROM slo_misses") == 1; }, seconds(10))) << DaemonLog();
  EXPECT_EQ(RunState(run), "running") << "counted while the run still runs, not when it ends";
  EXPECT_EQ(V("SELECT kind || ' ' || subject FROM slo_misses"), "duration " + run);
  EXPECT_THAT(V("SELECT detail FROM slo_misses"),
              ::testing::MatchesRegex("run " + run + " has been running for [0-9.]+s, longer than slo.max_duration 1s"));
  OrderedJson dags = CtlJson({"dags"});
  ASSERT_EQ(dags.size(), 1u);
  EXPECT_EQ(dags[0]["slo"]["state"], "late");
  EXPECT_EQ(dags[0]["slo"]["runs_over_duration"], 1);
  EXPECT_EQ(dags[0]["slo"]["max_duration"], "1s");
  EXPECT_EQ(dags[0]["slo"]["misses"], OrderedJson({{"duration", 1}, {"freshness", 0}}));
  ProcResult table = Ctl({"dags"});
  EXPECT_THAT(table.out, HasSubstr("late (misses: 1 duration)")) << table.out;
  EXPECT_THAT(DaemonLog(), HasSubstr("DAG slow: duration SLO missed: run " + run));

  std::ofstream(tmp() / "go").put('\n');
  ASSERT_TRUE(WaitRunState(run, "success"));
  KillDaemon();
  ASSERT_TRUE(StartDaemon());
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM slo_misses"), 1) << "once per run, across a kill -9";
  dags = CtlJson({"dags"});
  EXPECT_EQ(dags[0]["slo"]["state"], "ok");
  EXPECT_EQ(dags[0]["slo"]["misses"]["duration"], 1);
  OrderedJson show = CtlJson({"show", "slow"});
  ASSERT_EQ(show["slo"]["recent_misses"].size(), 1u) << show.dump();
  EXPECT_EQ(show["slo"]["recent_misses"][0]["kind"], "duration");
}

TEST_F(DaemonTest, FreshnessSloMissIsCountedOncePerBreach) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("fresh.yaml", R"(dag: fresh
slo: {freshness: 2s}
tasks:
  - id: a
    command: "true"
)");
  ASSERT_EQ(Ctl({"trigger", "fresh", "--date", "2026-03-01", "--wait"}).exit_code, 0);
  const std::string first = V("SELECT CAST(ended_at AS TEXT) FROM runs WHERE dag = 'fresh'");
  const std::string breach_one = "SELECT COUNT(*) FROM slo_misses WHERE kind = 'freshness' AND subject = '" + first + "'";
  ASSERT_TRUE(WaitFor([&] { return Count(breach_one) == 1; }, seconds(10))) << DaemonLog();
  OrderedJson dags = CtlJson({"dags"});
  EXPECT_EQ(dags[0]["slo"]["state"], "stale");
  EXPECT_EQ(dags[0]["slo"]["freshness"], "2s");
  EXPECT_GE(dags[0]["slo"]["freshness_age_seconds"].get<int>(), 2);
  EXPECT_FALSE(dags[0]["last_success"].is_null());
  EXPECT_THAT(DaemonLog(), HasSubstr("DAG fresh: freshness SLO missed: the last success is "));
  // Still stale a while later: the same breach, not a new miss.
  std::this_thread::sleep_for(milliseconds(2500));
  EXPECT_EQ(Count(breach_one), 1);

  // A new success ends the breach; when it too grows old, that is a second miss.
  ASSERT_EQ(Ctl({"trigger", "fresh", "--date", "2026-03-02", "--wait"}).exit_code, 0);
  EXPECT_EQ(CtlJson({"dags"})[0]["slo"]["state"], "ok");
  const std::string second =
      V("SELECT CAST(MAX(ended_at) AS TEXT) FROM runs WHERE dag = 'fresh' AND state = 'success'");
  const std::string breach_two = "SELECT COUNT(*) FROM slo_misses WHERE kind = 'freshness' AND subject = '" + second + "'";
  ASSERT_TRUE(WaitFor([&] { return Count(breach_two) == 1; }, seconds(10))) << DaemonLog();
  const long misses = Count("SELECT COUNT(*) FROM slo_misses");

  // A restart in the middle of a breach does not count it again.
  StopDaemon();
  ASSERT_TRUE(StartDaemon());
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM slo_misses"), misses);
  EXPECT_EQ(CtlJson({"dags"})[0]["slo"]["misses"]["freshness"], misses);
}

}  // namespace
}  // namespace batchd::e2e
