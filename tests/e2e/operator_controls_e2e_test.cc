// End-to-end tests of the operator controls: pools (refused when the daemon does not define
// them, `batchctl pools`), `pause --all` / `unpause --all`, unknown batchctl commands, and
// the logical date of `after_dag` runs. The real daemon, driven through the real batchctl.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A DAG whose first task names `pool` (line 7, column 11) and whose defaults name
// `default_pool` (line 3, column 9), which the second task inherits.
std::string PooledDag(const std::string& name, const std::string& pool, const std::string& default_pool) {
  return "dag: " + name + "\n" +
         "defaults:\n"
         "  pool: " + default_pool + "\n"
         "tasks:\n"
         "  - id: a\n"
         "    command: \"true\"\n"
         "    pool: " + pool + "\n"
         "  - id: b\n"
         "    command: \"true\"\n";
}

TEST_F(DaemonTest, AnUndefinedPoolIsRefusedAtSubmitAndInTheDagsDirectoryWithItsPosition) {
  // A file already in the DAGs directory at start is skipped like a broken one.
  WriteDag("early.yaml", PooledDag("early", "inference", "warehouse"), /*in_dags_dir=*/true);
  DaemonOptions options;
  options.config_yaml = "pools:\n  warehouse: 2\n  gpu: 1\n";
  ASSERT_TRUE(StartDaemon(options));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dags"), 0);
  EXPECT_THAT(DaemonLog(), HasSubstr(dags_ + "/early.yaml:7:11: pool 'inference' is not defined in the daemon "
                                             "config (pools: gpu, warehouse)"));

  // submit: the daemon refuses it; nothing is stored.
  const std::string file = WriteDag("infer.yaml", PooledDag("infer", "inference", "warehouse"));
  ProcResult submit = Ctl({"submit", file});
  EXPECT_EQ(submit.exit_code, 1) << submit.Describe();
  EXPECT_EQ(submit.out, "");
  // The API's message, then each of its details (here the same single error).
  const std::string error = file + ":7:11: pool 'inference' is not defined in the daemon config (pools: gpu, warehouse)";
  EXPECT_EQ(submit.err, "batchctl: " + error + "\n" + error + "\n");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dags"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dag_versions"), 0);

  // Both pools undefined: both positions, in file order; --json has the details.
  const std::string both = WriteDag("both.yaml", PooledDag("both", "inference", "nightly"));
  OrderedJson refused = CtlJson({"submit", both}, 1);
  EXPECT_EQ(refused["error"]["code"], "invalid_dag");
  EXPECT_EQ(refused["error"]["message"], both + ":3:9: pool 'nightly' is not defined in the daemon config (pools: "
                                                "gpu, warehouse) (and 1 more)");
  ASSERT_EQ(refused["error"]["details"].size(), 2u) << refused.dump();
  EXPECT_EQ(refused["error"]["details"][1],
            OrderedJson({{"column", 11},
                         {"file", both},
                         {"line", 7},
                         {"message", "pool 'inference' is not defined in the daemon config (pools: gpu, warehouse)"}}));

  // Defined pools: accepted.
  SubmitDag("ok.yaml", PooledDag("ok", "gpu", "warehouse"));
  EXPECT_EQ(V("SELECT name FROM dags"), "ok");

  // reload: the directory's files are reported with their positions and skipped (exit 1).
  WriteDag("infer.yaml", PooledDag("infer_file", "inference", "warehouse"), /*in_dags_dir=*/true);
  ProcResult reload = Ctl({"reload"});
  EXPECT_EQ(reload.exit_code, 1) << reload.Describe();
  EXPECT_EQ(reload.out, "loaded: -\nunchanged: -\n");
  EXPECT_EQ(reload.err, dags_ + "/early.yaml:7:11: pool 'inference' is not defined in the daemon config (pools: "
                                "gpu, warehouse)\n" +
                            dags_ + "/infer.yaml:7:11: pool 'inference' is not defined in the daemon config (pools: "
                                    "gpu, warehouse)\n"
                                    "batchctl: 2 errors in the DAGs directory; those files were skipped\n");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dags"), 1);
}

