#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "executor/subprocess_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <system_error>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "executor/fd.h"
#include "executor/log_file.h"

// How a child is started, and why:
//
// * Not fork(): copying the page tables of a big daemon costs ~15 ms per spawn.
// * Not posix_spawn(): it is fast (glibc uses clone(CLONE_VM|CLONE_VFORK)) but cannot run
//   prctl(PR_SET_PDEATHSIG) in the child, and we want children to die with the daemon.
// * So we do what glibc's posix_spawn does, by hand: clone(CLONE_VM|CLONE_VFORK) onto a
//   small stack, and in the child only async-signal-safe calls (setpgid, prctl,
//   sigaction, dup2, chdir, execve) on memory the parent prepared; no malloc, no locks. The parent
//   thread is suspended until the child execs or exits, so it can read the child's error
//   report from shared memory afterwards. Same cost as posix_spawn, plus pdeathsig.
//   CLONE_PIDFD hands us a pidfd atomically, so the wait never races with pid reuse.
//   (ThreadSanitizer intercepts clone() as if it were fork() and cannot run this; ASan and
//   UBSan can.)
//
// PR_SET_PDEATHSIG fires when the *thread* that created the child exits, so children are
// only ever spawned from the io thread, which the owner keeps alive until Shutdown() has
// reaped every child. The child re-checks getppid() after prctl to close the window in which the
// daemon could die before the prctl took effect. pdeathsig kills only the group leader;
// the rest of the group (a shell's background jobs) is killed by OrphanGuard's helper when
// the daemon dies. Processes that leave the group (setsid, setpgid) escape every group kill.
//
// Waiting: each child's pidfd is registered with the io_context (readable once the
// child has exited) and its deadline (timeout, then kill_grace) is an Asio timer. An
// earlier design had a thread per running attempt, blocked in poll(); each step of a
// chain then paid two thread hand-offs (engine -> worker to spawn, worker -> engine to
// report), ~100 us on these VMs, against a process that itself costs ~650 us.
//
// Every signal to a process group is sent before its leader is reaped: until the zombie
// leader is reaped, its pid (= the pgid) cannot be reused, so a kill(-pgid) can never hit
// an unrelated process.
//
// The process must not ignore SIGCHLD (auto-reaping would break wait4); the constructor
// restores the default disposition if it finds it ignored. Nothing else in the process
// may wait() for arbitrary children (waitpid(-1, ...)).

namespace batchd::executor {

namespace {

constexpr size_t kChildStackSize = 64 * 1024;
using SteadyClock = std::chrono::steady_clock;

// Default search path when the env has no PATH: the one /bin/sh (dash) uses, so that
// direct exec and the shell find the same programs.
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kShell = "/bin/sh";

// What the child was doing when it failed (before exec). 0 = nothing failed.
enum ChildStage : int { kStageNone = 0, kStagePgid, kStagePdeathsig, kStageStdio, kStageChdir };

// Everything the child needs, prepared by the parent (the child must not allocate).
struct ChildArgs {
  char* const* argv = nullptr;        // argv for the exec'd program
  char* const* envp = nullptr;
  const char* const* candidates = nullptr;  // paths to try in order (PATH lookup)
  size_t n_candidates = 0;
  char** sh_argv = nullptr;  // {"/bin/sh", <slot for path>, argv[1..], null}: ENOEXEC fallback
  const char* working_dir = nullptr;  // null: inherit
  int stdin_fd = -1;
  int log_fd = -1;
  const int* reset_signals = nullptr;  // to set back to SIG_DFL (SignalsToReset)
  size_t n_reset_signals = 0;
  pid_t parent_pid = 0;
  const char* err_prefix = nullptr;  // "batchd: prog: ", for exec failures written to the log
  size_t err_prefix_len = 0;
  // Written by the child when a pre-exec step fails.
  int failed_stage = kStageNone;
  int failed_errno = 0;
};

// Async-signal-safe helpers for the child.
void WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void WriteStr(int fd, const char* s) { WriteAll(fd, s, strlen(s)); }

// The child runs on the runner's own stack, which ASan does not know: its no-return hook
// (before _exit) would warn into the child's log. Nothing here needs checking by ASan.
[[noreturn]] __attribute__((no_sanitize("address"))) void ChildFail(ChildArgs* a, ChildStage stage) {
  a->failed_stage = stage;
  a->failed_errno = errno;
  _exit(127);
}

// Runs in the cloned child, on the worker's child stack, sharing memory with the
// suspended parent thread.
__attribute__((no_sanitize("address"))) int ChildMain(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  if (setpgid(0, 0) != 0) ChildFail(a, kStagePgid);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(a, kStagePdeathsig);
  // The daemon may have died before prctl; then we were reparented and nobody will kill us.
  if (getppid() != a->parent_pid) _exit(127);

  // A fresh process: default dispositions (the daemon's handlers point into memory that
  // exec discards; its ignored SIGPIPE would survive exec) and an empty signal mask. The
  // parent listed which signals need it (SignalsToReset, from a scan at most a second old),
  // so this costs a few syscalls rather than a scan of all 64 while the parent waits.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (size_t i = 0; i < a->n_reset_signals; ++i) sigaction(a->reset_signals[i], &dfl, nullptr);
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);

