#pragma once
// SubprocessRunner: the real TaskRunner. Runs each attempt as a child process in its own
// process group, with stdin from /dev/null and stdout+stderr appended to the attempt's
// log file, enforces the timeout and the log's size cap (LogCap), and reports exit status
// and rusage.
//
// Everything happens on the thread that runs the caller's io_context, as in GNU make's
// single loop: Start() spawns the child right there, its exit is a pidfd becoming
// readable in the io_context, and timeouts are Asio timers. A step of a chain (one
// child exits, the engine commits, the next child starts) crosses no thread boundary.
//
// Owns: every child process it spawns. Start() beyond Capacity() queues (the engine is
// expected not to do that, but it is safe).
//
// Lifetime: Shutdown() (or the destructor) SIGTERMs every running process group,
// SIGKILLs it after the grace period, reaps everything and reports every outstanding
// attempt through its callback (kCancelled) before it returns. Afterwards nothing the
// runner started is alive: no zombies, no stray group members. Destroy the runner
// before its io_context.
//
// Thread rules: construct, call Start/Cancel/Shutdown and destroy on the thread that
// runs `io`, and keep that thread alive until Shutdown: the children's parent-death
// signal is tied to the thread that spawned them. `done` runs on that thread, from a
// handler of `io`, never from inside Start or Cancel; exceptions: Shutdown() reports
// synchronously, and Start() after Shutdown() calls `done` at once with kCancelled
// ("runner is shut down"). Callbacks must not throw and must not call Shutdown or
// destroy the runner. Attempt ids must be unique among the attempts not yet reported.
//
// Requires Linux >= 5.3 (CLONE_PIDFD, poll on pidfds).

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/duration.h"
#include "common/time.h"
#include "executor/log_cap.h"
#include "executor/log_file.h"
#include "executor/orphan_guard.h"
#include "executor/runner.h"

namespace boost::asio { class io_context; }

namespace batchd::executor {

struct SubprocessRunnerOptions {
  // How many attempts may run at once (Capacity()). >= 1.
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
  // The OrphanGuard to use instead of forking one (not owned; must outlive the runner).
  // Forked first thing in main, while the process is small, its helper shares fewer
  // pages copy-on-write with batchd: a guard forked after loading a 200-task DAG and
  // opening the store cost ~200 page faults and ~5 ms of CPU over the run.
  OrphanGuard* guard = nullptr;
  // Cap on each attempt's log file in bytes; 0: unlimited. Past it the log keeps its head
  // and its last MiB, with marker lines saying how much was dropped (LogCap, docs/logs.md).
  uint64_t log_max_bytes = uint64_t{64} << 20;
  // How often the logs of running attempts are checked against log_max_bytes: the most a
  // log can outgrow its cap is what its task writes in this time.
  Millis log_check_interval = std::chrono::seconds(1);
  // Source of started_at/ended_at; null means the system clock. Not owned; must
  // outlive the runner.
  const Clock* clock = nullptr;
};

class SubprocessRunner final : public TaskRunner {
 public:
  SubprocessRunner(boost::asio::io_context& io, SubprocessRunnerOptions options);
  ~SubprocessRunner() override;  // Shutdown(options.shutdown_grace)
  SubprocessRunner(const SubprocessRunner&) = delete;
  SubprocessRunner& operator=(const SubprocessRunner&) = delete;

  void Start(AttemptSpec spec, DoneCallback done) override;
  void Cancel(uint64_t attempt_id) override;
  int Capacity() const override { return options_.workers; }

  // Stops accepting work, cancels everything queued or running (SIGTERM to each
  // process group, SIGKILL after `grace`), and returns once every child is reaped and
  // every callback has run. Blocks the io thread meanwhile (at most `grace` plus the
  // time SIGKILL takes). Idempotent.
  void Shutdown(Millis grace);

