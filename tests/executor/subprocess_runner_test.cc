// SubprocessRunner against real processes.

#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "executor/subprocess_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <queue>
#include <sstream>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace batchd::executor {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using ::testing::HasSubstr;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& text, fs::perms perms = fs::perms::owner_read |
                                                                               fs::perms::owner_write) {
  std::ofstream(p) << text;
  fs::permissions(p, perms);
}

// True once `pid` no longer exists or is a zombie (our container's init may not reap
// orphans, and a zombie is dead for our purposes).
bool ProcessGone(int pid, milliseconds within = milliseconds(3000)) {
  auto deadline = steady_clock::now() + within;
  for (;;) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    if (!in) return true;
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') return true;
    if (steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

// Reads a pid a command wrote to `file`, waiting for it to appear.
int ReadPid(const fs::path& file, milliseconds within = milliseconds(3000)) {
  auto deadline = steady_clock::now() + within;
  while (steady_clock::now() < deadline) {
    std::string s = ReadFile(file);
    if (!s.empty() && s.back() == '\n') return std::atoi(s.c_str());
    std::this_thread::sleep_for(milliseconds(5));
  }
  return 0;
}

// A SubprocessRunner on an io_context run by a thread of its own, as the engine's loop
// runs it. Each call runs on that thread and returns when it has returned there; results
// arrive on that thread.
class RunnerOnLoop {
 public:
  explicit RunnerOnLoop(SubprocessRunnerOptions options) : thread_([this] { io_.run(); }) {
    OnLoop([&] { runner_ = std::make_unique<SubprocessRunner>(io_, options); });
  }
  ~RunnerOnLoop() {
    OnLoop([&] { runner_.reset(); });
    work_.reset();
    thread_.join();
  }
  void Start(AttemptSpec spec, TaskRunner::DoneCallback done) {
    OnLoop([&] { runner_->Start(std::move(spec), std::move(done)); });
  }
  void Cancel(uint64_t id) { OnLoop([&] { runner_->Cancel(id); }); }
  void Shutdown(milliseconds grace) { OnLoop([&] { runner_->Shutdown(grace); }); }
  int Capacity() const { return runner_->Capacity(); }
  boost::asio::io_context& io() { return io_; }
  // For code already running on the loop's thread (the methods above would deadlock there).
  SubprocessRunner& OnLoopRunner() { return *runner_; }
  // Runs `f` on the loop's thread and waits for it.
  void OnLoop(const std::function<void()>& f) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ = boost::asio::make_work_guard(io_);
  std::unique_ptr<SubprocessRunner> runner_;
  std::thread thread_;
};

// Collects results; counts callbacks per attempt to check "exactly once".
class Collector {
 public:
  TaskRunner::DoneCallback Callback() {
    return [this](AttemptResult r) {
      std::lock_guard lock(mu_);
      if (std::this_thread::get_id() == test_thread_) on_test_thread_ = true;
      ++calls_[r.attempt_id];
      results_[r.attempt_id] = std::move(r);
      cv_.notify_all();
    };
  }
  AttemptResult Wait(uint64_t id, milliseconds within = milliseconds(10000)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, within, [&] { return results_.count(id) > 0; })) {
      ADD_FAILURE() << "attempt " << id << " did not finish";
      return {};
    }
    return results_[id];
  }
  bool Has(uint64_t id) {
    std::lock_guard lock(mu_);
    return results_.count(id) > 0;
  }
  int Calls(uint64_t id) {
    std::lock_guard lock(mu_);
    return calls_[id];
  }
  bool AnyOnTestThread() {
    std::lock_guard lock(mu_);
    return on_test_thread_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, AttemptResult> results_;
  std::map<uint64_t, int> calls_;
  std::thread::id test_thread_ = std::this_thread::get_id();
  bool on_test_thread_ = false;
};

class SubprocessRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/executor_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << tmpl;
    dir_ = fs::canonical(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }

  AttemptSpec Spec(uint64_t id, std::string command) {
    AttemptSpec s;
    s.attempt_id = id;
    s.command = std::move(command);
    s.env = {"PATH=/usr/bin:/bin"};
    s.working_dir = dir_.string();
    s.log_path = (dir_ / ("attempt" + std::to_string(id) + ".log")).string();
    return s;
  }
  std::string Log(uint64_t id) { return ReadFile(dir_ / ("attempt" + std::to_string(id) + ".log")); }

  // Runs one attempt on a fresh runner and returns its result.
  AttemptResult RunOne(AttemptSpec spec, SubprocessRunnerOptions options = {}) {
    RunnerOnLoop runner(options);
    Collector c;
    uint64_t id = spec.attempt_id;
    runner.Start(std::move(spec), c.Callback());
    AttemptResult r = c.Wait(id);
    EXPECT_EQ(c.Calls(id), 1);
    EXPECT_FALSE(c.AnyOnTestThread());
    return r;
  }

  fs::path dir_;
};

TEST_F(SubprocessRunnerTest, SucceedsWithExitCodeZero) {
  AttemptResult r = RunOne(Spec(1, "true"));
  EXPECT_EQ(r.attempt_id, 1u);
  EXPECT_EQ(r.end, AttemptEnd::kSuccess) << r.error;
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(r.signal);
  EXPECT_GT(r.pid, 0);
  EXPECT_LE(r.started_at, r.ended_at);
  EXPECT_TRUE(r.error.empty());
}