  // The parent made sure both fds are >= 3, so these cannot clobber each other.
  if (dup2(a->stdin_fd, 0) < 0 || dup2(a->log_fd, 1) < 0 || dup2(a->log_fd, 2) < 0) {
    ChildFail(a, kStageStdio);
  }
  // Don't leak the daemon's other fds (sockets, the database) into tasks. Private fd
  // table (no CLONE_FILES), so this does not touch the parent's. Closed now rather than
  // marked close-on-exec: execve closes those only after it has released our memory, so
  // the daemon would already be running again while the child still holds its files, and
  // with them the epoll registrations of any it closes meanwhile (SubprocessRunner::WaitForExit).
  if (close_range(3, ~0U, 0) != 0) close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);

  if (a->working_dir != nullptr && chdir(a->working_dir) != 0) ChildFail(a, kStageChdir);

  // execvp semantics over the prepared candidates: skip "not there", remember EACCES.
  int err = ENOENT;
  bool saw_eacces = false;
  for (size_t i = 0; i < a->n_candidates; ++i) {
    const char* path = a->candidates[i];
    execve(path, a->argv, a->envp);
    err = errno;
    if (err == ENOEXEC && a->sh_argv != nullptr) {  // a script without #!: like execvp
      a->sh_argv[1] = const_cast<char*>(path);
      execve(kShell, a->sh_argv, a->envp);
      err = errno;
    }
    if (err == EACCES) {
      saw_eacces = true;
      continue;
    }
    if (err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT ||
        err == ELOOP || err == ENAMETOOLONG) {
      continue;
    }
    break;
  }
  if (saw_eacces && (err == ENOENT || err == ENOTDIR)) err = EACCES;

  // Like the shell: say so in the log and exit 127 (not found) or 126 (not executable),
  // so direct exec fails exactly as `/bin/sh -c` would.
  WriteAll(2, a->err_prefix, a->err_prefix_len);
  if (err == ENOENT || err == ENOTDIR) {
    WriteStr(2, "not found\n");
    _exit(127);
  }
  if (err == EACCES) {
    WriteStr(2, "permission denied\n");
    _exit(126);
  }
  char num[16];
  int n = 0;
  unsigned v = static_cast<unsigned>(err);
  do {
    num[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0 && n < 15);
  WriteStr(2, "cannot execute (errno ");
  while (n > 0) WriteAll(2, &num[--n], 1);
  WriteStr(2, ")\n");
  _exit(126);
}

// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string Errno(int err) { return std::strerror(err); }

bool IsSafeChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::strchr("_./=:,+@%-", c) != nullptr;
}

// Shell builtins without an equivalent program, and reserved words: these need the shell
// even when the command line is otherwise plain.
bool NeedsShell(std::string_view word) {
  static constexpr std::string_view kWords[] = {
      ".",     ":",      "alias",  "bg",     "break",  "case",    "cd",     "command", "continue",
      "do",    "done",   "elif",   "else",   "esac",   "eval",    "exec",   "exit",    "export",
      "fc",    "fg",     "fi",     "for",    "function", "getopts", "hash", "if",      "jobs",
      "local", "read",   "readonly", "return", "select", "set",   "shift",  "source",  "then",
      "times", "trap",   "type",   "ulimit", "umask",  "unalias", "unset",  "until",   "wait",
      "while"};
  return std::find(std::begin(kWords), std::end(kWords), word) != std::end(kWords);
}