TEST_F(DaemonTest, ConfigReloadKeepsARemovedPoolWhileADagStillNamesIt) {
  DaemonOptions options;
  options.config_yaml = "pools:\n  warehouse: 2\n  gpu: 1\n";
  ASSERT_TRUE(StartDaemon(options));
  WriteDag("uses_gpu.yaml", PooledDag("uses_gpu", "gpu", "warehouse"), /*in_dags_dir=*/true);
  ProcResult reload = Ctl({"reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.Describe();

  // gpu leaves the config while uses_gpu names it: it keeps its slot.
  WriteFile(config_path_, "pools:\n  warehouse: 3\n");
  SignalDaemon(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return DaemonLog().find("pool 'gpu' was removed") != std::string::npos; },
                      milliseconds(10000)))
      << DaemonLog();
  EXPECT_THAT(DaemonLog(), HasSubstr("pool 'gpu' was removed from the daemon config but DAG(s) uses_gpu still name "
                                     "it; it keeps its 1 slot(s) until no DAG names it (change those DAGs, then "
                                     "reload)"));
  ProcResult pools = Ctl({"pools"});
  EXPECT_EQ(pools.exit_code, 0) << pools.Describe();
  EXPECT_EQ(pools.out,
            "POOL       SLOTS  USED  QUEUED\n"
            "gpu        1      0     0\n"
            "warehouse  3      0     0\n");
  // The DAG's file, still naming gpu, is now refused (the DAG stays at its loaded version).
  ProcResult again = Ctl({"reload"});
  EXPECT_EQ(again.exit_code, 1) << again.Describe();
  EXPECT_EQ(again.err, dags_ + "/uses_gpu.yaml:7:11: pool 'gpu' is not defined in the daemon config (pools: "
                               "warehouse)\nbatchctl: 1 error in the DAGs directory; those files were skipped\n");
  EXPECT_EQ(V("SELECT name FROM dags WHERE deleted = 0"), "uses_gpu");

  // Once the file no longer names it, the next rescan drops it.
  WriteDag("uses_gpu.yaml", PooledDag("uses_gpu", "warehouse", "warehouse"), /*in_dags_dir=*/true);
  ProcResult fixed = Ctl({"reload"});
  EXPECT_EQ(fixed.exit_code, 0) << fixed.Describe();
  EXPECT_EQ(CtlJson({"pools"}), OrderedJson::parse(R"([{"pool": "warehouse", "slots": 3, "used": 0, "queued": 0}])"));
}

TEST_F(DaemonTest, PoolsShowsSlotsInUseAndInstancesWaiting) {
  DaemonOptions options;
  options.config_yaml = "pools:\n  warehouse: 1\n  gpu: 2\n";
  ASSERT_TRUE(StartDaemon(options));
  SubmitDag("p.yaml", "dag: p\ntasks:\n  - id: load\n    pool: warehouse\n    partitions: {values: [a, b, c]}\n"
                      "    command: \"while [ ! -e @TMP@/go ]; do sleep 0.05; done\"\n");
  const std::string run_id = Trigger("p");
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT COUNT(*) FROM attempts WHERE outcome = 'running'") == 1; },
                      milliseconds(10000)));
  ProcResult pools = Ctl({"pools"});
  EXPECT_EQ(pools.exit_code, 0) << pools.Describe();
  EXPECT_EQ(pools.out,
            "POOL       SLOTS  USED  QUEUED\n"
            "gpu        2      0     0\n"
            "warehouse  1      1     2\n");
  OrderedJson json = CtlJson({"pools"});
  ASSERT_EQ(json.size(), 2u) << json.dump();
  EXPECT_EQ(json[1], OrderedJson::parse(R"({"pool": "warehouse", "slots": 1, "used": 1, "queued": 2})"));
  WriteFile(tmp_ / "go", "");
  EXPECT_TRUE(WaitRunState(run_id, "success"));
  EXPECT_EQ(Ctl({"pools"}).out,
            "POOL       SLOTS  USED  QUEUED\n"
            "gpu        2      0     0\n"
            "warehouse  1      0     0\n");
}

TEST_F(DaemonTest, PoolsWithoutAnySaysSo) {
  DaemonOptions options;
  options.config_yaml = "log_level: info\n";
  ASSERT_TRUE(StartDaemon(options));
  ProcResult pools = Ctl({"pools"});
  EXPECT_EQ(pools.exit_code, 0) << pools.Describe();
  EXPECT_EQ(pools.out, "");
  EXPECT_EQ(pools.err, "no pools (the daemon config's pools: defines them)\n");
  EXPECT_EQ(CtlJson({"pools"}), OrderedJson::array());
}

