#include "executor/orphan_guard.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <initializer_list>

namespace batchd::executor {

namespace {

struct Record {
  int32_t op;  // '+' started, '-' ended
  int32_t pgid;
};

// More groups than this alive at once are not tracked (the recovery at the next start
// still finds them). Static, so the helper needs no allocation after the fork.
constexpr int kMaxGroups = 1 << 16;
pid_t g_groups[kMaxGroups];

[[noreturn]] void HelperMain(int fd) {
  prctl(PR_SET_NAME, "batchd-guard");
  // Only end-of-file ends the helper: not the operator's Ctrl-C to the foreground group,
  // not a SIGTERM meant for the daemon.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) signal(sig, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int n = 0;
  for (;;) {
    Record r;
    ssize_t got = recv(fd, &r, sizeof r, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got != static_cast<ssize_t>(sizeof r)) break;  // end-of-file (or an error): the daemon is gone
    if (r.op == '+') {
      if (n < kMaxGroups) g_groups[n++] = r.pgid;
    } else {
      for (int i = 0; i < n; ++i) {
        if (g_groups[i] == r.pgid) {
          g_groups[i] = g_groups[--n];
          break;
        }
      }
    }
  }
  for (int i = 0; i < n; ++i) kill(-g_groups[i], SIGKILL);
  _exit(0);
}

}  // namespace

OrphanGuard::OrphanGuard() {
  int fds[2];
  // A datagram socket, not a pipe: send(MSG_NOSIGNAL) cannot raise SIGPIPE in the daemon
  // if the helper is gone, and every record arrives whole.
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
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
    HelperMain(fd);
  }
  close(fds[1]);
  fd_ = fds[0];
  helper_ = pid;
}

OrphanGuard::~OrphanGuard() {
  if (fd_ < 0) return;
  close(fd_);
  while (waitpid(helper_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

void OrphanGuard::Started(pid_t pgid) { Send('+', pgid); }
void OrphanGuard::Ended(pid_t pgid) { Send('-', pgid); }

void OrphanGuard::Send(char op, pid_t pgid) {
  if (fd_ < 0) return;
  Record r{op, pgid};
  while (send(fd_, &r, sizeof r, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

}  // namespace batchd::executor