std::optional<std::string_view> FindEnv(const std::vector<std::string>& env, std::string_view name) {
  for (const std::string& kv : env) {
    if (kv.size() > name.size() && kv.compare(0, name.size(), name) == 0 && kv[name.size()] == '=') {
      return std::string_view(kv).substr(name.size() + 1);
    }
  }
  return std::nullopt;
}

// The argv/envp arrays and PATH candidates for one spawn, owned by the parent.
struct ExecPlan {
  std::vector<std::string> args;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<std::string> candidates;
  std::vector<const char*> candidate_ptrs;
  std::vector<char*> sh_argv;  // only for direct exec
  std::string err_prefix;
};

void BuildPlan(const AttemptSpec& spec, bool direct_exec, ExecPlan* plan) {
  bool direct = direct_exec && SplitPlainCommand(spec.command, &plan->args);
  if (!direct) {
    plan->args = {kShell, "-c", spec.command};
    plan->candidates = {kShell};
  } else {
    const std::string& prog = plan->args[0];
    if (prog.find('/') != std::string::npos) {
      plan->candidates = {prog};
    } else {
      std::string_view path = FindEnv(spec.env, "PATH").value_or(kDefaultPath);
      size_t start = 0;
      for (;;) {
        size_t end = path.find(':', start);
        std::string_view dir = path.substr(start, end == std::string_view::npos ? path.npos : end - start);
        // An empty entry means the current directory, as in the shell.
        plan->candidates.push_back(dir.empty() ? prog : std::string(dir) + "/" + prog);
        if (end == std::string_view::npos) break;
        start = end + 1;
      }
    }
  }
  for (std::string& a : plan->args) plan->argv.push_back(a.data());
  plan->argv.push_back(nullptr);
  for (const std::string& kv : spec.env) plan->envp.push_back(const_cast<char*>(kv.c_str()));
  plan->envp.push_back(nullptr);
  for (const std::string& c : plan->candidates) plan->candidate_ptrs.push_back(c.c_str());
  if (direct) {
    plan->sh_argv.push_back(const_cast<char*>(kShell));
    plan->sh_argv.push_back(nullptr);  // the child puts the script's path here
    for (size_t i = 1; i < plan->args.size(); ++i) plan->sh_argv.push_back(plan->args[i].data());
    plan->sh_argv.push_back(nullptr);
  }
  plan->err_prefix = "batchd: " + (direct ? plan->args[0] : std::string(kShell)) + ": ";
}

}  // namespace

bool SplitPlainCommand(std::string_view command, std::vector<std::string>* argv) {
  argv->clear();
  for (char c : command) {
    if (c != ' ' && !IsSafeChar(c)) return false;
  }
  size_t i = 0;
  while (i < command.size()) {
    while (i < command.size() && command[i] == ' ') ++i;
    size_t start = i;
    while (i < command.size() && command[i] != ' ') ++i;
    if (i > start) argv->emplace_back(command.substr(start, i - start));
  }
  if (argv->empty() || (*argv)[0].find('=') != std::string::npos || NeedsShell((*argv)[0])) {
    argv->clear();
    return false;
  }
  return true;
}


namespace asio = boost::asio;


struct SubprocessRunner::LogCheckTimer {
  explicit LogCheckTimer(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
};

struct SubprocessRunner::Attempt {
  AttemptSpec spec;
  DoneCallback done;
  uint64_t serial = 0;      // tells this attempt from a later one with the same id
  bool launched = false;    // spawned (or failed to spawn): holds a slot of Capacity()
  // Known result whose report is posted but has not run yet (spawn error, cancelled
  // while queued); Shutdown reports it at once.
  std::optional<AttemptResult> pending_report;