TEST_F(SubprocessRunnerTest, ReportsNonZeroExitCodeAsFailed) {
  AttemptResult r = RunOne(Spec(1, "exit 3"));
  EXPECT_EQ(r.end, AttemptEnd::kFailed);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.signal);
}

TEST_F(SubprocessRunnerTest, ReportsSignalItDidNotSendAsFailed) {
  AttemptResult r = RunOne(Spec(1, "kill -9 $$"));
  EXPECT_EQ(r.end, AttemptEnd::kFailed);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_FALSE(r.exit_code);
}

// The kernel keeps an epoll registration while any copy of its file is open, and Asio
// closes a socket it opened itself without EPOLL_CTL_DEL. Events on a registration left
// behind that way reach whatever descriptor reuses its reactor slot, here the pidfd of a
// running attempt: a readiness that is not the attempt's exit. It must go on running.
TEST_F(SubprocessRunnerTest, StaleReadinessOnItsPidfdDoesNotEndARunningAttempt) {
  using boost::asio::local::stream_protocol;
  RunnerOnLoop runner({});
  Collector c;
  // Abstract (leading NUL): no file, and no limit from a long TMPDIR.
  const std::string path = std::string("\0batchd-stale-", 14) + std::to_string(::getpid());
  stream_protocol::acceptor acceptor(runner.io());
  stream_protocol::socket closed(runner.io()), peer(runner.io());
  int copy = -1;
  runner.OnLoop([&] {
    acceptor.open();
    acceptor.bind(stream_protocol::endpoint(path));
    acceptor.listen();
    closed.open();  // opened by Asio: its close() skips EPOLL_CTL_DEL
    closed.connect(stream_protocol::endpoint(path));
    acceptor.accept(peer);
    copy = ::dup(closed.native_handle());  // keeps the file, and so its registration
    closed.close();                        // frees the reactor slot
  });
  ASSERT_GE(copy, 0);
  runner.Start(Spec(1, "sleep 0.3"), c.Callback());  // its pidfd takes the freed slot
  ASSERT_EQ(::write(peer.native_handle(), "x", 1), 1);  // an event on the stale registration
  AttemptResult r = c.Wait(1);
  EXPECT_EQ(r.end, AttemptEnd::kSuccess) << r.error;
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(r.signal) << "killed as if it had exited: signal " << r.signal.value_or(0);
  EXPECT_GE(r.ended_at - r.started_at, milliseconds(250));
  ::close(copy);
  runner.OnLoop([&] {
    peer.close();
    acceptor.close();
  });
}

// What the daemon ran into: Boost.Asio 1.74 frees a closed socket's reactor slot at once,
// even while a readiness of that socket is queued, and gives the slot to the next descriptor
// registered. Here the handler of one socket's readiness closes a second socket whose
// readiness came in the same epoll_wait, then starts an attempt: the attempt's pidfd takes
// the slot, and the queued readiness completes its wait.
TEST_F(SubprocessRunnerTest, QueuedReadinessOfAClosedSocketDoesNotEndARunningAttempt) {
  using boost::asio::local::stream_protocol;
  RunnerOnLoop runner({});
  Collector c;
  stream_protocol::socket first(runner.io()), first_peer(runner.io()), closed(runner.io()), closed_peer(runner.io());
  runner.OnLoop([&] {
    boost::asio::local::connect_pair(first, first_peer);
    boost::asio::local::connect_pair(closed, closed_peer);
    first.async_wait(stream_protocol::socket::wait_read, [&](const boost::system::error_code&) {
      closed.close();
      runner.OnLoopRunner().Start(Spec(1, "sleep 0.3"), c.Callback());
    });
    // Both ready before the loop's next epoll_wait, in this order.
    ASSERT_EQ(::write(first_peer.native_handle(), "x", 1), 1);
    ASSERT_EQ(::write(closed_peer.native_handle(), "y", 1), 1);
  });
  AttemptResult r = c.Wait(1);
  EXPECT_EQ(r.end, AttemptEnd::kSuccess) << r.error;
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(r.signal) << "killed as if it had exited: signal " << r.signal.value_or(0);
  EXPECT_GE(r.ended_at - r.started_at, milliseconds(250));
  runner.OnLoop([&] {
    first.close();
    first_peer.close();
    closed_peer.close();
  });
}

TEST_F(SubprocessRunnerTest, PassesExactlyTheGivenEnvironment) {
  AttemptSpec s = Spec(1, "env");  // exec'd directly: no shell adds PWD and friends
  s.env = {"PATH=/usr/bin:/bin", "FOO=bar baz", "BATCHD_TASK=extract"};
  RunOne(s);
  EXPECT_EQ(Log(1), "PATH=/usr/bin:/bin\nFOO=bar baz\nBATCHD_TASK=extract\n");

  AttemptSpec sh = Spec(2, "echo \"[$FOO]\" \"[${HOME:-unset}]\"");
  sh.env = {"PATH=/usr/bin:/bin", "FOO=x"};
  RunOne(sh);
  EXPECT_EQ(Log(2), "[x] [unset]\n");
}

TEST_F(SubprocessRunnerTest, RunsInTheWorkingDirectory) {
  fs::create_directory(dir_ / "work");
  AttemptSpec s = Spec(1, "pwd");
  s.working_dir = (dir_ / "work").string();
  RunOne(s);
  EXPECT_EQ(Log(1), (dir_ / "work").string() + "\n");
}

