// Chaos: the daemon stopped at random moments -- SIGKILL, and SIGTERM with a short
// shutdown_grace -- twenty times or more while it runs a DAG of several hundred partitions
// (a partitioned task with retries, a downstream task with `partitions: same`, a fan-in)
// and clients trigger runs concurrently. Afterwards (SPEC 6): every acknowledged trigger's
// run exists and succeeds; no instance recorded as succeeded ran again and every execution
// has its attempt row (the ledger, e2e_util.h); no task process outlived the daemon that
// started it; the SQLite file passes `PRAGMA integrity_check`.
//
// The moments are drawn from a seed printed on stderr and in every failure;
// BATCHD_CHAOS_SEED=<seed> replays a run's schedule (the daemon's own timing still varies).

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
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

// Every task line appends to @TMP@/ledger ("$BATCHD_IDEMPOTENCY_KEY $BATCHD_ATTEMPT", what
// LedgerViolations reads) and its shell's pid to @TMP@/pids. CHAOS_TAG marks the processes
// of this test in /proc/*/environ. One partition in ten of each partitioned task fails its
// first execution (a marker file per instance says it already did); transform[42], [142]
// and [242] sleep for 2 s, so that most stops find something long running.
constexpr char kChaosDag[] = R"(dag: chaos
max_active_runs: 1
max_active_tasks: 32
env: {CHAOS_TAG: "@TMP@"}
tasks:
  - id: extract
    partitions: {range: [0, 300]}
    retry: {retries: 40, delay: 10ms, backoff: fixed}
    command: |
      echo $$ >> @TMP@/pids
      echo "$BATCHD_IDEMPOTENCY_KEY $BATCHD_ATTEMPT" >> @TMP@/ledger
      m=@TMP@/marks/$BATCHD_RUN_ID.$BATCHD_TASK.$BATCHD_PARTITION
      if [ $((BATCHD_PARTITION % 10)) -eq 3 ] && [ ! -e $m ]; then : > $m; exit 1; fi
  - id: transform
    depends_on: [{task: extract, partitions: same}]
    partitions: {range: [0, 300]}
    retry: {retries: 40, delay: 10ms, backoff: fixed}
    command: |
      echo $$ >> @TMP@/pids
      if [ $((BATCHD_PARTITION % 100)) -eq 42 ]; then sleep 2; else sleep 0.0$((BATCHD_PARTITION % 5)); fi
      echo "$BATCHD_IDEMPOTENCY_KEY $BATCHD_ATTEMPT" >> @TMP@/ledger
      m=@TMP@/marks/$BATCHD_RUN_ID.$BATCHD_TASK.$BATCHD_PARTITION
      if [ $((BATCHD_PARTITION % 10)) -eq 7 ] && [ ! -e $m ]; then : > $m; exit 1; fi
  - id: publish
    depends_on: [transform]
    retry: {retries: 40, delay: 10ms, backoff: fixed}
    command: |
      echo $$ >> @TMP@/pids
      echo "$BATCHD_IDEMPOTENCY_KEY $BATCHD_ATTEMPT" >> @TMP@/ledger
)";

// The DAG the concurrent clients trigger, one run per date.
constexpr char kLightDagHead[] = R"(dag: light
max_active_runs: 4
env: {CHAOS_TAG: "@TMP@"}
tasks:
  - id: t
    partitions: {range: [0, 2]}
)";

// Live processes whose environment holds CHAOS_TAG=<tag> and a BATCHD_RUN_ID: task
// processes of this test (and their children).
std::vector<pid_t> TaskProcesses(const std::string& tag) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  const std::string want = "CHAOS_TAG=" + tag;
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid == ::getpid()) continue;
    auto environ_text = ReadFile("/proc/" + std::string(e->d_name) + "/environ");
    if (!environ_text) continue;
    bool tagged = false, has_run = false;
    for (size_t pos = 0; pos < environ_text->size();) {
      size_t nul = environ_text->find('\0', pos);
      if (nul == std::string::npos) nul = environ_text->size();
      const std::string_view entry(environ_text->data() + pos, nul - pos);
      tagged |= entry == want;
      has_run |= entry.rfind("BATCHD_RUN_ID=", 0) == 0;
      pos = nul + 1;
    }
    if (tagged && has_run && PidAlive(static_cast<pid_t>(pid))) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return out;
}

std::string PidList(const std::vector<pid_t>& pids) {
  std::string s;
  for (pid_t p : pids) {
    auto cmdline = ReadFile("/proc/" + std::to_string(p) + "/cmdline").value_or("");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    s += std::to_string(p) + " (" + cmdline.substr(0, 80) + ") ";
  }
  return s;
}