  // While the process runs:
  pid_t pid = 0;
  std::optional<asio::posix::stream_descriptor> pidfd;
  std::optional<asio::steady_timer> deadline;
  SysMillis started_at{};
  KilledFor killed_for = KilledFor::kNothing;
  std::optional<SteadyClock::time_point> term_at;  // when the timeout SIGTERMs the group
  std::optional<SteadyClock::time_point> kill_at;  // when the SIGTERM escalates to SIGKILL
  bool sigkilled = false;
  // The log file, kept open while the process runs when its size is capped.
  UniqueFd log_fd;
  LogCap::State log_state;
};

SubprocessRunner::SubprocessRunner(asio::io_context& io, SubprocessRunnerOptions options)
    : io_(io),
      options_(std::move(options)),
      log_cap_(options_.log_max_bytes),
      log_check_(std::make_unique<LogCheckTimer>(io)),
      self_(std::make_shared<SubprocessRunner*>(this)) {
  if (options_.workers < 1) throw std::invalid_argument("SubprocessRunner: workers must be >= 1");
  struct sigaction chld;
  if (sigaction(SIGCHLD, nullptr, &chld) == 0 &&
      (chld.sa_handler == SIG_IGN || (chld.sa_flags & SA_NOCLDWAIT) != 0)) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &dfl, nullptr);
  }
  // Out of fds/memory at startup is not an expected failure: throw, cleanly.
  devnull_fd_ = AboveStdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (devnull_fd_ < 0) throw std::system_error(errno, std::generic_category(), "open /dev/null");
  void* stack = mmap(nullptr, kChildStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int err = errno;
    close(devnull_fd_);
    throw std::system_error(err, std::generic_category(), "mmap");
  }
  child_stack_ = stack;
  try {
    if (options_.orphan_guard && options_.guard != nullptr) {
      guard_ = options_.guard;
    } else if (options_.orphan_guard) {
      own_guard_ = std::make_unique<OrphanGuard>();
      guard_ = own_guard_.get();
    }
  } catch (...) {
    close(devnull_fd_);
    munmap(child_stack_, kChildStackSize);
    throw;
  }
}

SubprocessRunner::~SubprocessRunner() {
  Shutdown(options_.shutdown_grace);
  *self_ = nullptr;
  close(devnull_fd_);
  munmap(child_stack_, kChildStackSize);
}

SysMillis SubprocessRunner::Now() const {
  if (options_.clock != nullptr) return options_.clock->Now();
  return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
}

SubprocessRunner::Attempt* SubprocessRunner::Find(uint64_t attempt_id, uint64_t serial) {
  auto it = live_.find(attempt_id);
  return it != live_.end() && it->second->serial == serial ? it->second.get() : nullptr;
}

AttemptResult SubprocessRunner::NeverSpawned(const AttemptSpec& spec, std::string error) {
  AttemptResult r;
  r.attempt_id = spec.attempt_id;
  r.end = AttemptEnd::kCancelled;
  r.started_at = r.ended_at = Now();
  r.error = std::move(error);
  return r;
}

void SubprocessRunner::Start(AttemptSpec spec, DoneCallback done) {
  if (stopping_) {
    done(NeverSpawned(spec, "runner is shut down"));
    return;
  }
  const uint64_t id = spec.attempt_id;
  auto a = std::make_unique<Attempt>();
  a->spec = std::move(spec);
  a->done = std::move(done);
  a->serial = ++next_serial_;
  Attempt& attempt = *a;
  live_[id] = std::move(a);
  if (running_ < options_.workers) {
    Launch(attempt);
  } else {
    queue_.push_back(id);
  }
}

void SubprocessRunner::Cancel(uint64_t attempt_id) {
  auto it = live_.find(attempt_id);
  if (it == live_.end()) return;  // finished or unknown: nothing to do
  Attempt& a = *it->second;
  if (a.pending_report) return;  // already has its result
  if (a.pid == 0) {              // queued: never spawned
    queue_.erase(std::find(queue_.begin(), queue_.end(), attempt_id));
    PostReport(a, NeverSpawned(a.spec));
    return;
  }
  Terminate(a, KilledFor::kCancel, a.spec.kill_grace);
}