TEST_F(SubprocessRunnerTest, AppendsStdoutAndStderrToTheLogFile) {
  WriteFile(dir_ / "attempt1.log", "earlier attempt\n");
  RunOne(Spec(1, "echo out; echo err >&2; echo out2"));
  EXPECT_EQ(Log(1), "earlier attempt\nout\nerr\nout2\n");

  RunOne(Spec(2, "echo new"));
  struct stat st;
  ASSERT_EQ(stat((dir_ / "attempt2.log").c_str(), &st), 0);
  mode_t mask = umask(0);
  umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0640u & ~mask);
}

TEST_F(SubprocessRunnerTest, ASilentAttemptLeavesNoLogFileAndOneThatPrintsKeepsIt) {
  AttemptResult r = RunOne(Spec(1, "true"));
  EXPECT_EQ(r.end, AttemptEnd::kSuccess) << r.error;
  EXPECT_FALSE(fs::exists(dir_ / "attempt1.log")) << "removed once the attempt ended with it empty";

  AttemptSpec failed_silently = Spec(3, "exit 4");
  r = RunOne(failed_silently);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_FALSE(fs::exists(dir_ / "attempt3.log"));

  AttemptSpec nowhere = Spec(4, "echo never");
  nowhere.working_dir = "/nonexistent/batchd/x";
  r = RunOne(nowhere);
  EXPECT_EQ(r.end, AttemptEnd::kSpawnError);
  EXPECT_FALSE(fs::exists(dir_ / "attempt4.log")) << "the error is the attempt's, not in a log";

  r = RunOne(Spec(2, "no-such-command-batchd"));  // the not-found message goes there too
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(Log(2).find("not found"), std::string::npos) << Log(2);
}

TEST_F(SubprocessRunnerTest, StdinIsDevNull) {
  RunOne(Spec(1, "cat; echo end"));  // would hang if stdin were inherited
  EXPECT_EQ(Log(1), "end\n");
}

TEST_F(SubprocessRunnerTest, MissingWorkingDirectoryIsASpawnError) {
  AttemptSpec s = Spec(1, "true");
  s.working_dir = "/nonexistent/batchd/x";
  AttemptResult r = RunOne(s);
  EXPECT_EQ(r.end, AttemptEnd::kSpawnError);
  EXPECT_EQ(r.error, "working directory '/nonexistent/batchd/x' does not exist");
  EXPECT_EQ(r.pid, 0);
  EXPECT_FALSE(r.exit_code);
}

TEST_F(SubprocessRunnerTest, WorkingDirectoryThatIsAFileIsASpawnError) {
  WriteFile(dir_ / "file", "");
  AttemptSpec s = Spec(1, "true");
  s.working_dir = (dir_ / "file").string();
  AttemptResult r = RunOne(s);
  EXPECT_EQ(r.end, AttemptEnd::kSpawnError);
  EXPECT_EQ(r.error, "working directory '" + s.working_dir + "' is not a directory");
}

TEST_F(SubprocessRunnerTest, UnwritableLogIsASpawnError) {
  AttemptSpec s = Spec(1, "true");
  s.log_path = (dir_ / "no-such-dir" / "a.log").string();
  AttemptResult r = RunOne(s);
  EXPECT_EQ(r.end, AttemptEnd::kSpawnError);
  EXPECT_EQ(r.error, "cannot open log file '" + s.log_path + "': No such file or directory");

  s.log_path = dir_.string();  // a directory
  r = RunOne(s);
  EXPECT_EQ(r.end, AttemptEnd::kSpawnError);
  EXPECT_EQ(r.error, "cannot open log file '" + s.log_path + "': Is a directory");
}

TEST_F(SubprocessRunnerTest, TimeoutKillsTheCommandAndItsBackgroundChild) {
  AttemptSpec s = Spec(1, "sleep 100 & echo $! > bg.pid; sleep 100");
  s.timeout = milliseconds(300);
  s.kill_grace = seconds(5);
  auto t0 = steady_clock::now();
  AttemptResult r = RunOne(s);
  EXPECT_LT(steady_clock::now() - t0, seconds(3));
  EXPECT_EQ(r.end, AttemptEnd::kTimeout);
  EXPECT_EQ(r.signal, SIGTERM);
  int bg = ReadPid(dir_ / "bg.pid");
  ASSERT_GT(bg, 0);
  EXPECT_TRUE(ProcessGone(bg));
}

TEST_F(SubprocessRunnerTest, TimeoutEscalatesToSigkillAfterKillGrace) {
  // The shell and its background child ignore SIGTERM; only the SIGKILL gets them.
  AttemptSpec s = Spec(1, "trap '' TERM; sleep 100 & echo $! > bg.pid; wait; wait; sleep 100");
  s.timeout = milliseconds(200);
  s.kill_grace = milliseconds(300);
  auto t0 = steady_clock::now();
  AttemptResult r = RunOne(s);
  auto took = steady_clock::now() - t0;
  EXPECT_GE(took, milliseconds(500));
  EXPECT_LT(took, seconds(3));
  EXPECT_EQ(r.end, AttemptEnd::kTimeout);
  EXPECT_EQ(r.signal, SIGKILL);
  int bg = ReadPid(dir_ / "bg.pid");
  ASSERT_GT(bg, 0);
  EXPECT_TRUE(ProcessGone(bg));
}

TEST_F(SubprocessRunnerTest, CommandFinishingBeforeItsTimeoutSucceeds) {
  AttemptSpec s = Spec(1, "true");
  s.timeout = seconds(10);
  EXPECT_EQ(RunOne(s).end, AttemptEnd::kSuccess);
}

