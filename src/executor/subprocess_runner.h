#pragma once
// SubprocessRunner: the real TaskRunner. Runs each attempt as a child process in its own
// process group, with stdin from /dev/null and stdout+stderr appended to the attempt's
// log file, enforces the timeout, and reports exit status and rusage.
//
// Owns: a fixed pool of `workers` threads, and every child process they spawn. An
// attempt occupies one worker thread from spawn to reap; Start() beyond Capacity()
// queues (the engine is expected not to do that, but it is safe).
//
// Lifetime: Shutdown() (or the destructor) SIGTERMs every running process group,
// SIGKILLs it after the grace period, reaps everything, reports every outstanding
// attempt through its callback (kCancelled), and joins the threads. Afterwards nothing
// the runner started is alive: no threads, no zombies, no stray group members.
//
// Thread rules: Start, Cancel and Shutdown may be called from any thread, except that
// Shutdown and the destructor must not be called from inside a DoneCallback (they join
// the thread that runs it). Callbacks run on a worker thread, outside any lock, and must
// not throw. Attempt ids must be unique among the attempts not yet reported.
// Exception to "done runs on a runner thread": Start() after Shutdown() calls `done`
// synchronously with kCancelled ("runner is shut down"), since no thread is left.
//
// Requires Linux >= 5.3 (CLONE_PIDFD, poll on pidfds).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/duration.h"
#include "common/time.h"
#include "executor/log_file.h"
#include "executor/orphan_guard.h"
#include "executor/runner.h"

namespace batchd::executor {

struct SubprocessRunnerOptions {
  // How many attempts may run at once (Capacity()); one worker thread each. >= 1.
  int workers = 4;
  // Grace between SIGTERM and SIGKILL when the destructor shuts the runner down
  // (an explicit Shutdown(grace) chooses its own).
  Millis shutdown_grace = std::chrono::seconds(10);
  // Exec commands made only of plain words directly, without /bin/sh (GNU make's fast
  // path). Saves ~25% per spawn; off means every command goes through the shell.
  bool direct_exec = true;
  // After the attempt's main process exits, SIGKILL whatever is left in its process
  // group (background jobs it forgot), so nothing outlives its attempt. GNU make leaves
  // them running; Argo/Kubernetes kill the pod. We default to the latter.
  bool kill_group_after_exit = true;
  // Kill every running attempt's process group if this process dies, kill -9 included
  // (OrphanGuard: one helper process).
  bool orphan_guard = true;
  // Keep `workers` log-file inodes allocated ahead of time, on a thread of their own
  // (LogFileReserve): creating a file can cost more than spawning the task.
  bool spare_log_files = true;
  // Source of started_at/ended_at; null means the system clock. Not owned; must be
  // thread-safe and outlive the runner.
  const Clock* clock = nullptr;
};

class SubprocessRunner final : public TaskRunner {
 public:
  explicit SubprocessRunner(SubprocessRunnerOptions options);
  ~SubprocessRunner() override;  // Shutdown(options.shutdown_grace)
  SubprocessRunner(const SubprocessRunner&) = delete;
  SubprocessRunner& operator=(const SubprocessRunner&) = delete;

  void Start(AttemptSpec spec, DoneCallback done) override;
  void Cancel(uint64_t attempt_id) override;
  int Capacity() const override { return options_.workers; }

  // Stops accepting work, cancels everything queued or running (SIGTERM to each
  // process group, SIGKILL after `grace`), waits until every callback has run and
  // joins the worker threads. Idempotent; concurrent callers all return after it is
  // done.
  void Shutdown(Millis grace);

 private:
  struct Attempt;
  struct Worker;

  void WorkerLoop(Worker* worker);
  // Spawns and waits for one attempt on the calling worker thread.
  AttemptResult Run(Worker* worker, Attempt* attempt);
  SysMillis Now() const;

  const SubprocessRunnerOptions options_;
  int devnull_fd_ = -1;  // /dev/null, O_CLOEXEC, the stdin of every attempt
  std::unique_ptr<OrphanGuard> guard_;  // null when options_.orphan_guard is off
  std::unique_ptr<LogFileReserve> log_files_;

  std::mutex shutdown_mu_;  // serializes Shutdown(); held while joining

  std::mutex mu_;
  std::condition_variable work_cv_;                      // queue_ non-empty or stopping_
  std::deque<std::unique_ptr<Attempt>> queue_;           // GUARDED_BY(mu_)
  std::unordered_map<uint64_t, Attempt*> live_;          // GUARDED_BY(mu_): queued + running
  bool stopping_ = false;                                // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<Worker>> workers_;         // fixed after construction
  std::vector<std::thread> threads_;                     // joined by Shutdown
};

// Whether `command` can be exec'd without a shell: only words of [A-Za-z0-9_./=:,+@%-]
// separated by spaces, the first word not an assignment and not a shell builtin or
// keyword. On success fills `argv` with the words. Exposed for tests.
bool SplitPlainCommand(std::string_view command, std::vector<std::string>* argv);

}  // namespace batchd::executor