// An attempt that printed nothing leaves no file: a million silent partitions would
// otherwise leave a million inodes. Each attempt has a path of its own.
void SubprocessRunner::RemoveLogIfEmpty(const std::string& log_path) {
  struct stat st {};
  if (!log_path.empty() && ::stat(log_path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
    ::unlink(log_path.c_str());
}

void SubprocessRunner::Launch(Attempt& attempt) {
  ++running_;
  attempt.launched = true;
  const AttemptSpec& spec = attempt.spec;
  attempt.started_at = Now();
  auto spawn_error = [&](std::string msg) {
    RemoveLogIfEmpty(spec.log_path);       // the error is the attempt's, not in its log
    AttemptResult r;
    r.attempt_id = spec.attempt_id;
    r.end = AttemptEnd::kSpawnError;
    r.error = std::move(msg);
    r.started_at = attempt.started_at;
    r.ended_at = Now();
    PostReport(attempt, std::move(r));
  };
  auto wd_error = [&](int err) {
    if (err == ENOENT) return "working directory '" + spec.working_dir + "' does not exist";
    if (err == ENOTDIR) return "working directory '" + spec.working_dir + "' is not a directory";
    return "cannot change to working directory '" + spec.working_dir + "': " + Errno(err);
  };

  // Checked here rather than only in the child, for a precise message.
  if (!spec.working_dir.empty()) {
    struct stat st;
    if (stat(spec.working_dir.c_str(), &st) != 0) return spawn_error(wd_error(errno));
    if (!S_ISDIR(st.st_mode)) return spawn_error(wd_error(ENOTDIR));
  }
  UniqueFd log(OpenLogFile(spec.log_path));
  if (log.get() < 0) return spawn_error("cannot open log file '" + spec.log_path + "': " + Errno(errno));

  ExecPlan plan;
  BuildPlan(spec, options_.direct_exec, &plan);
  ChildArgs args;
  args.argv = plan.argv.data();
  args.envp = plan.envp.data();
  args.candidates = plan.candidate_ptrs.data();
  args.n_candidates = plan.candidate_ptrs.size();
  args.sh_argv = plan.sh_argv.empty() ? nullptr : plan.sh_argv.data();
  args.working_dir = spec.working_dir.empty() ? nullptr : spec.working_dir.c_str();
  args.stdin_fd = devnull_fd_;
  args.log_fd = log.get();
  const std::vector<int>& reset_signals = SignalsToReset();
  args.reset_signals = reset_signals.data();
  args.n_reset_signals = reset_signals.size();
  args.parent_pid = getpid();
  args.err_prefix = plan.err_prefix.c_str();
  args.err_prefix_len = plan.err_prefix.size();

  // Block every signal while the child shares our memory: a handler running in the child
  // before it resets dispositions would run on the parent's data. The child unblocks.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int pidfd = -1;
  char* stack_top = static_cast<char*>(child_stack_) + kChildStackSize;
  pid_t pid = clone(ChildMain, stack_top, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args, &pidfd);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return spawn_error("cannot start process: " + Errno(clone_errno));
  UniqueFd pidfd_owner(pidfd);

  if (args.failed_stage != kStageNone) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int err = args.failed_errno;
    switch (args.failed_stage) {
      case kStagePgid: return spawn_error("cannot create a process group: " + Errno(err));
      case kStagePdeathsig: return spawn_error("cannot set the parent-death signal: " + Errno(err));
      case kStageStdio: return spawn_error("cannot redirect stdin/stdout/stderr: " + Errno(err));
      case kStageChdir: return spawn_error(wd_error(err));
      default: return spawn_error("cannot start process: " + Errno(err));
    }
  }

  attempt.pid = pid;
  if (guard_) guard_->Started(pid);
  // The child has its own copy of the log; ours is kept only to watch a capped log's size.
  if (!log_cap_.Unlimited() && !spec.log_path.empty()) {
    attempt.log_fd = std::move(log);
    ++capped_logs_open_;
    ArmLogCheck();
  }
  attempt.pidfd.emplace(io_, pidfd_owner.Release());
  if (spec.timeout) {
    attempt.term_at = SteadyClock::now() + *spec.timeout;
    ArmDeadline(attempt);
  }
  WaitForExit(attempt);
}

const std::vector<int>& SubprocessRunner::SignalsToReset() {
  const auto now = SteadyClock::now();
  if (signals_scanned_at_ && now - *signals_scanned_at_ < kSignalRescanInterval) return reset_signals_;
  signals_scanned_at_ = now;
  // Always: the signals daemon.cc and run_command.cc catch or ignore (HUP, INT, PIPE, TERM),
  // and the other ones programs commonly do, so that none set up since the last scan
  // reaches a task.
  reset_signals_ = {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD};
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    if (std::find(reset_signals_.begin(), reset_signals_.end(), sig) != reset_signals_.end()) continue;
    struct sigaction current;
    if (sigaction(sig, nullptr, &current) == 0 && current.sa_handler != SIG_DFL) reset_signals_.push_back(sig);
  }
  return reset_signals_;
}