TEST_F(SubprocessRunnerTest, KillsLeftoverGroupMembersAfterTheLeaderExits) {
  auto t0 = steady_clock::now();
  AttemptResult r = RunOne(Spec(1, "sleep 100 & echo $! > bg.pid"));
  EXPECT_LT(steady_clock::now() - t0, seconds(2));
  EXPECT_EQ(r.end, AttemptEnd::kSuccess);
  int bg = ReadPid(dir_ / "bg.pid");
  ASSERT_GT(bg, 0);
  EXPECT_TRUE(ProcessGone(bg));
}

TEST_F(SubprocessRunnerTest, CancelKillsTheProcessGroup) {
  RunnerOnLoop runner({.workers = 2});
  Collector c;
  runner.Start(Spec(1, "sleep 100 & echo $! > bg.pid; sleep 100"), c.Callback());
  int bg = ReadPid(dir_ / "bg.pid");
  ASSERT_GT(bg, 0);
  auto t0 = steady_clock::now();
  runner.Cancel(1);
  AttemptResult r = c.Wait(1);
  EXPECT_LT(steady_clock::now() - t0, seconds(2));
  EXPECT_EQ(r.end, AttemptEnd::kCancelled);
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_TRUE(ProcessGone(bg));
  EXPECT_TRUE(ProcessGone(r.pid));
}

TEST_F(SubprocessRunnerTest, CancelEscalatesToSigkillAfterTheAttemptsKillGrace) {
  RunnerOnLoop runner({.workers = 1});
  Collector c;
  AttemptSpec s = Spec(1, "trap '' TERM; echo $$ > sh.pid; while :; do sleep 1; done");
  s.kill_grace = milliseconds(200);
  runner.Start(s, c.Callback());
  ASSERT_GT(ReadPid(dir_ / "sh.pid"), 0);
  runner.Cancel(1);
  AttemptResult r = c.Wait(1);
  EXPECT_EQ(r.end, AttemptEnd::kCancelled);
  EXPECT_EQ(r.signal, SIGKILL);
}

TEST_F(SubprocessRunnerTest, CancelOfAQueuedAttemptNeverSpawnsIt) {
  RunnerOnLoop runner({.workers = 1});
  Collector c;
  runner.Start(Spec(1, "sleep 100"), c.Callback());
  runner.Start(Spec(2, "echo ran"), c.Callback());
  runner.Cancel(2);
  runner.Cancel(1);
  EXPECT_EQ(c.Wait(1).end, AttemptEnd::kCancelled);
  AttemptResult r = c.Wait(2);
  EXPECT_EQ(r.end, AttemptEnd::kCancelled);
  EXPECT_EQ(r.pid, 0);
  EXPECT_EQ(Log(2), "");
}

TEST_F(SubprocessRunnerTest, ReportsFromTheLoopNeverFromInsideStartOrCancel) {
  // The engine calls Start and Cancel in the middle of a pass; a report from inside them
  // would re-enter it. Spawn errors and cancelled queued attempts are the cases that know
  // their result at once.
  boost::asio::io_context io;
  Collector c;
  {
    SubprocessRunner runner(io, {.workers = 1});
    AttemptSpec missing_dir = Spec(1, "true");
    missing_dir.working_dir = (dir_ / "nope").string();
    runner.Start(missing_dir, c.Callback());
    runner.Start(Spec(2, "sleep 100"), c.Callback());
    runner.Start(Spec(3, "true"), c.Callback());  // queued behind 2
    runner.Cancel(3);
    EXPECT_FALSE(c.Has(1));
    EXPECT_FALSE(c.Has(3));
    io.poll();  // the posted reports run here
    ASSERT_TRUE(c.Has(1));
    EXPECT_EQ(c.Wait(1).end, AttemptEnd::kSpawnError);
    ASSERT_TRUE(c.Has(3));
    EXPECT_EQ(c.Wait(3).end, AttemptEnd::kCancelled);
    EXPECT_FALSE(c.Has(2));
    runner.Shutdown(milliseconds(100));
    ASSERT_TRUE(c.Has(2));  // Shutdown reports before it returns
    EXPECT_EQ(c.Wait(2).end, AttemptEnd::kCancelled);
  }
  io.poll();  // handlers left behind by the destroyed runner do nothing
  EXPECT_EQ(c.Calls(1) + c.Calls(2) + c.Calls(3), 3);
}

TEST_F(SubprocessRunnerTest, UsesNoThreadPerAttempt) {
  // Children are spawned and reaped on the loop's thread: running attempts add no threads.
  auto threads = [] {
    return std::distance(fs::directory_iterator("/proc/self/task"), fs::directory_iterator());
  };
  const auto before = threads();
  RunnerOnLoop runner({.workers = 4});
  Collector c;
  for (uint64_t id = 1; id <= 4; ++id) runner.Start(Spec(id, "echo $$ > p" + std::to_string(id) + "; sleep 100"), c.Callback());
  for (uint64_t id = 1; id <= 4; ++id) ASSERT_GT(ReadPid(dir_ / ("p" + std::to_string(id))), 0);
  EXPECT_EQ(threads(), before + 1);  // the loop's
  runner.Shutdown(milliseconds(100));
  for (uint64_t id = 1; id <= 4; ++id) EXPECT_EQ(c.Wait(id).end, AttemptEnd::kCancelled);
}

