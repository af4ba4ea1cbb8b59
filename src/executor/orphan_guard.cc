#include "executor/orphan_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <initializer_list>
#include <new>

namespace batchd::executor {

namespace {

// More groups than this alive at once are not tracked (the recovery at the next start
// still finds them). 256 KiB of shared table.
constexpr int32_t kMaxGroups = 1 << 16;
constexpr size_t kTableBytes = kMaxGroups * sizeof(std::atomic<int32_t>);

// Two processes share the slots: their atomics must hold the value alone, with no lock
// kept elsewhere in one process's memory.
static_assert(std::atomic<int32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<int32_t>) == sizeof(int32_t));

[[noreturn]] void HelperMain(int fd, const std::atomic<int32_t>* slots) {
  prctl(PR_SET_NAME, "batchd-guard");
  // Only end-of-file ends the helper: not the operator's Ctrl-C to the foreground group,
  // not a SIGTERM meant for the daemon.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) signal(sig, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (;;) {
    // The daemon sends nothing; anything that arrives anyway is dropped.
    char ignored[64];
    ssize_t got = recv(fd, ignored, sizeof ignored, 0);
    if (got > 0 || (got < 0 && errno == EINTR)) continue;
    break;  // end-of-file (or an error): the daemon is gone
  }
  for (int32_t i = 0; i < kMaxGroups; ++i) {
    int32_t pgid = slots[i].load(std::memory_order_acquire);
    if (pgid > 0) kill(-pgid, SIGKILL);
  }
  _exit(0);
}

}  // namespace

OrphanGuard::OrphanGuard() {
  // Mapped before the fork, so that the helper needs no allocation after it and sees the
  // daemon's stores without any message.
  void* table = mmap(nullptr, kTableBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (table == MAP_FAILED) return;
  auto* slots = new (table) std::atomic<int32_t>[kMaxGroups];  // zeroed: every slot free
  int fds[2];
  // A socket only to learn of the daemon's death: the helper's end reaches end-of-file when
  // the daemon's end is closed, by the destructor or by the kernel when the daemon dies.
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    munmap(table, kTableBytes);
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    munmap(table, kTableBytes);
    return;
  }
  if (pid == 0) {
    // fds[1] becomes fd 3; everything else above stderr is closed (the data-directory
    // lock, the database, sockets). The daemon's end goes first, whatever its number:
    // kept open here, it would hide the daemon's death.
    close(fds[0]);
    int fd = fds[1];
    if (fd != 3) {
      if (dup2(fd, 3) < 0) _exit(1);
      fd = 3;
    }
    close_range(4, ~0U, 0);
    HelperMain(fd, slots);
  }
  close(fds[1]);
  fd_ = fds[0];
  helper_ = pid;
  slots_ = slots;
}

OrphanGuard::~OrphanGuard() {
  if (fd_ < 0) return;
  close(fd_);
  while (wait_for_helper_ && waitpid(helper_, nullptr, 0) < 0 && errno == EINTR) {
  }
  munmap(slots_, kTableBytes);
}

void OrphanGuard::Started(pid_t pgid) {
  // 0 marks a free slot, and kill(-pgid) of anything but a positive pgid would reach the
  // helper's own group or a single process.
  if (fd_ < 0 || pgid <= 0) return;
  std::lock_guard lock(mu_);
  if (slot_of_.contains(pgid)) return;
  int32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else if (never_used_ < kMaxGroups) {
    slot = never_used_++;
  } else {
    return;  // full: not tracked
  }
  slot_of_.emplace(pgid, slot);
  slots_[slot].store(pgid, std::memory_order_release);
}

void OrphanGuard::Ended(pid_t pgid) {
  if (fd_ < 0) return;
  std::lock_guard lock(mu_);
  auto it = slot_of_.find(pgid);
  if (it == slot_of_.end()) return;
  // Before the caller reaps the group's leader: from here on the helper cannot kill it.
  slots_[it->second].store(0, std::memory_order_release);
  free_slots_.push_back(it->second);
  slot_of_.erase(it);
}

}  // namespace batchd::executor