void SubprocessRunner::PostReport(Attempt& a, AttemptResult result) {
  a.pending_report = std::move(result);
  asio::post(io_, [self = self_, id = a.spec.attempt_id, serial = a.serial] {
    if (*self == nullptr) return;
    if (Attempt* a = (*self)->Find(id, serial); a != nullptr) (*self)->Report(id, *a->pending_report);
  });
}

void SubprocessRunner::WaitForExit(Attempt& a) {
  a.pidfd->async_wait(asio::posix::descriptor_base::wait_read,
                      [self = self_, id = a.spec.attempt_id, serial = a.serial](const boost::system::error_code& ec) {
                        if (ec == asio::error::operation_aborted || *self == nullptr) return;
                        Attempt* a = (*self)->Find(id, serial);
                        if (a == nullptr) return;
                        // A readiness is not proof of the exit. Boost.Asio 1.74 gives a closed
                        // descriptor's reactor slot to the next descriptor registered at once,
                        // even while a readiness of the closed one is still queued; and the
                        // kernel keeps the epoll registration of a socket Asio opened itself
                        // (closed without EPOLL_CTL_DEL) while any copy of its file is open. The
                        // next descriptor is often a new attempt's pidfd. Acting on such a
                        // readiness SIGKILLed a running task's group and recorded it as killed
                        // (4 of 134 runs of a daemon test on a loaded machine).
                        if (!ec && !LeaderExited(*a)) return (*self)->WaitForExit(*a);
                        // Any error cannot happen on a pidfd; the blocking reap copes.
                        (*self)->Finish(id);
                      });
}

void SubprocessRunner::ArmDeadline(Attempt& a) {
  std::optional<SteadyClock::time_point> next;
  if (a.killed_for == KilledFor::kNothing) next = a.term_at;
  else if (!a.sigkilled) next = a.kill_at;
  if (!next) {
    if (a.deadline) a.deadline->cancel();
    return;
  }
  if (!a.deadline) a.deadline.emplace(io_);
  a.deadline->expires_at(*next);  // cancels the previous wait, if any
  a.deadline->async_wait([self = self_, id = a.spec.attempt_id, serial = a.serial](const boost::system::error_code& ec) {
    if (ec || *self == nullptr) return;
    if (Attempt* a = (*self)->Find(id, serial); a != nullptr) (*self)->OnDeadline(*a);
  });
}

void SubprocessRunner::OnDeadline(Attempt& a) {
  const auto now = SteadyClock::now();
  if (a.killed_for == KilledFor::kNothing) {
    if (a.term_at && now >= *a.term_at) return Terminate(a, KilledFor::kTimeout, a.spec.kill_grace);
  } else if (!a.sigkilled && a.kill_at && now >= *a.kill_at) {
    kill(-a.pid, SIGKILL);
    a.sigkilled = true;
  }
  ArmDeadline(a);
}

void SubprocessRunner::ArmLogCheck() {
  if (log_check_armed_) return;
  log_check_armed_ = true;
  log_check_->timer.expires_after(options_.log_check_interval);
  log_check_->timer.async_wait([self = self_](const boost::system::error_code& ec) {
    if (ec || *self == nullptr) return;
    (*self)->OnLogCheck();
  });
}

void SubprocessRunner::OnLogCheck() {
  log_check_armed_ = false;
  bool any = false;
  for (auto& [id, a] : live_) {
    if (a->log_fd.get() < 0) continue;
    log_cap_.TrimRunning(a->log_fd.get(), &a->log_state);
    any = true;
  }
  if (any) ArmLogCheck();
}

void SubprocessRunner::Terminate(Attempt& a, KilledFor why, Millis grace) {
  const auto now = SteadyClock::now();
  if (a.killed_for == KilledFor::kNothing) {
    a.killed_for = why;
    kill(-a.pid, SIGTERM);
    a.kill_at = now + grace;
  } else if (a.kill_at) {  // a later, shorter grace (Shutdown) wins
    a.kill_at = std::min(*a.kill_at, now + grace);
  }
  ArmDeadline(a);
}

