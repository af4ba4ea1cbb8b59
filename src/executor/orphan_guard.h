#pragma once
// OrphanGuard: kills the process groups of running attempts when this process dies,
// however it dies (`kill -9` included).
//
// PR_SET_PDEATHSIG reaches only a group's leader; the background jobs of a task's shell
// would otherwise outlive the daemon until its next start. A helper process, forked once
// at construction, keeps the set of live process groups from "started"/"ended" records
// on a socket. When the socket reaches end-of-file (this process died, or the guard was
// destroyed) it SIGKILLs every group still in the set and exits. Cost per attempt: two
// 8-byte sends.
//
// The helper only runs async-signal-safe code on memory that existed before the fork,
// which makes forking from a multi-threaded process safe, and it closes every other fd
// first: it must not keep the data-directory lock or the database open.
//
// Thread rules: Started/Ended from any thread. Ended(pgid) must come before the group's
// leader is reaped, so that the helper can never kill a recycled process group.

#include <sys/types.h>

namespace batchd::executor {

class OrphanGuard {
 public:
  // Forks the helper. Without one (fork failed), active() is false and the calls do nothing.
  OrphanGuard();
  // Closes the socket (the helper kills whatever is still registered, then exits) and
  // reaps the helper.
  ~OrphanGuard();
  OrphanGuard(const OrphanGuard&) = delete;
  OrphanGuard& operator=(const OrphanGuard&) = delete;

  bool active() const { return fd_ >= 0; }
  pid_t helper_pid() const { return helper_; }
  void Started(pid_t pgid);
  void Ended(pid_t pgid);

 private:
  void Send(char op, pid_t pgid);

  int fd_ = -1;
  pid_t helper_ = -1;
};

}  // namespace batchd::executor