TEST_F(SubprocessRunnerTest, CancelOfAFinishedOrUnknownAttemptIsANoOp) {
  RunnerOnLoop runner({.workers = 1});
  Collector c;
  runner.Start(Spec(1, "true"), c.Callback());
  EXPECT_EQ(c.Wait(1).end, AttemptEnd::kSuccess);
  runner.Cancel(1);
  runner.Cancel(999);
  runner.Start(Spec(2, "true"), c.Callback());
  EXPECT_EQ(c.Wait(2).end, AttemptEnd::kSuccess);  // no stale cancel leaks into the next one
  EXPECT_EQ(c.Calls(1), 1);
}

TEST_F(SubprocessRunnerTest, RunsShellSyntaxThroughTheShellAndPlainCommandsDirectly) {
  RunOne(Spec(1, "echo a | tr a b"));
  EXPECT_EQ(Log(1), "b\n");
  RunOne(Spec(2, "printf x"));
  EXPECT_EQ(Log(2), "x");
  RunOne(Spec(3, "printf '%s-%s' 'a b' c"));
  EXPECT_EQ(Log(3), "a b-c");
  AttemptResult r = RunOne(Spec(4, "exit 3"));  // a builtin: must not be looked up in PATH
  EXPECT_EQ(r.exit_code, 3);
}

TEST_F(SubprocessRunnerTest, DirectExecResolvesTheProgramThroughPathOfTheGivenEnv) {
  fs::create_directory(dir_ / "bin");
  WriteFile(dir_ / "bin" / "mytool", "#!/bin/sh\necho \"$0 $1 $PPID $$\"\n", fs::perms::owner_all);
  AttemptSpec s = Spec(1, "mytool hello");
  s.env = {"PATH=/nonexistent:" + (dir_ / "bin").string() + ":/usr/bin:/bin"};
  AttemptResult r = RunOne(s);
  EXPECT_EQ(r.end, AttemptEnd::kSuccess) << Log(1);
  // Parent is the test process itself and the reported pid is the tool's: no shell between.
  EXPECT_EQ(Log(1), (dir_ / "bin" / "mytool").string() + " hello " + std::to_string(getpid()) + " " +
                        std::to_string(r.pid) + "\n");
}

TEST_F(SubprocessRunnerTest, DirectExecSearchesPathLikeExecvpSkippingNonExecutablesAndResolvingRelativeEntries) {
  fs::create_directories(dir_ / "noexec");
  fs::create_directories(dir_ / "bin");
  fs::create_directories(dir_ / "work" / "rel");
  // Same name: a file that is not executable (execvp goes on past EACCES), a tool later.
  WriteFile(dir_ / "noexec" / "tool", "echo wrong\n");
  WriteFile(dir_ / "bin" / "tool", "#!/bin/sh\necho right\n", fs::perms::owner_all);
  AttemptSpec s = Spec(1, "tool");
  s.env = {"PATH=/nonexistent:" + (dir_ / "noexec").string() + ":" + (dir_ / "bin").string()};
  EXPECT_EQ(RunOne(s).end, AttemptEnd::kSuccess) << Log(1);
  EXPECT_EQ(Log(1), "right\n");

  // A relative entry is looked up from the task's working directory, not batchd's.
  WriteFile(dir_ / "work" / "rel" / "reltool", "#!/bin/sh\necho relative\n", fs::perms::owner_all);
  AttemptSpec r = Spec(2, "reltool");
  r.env = {"PATH=/nonexistent:rel:/usr/bin"};
  r.working_dir = (dir_ / "work").string();
  EXPECT_EQ(RunOne(r).end, AttemptEnd::kSuccess) << Log(2);
  EXPECT_EQ(Log(2), "relative\n");
}

TEST_F(SubprocessRunnerTest, DirectExecFindsAProgramAgainAfterItMovedToAnotherPathDirectory) {
  // Each attempt looks the program up again.
  fs::create_directories(dir_ / "a");
  fs::create_directories(dir_ / "b");
  WriteFile(dir_ / "b" / "tool", "#!/bin/sh\necho in-b\n", fs::perms::owner_all);
  RunnerOnLoop runner({.workers = 1});
  Collector c;
  auto spec = [&](uint64_t id) {
    AttemptSpec s = Spec(id, "tool");
    s.env = {"PATH=/nonexistent:" + (dir_ / "a").string() + ":" + (dir_ / "b").string()};
    return s;
  };
  runner.Start(spec(1), c.Callback());
  EXPECT_EQ(c.Wait(1).end, AttemptEnd::kSuccess) << Log(1);
  EXPECT_EQ(Log(1), "in-b\n");
  fs::rename(dir_ / "b" / "tool", dir_ / "a" / "tool");
  runner.Start(spec(2), c.Callback());
  EXPECT_EQ(c.Wait(2).end, AttemptEnd::kSuccess) << Log(2);
  EXPECT_EQ(Log(2), "in-b\n");  // the same script, now found in a
  fs::remove(dir_ / "a" / "tool");
  runner.Start(spec(3), c.Callback());
  EXPECT_EQ(c.Wait(3).exit_code, 127);
  EXPECT_EQ(Log(3), "batchd: tool: not found\n");
}

TEST_F(SubprocessRunnerTest, DirectExecWithoutPathInTheEnvUsesTheShellsDefaultPath) {
  AttemptSpec s = Spec(1, "printf ok");
  s.env = {};
  EXPECT_EQ(RunOne(s).end, AttemptEnd::kSuccess) << Log(1);
  EXPECT_EQ(Log(1), "ok");
}

