// OrphanGuard against real processes: its owner dies (a forked child that _exits without
// destructors), or the guard is destroyed.

#include "executor/orphan_guard.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>

#include <gtest/gtest.h>

extern char** environ;

namespace batchd::executor {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Above the kernel's largest pid (PID_MAX_LIMIT, 1 << 22): never a real group, so
// registering these can kill nothing.
constexpr pid_t kFakeGroup = 1 << 23;

// Starts `sleep 100` as the leader of a new process group; returns its pid (= pgid), or -1.
pid_t SpawnGroup() {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  char sleep_arg[] = "sleep";
  char seconds_arg[] = "100";
  char* argv[] = {sleep_arg, seconds_arg, nullptr};
  pid_t pid;
  int err = posix_spawnp(&pid, "sleep", nullptr, &attr, argv, environ);
  posix_spawnattr_destroy(&attr);
  return err == 0 ? pid : -1;
}

// The state letter from /proc/<pid>/stat, or 0 if there is no such process.
char ProcessState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return 0;
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return 0;
  return stat[paren + 2];
}

// True once `pid` no longer exists or is a zombie (our container's init may not reap
// orphans, and a zombie is dead for our purposes).
bool ProcessGone(pid_t pid, milliseconds within = milliseconds(3000)) {
  auto deadline = steady_clock::now() + within;
  for (;;) {
    char state = ProcessState(pid);
    if (state == 0 || state == 'Z') return true;
    if (steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

long VoluntaryContextSwitches(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string key = "voluntary_ctxt_switches:";
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  }
  return -1;
}

struct OwnerReport {
  pid_t group = -1;   // the group the owner left behind
  pid_t helper = -1;  // its guard's helper
};

// Runs `owner` in a forked child that then dies without running a destructor, as the
// daemon dies under `kill -9`. `owner` returns what the child leaves behind.
OwnerReport RunOwnerThatDies(const std::function<OwnerReport()>& owner) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    OwnerReport report = owner();
    if (write(fds[1], &report, sizeof report) != sizeof report) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  OwnerReport report;
  if (child < 0 || read(fds[0], &report, sizeof report) != sizeof report) report = {};
  close(fds[0]);
  if (child > 0) waitpid(child, nullptr, 0);
  return report;
}

// Kills a group a test left alive on purpose.
void KillGroup(pid_t pgid) {
  kill(-pgid, SIGKILL);
  EXPECT_TRUE(ProcessGone(pgid));
  waitpid(pgid, nullptr, WNOHANG);  // reaps it if it is ours
}

// Reaps our child `pid` if it dies within `within`; returns its wait status, or -1.
int ReapWithin(pid_t pid, milliseconds within) {
  auto deadline = steady_clock::now() + within;
  for (;;) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    if (steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

TEST(OrphanGuardTest, OwnersDeathKillsRegisteredGroup) {
  OwnerReport left = RunOwnerThatDies([] {
    auto* guard = new OrphanGuard;  // never destroyed: the owner dies
    pid_t group = SpawnGroup();
    guard->Started(group);
    return OwnerReport{group, guard->helper_pid()};
  });
  ASSERT_GT(left.group, 0);
  ASSERT_GT(left.helper, 0);
  EXPECT_TRUE(ProcessGone(left.group));
  EXPECT_TRUE(ProcessGone(left.helper));
  if (!ProcessGone(left.group, milliseconds(0))) KillGroup(left.group);
}

TEST(OrphanGuardTest, OwnersDeathSparesEndedGroup) {
  OwnerReport left = RunOwnerThatDies([] {
    auto* guard = new OrphanGuard;
    pid_t group = SpawnGroup();
    guard->Started(group);
    guard->Ended(group);
    return OwnerReport{group, guard->helper_pid()};
  });
  ASSERT_GT(left.group, 0);
  ASSERT_GT(left.helper, 0);
  // The helper kills before it exits: once it is gone, it has spared the group for good.
  ASSERT_TRUE(ProcessGone(left.helper));
  EXPECT_FALSE(ProcessGone(left.group, milliseconds(0)));
  KillGroup(left.group);
}

TEST(OrphanGuardTest, DestructorKillsRegisteredGroupsAndReapsHelper) {
  pid_t registered = SpawnGroup();
  pid_t ended = SpawnGroup();
  ASSERT_GT(registered, 0);
  ASSERT_GT(ended, 0);
  pid_t helper;
  {
    OrphanGuard guard;
    ASSERT_TRUE(guard.active());
    helper = guard.helper_pid();
    ASSERT_GT(helper, 0);
    guard.Started(registered);
    guard.Started(ended);
    guard.Ended(ended);
  }
  int status = ReapWithin(registered, milliseconds(3000));
  EXPECT_NE(status, -1) << "the registered group survived the guard";
  if (status == -1) {
    KillGroup(registered);
  } else {
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
  EXPECT_EQ(ReapWithin(ended, milliseconds(0)), -1) << "the ended group was killed";
  KillGroup(ended);
  // Reaped by the destructor: not even a zombie is left, and it is no longer our child.
  EXPECT_EQ(kill(helper, 0), -1);
  EXPECT_EQ(waitpid(helper, nullptr, WNOHANG), -1);
}

TEST(OrphanGuardTest, DetachedHelperStillKillsRegisteredGroupsAndExitsOnItsOwn) {
  pid_t registered = SpawnGroup();
  ASSERT_GT(registered, 0);
  pid_t helper;
  {
    OrphanGuard guard;
    ASSERT_TRUE(guard.active());
    helper = guard.helper_pid();
    guard.Started(registered);
    guard.DetachHelper();
  }
  // The destructor did not reap it: it is still our child, exiting or exited.
  int status = ReapWithin(helper, milliseconds(3000));
  ASSERT_NE(status, -1) << "the detached helper did not exit";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  status = ReapWithin(registered, milliseconds(3000));
  EXPECT_NE(status, -1) << "the registered group survived the detached guard";
  if (status == -1) KillGroup(registered);
}

TEST(OrphanGuardTest, SlotsAreFreedAfterManyCycles) {
  OwnerReport left = RunOwnerThatDies([] {
    auto* guard = new OrphanGuard;
    for (int i = 0; i < 100000; ++i) {
      guard->Started(kFakeGroup + i % 100);
      guard->Ended(kFakeGroup + i % 100);
    }
    // More groups at once than the table holds, twice: a slot that was not freed would
    // leave no room for the real group below.
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < 70000; ++i) guard->Started(kFakeGroup + i);
      for (int i = 0; i < 70000; ++i) guard->Ended(kFakeGroup + i);
    }
    pid_t group = SpawnGroup();
    guard->Started(group);
    return OwnerReport{group, guard->helper_pid()};
  });
  ASSERT_GT(left.group, 0);
  EXPECT_TRUE(ProcessGone(left.group));
  if (!ProcessGone(left.group, milliseconds(0))) KillGroup(left.group);
}

TEST(OrphanGuardTest, StartedAndEndedDoNotWakeHelper) {
  OrphanGuard guard;
  ASSERT_TRUE(guard.active());
  pid_t helper = guard.helper_pid();
  // Wait until the helper sleeps in its read.
  auto deadline = steady_clock::now() + milliseconds(3000);
  while (ProcessState(helper) != 'S' && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(ProcessState(helper), 'S');
  long before = VoluntaryContextSwitches(helper);
  ASSERT_GE(before, 0);
  for (int i = 0; i < 1000; ++i) {
    guard.Started(kFakeGroup + i);
    guard.Ended(kFakeGroup + i);
  }
  std::this_thread::sleep_for(milliseconds(50));  // time for a woken helper to run
  long after = VoluntaryContextSwitches(helper);
  EXPECT_LE(after - before, 5);
}

}  // namespace
}  // namespace batchd::executor
