// End-to-end tests of fault containment (docs/reliability.md): a fault of one run or one
// request stays there, a store that cannot be written is survived, and text from outside
// is stored exactly and shown safely, whatever its bytes.

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using ::testing::HasSubstr;

// A retry that has to wait for a run slot (max_active_runs: 1, another run active) in a
// DAG whose partitions come from a command resumes with the instances it has: its
// partitions are not expanded again (that hit the unique index and stopped the daemon,
// at every restart).
TEST_F(DaemonTest, QueuedRetryOfAPartitionedRunResumesWithoutExpandingAgain) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("qr.yaml", R"(dag: qr
max_active_runs: 1
tasks:
  - id: work
    partitions: {command: "echo x >> @TMP@/expanded.count; printf 'a\nb\n'"}
    retry: {retries: 0}
    command: test {{ partition }} = a -o -f @TMP@/fixed -o {{ ds }} = 2026-03-02 && sleep 0
  - id: hold
    depends_on: [work]
    command: test {{ ds }} != 2026-03-02 || while [ ! -f @TMP@/release ]; do sleep 0.05; done
)");
  const std::string failing = Trigger("qr", {"--date", "2026-03-01"});
  ASSERT_FALSE(failing.empty());
  ASSERT_TRUE(WaitRunState(failing, "failed"));
  EXPECT_EQ(ReadFile(tmp_ / "expanded.count").value_or(""), "x\n");

  // Another run takes the only slot, then the failed one is retried: it must queue.
  const std::string holder = Trigger("qr", {"--date", "2026-03-02"});
  ASSERT_FALSE(holder.empty());
  ASSERT_TRUE(WaitFor([&] { return RunState(holder) == "running"; }, milliseconds(10000)));
  WriteFile(tmp_ / "fixed", "");
  ProcResult retry = Ctl({"retry", failing});
  ASSERT_EQ(retry.exit_code, 0) << retry.Describe();
  EXPECT_EQ(RunState(failing), "queued");

  WriteFile(tmp_ / "release", "");
  ASSERT_TRUE(WaitRunState(holder, "success"));
  ASSERT_TRUE(WaitRunState(failing, "success")) << DaemonLog();
  EXPECT_TRUE(DaemonRunning()) << DaemonLog();
  // One expansion per run: the retried run kept its partitions.
  EXPECT_EQ(ReadFile(tmp_ / "expanded.count").value_or(""), "x\nx\n");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM task_instances WHERE run_id = '" + failing + "'"), 3);
  EXPECT_EQ(AttemptOutcomes(failing, "work", "b"), (std::vector<std::string>{"failed", "success"}));
  EXPECT_EQ(AttemptOutcomes(failing, "work", "a"), (std::vector<std::string>{"success"}));
  // And it survives a restart in that state.
  StopDaemon();
  ASSERT_TRUE(StartDaemon());
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);
}

