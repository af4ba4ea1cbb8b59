// The benchmark suite (bench/all.sh) at smoke sizes: it must keep working (bench/README.md), and the
// figures they write must say what the full-size runs rely on (no log file for a silent
// attempt; every run of the backfill drained). Not a timing test: no figure's value is
// judged.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "e2e_util.h"

namespace batchd::e2e {
namespace {

using ::testing::HasSubstr;

std::string Source(const std::string& rel) { return std::string(BATCHD_SOURCE_DIR) + "/" + rel; }

// CSV file -> its rows, each split at commas; the header row first.
std::vector<std::vector<std::string>> ReadCsv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(ReadFile(path).value_or(""));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::istringstream fields(line);
    for (std::string cell; std::getline(fields, cell, ',');) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

TEST(BenchSmokeTest, WholeSuiteWritesEveryFigureAndPlot) {
  TempDir tmp;
  const std::string results = tmp / "results";
  ProcResult r = RunProcess({"/bin/bash", Source("bench/all.sh"), "-s", "-o", results}, milliseconds(300000),
                            {std::string("BATCHD=") + BATCHD_BIN, std::string("BATCHCTL=") + BATCHCTL_BIN,
                             "TMPDIR=" + tmp.path()});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();

  // scale.sh: one row per figure.
  auto scale = ReadCsv(results + "/scale.csv");
  ASSERT_FALSE(scale.empty()) << r.out;
  EXPECT_EQ(scale[0], (std::vector<std::string>{"workload", "size", "metric", "value", "unit"}));
  std::map<std::string, std::string> figures;  // "workload/metric" -> value
  for (size_t i = 1; i < scale.size(); ++i) {
    ASSERT_EQ(scale[i].size(), 5u) << ::testing::PrintToString(scale[i]);
    figures[scale[i][0] + "/" + scale[i][2]] = scale[i][3];
  }
  for (const char* key : {"fanin/wall", "fanin/peak_rss", "startup/one_task_run_clean_store",
                          "startup/one_task_run_after_kill", "backfill/creation", "backfill/drain",
                          "backfill/ms_per_run_last_tenth", "daemon_run/status_median", "daemon_run/trigger_median", "daemon_run/daemon_peak_rss",
                          "startup_daemon/after_kill_to_healthy", "many_dags/start_to_healthy", "many_dags/cpu_idle",
                          "many_dags/daemon_peak_rss"})
    EXPECT_TRUE(figures.count(key)) << key << "\n" << r.out;
  EXPECT_EQ(figures["fanin/log_files_left"], "0") << "silent attempts leave no file";
  EXPECT_EQ(figures["daemon_run/log_files_left"], "0");

  // compare.sh: each case, size and job count for the three tools, in that order.
  auto compare = ReadCsv(results + "/compare.csv");
  ASSERT_EQ(compare.size(), 1u + 3 * 3) << r.out;  // fan-outs of 50 and 200, a chain of 20; -j2
  EXPECT_EQ(compare[0], (std::vector<std::string>{"case", "size", "jobs", "tool", "best_wall_s", "median_wall_s",
                                                   "best_cpu_s"}));
  EXPECT_EQ(compare[1][0] + " " + compare[1][1] + " " + compare[1][2] + " " + compare[1][3], "fanout 50 2 batchd");
  EXPECT_EQ(compare[6][0] + " " + compare[6][1] + " " + compare[6][3], "fanout 200 ninja");
  EXPECT_EQ(compare[7][0] + " " + compare[7][1] + " " + compare[7][3], "chain 20 batchd");

  // hops.sh: 19 hops of a chain of 20 for each tool and the floor, all positive.
  auto hops = ReadCsv(results + "/hops.csv");
  ASSERT_EQ(hops.size(), 1u + 4 * 19) << r.out;
  std::map<std::string, int> hops_per_tool;
  for (size_t i = 1; i < hops.size(); ++i) {
    ++hops_per_tool[hops[i][0]];
    EXPECT_GT(std::stod(hops[i][2]), 0.0) << ::testing::PrintToString(hops[i]);
  }
  EXPECT_EQ(hops_per_tool, (std::map<std::string, int>{{"batchd", 19}, {"floor", 19}, {"make", 19}, {"ninja", 19}}));

  // plot.py: the three plots, as PNG files.
  for (const char* image : {"tasks_per_second.png", "hop_latency.png", "rss.png"}) {
    std::string png = ReadFile(results + "/" + image).value_or("");
    EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << image << "\n" << r.out;
    EXPECT_THAT(r.out, HasSubstr("wrote " + results + "/" + image));
  }
}

}  // namespace
}  // namespace batchd::e2e