TEST_F(SubprocessRunnerTest, DirectExecRunsScriptsWithoutShebangLikeTheShell) {
  fs::create_directory(dir_ / "bin");
  WriteFile(dir_ / "bin" / "plain", "echo no shebang \"$1\"\n", fs::perms::owner_all);
  AttemptSpec s = Spec(1, "plain x");
  s.env = {"PATH=" + (dir_ / "bin").string()};
  EXPECT_EQ(RunOne(s).end, AttemptEnd::kSuccess) << Log(1);
  EXPECT_EQ(Log(1), "no shebang x\n");
}

TEST_F(SubprocessRunnerTest, DirectExecOfAMissingProgramFailsLikeTheShell) {
  AttemptResult r = RunOne(Spec(1, "no-such-program-xyz --flag"));
  EXPECT_EQ(r.end, AttemptEnd::kFailed);
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_EQ(Log(1), "batchd: no-such-program-xyz: not found\n");

  WriteFile(dir_ / "notexec", "echo hi\n");
  r = RunOne(Spec(2, "./notexec"));
  EXPECT_EQ(r.exit_code, 126);
  EXPECT_EQ(Log(2), "batchd: ./notexec: permission denied\n");
}

TEST_F(SubprocessRunnerTest, ChildStartsWithDefaultSignalDispositionsAndEmptyMask) {
  // The daemon ignores SIGPIPE and blocks signals in its threads; tasks must not inherit that.
  struct sigaction ign {}, old_pipe;
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old_pipe);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  RunOne(Spec(1, "grep -e SigBlk -e SigIgn /proc/self/status"));
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  EXPECT_EQ(Log(1), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

TEST_F(SubprocessRunnerTest, DispositionsChangedAfterTheFirstSpawnReachNoTaskAfterTheRescan) {
  // The runner scans dispositions at most once per kSignalRescanInterval; the signals batchd
  // sets up itself (SIGPIPE here) are reset at every spawn regardless.
  RunnerOnLoop runner({});
  Collector c;
  auto run = [&](uint64_t id) {
    runner.Start(Spec(id, "grep SigIgn /proc/self/status"), c.Callback());
    EXPECT_EQ(c.Wait(id).end, AttemptEnd::kSuccess);
  };
  run(1);
  struct sigaction ign {}, old_pipe, old_winch;
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old_pipe);
  sigaction(SIGWINCH, &ign, &old_winch);
  run(2);
  std::this_thread::sleep_for(SubprocessRunner::kSignalRescanInterval + std::chrono::milliseconds(100));
  run(3);
  sigaction(SIGWINCH, &old_winch, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  EXPECT_EQ(Log(1), "SigIgn:\t0000000000000000\n");
  // SIGPIPE (bit 12) is reset at once; SIGWINCH (bit 27) may still be ignored until the
  // next scan, unless this machine was slow enough for one to happen already.
  const std::string second = Log(2);
  EXPECT_TRUE(second == "SigIgn:\t0000000008000000\n" || second == "SigIgn:\t0000000000000000\n") << second;
  EXPECT_EQ(Log(3), "SigIgn:\t0000000000000000\n");
}

TEST_F(SubprocessRunnerTest, DoesNotLeakTheDaemonsFileDescriptors) {
  int fd = open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(fd, 3);
  RunOne(Spec(1, "ls /proc/self/fd"));  // ls itself opens one fd for the listing
  close(fd);
  EXPECT_EQ(Log(1), "0\n1\n2\n3\n");
}

TEST_F(SubprocessRunnerTest, RunsEachAttemptInItsOwnProcessGroup) {
  AttemptResult r = RunOne(Spec(1, "cut -d' ' -f5 /proc/$$/stat > pgid"));
  EXPECT_EQ(std::atoi(ReadFile(dir_ / "pgid").c_str()), r.pid);
}

TEST_F(SubprocessRunnerTest, CallerCanKeepWithinCapacity) {
  RunnerOnLoop runner({.workers = 2});
  EXPECT_EQ(runner.Capacity(), 2);
  // Each attempt records its start in a shared file; more than two at once would show.
  Collector c;
  auto t0 = steady_clock::now();
  for (uint64_t id = 1; id <= 4; ++id) {
    runner.Start(Spec(id, "echo start >> trace; sleep 0.2; echo end >> trace"), c.Callback());
  }
  for (uint64_t id = 1; id <= 4; ++id) EXPECT_EQ(c.Wait(id).end, AttemptEnd::kSuccess);
  EXPECT_GE(steady_clock::now() - t0, milliseconds(400));
  int running = 0, peak = 0;
  std::istringstream trace(ReadFile(dir_ / "trace"));
  for (std::string line; std::getline(trace, line);) {
    running += line == "start" ? 1 : -1;
    peak = std::max(peak, running);
  }
  EXPECT_EQ(peak, 2);
}

TEST_F(SubprocessRunnerTest, ReportsCpuSecondsAndPeakRss) {
  AttemptResult r = RunOne(Spec(1, "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"));
  EXPECT_EQ(r.end, AttemptEnd::kSuccess);
  EXPECT_GT(r.cpu_seconds, 0.0);
  EXPECT_GT(r.max_rss_kb, 0);
}

TEST_F(SubprocessRunnerTest, ChildrenDieWhenTheRunnersProcessDies) {
  fs::path pid_file = dir_ / "leader.pid";
  pid_t owner = fork();
  ASSERT_GE(owner, 0);
  if (owner == 0) {
    // A stand-in for the daemon: start a long task, then die without any cleanup.
    auto* runner = new RunnerOnLoop({.workers = 1});
    AttemptSpec s = Spec(1, "echo $$ > leader.pid; exec sleep 100");
    runner->Start(s, [](AttemptResult) {});
    auto deadline = steady_clock::now() + seconds(5);
    while (ReadFile(pid_file).empty() && steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(5));
    }
    _exit(0);
  }
  int status;
  ASSERT_EQ(waitpid(owner, &status, 0), owner);
  int leader = ReadPid(pid_file);
  ASSERT_GT(leader, 0);
  EXPECT_TRUE(ProcessGone(leader));
}