// Cancelling a run leaves its attempts ending for a while (the kill grace); purging its
// DAG meanwhile would take the rows their results are recorded in. The purge waits, the
// daemon and every other DAG's running work go on.
TEST_F(DaemonTest, PurgeOfADagWhoseCancelledRunIsStillEndingIsRefusedAndNothingStops) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("ending.yaml", R"(dag: ending
tasks:
  - id: slow_to_die
    command: "trap 'sleep 2; exit 3' TERM; echo $$ > @TMP@/ending.pid; while :; do sleep 0.05; done"
)");
  SubmitDag("bystander.yaml", R"(dag: bystander
tasks:
  - id: steady
    command: "echo $$ > @TMP@/steady.pid; while [ ! -f @TMP@/steady.stop ]; do sleep 0.05; done"
)");
  const std::string bystander = Trigger("bystander", {"--date", "2026-03-01"});
  const std::string run_id = Trigger("ending", {"--date", "2026-03-01"});
  ASSERT_GT(WaitRunningAttempt(bystander, "steady", tmp_ / "steady.pid"), 0);
  ASSERT_GT(WaitRunningAttempt(run_id, "slow_to_die", tmp_ / "ending.pid"), 0);

  ProcResult cancel = Ctl({"cancel", run_id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.Describe();
  ProcResult purge = Ctl({"delete", "ending", "--purge"});
  EXPECT_EQ(purge.exit_code, 1) << purge.Describe();
  EXPECT_EQ(purge.err, "batchctl: DAG 'ending' has a run that is still ending; wait for it before purging\n");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE dag = 'ending'"), 1) << "a refused purge changed something";

  // Once it has ended, the purge goes through; the daemon never stopped.
  ASSERT_TRUE(WaitFor([&] { return AttemptOutcomes(run_id, "slow_to_die") == std::vector<std::string>{"cancelled"}; },
                      milliseconds(15000)));
  ASSERT_TRUE(WaitFor([&] { return Ctl({"delete", "ending", "--purge"}).exit_code == 0; }, milliseconds(10000)));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE dag = 'ending'"), 0);
  EXPECT_TRUE(DaemonRunning()) << DaemonLog();
  EXPECT_EQ(RunState(bystander), "running");
  WriteFile(tmp_ / "steady.stop", "");
  ASSERT_TRUE(WaitRunState(bystander, "success"));
  EXPECT_EQ(AttemptOutcomes(bystander, "steady"), std::vector<std::string>{"success"});
}

// Partition names are whatever a command printed, bytes that are not UTF-8 included: the
// task sees them exactly, and status and failed show them (as U+FFFD) instead of failing.
TEST_F(DaemonTest, PartitionNamesThatAreNotUtf8AreRunExactlyAndShownSafely) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("bytes.yaml", R"yaml(dag: bytes
tasks:
  - id: per_name
    partitions: {command: "printf 'ok\\n\\377bad\\n'"}
    retry: {retries: 0}
    command: printf %s "$BATCHD_PARTITION" > "@TMP@/seen.$(printf %s "$BATCHD_PARTITION" | od -An -tx1 | tr -d ' \n')"; test "$BATCHD_PARTITION" = ok
)yaml");
  const std::string run_id = Trigger("bytes", {"--date", "2026-03-01"});
  ASSERT_TRUE(WaitRunState(run_id, "failed"));
  EXPECT_EQ(ReadFile(tmp_ / "seen.ff626164").value_or("<none>"), std::string("\xff" "bad"));
  EXPECT_EQ(ReadFile(tmp_ / "seen.6f6b").value_or("<none>"), "ok");

  ProcResult status = Ctl({"--json", "status", run_id});
  ASSERT_EQ(status.exit_code, 0) << status.Describe();
  Json parsed = Json::parse(status.out, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << status.out;
  std::set<std::string> partitions;
  for (const auto& t : parsed["tasks"]) partitions.insert(t["partition"].get<std::string>());
  EXPECT_EQ(partitions, (std::set<std::string>{"ok", "\xEF\xBF\xBD" "bad"}));
  ProcResult failed = Ctl({"--json", "failed"});
  ASSERT_EQ(failed.exit_code, 0) << failed.Describe();
  EXPECT_THAT(failed.out, HasSubstr("\"partition\": \"\xEF\xBF\xBD" "bad\""));
  EXPECT_EQ(Ctl({"status", run_id}).exit_code, 0);
  EXPECT_TRUE(DaemonRunning());
}

// A tmpfs mounted on the daemon's data directory, unmounted when the test ends.
class SmallDisk {
 public:
  SmallDisk(const std::string& dir, const std::string& size) : dir_(dir) {
    ::mkdir(dir.c_str(), 0755);
    const std::string options = "size=" + size + ",mode=0755";
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  // Fills what is left of it; returns the filler's path.
  std::string Fill() {
    const std::string path = dir_ + "/filler";
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return path;
    std::vector<char> block(64 * 1024, 'x');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size() && std::fflush(f) == 0) {
    }
    std::vector<char> byte(1, 'x');
    while (std::fwrite(byte.data(), 1, 1, f) == 1 && std::fflush(f) == 0) {
    }
    std::fclose(f);
    return path;
  }

 private:
  std::string dir_;
  bool mounted_ = false;
};

// The disk under the data directory fills up while a run is under way: the daemon says
// so, refuses new work with a clear error, keeps what it acknowledged, and goes on by
// itself once there is room again.
TEST_F(DaemonTest, DiskFullIsReportedNewWorkRefusedAndServiceResumesWhenSpaceReturns) {
  SmallDisk disk(data_, "8m");
  // The test command runs as root (it installs packages), in CI too.
  ASSERT_TRUE(disk.mounted()) << "cannot mount a tmpfs on " << data_ << ": " << std::strerror(errno)
                              << " (this test needs root)";
  ASSERT_TRUE(StartDaemon());
  SubmitDag("steady.yaml", R"(dag: steady
tasks:
  - id: first
    command: "while [ ! -f @TMP@/go ]; do sleep 0.05; done"
  - id: second
    depends_on: [first]
    command: "true"
)");
  const std::string run_id = Trigger("steady", {"--date", "2026-03-01"});
  ASSERT_FALSE(run_id.empty());
  ASSERT_TRUE(WaitFor([&] { return AttemptOutcomes(run_id, "first") == std::vector<std::string>{"running"}; },
                      milliseconds(10000)));
  const std::string filler = disk.Fill();

  // New work is refused with a clear error and nothing is created.
  ProcResult refused = Ctl({"trigger", "steady", "--date", "2026-03-02"});
  EXPECT_EQ(refused.exit_code, 1) << refused.Describe();
  EXPECT_THAT(refused.err, HasSubstr("full")) << refused.Describe();
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 1);

  // The running task ends while the disk is full: its result cannot be recorded yet.
  WriteFile(tmp_ / "go", "");
  ASSERT_TRUE(WaitFor([&] { return Ctl({"health"}).exit_code == 1; }, milliseconds(10000))) << DaemonLog();
  ProcResult health = Ctl({"health"});
  EXPECT_THAT(health.out, HasSubstr("status         degraded")) << health.out;
  EXPECT_THAT(health.out, HasSubstr("store error")) << health.out;
  ProcResult while_full = Ctl({"trigger", "steady", "--date", "2026-03-03"});
  EXPECT_EQ(while_full.exit_code, 1);
  EXPECT_THAT(while_full.err, HasSubstr("the store cannot be written")) << while_full.Describe();
  EXPECT_THAT(while_full.err, HasSubstr("new work is refused until it can")) << while_full.Describe();
  EXPECT_TRUE(DaemonRunning()) << DaemonLog();

  // Room again: the daemon resumes by itself, the run finishes, new work is accepted.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  ASSERT_TRUE(WaitRunState(run_id, "success", milliseconds(30000))) << DaemonLog();
  EXPECT_EQ(AttemptOutcomes(run_id, "first"), std::vector<std::string>{"success"}) << "the result was not kept";
  EXPECT_EQ(AttemptOutcomes(run_id, "second"), std::vector<std::string>{"success"});
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);
  const std::string later = Trigger("steady", {"--date", "2026-03-04"});
  ASSERT_FALSE(later.empty());
  WriteFile(tmp_ / "go", "");
  ASSERT_TRUE(WaitRunState(later, "success"));
  EXPECT_EQ(V("PRAGMA integrity_check"), "ok");
  StopDaemon();
}

// docs/reliability.md: `sqlite3 batchd.db ".backup /safe/place"` while batchd serves
// makes a sound copy to restore from.
TEST_F(DaemonTest, BackupWhileServingIsASoundCopyOfTheStore) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("b.yaml", R"(dag: b
tasks:
  - id: t
    command: "true"
)");
  const std::string run_id = Trigger("b", {"--date", "2026-03-01"});
  ASSERT_TRUE(WaitRunState(run_id, "success"));
  const std::string copy = tmp_ / "safe-place.db";
  ProcResult backup = RunProcess({"/usr/bin/sqlite3", db_, ".backup " + copy});
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();
  EXPECT_EQ(QueryValue(copy, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(QueryValue(copy, "SELECT state FROM runs WHERE run_id = '" + run_id + "'"), "success");
}

}  // namespace
}  // namespace batchd::e2e
