// Load: sixteen batchctl clients at once, for twenty seconds, against a daemon that runs what
// they trigger -- `trigger` with dates of their own, `status RUN --json`, `runs`, `logs RUN
// TASK --follow` on running attempts, `health`. Every request must succeed (exit 0, the
// output it promises), every acknowledged trigger's run must finish in success, and the
// daemon's resident memory must stay flat once warmed up.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using std::chrono::steady_clock;

// `work` has four short partitions; `sum` prints five lines 100 ms apart, so that a run spends
// half a second with an attempt whose log grows -- what `logs --follow` is for.
constexpr char kLoadDag[] = R"(dag: load
max_active_runs: 8
tasks:
  - id: work
    partitions: {range: [0, 4]}
    command: echo "partition $BATCHD_PARTITION"; sleep 0.0$((BATCHD_PARTITION % 3))
  - id: sum
    depends_on: [work]
    command: for i in 1 2 3 4 5; do echo "line $i"; sleep 0.1; done
)";

constexpr char kSumLog[] = "line 1\nline 2\nline 3\nline 4\nline 5\n";

// VmRSS of a process in bytes (0 when unknown).
long RssBytes(pid_t pid) {
  auto status = ReadFile("/proc/" + std::to_string(pid) + "/status").value_or("");
  auto pos = status.find("VmRSS:");
  if (pos == std::string::npos) return 0;
  return std::strtol(status.c_str() + pos + 6, nullptr, 10) * 1024;
}