TEST_F(DaemonTest, EveryExampleDagLoadsWithTheEmbeddedDefaultAndWithTheExampleConfig) {
  for (const auto& e : fs::directory_iterator(std::string(BATCHD_SOURCE_DIR) + "/dags"))
    fs::copy_file(e.path(), fs::path(dags_) / e.path().filename());
  const std::vector<std::string> expected = {"backup", "ml_batch_inference", "nightly_billing"};
  auto names = [&] {
    std::vector<std::string> out;
    for (const auto& d : CtlJson({"dags"})) out.push_back(d["dag"]);
    return out;
  };

  ASSERT_TRUE(StartDaemon());  // no --config: the embedded default
  EXPECT_EQ(names(), expected) << DaemonLog();
  EXPECT_EQ(Ctl({"pools"}).out,
            "POOL       SLOTS  USED  QUEUED\n"
            "gpu        1      0     0\n"
            "inference  4      0     0\n"
            "warehouse  4      0     0\n");
  StopDaemon();

  // config/batchd.yaml as shipped (the fixture's flags override its paths and listeners).
  DaemonOptions options;
  options.config_yaml = ReadFile(std::string(BATCHD_SOURCE_DIR) + "/config/batchd.yaml").value_or("");
  ASSERT_FALSE(options.config_yaml.empty());
  ASSERT_TRUE(StartDaemon(options));
  EXPECT_EQ(names(), expected);
  ProcResult reload = Ctl({"reload"});
  EXPECT_EQ(reload.exit_code, 0) << reload.Describe();
  EXPECT_EQ(reload.out, "loaded: -\nunchanged: backup, ml_batch_inference, nightly_billing\n");
  EXPECT_EQ(reload.err, "");
}

TEST_F(DaemonTest, BatchdRunWarnsThatPoolsHaveNoLimitWithoutTheDaemon) {
  const std::string dag = WriteDag("solo.yaml", PooledDag("solo", "inference", "warehouse"));
  ProcResult run = RunProcess({BATCHD_BIN, "run", dag, "--data-dir", tmp_ / "solo-data", "--date", "2026-03-01"});
  EXPECT_EQ(run.exit_code, 0) << run.Describe();
  EXPECT_THAT(run.err, HasSubstr("batchd run: pool 'inference' has no slot limit here (pools are limits of the "
                                 "daemon config); its tasks are limited only by --workers\n"
                                 "batchd run: pool 'warehouse' has no slot limit here (pools are limits of the "
                                 "daemon config); its tasks are limited only by --workers\n"));
}

// --- pause --all / unpause --all ----------------------------------------------------------

