#pragma once
// OrphanGuard: kills the process groups of running attempts when this process dies,
// however it dies (`kill -9` included).
//
// PR_SET_PDEATHSIG reaches only a group's leader; the background jobs of a task's shell
// would otherwise outlive the daemon until its next start. A helper process, forked once
// at construction, shares a table of live process groups with this process (a
// MAP_SHARED mapping made before the fork) and blocks reading a socket it never gets
// data on. When the socket reaches end-of-file (this process died, or the guard was
// destroyed) it SIGKILLs every group still in the table and exits.
//
// Cost per attempt: a store to the shared table on each of Started and Ended, plus this
// process's index of it under an uncontended mutex; no syscall, and the helper never
// wakes. A message per call on the socket instead cost ~28 us of the daemon's CPU per
// attempt, mostly waking the helper, against ~600 us for a whole step of a chain of
// `true` tasks.
//
// The helper only runs async-signal-safe code on memory that existed before the fork,
// which makes forking from a multi-threaded process safe, and it closes every other fd
// first: it must not keep the data-directory lock or the database open.
//
// Thread rules: Started/Ended from any thread. Ended(pgid) must come before the group's
// leader is reaped, so that the helper can never kill a recycled process group. Plain
// stores keep that promise: Ended's store of 0 comes before the reap, and the helper
// reads the table only at end-of-file, which comes after this process has died or closed
// the socket, so after all of its stores; the kernel's hand-off (the socket's lock and
// wake-up) makes them visible to the helper's loads.

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

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
  // The destructor will not wait for the helper to exit (~0.8 ms: the teardown of a
  // forked copy of this process). For a process about to exit itself: the helper, left
  // to finish on its own, is reaped by whoever inherits it.
  void DetachHelper() { wait_for_helper_ = false; }
  pid_t helper_pid() const { return helper_; }
  // Registers a group. A group already registered keeps its one registration; when the
  // table is full the group is not tracked.
  void Started(pid_t pgid);
  void Ended(pid_t pgid);

 private:
  int fd_ = -1;
  pid_t helper_ = -1;
  bool wait_for_helper_ = true;
  std::atomic<int32_t>* slots_ = nullptr;  // shared with the helper; 0 = free

  // This process's index of the shared table, so that both calls are O(1).
  std::mutex mu_;
  std::unordered_map<pid_t, int32_t> slot_of_;  // registered pgid -> its slot
  std::vector<int32_t> free_slots_;             // freed slots, reused first
  int32_t never_used_ = 0;                      // slots [never_used_, end) were never taken
};

}  // namespace batchd::executor
