#include "engine/partitions.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>

namespace batchd::engine {
namespace {

std::string Trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

using SteadyClock = std::chrono::steady_clock;

// Starts `sh -c command` in a process group of its own, stdout to `out_fd`, stdin from
// /dev/null, every signal at its default and none blocked (the daemon ignores SIGPIPE and
// blocks signals in its threads: a command must not inherit that). glibc's posix_spawn
// leaves only its two internal signals (32, 33) ignored, which no program uses itself.
// Returns 0 or an errno.
int Spawn(const dag::Task& task, const std::vector<std::string>& env, int out_fd, pid_t* pid) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  if (!task.working_dir.empty()) posix_spawn_file_actions_addchdir_np(&actions, task.working_dir.c_str());
  // Everything else is closed before the exec, not at it: close-on-exec files stay open
  // in the child until after posix_spawn has returned, and with them the epoll
  // registrations of any the engine closes meanwhile (SubprocessRunner::WaitForExit).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const char* argv[] = {"/bin/sh", "-c", task.partitions.command.c_str(), nullptr};
  int rc = posix_spawn(pid, "/bin/sh", &actions, &attr, const_cast<char**>(argv), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

int MillisLeft(SteadyClock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 24 * 3600 * 1000));
}

enum class Outcome { kEnded, kTimedOut, kTooBig, kLingered };

// Reads the command's output until it closes it, the deadline passes or it prints too much.
Outcome ReadOutput(int fd, SteadyClock::time_point deadline, size_t max_bytes, std::string* output) {
  char buf[65536];
  for (;;) {
    const int left = MillisLeft(deadline);
    if (left == 0) return Outcome::kTimedOut;
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, left);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return Outcome::kTimedOut;
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Outcome::kEnded;
    output->append(buf, static_cast<size_t>(r));
    if (output->size() > max_bytes) return Outcome::kTooBig;
  }
}

// Waits until the leader `pid` has exited, without reaping it (its zombie keeps the group
// id from being reused while the rest of the group is killed). False if it is still
// running at `deadline`.
bool WaitForExit(pid_t pid, SteadyClock::time_point deadline) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  for (;;) {
    siginfo_t info;
    info.si_pid = 0;
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != 0) break;
    const int left = MillisLeft(deadline);
    if (left == 0) {
      if (pidfd >= 0) ::close(pidfd);
      return false;
    }
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, left);
    } else {
      ::usleep(10000);  // no pidfd_open (Linux < 5.3): look again shortly
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  return true;
}

Result<std::vector<std::string>> RunPartitionCommand(const dag::Task& task, const std::vector<std::string>& env,
                                                     const PartitionCommandLimits& limits,
                                                     RunningCommand* running) {
  const std::string where = "task '" + task.id + "': partitions command ";
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::IoError(where + "could not create a pipe: " + std::strerror(errno));
  pid_t pid = 0;
  int rc = Spawn(task, env, fds[1], &pid);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return Status::IoError(where + "could not start: " + std::strerror(rc));
  }
  if (running) running->Set(pid);
  const auto deadline = SteadyClock::now() + limits.timeout;
  std::string output;
  Outcome outcome = ReadOutput(fds[0], deadline, limits.max_output_bytes, &output);
  ::close(fds[0]);
  if (outcome == Outcome::kEnded && !WaitForExit(pid, std::min(deadline, SteadyClock::now() + limits.exit_after_output)))
    outcome = SteadyClock::now() >= deadline ? Outcome::kTimedOut : Outcome::kLingered;
  // The leader has exited or is to be killed: nothing of its group outlives the command
  // (background jobs it forgot), as for an attempt.
  ::kill(-pid, SIGKILL);
  if (running) running->Clear();  // before reaping: see RunningCommand
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}

  switch (outcome) {
    case Outcome::kTimedOut: return Status::InvalidArgument(where + "timed out after " + FormatDuration(limits.timeout));
    case Outcome::kTooBig:
      return Status::InvalidArgument(where + "printed more than " + std::to_string(limits.max_output_bytes) + " bytes");
    case Outcome::kLingered:
      return Status::InvalidArgument(where + "closed its output but did not exit within " +
                                     FormatDuration(limits.exit_after_output));
    case Outcome::kEnded: break;
  }
  if (WIFSIGNALED(status))
    return Status::InvalidArgument(where + "was killed by signal " + std::to_string(WTERMSIG(status)));
  if (WEXITSTATUS(status) != 0)
    return Status::InvalidArgument(where + "failed with exit code " + std::to_string(WEXITSTATUS(status)));
  std::vector<std::string> names;
  std::set<std::string> seen;
  size_t pos = 0;
  while (pos <= output.size()) {
    size_t nl = output.find('\n', pos);
    if (nl == std::string::npos) nl = output.size();
    std::string line = Trim(output.substr(pos, nl - pos));
    pos = nl + 1;
    if (line.empty()) continue;
    if (!seen.insert(line).second)
      return Status::InvalidArgument(where + "printed the partition '" + line + "' twice");
    names.push_back(std::move(line));
    if (names.size() > limits.max_partitions)
      return Status::InvalidArgument(where + "printed more than " + std::to_string(limits.max_partitions) +
                                     " partitions");
  }
  if (names.empty()) return Status::InvalidArgument(where + "printed no partitions");
  return names;
}

}  // namespace

void RunningCommand::Set(pid_t pgid) {
  std::lock_guard lock(mu_);
  pgid_ = pgid;
  if (guard_) guard_->Started(pgid);
  if (killed_) ::kill(-pgid_, SIGKILL);  // Kill() came first: this one must not run either
}

void RunningCommand::Clear() {
  std::lock_guard lock(mu_);
  if (guard_ && pgid_ > 0) guard_->Ended(pgid_);
  pgid_ = 0;
}

void RunningCommand::Kill() {
  std::lock_guard lock(mu_);
  killed_ = true;
  if (pgid_ > 0) ::kill(-pgid_, SIGKILL);
}

Result<std::vector<std::string>> ExpandPartitions(const dag::Task& task, const std::vector<std::string>& env,
                                                  const PartitionCommandLimits& limits, RunningCommand* running) {
  using Kind = dag::Partitions::Kind;
  switch (task.partitions.kind) {
    case Kind::kNone:
      return std::vector<std::string>{"-"};
    case Kind::kValues:
      return task.partitions.values;
    case Kind::kRange: {
      std::vector<std::string> out;
      for (int64_t v = task.partitions.range_begin; v < task.partitions.range_end; ++v) out.push_back(std::to_string(v));
      return out;
    }
    case Kind::kCommand:
      return RunPartitionCommand(task, env, limits, running);
  }
  return Status::Internal("unknown partition kind");
}

}  // namespace batchd::engine
