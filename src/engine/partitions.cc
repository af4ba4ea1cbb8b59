#include "engine/partitions.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

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

Result<std::vector<std::string>> RunPartitionCommand(const dag::Task& task, const std::vector<std::string>& env,
                                                     const PartitionCommandLimits& limits,
                                                     RunningCommand* running) {
  const std::string where = "task '" + task.id + "': partitions command ";
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::IoError(where + "could not create a pipe: " + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  if (!task.working_dir.empty()) posix_spawn_file_actions_addchdir_np(&actions, task.working_dir.c_str());
  // Everything else is closed before the exec, not at it: close-on-exec files stay open
  // in the child until after posix_spawn has returned, and with them the epoll
  // registrations of any the engine closes meanwhile (SubprocessRunner::WaitForExit).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const char* argv[] = {"/bin/sh", "-c", task.partitions.command.c_str(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, const_cast<char**>(argv), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return Status::IoError(where + "could not start: " + std::strerror(rc));
  }
  if (running) running->Set(pid);
  std::string output;
  auto deadline = std::chrono::steady_clock::now() + limits.timeout;
  bool timed_out = false, too_big = false;
  char buf[65536];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) { timed_out = true; break; }
    pollfd p{fds[0], POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) { timed_out = true; break; }
    ssize_t r = ::read(fds[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    output.append(buf, static_cast<size_t>(r));
    if (output.size() > limits.max_output_bytes) { too_big = true; break; }
  }
  ::close(fds[0]);
  if (timed_out || too_big) ::kill(-pid, SIGKILL);
  int status = 0;
  if (running) running->Clear();  // before reaping: see RunningCommand
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}

  if (timed_out)
    return Status::InvalidArgument(where + "timed out after " + FormatDuration(limits.timeout));
  if (too_big)
    return Status::InvalidArgument(where + "printed more than " + std::to_string(limits.max_output_bytes) + " bytes");
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
