// The benchmark scripts at smoke sizes: they must keep working (bench/README.md), and the
// figures they write must say what the full-size runs rely on (no log file for a silent
// attempt; every run of the backfill drained). Not a timing test: no figure's value is
// judged.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "e2e_util.h"

namespace batchd::e2e {
namespace {

using ::testing::HasSubstr;

std::string Source(const std::string& rel) { return std::string(BATCHD_SOURCE_DIR) + "/" + rel; }

TEST(BenchSmokeTest, ScaleScriptWritesEveryFigure) {
  TempDir tmp;
  const std::string csv = tmp / "scale.csv";
  ProcResult r = RunProcess({"/bin/bash", Source("bench/scale.sh"), "-s", "-o", csv, "-w", "2"}, milliseconds(240000),
                            {std::string("BATCHD=") + BATCHD_BIN, std::string("BATCHCTL=") + BATCHCTL_BIN,
                             "TMPDIR=" + tmp.path()});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::istringstream in(ReadFile(csv).value_or(""));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "workload,size,metric,value,unit");
  std::map<std::string, std::string> figures;  // "workload/metric" -> value
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::istringstream fields(line);
    for (std::string cell; std::getline(fields, cell, ',');) cells.push_back(cell);
    ASSERT_EQ(cells.size(), 5u) << line;
    figures[cells[0] + "/" + cells[2]] = cells[3];
  }
  for (const char* key : {"fanin/wall", "fanin/peak_rss", "startup/one_task_run_clean_store",
                          "startup/one_task_run_after_kill", "backfill/creation", "backfill/drain",
                          "backfill/ms_per_run_last_tenth", "daemon_run/status_median", "daemon_run/daemon_peak_rss",
                          "startup_daemon/after_kill_to_healthy", "many_dags/start_to_healthy", "many_dags/cpu_idle",
                          "many_dags/daemon_peak_rss"})
    EXPECT_TRUE(figures.count(key)) << key << "\n" << r.out;
  EXPECT_EQ(figures["fanin/log_files_left"], "0") << "silent attempts leave no file";
  EXPECT_EQ(figures["daemon_run/log_files_left"], "0");
  EXPECT_THAT(r.out, HasSubstr("wrote " + csv));
}

}  // namespace
}  // namespace batchd::e2e