unsigned ChaosSeed() {
  if (const char* s = std::getenv("BATCHD_CHAOS_SEED"); s && *s) return static_cast<unsigned>(std::strtoul(s, nullptr, 10));
  return std::random_device{}();
}

class ChaosTest : public DaemonTest {
 protected:
  enum class Stop { kKill, kTerm };

  // The scenario, with `rounds` stops of the given kind; see the file comment.
  void Run(Stop how, int rounds) {
    const unsigned seed = ChaosSeed();
    std::fprintf(stderr, "chaos seed %u (replay with BATCHD_CHAOS_SEED=%u)\n", seed, seed);
    SCOPED_TRACE("chaos seed " + std::to_string(seed) + " (replay with BATCHD_CHAOS_SEED=" + std::to_string(seed) + ")");
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> window_ms(150, 1500), gap_ms(40, 150), pick(0, 5);

    std::filesystem::create_directories(tmp_ / "marks");
    DaemonOptions options;
    options.config_yaml = "shutdown_grace: 1s\n";
    ASSERT_TRUE(StartDaemon(options));
    SubmitDag("chaos.yaml", kChaosDag);
    SubmitDag("light.yaml", std::string(kLightDagHead) + kLedgerTaskBody);
    const std::string chaos_run = Trigger("chaos", {"--date", "2026-01-01"});
    ASSERT_FALSE(chaos_run.empty());

    std::map<std::string, std::string> acknowledged;  // run id -> what the trigger was
    int day = 0, unacknowledged = 0, stops_with_tasks = 0;
    milliseconds slowest_stop(0);
    for (int round = 0; round < rounds; ++round) {
      SCOPED_TRACE("round " + std::to_string(round));
      if (round > 0) {
        ASSERT_TRUE(StartDaemon(options));
      }
      struct Client {
        std::unique_ptr<Process> process;
        std::string what;
      };
      std::vector<Client> clients;
      const auto stop_at = steady_clock::now() + milliseconds(window_ms(rng));
      while (steady_clock::now() < stop_at) {
        // Mostly new runs of `light`; sometimes the chaos run's date again, which must
        // answer with that run and create nothing.
        std::vector<std::string> args = {BATCHCTL_BIN, "--socket", socket_, "--json", "trigger"};
        std::string what;
        if (pick(rng) == 0) {
          what = "chaos 2026-01-01";
          args.insert(args.end(), {"chaos", "--date", "2026-01-01"});
        } else {
          const std::string date = IsoUtc(1767225600 + 86400 * int64_t{day++}).substr(0, 10);
          what = "light " + date;
          args.insert(args.end(), {"light", "--date", date});
        }
        clients.push_back({std::make_unique<Process>(args), what});
        std::this_thread::sleep_for(milliseconds(gap_ms(rng)));
      }
      // The detector below sees task processes at all (most stops find some running).
      if (!TaskProcesses(tmp_.path()).empty()) ++stops_with_tasks;
      const auto t0 = steady_clock::now();
      if (how == Stop::kKill) {
        KillDaemon();
      } else {
        ProcResult stopped = StopDaemon(milliseconds(20000));
        EXPECT_EQ(stopped.exit_code, 0) << "round " << round;
        slowest_stop = std::max(slowest_stop, std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0));
      }
      for (auto& c : clients) {
        ProcResult r = c.process->Wait(milliseconds(15000));
        EXPECT_FALSE(r.timed_out) << c.what << ": batchctl hung\n" << r.Describe();
        EXPECT_EQ(r.signal, 0) << c.what << ": batchctl died\n" << r.Describe();
        Json reply = Json::parse(r.out, nullptr, false);
        if (r.exit_code == 0 && reply.is_object() && reply.contains("run_id")) {
          acknowledged[reply["run_id"].get<std::string>()] = c.what;
          if (c.what.rfind("chaos", 0) == 0) {
            EXPECT_EQ(reply["run_id"], chaos_run) << r.Describe();
            EXPECT_EQ(reply["created"], false) << r.Describe();
          }
        } else {
          ++unacknowledged;  // refused or cut off by the stop: may or may not have been committed
        }
      }
      // SPEC 6: task processes die with the daemon -- the killed one included, before
      // anything restarts it.
      std::vector<pid_t> left;
      EXPECT_TRUE(WaitFor([&] { return (left = TaskProcesses(tmp_.path())).empty(); }, milliseconds(3000)))
          << "task processes outlived the daemon stopped in round " << round << ": " << PidList(left);
    }
    std::fprintf(stderr,
                 "chaos: %d stops (%d with task processes running), %zu acknowledged triggers, %d not acknowledged, "
                 "slowest SIGTERM %lld ms\n",
                 rounds, stops_with_tasks, acknowledged.size(), unacknowledged,
                 static_cast<long long>(slowest_stop.count()));
    EXPECT_GT(stops_with_tasks, 0) << "no stop found a task process running: the orphan check checked nothing";
    if (how == Stop::kTerm) {
      // shutdown_grace is 1s: draining must not take much longer, even on a busy machine.
      EXPECT_LT(slowest_stop, milliseconds(6000));
    }