TEST_F(SubprocessRunnerTest, ShutdownKillsEverythingAndReportsEachAttemptOnce) {
  Collector c;
  std::vector<int> pids;
  auto runner = std::make_unique<RunnerOnLoop>(SubprocessRunnerOptions{.workers = 2});
  runner->Start(Spec(1, "echo $$ > p1; sleep 100"), c.Callback());
  runner->Start(Spec(2, "trap '' TERM; echo $$ > p2; sleep 100 & wait; wait"), c.Callback());
  runner->Start(Spec(3, "echo never"), c.Callback());  // queued behind the two
  int p1 = ReadPid(dir_ / "p1"), p2 = ReadPid(dir_ / "p2");
  ASSERT_GT(p1, 0);
  ASSERT_GT(p2, 0);
  auto t0 = steady_clock::now();
  runner->Shutdown(milliseconds(200));
  EXPECT_LT(steady_clock::now() - t0, seconds(2));
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(c.Has(id)) << id;  // all reported before Shutdown returns
    EXPECT_EQ(c.Wait(id).end, AttemptEnd::kCancelled) << id;
    EXPECT_EQ(c.Calls(id), 1);
  }
  EXPECT_EQ(c.Wait(2).signal, SIGKILL);  // ignored SIGTERM, killed after the grace
  EXPECT_EQ(Log(3), "");
  EXPECT_TRUE(ProcessGone(p1));
  EXPECT_TRUE(ProcessGone(p2));

  // After shutdown, Start reports at once instead of losing the callback.
  runner->Start(Spec(4, "true"), c.Callback());
  ASSERT_TRUE(c.Has(4));
  EXPECT_EQ(c.Wait(4).end, AttemptEnd::kCancelled);
  EXPECT_EQ(c.Wait(4).error, "runner is shut down");
  runner->Shutdown(milliseconds(200));  // idempotent
  runner.reset();
}

TEST_F(SubprocessRunnerTest, DestructorCancelsRunningAttempts) {
  Collector c;
  {
    RunnerOnLoop runner({.workers = 1, .shutdown_grace = milliseconds(100)});
    runner.Start(Spec(1, "echo $$ > p1; exec sleep 100"), c.Callback());
    ASSERT_GT(ReadPid(dir_ / "p1"), 0);
  }
  AttemptResult r = c.Wait(1, milliseconds(0));
  EXPECT_EQ(r.end, AttemptEnd::kCancelled);
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_TRUE(ProcessGone(r.pid));
}

// --- log size cap ---------------------------------------------------------------------------

// What `seq 1 n` prints.
std::string Seq(int n) {
  std::string s;
  for (int i = 1; i <= n; ++i) s += std::to_string(i) + "\n";
  return s;
}

// A log capped at `cap` after `output` was written: head, gap line, tail, marker line.
std::string Capped(const std::string& output, uint64_t cap) {
  const uint64_t tail = std::min<uint64_t>(cap / 2, 1 << 20), head = cap - tail;
  const uint64_t dropped = output.size() - head - tail;
  std::string head_text = output.substr(0, head);
  return head_text + (head_text.back() == '\n' ? "" : "\n") + "[batchd: " + std::to_string(dropped) +
         " bytes dropped here]\n" + output.substr(output.size() - tail) + "[batchd: output truncated at " +
         LogCap::FormatSize(cap) + "; " + std::to_string(dropped) + " bytes dropped]\n";
}

// The last line of `text`, without its newline.
std::string LastLine(const std::string& text) {
  size_t nl = text.rfind('\n', text.size() - 2);
  return text.substr(nl + 1, text.size() - nl - 2);
}

// Whether the file system under `dir` can cut a range out of a file (ext4, XFS).
bool CanCollapseRanges(const fs::path& dir) {
  fs::path probe = dir / "collapse.probe";
  WriteFile(probe, std::string(3 * 65536, 'x'));
  int fd = open(probe.c_str(), O_WRONLY | O_APPEND);
  bool ok = fd >= 0 && fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 65536, 65536) == 0;
  if (fd >= 0) close(fd);
  fs::remove(probe);
  return ok;
}