TEST_F(DaemonTest, SixteenConcurrentClientsForTwentySecondsAllSucceedLoseNothingAndMemoryStaysFlat) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("load.yaml", kLoadDag);

  enum class Kind { kTrigger, kStatus, kRuns, kFollow, kHealth };
  struct Slot {
    std::unique_ptr<Process> process;
    Kind kind = Kind::kHealth;
    std::string what;
    steady_clock::time_point started;
  };
  constexpr int kClients = 16;
  std::vector<Slot> slots(kClients);
  std::mt19937 rng(12345);
  std::vector<std::string> acknowledged;  // run ids, in trigger order
  std::map<Kind, int> done;
  int day = 0, failures = 0;
  long rss_warm = 0, rss_peak = 0;
  // Triggers are paced (one per 200 ms at most) so the runs can keep up: the point is
  // the request load, not an ever-growing queue of runs.
  auto next_trigger = steady_clock::now();
  const auto start = steady_clock::now();
  const auto warm_at = start + seconds(5), end_at = start + seconds(20);
  std::vector<std::string> follow_candidates;  // runs whose `sum` has an attempt
  auto refresh_candidates = steady_clock::now();

  auto launch = [&](Slot& slot) {
    std::vector<std::string> args = {BATCHCTL_BIN, "--socket", socket_};
    const auto now = steady_clock::now();
    int choice = std::uniform_int_distribution<int>(0, 3)(rng);
    if (now >= next_trigger || acknowledged.empty()) {
      slot.kind = Kind::kTrigger;
      const std::string date = IsoUtc(1767225600 + 86400 * int64_t{day++}).substr(0, 10);
      args.insert(args.end(), {"--json", "trigger", "load", "--date", date});
      slot.what = "trigger load --date " + date;
      next_trigger = now + milliseconds(200);
    } else if (choice == 0) {
      slot.kind = Kind::kStatus;
      const std::string& run =
          acknowledged[std::uniform_int_distribution<size_t>(0, acknowledged.size() - 1)(rng)];
      args.insert(args.end(), {"status", run, "--json"});
      slot.what = "status " + run + " --json";
    } else if (choice == 1) {
      slot.kind = Kind::kRuns;
      args.insert(args.end(), {"--json", "runs", "load", "--limit", "20"});
      slot.what = "runs load --limit 20";
    } else if (choice == 2 && !follow_candidates.empty()) {
      slot.kind = Kind::kFollow;
      const std::string& run =
          follow_candidates[std::uniform_int_distribution<size_t>(0, follow_candidates.size() - 1)(rng)];
      args.insert(args.end(), {"logs", run, "sum", "--follow"});
      slot.what = "logs " + run + " sum --follow";
    } else {
      slot.kind = Kind::kHealth;
      args.insert(args.end(), {"health"});
      slot.what = "health";
    }
    slot.process = std::make_unique<Process>(args);
    slot.started = now;
  };

  // A client still running when the load ends gets the same deadline as one during it:
  // killing an acknowledged-but-unanswered trigger would count its run as unacknowledged.
  auto collect = [&](Slot& slot) {
    const auto deadline = slot.started + seconds(30 * kSlowdown);
    const auto left = std::max(milliseconds(1000), std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()));
    ProcResult r = slot.process->Wait(left);
    slot.process.reset();
    ++done[slot.kind];
    if (r.exit_code != 0) {
      ++failures;
      ADD_FAILURE() << slot.what << " failed: " << r.Describe();
      return;
    }
    switch (slot.kind) {
      case Kind::kTrigger: {
        Json reply = Json::parse(r.out, nullptr, false);
        if (!reply.is_object() || !reply.contains("run_id") || reply.value("created", false) != true) {
          ++failures;
          ADD_FAILURE() << slot.what << ": " << r.Describe();
        } else {
          acknowledged.push_back(reply["run_id"].get<std::string>());
        }
        break;
      }
      case Kind::kStatus:
      case Kind::kRuns: {
        Json reply = Json::parse(r.out, nullptr, false);
        const bool ok = slot.kind == Kind::kStatus
                            ? reply.is_object() && reply.contains("tasks") && reply.value("dag", "") == "load"
                            : reply.is_array() && !reply.empty();
        if (!ok) {
          ++failures;
          ADD_FAILURE() << slot.what << ": unexpected output " << r.Describe();
        }
        break;
      }
      case Kind::kFollow:
        // The whole log, once, in order, however often it was polled while it grew.
        if (r.out != kSumLog) {
          ++failures;
          ADD_FAILURE() << slot.what << ": " << r.Describe();
        }
        break;
      case Kind::kHealth:
        break;
    }
  };

  while (steady_clock::now() < end_at) {
    const auto now = steady_clock::now();
    if (now >= refresh_candidates) {
      follow_candidates.clear();
      for (const auto& row : Q("SELECT i.run_id FROM task_instances i WHERE i.task = 'sum' AND i.attempts > 0 "
                               "ORDER BY i.id DESC LIMIT 8"))
        follow_candidates.push_back(row["run_id"].get<std::string>());
      refresh_candidates = now + milliseconds(300);
    }
    for (Slot& slot : slots) {
      if (slot.process && slot.process->Running()) {
        if (now - slot.started > seconds(30 * kSlowdown)) {
          ADD_FAILURE() << slot.what << " did not finish within " << 30 * kSlowdown << " s";
          collect(slot);
        }
        continue;
      }
      if (slot.process) collect(slot);
      launch(slot);
    }
    if (rss_warm == 0 && now >= warm_at) rss_warm = RssBytes(daemon_pid());
    rss_peak = std::max(rss_peak, RssBytes(daemon_pid()));
    std::this_thread::sleep_for(milliseconds(5));
    if (failures > 20) break;  // enough said
  }
  for (Slot& slot : slots)
    if (slot.process) collect(slot);
  const long rss_end = RssBytes(daemon_pid());
  std::fprintf(stderr,
               "load: %d trigger, %d status, %d runs, %d logs --follow, %d health requests; %zu runs; "
               "VmRSS %.1f MiB after warm-up, %.1f MiB at the end, %.1f MiB peak\n",
               done[Kind::kTrigger], done[Kind::kStatus], done[Kind::kRuns], done[Kind::kFollow], done[Kind::kHealth],
               acknowledged.size(), rss_warm / 1048576.0, rss_end / 1048576.0, rss_peak / 1048576.0);
  EXPECT_EQ(failures, 0);
  // The load was real: requests of every kind, overlapping. How many depends on how busy
  // the machine is, so these floors only prove that every kind took part; throughput is
  // measured in bench/, not here.
  EXPECT_GE(done[Kind::kTrigger], 20 / kSlowdown);
  for (Kind k : {Kind::kFollow, Kind::kStatus, Kind::kRuns, Kind::kHealth}) EXPECT_GE(done[k], 15 / kSlowdown);

  // Nothing lost: every acknowledged trigger is a run that succeeds, and there are no others.
  for (const auto& id : acknowledged) ASSERT_TRUE(WaitRunState(id, "success", milliseconds(60000))) << id;
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), static_cast<long>(acknowledged.size()));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM task_instances WHERE state != 'success'"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM attempts WHERE outcome != 'success'"), 0);

  // Memory stays flat. The store's page cache, the allocator's arenas and the log and
  // connection buffers settle within the warm-up (VmRSS is ~9 MiB by then, and measured
  // growth over the next 15 s was ~0.2 MiB). From there on, 15 s of this load -- ~75 more
  // runs and well over a thousand requests -- may add at most 6 MiB: something that keeps
  // a few KiB per request or connection (a reply, a parser, a timer, a log buffer) crosses
  // that, while allocator noise and SQLite's page cache (at most 2 MiB per connection by
  // default, partly filled during the warm-up) stay below it.
  ASSERT_GT(rss_warm, 0);
  // Under ASan freed memory waits in its quarantine (up to 256 MiB), so VmRSS grows with
  // any allocation there: the bound holds for the plain build only.
  if (kSlowdown > 1) return;
  EXPECT_LT(rss_end - rss_warm, 6L * 1024 * 1024)
      << "VmRSS grew from " << rss_warm / 1024 << " KiB to " << rss_end / 1024 << " KiB";
  EXPECT_LT(rss_peak - rss_warm, 10L * 1024 * 1024)
      << "VmRSS peaked at " << rss_peak / 1024 << " KiB after " << rss_warm / 1024 << " KiB at the warm-up";
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);
}

}  // namespace
}  // namespace batchd::e2e
