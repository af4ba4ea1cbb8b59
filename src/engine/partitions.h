#pragma once
// Expands a task's `partitions` into partition names at run start.

#include <sys/types.h>

#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "dag/dag.h"
#include "executor/orphan_guard.h"

namespace batchd::engine {

struct PartitionCommandLimits {
  size_t max_partitions = dag::kMaxPartitions;
  size_t max_output_bytes = 32 * 1024 * 1024;  // a million names of 32 bytes
  // For the whole command: its output and its exit.
  Millis timeout = std::chrono::seconds(60);
  // Once the command has closed its output, how long it may take to exit (a command that
  // closes stdout and keeps running must not hold its run until the timeout).
  Millis exit_after_output = std::chrono::seconds(5);
};

// values -> as listed; range [a, b) -> "a".."b-1"; none -> {"-"}; command -> runs it with
// /bin/sh -c (in the task's working_dir, with `env` as the complete environment) and
// takes one partition per non-empty output line (trimmed; other bytes are kept as they
// are, UTF-8 or not). The command starts with default signal dispositions and an empty
// signal mask, like an attempt; whatever is left of its process group when it exits is
// killed. Errors name the task and the problem: exit status, timeout, too many
// partitions, too much output, no output, duplicates.
// Lets another thread kill a partitions command while it runs (shutdown). The group id
// is cleared under the lock before the leader is reaped, so Kill() can never reach a
// recycled process group. With a guard, the group is also registered with it while it
// runs, so that it dies with this process even by kill -9 (posix_spawn cannot set
// PR_SET_PDEATHSIG, and that would reach only the shell anyway).
class RunningCommand {
 public:
  explicit RunningCommand(executor::OrphanGuard* guard = nullptr) : guard_(guard) {}
  void Set(pid_t pgid);
  void Clear();
  // SIGKILL to the command's process group, now and for any command Set() later.
  void Kill();

 private:
  executor::OrphanGuard* const guard_;
  std::mutex mu_;
  pid_t pgid_ = 0;       // GUARDED_BY(mu_)
  bool killed_ = false;  // GUARDED_BY(mu_)
};

// `running`, when given, tracks the command's process group while it runs.
Result<std::vector<std::string>> ExpandPartitions(const dag::Task& task, const std::vector<std::string>& env,
                                                  const PartitionCommandLimits& limits = {},
                                                  RunningCommand* running = nullptr);

}  // namespace batchd::engine