bool SubprocessRunner::LeaderExited(const Attempt& a) {
  siginfo_t info;
  info.si_pid = 0;
  // WNOWAIT: look, don't reap. An error (ECHILD) cannot be a live child of ours.
  return waitid(P_PID, static_cast<id_t>(a.pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != 0;
}

void SubprocessRunner::Finish(uint64_t attempt_id) {
  Attempt& a = *live_.at(attempt_id);
  // The leader is a zombie, so the group id cannot have been reused: clear out what is
  // left of the group (background jobs; or everything after a timeout/cancel, where a
  // member may have survived the SIGTERM) before reaping.
  if (options_.kill_group_after_exit || a.killed_for != KilledFor::kNothing) kill(-a.pid, SIGKILL);
  if (guard_) guard_->Ended(a.pid);  // before the reap, while the group id cannot be reused
  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  while (wait4(a.pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  a.pidfd->close();
  if (a.deadline) a.deadline->cancel();
  if (a.log_fd.get() >= 0) {
    log_cap_.Finish(a.log_fd.get(), a.spec.log_path, &a.log_state);
    a.log_fd.Reset();
    // No timer left behind: an io_context with nothing else to do may return from run().
    if (--capped_logs_open_ == 0 && log_check_armed_) {
      log_check_->timer.cancel();
      log_check_armed_ = false;
    }
  }

  // Its leader has exited; a process it left behind that writes later writes to the
  // unlinked file.
  RemoveLogIfEmpty(a.spec.log_path);

  AttemptResult r;
  r.attempt_id = attempt_id;
  r.pid = a.pid;
  r.started_at = a.started_at;
  r.ended_at = Now();
  r.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  r.max_rss_kb = ru.ru_maxrss;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  switch (a.killed_for) {
    case KilledFor::kTimeout: r.end = AttemptEnd::kTimeout; break;
    case KilledFor::kCancel: r.end = AttemptEnd::kCancelled; break;
    case KilledFor::kNothing:
      r.end = (r.exit_code && *r.exit_code == 0) ? AttemptEnd::kSuccess : AttemptEnd::kFailed;
      break;
  }
  Report(attempt_id, std::move(r));
}

void SubprocessRunner::Report(uint64_t attempt_id, AttemptResult result) {
  auto it = live_.find(attempt_id);
  std::unique_ptr<Attempt> a = std::move(it->second);
  live_.erase(it);
  if (a->launched) --running_;
  // The freed slot goes to the next queued attempt before the callback runs.
  while (!stopping_ && running_ < options_.workers && !queue_.empty()) {
    const uint64_t next = queue_.front();
    queue_.pop_front();
    Launch(*live_.at(next));
  }
  a->done(std::move(result));
}

void SubprocessRunner::Shutdown(Millis grace) {
  stopping_ = true;  // a second call finds nothing live or queued: a no-op
  // Queued attempts were never spawned; known results (spawn errors) are reported now.
  std::vector<uint64_t> ids;
  for (const auto& [id, a] : live_) ids.push_back(id);
  for (uint64_t id : ids) {
    Attempt& a = *live_.at(id);
    if (a.pending_report) {
      Report(id, *a.pending_report);
    } else if (a.pid == 0) {
      Report(id, NeverSpawned(a.spec));
    } else {
      Terminate(a, KilledFor::kCancel, grace);
    }
  }
  queue_.clear();
  // Wait here, not in io_: the owner may be about to stop or destroy the io_context.
  while (!live_.empty()) {
    std::vector<pollfd> fds;
    std::vector<uint64_t> polled;
    auto next_kill = SteadyClock::time_point::max();
    for (const auto& [id, a] : live_) {
      fds.push_back({a->pidfd->native_handle(), POLLIN, 0});
      polled.push_back(id);
      if (!a->sigkilled && a->kill_at) next_kill = std::min(next_kill, *a->kill_at);
    }
    int timeout_ms = -1;
    if (next_kill != SteadyClock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(next_kill - SteadyClock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left, 0, 24 * 3600 * 1000));
    }
    int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {  // cannot happen with valid fds: kill and reap blocking
      for (uint64_t id : polled) {
        kill(-live_.at(id)->pid, SIGKILL);
        Finish(id);
      }
      break;
    }
    for (size_t i = 0; n > 0 && i < fds.size(); ++i)
      if (fds[i].revents != 0) Finish(polled[i]);
    const auto now = SteadyClock::now();
    for (auto& [id, a] : live_) {
      if (!a->sigkilled && a->kill_at && now >= *a->kill_at) {
        kill(-a->pid, SIGKILL);
        a->sigkilled = true;
      }
    }
  }
}

}  // namespace batchd::executor