TEST_F(DaemonTest, PauseAllStopsEverySchedulePrintsWhatChangedAndLetsRunsFinish) {
  for (const char* name : {"sa", "sb"})
    WriteDag(std::string(name) + ".yaml",
             std::string("dag: ") + name + "\nschedule: \"* * * * *\"\ntasks:\n  - id: a\n    command: \"true\"\n",
             /*in_dags_dir=*/true);
  WriteDag("slow.yaml",
           "dag: slow\ntasks:\n  - id: a\n    command: \"echo $$ > @TMP@/slow.pid; "
           "while [ ! -e @TMP@/go ]; do sleep 0.05; done; echo done > @TMP@/slow.out\"\n",
           /*in_dags_dir=*/true);
  int64_t boundary = 0;
  DaemonOptions options;
  options.clock_offset = OffsetBeforeMinute(10, &boundary);
  options.config_yaml = "scheduler_tick: 500ms\n";
  ASSERT_TRUE(StartDaemon(options));
  const std::string run_id = Trigger("slow");
  ASSERT_NE(WaitRunningAttempt(run_id, "a", tmp_ / "slow.pid"), 0);

  EXPECT_EQ(Ctl({"pause", "sb"}).out, "paused sb\n");
  ProcResult pause = Ctl({"pause", "--all"});
  ASSERT_EQ(pause.exit_code, 0) << pause.Describe();
  EXPECT_EQ(pause.out, "paused 2 DAGs\n");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dags WHERE paused = 1"), 3);
  ASSERT_LT(RealNow() + *options.clock_offset, static_cast<double>(boundary)) << "too slow: the minute passed";
  ProcResult again = Ctl({"pause", "--all"});
  EXPECT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_EQ(again.out, "paused 0 DAGs (none was unpaused)\n");

  // The minute boundary passes: no schedule fires; the run in progress finishes.
  WriteFile(tmp_ / "go", "");
  EXPECT_TRUE(WaitRunState(run_id, "success"));
  EXPECT_EQ(ReadFile(tmp_ / "slow.out").value_or(""), "done\n");
  ASSERT_TRUE(WaitFor([&] { return RealNow() + *options.clock_offset > static_cast<double>(boundary) + 1.5; },
                      milliseconds(15000)));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE trigger = 'schedule'"), 0) << "a paused DAG fired";

  // Usage errors change nothing.
  ProcResult both = Ctl({"pause", "sa", "--all"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_EQ(both.out, "");
  EXPECT_EQ(both.err, "batchctl: pause takes a DAG or --all, not both\n");
  ProcResult neither = Ctl({"unpause"});
  EXPECT_EQ(neither.exit_code, 2);
  EXPECT_EQ(neither.err, "batchctl: unpause needs a DAG name, or --all for every DAG\n");

  // unpause --all: every DAG, also the one paused before; schedules resume.
  OrderedJson unpaused = CtlJson({"unpause", "--all"});
  EXPECT_EQ(unpaused, OrderedJson::parse(R"({"changed": ["sa", "sb", "slow"], "paused": false})"));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM dags WHERE paused = 1"), 0);
  EXPECT_TRUE(WaitFor([&] { return Count("SELECT COUNT(*) FROM runs WHERE trigger = 'schedule'") == 2; },
                      milliseconds(10000)))
      << DaemonLog();
  EXPECT_EQ(Ctl({"unpause", "--all"}).out, "unpaused 0 DAGs (none was paused)\n");

  // One audit row per --all, naming the DAGs it changed.
  Json audit = Q("SELECT action, target, detail FROM audit WHERE action LIKE '%pause%' ORDER BY id");
  ASSERT_EQ(audit.size(), 5u) << audit.dump();
  EXPECT_EQ(audit[0]["action"], "pause");
  EXPECT_EQ(audit[1]["action"], "pause_all");
  EXPECT_EQ(audit[1]["target"], "");
  EXPECT_EQ(audit[1]["detail"], R"({"dags":["sa","slow"]})");
  EXPECT_EQ(audit[2]["detail"], R"({"dags":[]})");
  EXPECT_EQ(audit[3]["action"], "unpause_all");
  EXPECT_EQ(audit[3]["detail"], R"({"dags":["sa","sb","slow"]})");
}

// --- unknown commands -----------------------------------------------------------------------

TEST_F(DaemonTest, AnUnknownCommandIsNamedWithTheNearestOne) {
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  const std::vector<Case> cases = {
      {{"stauts", "abc"}, "batchctl: unknown command 'stauts'; did you mean 'status'?\n"},
      {{"--json", "pasue", "x"}, "batchctl: unknown command 'pasue'; did you mean 'pause'?\n"},
      {{"pool"}, "batchctl: unknown command 'pool'; did you mean 'pools'?\n"},
      {{"frobnicate"}, "batchctl: unknown command 'frobnicate'; batchctl --help lists the commands\n"},
  };
  for (const auto& c : cases) {
    ProcResult r = Ctl(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.Describe();
    EXPECT_EQ(r.out, "") << c.args[0];
    EXPECT_EQ(r.err, c.err);
  }
  // A known command still parses as before (no daemon: exit 3).
  ProcResult health = Ctl({"health"});
  EXPECT_EQ(health.exit_code, 3) << health.Describe();
}

// --- after_dag ------------------------------------------------------------------------------

TEST_F(DaemonTest, AnAfterDagRunTakesTheUpstreamRunsLogicalDateAndInterval) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("up.yaml", "dag: up\nschedule: \"0 0 * * *\"\ntasks:\n  - id: a\n    command: \"true\"\n");
  SubmitDag("down.yaml",
            "dag: down\ntimezone: Europe/Berlin\ntriggers:\n  - after_dag: up\ntasks:\n  - id: a\n"
            "    command: \"echo {{ logical_date }} {{ data_interval_start }} {{ data_interval_end }} > "
            "@TMP@/down.out\"\n");
  ProcResult backfill = Ctl({"backfill", "up", "--from", "2026-03-01", "--to", "2026-03-01", "--wait"});
  ASSERT_EQ(backfill.exit_code, 0) << backfill.Describe();
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT COUNT(*) FROM runs WHERE dag = 'down' AND state = 'success'") == 1; },
                      milliseconds(15000)))
      << DaemonLog();
  // The upstream run: 2026-03-01T00:00Z, interval [2026-02-28T00:00Z, 2026-03-01T00:00Z),
  // shown in the downstream DAG's zone.
  EXPECT_EQ(ReadFile(tmp_ / "down.out").value_or(""),
            "2026-03-01T01:00:00+01:00 2026-02-28T01:00:00+01:00 2026-03-01T01:00:00+01:00\n");
  OrderedJson runs = CtlJson({"runs", "down"});
  ASSERT_EQ(runs.size(), 1u) << runs.dump();
  EXPECT_EQ(runs[0]["trigger"], "dag");
  EXPECT_EQ(runs[0]["logical_date"], "2026-03-01T01:00:00+01:00");
}

}  // namespace
}  // namespace batchd::e2e