TEST_F(SubprocessRunnerTest, LogPastItsCapKeepsHeadAndTailAndEndsWithTheMarker) {
  constexpr uint64_t kCap = 1 << 20;
  AttemptResult r = RunOne(Spec(1, "seq 1 1500000"), {.workers = 1, .log_max_bytes = kCap});
  EXPECT_EQ(r.end, AttemptEnd::kSuccess);
  const std::string output = Seq(1500000);  // 10.4 MB
  const std::string log = Log(1);
  EXPECT_LE(log.size(), kCap + 120);
  EXPECT_EQ(LastLine(log), "[batchd: output truncated at 1 MiB; " + std::to_string(output.size() - kCap) +
                               " bytes dropped]");
  EXPECT_THAT(log, HasSubstr("\n1499999\n1500000\n[batchd: output truncated"));
  EXPECT_EQ(log.substr(0, 8), "1\n2\n3\n4\n");
  EXPECT_TRUE(log == Capped(output, kCap)) << "log of " << log.size() << " bytes is not head + tail";
}

TEST_F(SubprocessRunnerTest, LogOfARunningTaskStaysNearItsCap) {
  if (!CanCollapseRanges(dir_)) GTEST_SKIP() << "no FALLOC_FL_COLLAPSE_RANGE under " << dir_;
  constexpr uint64_t kCap = 1 << 20;
  RunnerOnLoop runner({.workers = 1, .log_max_bytes = kCap, .log_check_interval = milliseconds(50)});
  Collector c;
  runner.Start(Spec(1, "seq 1 1500000; echo $$ > printed; sleep 1; seq 1500001 1500003"), c.Callback());
  ASSERT_GT(ReadPid(dir_ / "printed"), 0);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_LE(fs::file_size(dir_ / "attempt1.log"), kCap + 8192);  // block-aligned while running
  EXPECT_EQ(c.Wait(1).end, AttemptEnd::kSuccess);
  // Cut out while it ran, then cut exactly: as if it had been cut once at the end.
  const std::string log = Log(1);
  EXPECT_TRUE(log == Capped(Seq(1500003), kCap)) << "log of " << log.size() << " bytes is not head + tail";
}

TEST_F(SubprocessRunnerTest, LogWithinItsCapIsLeftAsWritten) {
  AttemptResult r = RunOne(Spec(1, "seq 1 1000"), {.workers = 1, .log_max_bytes = Seq(1000).size()});
  EXPECT_EQ(r.end, AttemptEnd::kSuccess);
  EXPECT_EQ(Log(1), Seq(1000));
}

TEST_F(SubprocessRunnerTest, LogCapOfZeroKeepsEverything) {
  RunOne(Spec(1, "seq 1 1500000"), {.workers = 1, .log_max_bytes = 0});
  EXPECT_TRUE(Log(1) == Seq(1500000));
}

TEST_F(SubprocessRunnerTest, LogSizeCheckKeepsNoTimerAfterTheLastAttempt) {
  // An io_context with nothing else to do returns from run() once the attempts are done.
  boost::asio::io_context io;
  bool done = false;
  auto start = steady_clock::now();
  {
    SubprocessRunner runner(io, {.workers = 1, .log_max_bytes = 1 << 20, .log_check_interval = seconds(5)});
    runner.Start(Spec(1, "true"), [&](AttemptResult) { done = true; });
    io.run();
  }
  EXPECT_TRUE(done);
  EXPECT_LT(steady_clock::now() - start, seconds(2));
}

TEST(LogCapTest, SizesAreWrittenExactlyInTheLargestUnitThatDividesThem) {
  EXPECT_EQ(LogCap::FormatSize(uint64_t{64} << 20), "64 MiB");
  EXPECT_EQ(LogCap::FormatSize(uint64_t{3} << 30), "3 GiB");
  EXPECT_EQ(LogCap::FormatSize(1536), "1536 bytes");
  EXPECT_EQ(LogCap::FormatSize(512 * 1024), "512 KiB");
  EXPECT_EQ(LogCap::FormatSize(1000), "1000 bytes");
  EXPECT_EQ(LogCap::TruncationMarker(uint64_t{64} << 20, 123456789),
            "[batchd: output truncated at 64 MiB; 123456789 bytes dropped]");
}

TEST(LogCapTest, TailIsOneMiBOrHalfASmallerCap) {
  EXPECT_EQ(LogCap(uint64_t{64} << 20).TailBytes(), uint64_t{1} << 20);
  EXPECT_EQ(LogCap(uint64_t{64} << 20).HeadBytes(), uint64_t{63} << 20);
  EXPECT_EQ(LogCap(1000).TailBytes(), 500u);
  EXPECT_EQ(LogCap(1001).HeadBytes(), 501u);
}

TEST(SplitPlainCommandTest, AcceptsOnlyPlainWordsThatAreNotShellBuiltins) {
  std::vector<std::string> argv;
  EXPECT_TRUE(SplitPlainCommand("  ./extract.sh --date 2026-01-01 --region=eu  a,b+c@d%e:f ", &argv));
  EXPECT_EQ(argv, (std::vector<std::string>{"./extract.sh", "--date", "2026-01-01", "--region=eu",
                                            "a,b+c@d%e:f"}));
  for (const char* shell : {"echo a | tr a b", "echo $HOME", "echo 'a b'", "echo \"a\"", "ls *.csv",
                            "a; b", "a && b", "a > f", "cmd\targ", "cmd\narg", "~/bin/x", "echo `x`",
                            "FOO=1 cmd", "exit 3", "cd /tmp", "exec sleep 1", ". ./env.sh",
                            ": nothing", "set -e", "wait", "", "   ", "a#b", "x\\y"}) {
    EXPECT_FALSE(SplitPlainCommand(shell, &argv)) << shell;
    EXPECT_TRUE(argv.empty());
  }
}


}  // namespace
}  // namespace batchd::executor