  // Tasks start with every signal at SIG_DFL, as of a scan of this process's dispositions
  // at most this old (SignalsToReset). So for up to this long after this process ignores a
  // signal, tasks may start with it ignored too (SIG_IGN survives exec; a caught signal does
  // not) -- except HUP, INT, QUIT, PIPE, TERM, USR1, USR2 and CHLD, which are reset always.
  // batchd sets its own dispositions before its first spawn.
  static constexpr std::chrono::seconds kSignalRescanInterval{1};

 private:
  struct Attempt;
  enum class KilledFor { kNothing, kTimeout, kCancel };

  // Spawns the attempt now; a spawn error is reported through a posted handler.
  static void RemoveLogIfEmpty(const std::string& log_path);
  void Launch(Attempt& attempt);
  // The signals a child must set back to SIG_DFL before exec: those this process catches
  // or ignores. Scanning all 64 dispositions takes 64 sigaction() calls (~30 us here), which
  // the child would pay on every spawn while the engine thread waits (glibc's posix_spawn
  // does); dispositions change only while batchd sets up its signal handling, so the scan
  // is redone at most every kSignalRescanInterval, with a fixed list of common ones added.
  const std::vector<int>& SignalsToReset();
  // Reports a result known at once from a posted handler: never from inside Start/Cancel.
  void PostReport(Attempt& a, AttemptResult result);
  void WaitForExit(Attempt& a);
  void ArmDeadline(Attempt& a);
  // Arms the periodic check of running attempts' log sizes, unless it is armed already.
  void ArmLogCheck();
  void OnLogCheck();
  void OnDeadline(Attempt& a);
  // SIGTERMs the group now and SIGKILLs it `grace` later (a later, shorter grace wins).
  void Terminate(Attempt& a, KilledFor why, Millis grace);
  // The leader has exited (or must be reaped now): clears out its group, reaps it (blocking),
  // and reports.
  void Finish(uint64_t attempt_id);
  // Whether the group's leader has exited (a zombie not yet reaped), without reaping it.
  static bool LeaderExited(const Attempt& a);
  // Removes the attempt from live_, starts the next queued one, and calls `done`.
  void Report(uint64_t attempt_id, AttemptResult result);
  // The live attempt a handler was armed for, or null if it has been reported since.
  Attempt* Find(uint64_t attempt_id, uint64_t serial);
  SysMillis Now() const;
  // The result of an attempt cancelled before it was spawned.
  AttemptResult NeverSpawned(const AttemptSpec& spec, std::string error = "");

  boost::asio::io_context& io_;
  const SubprocessRunnerOptions options_;
  int devnull_fd_ = -1;       // /dev/null, O_CLOEXEC, the stdin of every attempt
  void* child_stack_ = nullptr;  // for the clone()d child, while it shares our memory
  std::unique_ptr<OrphanGuard> own_guard_;  // forked here when options_.guard is null
  OrphanGuard* guard_ = nullptr;            // null when options_.orphan_guard is off
  const LogCap log_cap_;
  struct LogCheckTimer;
  std::unique_ptr<LogCheckTimer> log_check_;  // armed while capped logs are open
  bool log_check_armed_ = false;
  int capped_logs_open_ = 0;  // attempts holding their log open for the check
  std::vector<int> reset_signals_;                             // SignalsToReset()
  std::optional<std::chrono::steady_clock::time_point> signals_scanned_at_;  // never yet: nullopt

  std::deque<uint64_t> queue_;                                     // waiting for capacity
  std::unordered_map<uint64_t, std::unique_ptr<Attempt>> live_;    // queued + running
  int running_ = 0;
  uint64_t next_serial_ = 0;
  bool stopping_ = false;
  // Lets handlers still queued in io_ after the runner is gone do nothing.
  std::shared_ptr<SubprocessRunner*> self_;
};

// Whether `command` can be exec'd without a shell: only words of [A-Za-z0-9_./=:,+@%-]
// separated by spaces, the first word not an assignment and not a shell builtin or
// keyword. On success fills `argv` with the words. Exposed for tests.
bool SplitPlainCommand(std::string_view command, std::vector<std::string>* argv);

}  // namespace batchd::executor