    ASSERT_TRUE(StartDaemon(options));
    // The load was real: triggers were answered across the rounds (on a busy machine a short
  // window may end before any reply, so not necessarily in every round).
  EXPECT_GE(acknowledged.size(), static_cast<size_t>(rounds / 2)) << unacknowledged << " not acknowledged";
    ASSERT_TRUE(WaitRunState(chaos_run, "success", milliseconds(90000)));
    for (const auto& [id, what] : acknowledged) ASSERT_TRUE(WaitRunState(id, "success", milliseconds(60000))) << what;
    // Runs committed without their reply reaching the client finish too.
    ASSERT_TRUE(WaitFor([&] { return Count("SELECT COUNT(*) FROM runs WHERE state NOT IN ('success', 'failed', 'cancelled')") == 0; },
                        milliseconds(60000)));
    StopDaemon();

    EXPECT_EQ(V("PRAGMA integrity_check"), "ok");
    EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE state != 'success'"), 0);
    EXPECT_EQ(Count("SELECT COUNT(*) FROM task_instances WHERE state != 'success'"), 0);
    EXPECT_EQ(Count("SELECT COUNT(*) FROM task_instances WHERE run_id = '" + chaos_run + "'"), 601);
    EXPECT_EQ(Count("SELECT COUNT(*) FROM attempts WHERE outcome = 'running'"), 0);
    EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE dag = 'chaos'"), 1) << "a repeated trigger created a run";
    // At most one failure per partition that fails its first execution (fewer when a stop
    // cut one between its marker and its exit): a marker is never lost and nothing failed
    // that should not have.
    const long failed = Count("SELECT COUNT(*) FROM attempts a JOIN task_instances i ON i.id = a.instance_id "
                              "WHERE i.run_id = '" + chaos_run + "' AND a.outcome = 'failed'");
    EXPECT_LE(failed, 60);
    EXPECT_GE(failed, 40);
    size_t keys = 0;
    EXPECT_THAT(LedgerViolations(tmp_ / "ledger", db_, &keys), ::testing::IsEmpty());
    EXPECT_EQ(keys, static_cast<size_t>(Count("SELECT COUNT(*) FROM task_instances")));
    if (how == Stop::kKill) {
      EXPECT_GT(Count("SELECT COUNT(*) FROM attempts WHERE outcome = 'lost'"), 0)
          << "no kill landed while a task ran: the test tested nothing";
    } else {
      EXPECT_EQ(Count("SELECT COUNT(*) FROM attempts WHERE outcome = 'lost'"), 0) << "SIGTERM loses nothing";
      EXPECT_GT(Count("SELECT COUNT(*) FROM attempts WHERE outcome = 'cancelled'"), 0)
          << "no stop cut an attempt after the grace: the test tested nothing";
    }
    // No process any task started is alive (a pid alive now but without the tag is another
    // process that got the number since).
    const std::vector<pid_t> tagged = TaskProcesses(tmp_.path());
    std::vector<pid_t> alive;
    std::istringstream pids(ReadFile(tmp_ / "pids").value_or(""));
    for (long pid; pids >> pid;)
      if (std::count(tagged.begin(), tagged.end(), static_cast<pid_t>(pid))) alive.push_back(static_cast<pid_t>(pid));
    EXPECT_THAT(alive, ::testing::IsEmpty()) << PidList(alive);
    EXPECT_THAT(TaskProcesses(tmp_.path()), ::testing::IsEmpty());
  }
};

TEST_F(ChaosTest, TwentyRandomKillNinesUnderLoadLoseNoAcknowledgedTriggerRepeatNoSuccessAndLeaveNoOrphans) {
  Run(Stop::kKill, 20);
}

TEST_F(ChaosTest, TwentyRandomSigtermsDrainWithinTheGraceExitZeroAndLoseOrRepeatNothing) { Run(Stop::kTerm, 20); }

}  // namespace
}  // namespace batchd::e2e
