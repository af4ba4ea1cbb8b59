#include "executor/subprocess_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
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
#include <utility>

#include "executor/fd.h"
#include "executor/log_file.h"

// How a child is started, and why (the trade-off the brief asked to write down):
//
// * Not fork(): copying the page tables of a big daemon costs ~15 ms per spawn.
// * Not posix_spawn(): it is fast (glibc uses clone(CLONE_VM|CLONE_VFORK)) but cannot run
//   prctl(PR_SET_PDEATHSIG) in the child, and we want children to die with the daemon.
// * So we do what glibc's posix_spawn does, by hand: clone(CLONE_VM|CLONE_VFORK) onto a
//   small per-worker stack, and in the child only async-signal-safe calls (setpgid, prctl,
//   sigaction, dup2, chdir, execve) on memory the parent prepared; no malloc, no locks. The parent
//   thread is suspended until the child execs or exits, so it can read the child's error
//   report from shared memory afterwards. Same cost as posix_spawn, plus pdeathsig.
//   CLONE_PIDFD hands us a pidfd atomically, so the wait never races with pid reuse.
//   (ThreadSanitizer intercepts clone() as if it were fork() and cannot run this; ASan and
//   UBSan can.)
//
// PR_SET_PDEATHSIG fires when the *thread* that created the child exits, so children are
// only ever spawned from the worker threads, which live until Shutdown() has reaped every
// child. The child re-checks getppid() after prctl to close the window in which the
// daemon could die before the prctl took effect. pdeathsig kills only the group leader;
// the rest of the group (a shell's background jobs) is killed by OrphanGuard's helper when
// the daemon dies. Processes that leave the group (setsid, setpgid) escape every group kill.
//
// Waiting: one worker thread per running attempt, from a fixed pool of `workers`
// threads, each blocked in poll() on {pidfd, its wake eventfd} with the next deadline
// (timeout, then kill_grace) as the poll timeout. Chosen over a single epoll reaper
// because the spawning thread must be long-lived anyway (pdeathsig), the per-attempt
// logic stays straight-line code, and the pool size *is* the capacity. No busy polling:
// a thread wakes only on exit, a deadline, or Cancel/Shutdown poking its eventfd.
//
// Every signal to a process group is sent by the worker before it reaps the leader:
// until the zombie leader is reaped, its pid (= the pgid) cannot be reused, so a
// kill(-pgid) can never hit an unrelated process.
//
// The process must not ignore SIGCHLD (auto-reaping would break wait4); the constructor
// restores the default disposition if it finds it ignored. Nothing else in the process
// may wait() for arbitrary children (waitpid(-1, ...)).

namespace batchd::executor {

namespace {

constexpr size_t kChildStackSize = 64 * 1024;

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

[[noreturn]] void ChildFail(ChildArgs* a, ChildStage stage) {
  a->failed_stage = stage;
  a->failed_errno = errno;
  _exit(127);
}

// Runs in the cloned child, on the worker's child stack, sharing memory with the
// suspended parent thread.
int ChildMain(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  if (setpgid(0, 0) != 0) ChildFail(a, kStagePgid);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(a, kStagePdeathsig);
  // The daemon may have died before prctl; then we were reparented and nobody will kill us.
  if (getppid() != a->parent_pid) _exit(127);

  // A fresh process: default dispositions (the daemon's handlers point into memory that
  // exec discards; its ignored SIGPIPE would survive exec) and an empty signal mask.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction old;
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler != SIG_DFL) sigaction(sig, &dfl, nullptr);
  }
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);

  // The parent made sure both fds are >= 3, so these cannot clobber each other.
  if (dup2(a->stdin_fd, 0) < 0 || dup2(a->log_fd, 1) < 0 || dup2(a->log_fd, 2) < 0) {
    ChildFail(a, kStageStdio);
  }
  // Don't leak the daemon's other fds (sockets, the database) into tasks. Private fd
  // table (no CLONE_FILES), so this does not touch the parent's. Best effort (>= 5.11).
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);

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
      // Skip the directories that do not have the program, here: a failed execve in the
      // child costs several times a stat in the parent (~8 us against ~1.5 us here), and
      // service PATHs often name directories first that hold nothing. Only what execve
      // would skip too is dropped (ENOENT, ENOTDIR); relative entries are left to the
      // child, which resolves them from the working directory.
      size_t first = 0;
      while (first + 1 < plan->candidates.size()) {
        const std::string& c = plan->candidates[first];
        if (c[0] != '/' || faccessat(AT_FDCWD, c.c_str(), F_OK, AT_EACCESS) == 0) break;
        if (errno != ENOENT && errno != ENOTDIR) break;
        ++first;
      }
      plan->candidates.erase(plan->candidates.begin(), plan->candidates.begin() + static_cast<std::ptrdiff_t>(first));
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

struct SubprocessRunner::Attempt {
  AttemptSpec spec;
  DoneCallback done;
  // GUARDED_BY(mu_):
  bool cancel = false;             // Cancel() or Shutdown() asked to kill it
  Millis cancel_grace{0};          // SIGTERM -> SIGKILL grace they asked for (smallest wins)
  Worker* worker = nullptr;        // set once a worker took it
};

struct SubprocessRunner::Worker {
  int wake_fd = -1;         // eventfd; Cancel/Shutdown write it to interrupt poll()
  void* stack = nullptr;    // kChildStackSize bytes for the clone()d child
  ~Worker() {
    if (wake_fd >= 0) close(wake_fd);
    if (stack != nullptr) munmap(stack, kChildStackSize);
  }
};

SubprocessRunner::SubprocessRunner(SubprocessRunnerOptions options) : options_(std::move(options)) {
  if (options_.workers < 1) throw std::invalid_argument("SubprocessRunner: workers must be >= 1");
  struct sigaction chld;
  if (sigaction(SIGCHLD, nullptr, &chld) == 0 &&
      (chld.sa_handler == SIG_IGN || (chld.sa_flags & SA_NOCLDWAIT) != 0)) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &dfl, nullptr);
  }
  // Out of fds/memory/threads at startup is not an expected failure: throw, cleanly.
  try {
    devnull_fd_ = AboveStdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (devnull_fd_ < 0) throw std::system_error(errno, std::generic_category(), "open /dev/null");
    // Before any worker thread exists: the helper is forked from this thread.
    if (options_.orphan_guard) guard_ = std::make_unique<OrphanGuard>();
    log_files_ = std::make_unique<LogFileReserve>(options_.spare_log_files ? options_.workers : 0);
    for (int i = 0; i < options_.workers; ++i) {
      auto w = std::make_unique<Worker>();
      w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (w->wake_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
      void* stack = mmap(nullptr, kChildStackSize, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (stack == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
      w->stack = stack;
      workers_.push_back(std::move(w));
    }
    for (auto& w : workers_) threads_.emplace_back([this, p = w.get()] { WorkerLoop(p); });
  } catch (...) {
    Shutdown(Millis(0));  // nothing was started yet; just joins the threads that exist
    if (devnull_fd_ >= 0) close(devnull_fd_);
    throw;
  }
}

SubprocessRunner::~SubprocessRunner() {
  Shutdown(options_.shutdown_grace);
  if (devnull_fd_ >= 0) close(devnull_fd_);
}

SysMillis SubprocessRunner::Now() const {
  if (options_.clock != nullptr) return options_.clock->Now();
  return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
}

void SubprocessRunner::Start(AttemptSpec spec, DoneCallback done) {
  auto a = std::make_unique<Attempt>();
  a->spec = std::move(spec);
  a->done = std::move(done);
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      live_[a->spec.attempt_id] = a.get();
      queue_.push_back(std::move(a));
      work_cv_.notify_one();
      return;
    }
  }
  AttemptResult r;
  r.attempt_id = a->spec.attempt_id;
  r.end = AttemptEnd::kCancelled;
  r.started_at = r.ended_at = Now();
  r.error = "runner is shut down";
  a->done(std::move(r));
}

void SubprocessRunner::Cancel(uint64_t attempt_id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(attempt_id);
  if (it == live_.end()) return;  // finished or unknown: nothing to do
  Attempt* a = it->second;
  Millis grace = a->spec.kill_grace;
  a->cancel_grace = a->cancel ? std::min(a->cancel_grace, grace) : grace;
  a->cancel = true;
  if (a->worker != nullptr) {
    uint64_t one = 1;
    (void)!write(a->worker->wake_fd, &one, sizeof one);
  }
}

void SubprocessRunner::Shutdown(Millis grace) {
  std::lock_guard shutdown_lock(shutdown_mu_);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [id, a] : live_) {
      a->cancel_grace = a->cancel ? std::min(a->cancel_grace, grace) : grace;
      a->cancel = true;
    }
    for (auto& w : workers_) {
      uint64_t one = 1;
      (void)!write(w->wake_fd, &one, sizeof one);
    }
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void SubprocessRunner::WorkerLoop(Worker* worker) {
  for (;;) {
    std::unique_ptr<Attempt> a;
    bool cancelled;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has been reported
      a = std::move(queue_.front());
      queue_.pop_front();
      a->worker = worker;
      cancelled = a->cancel;
    }
    AttemptResult r;
    if (cancelled) {  // cancelled while queued: never spawned
      r.attempt_id = a->spec.attempt_id;
      r.end = AttemptEnd::kCancelled;
      r.started_at = r.ended_at = Now();
    } else {
      r = Run(worker, a.get());
    }
    {
      std::lock_guard lock(mu_);
      auto it = live_.find(a->spec.attempt_id);
      if (it != live_.end() && it->second == a.get()) live_.erase(it);
    }
    a->done(std::move(r));
  }
}

AttemptResult SubprocessRunner::Run(Worker* worker, Attempt* attempt) {
  const AttemptSpec& spec = attempt->spec;
  AttemptResult r;
  r.attempt_id = spec.attempt_id;
  r.started_at = Now();
  auto spawn_error = [&](std::string msg) {
    r.end = AttemptEnd::kSpawnError;
    r.error = std::move(msg);
    r.ended_at = Now();
    return r;
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
  UniqueFd log(log_files_->Open(spec.log_path));
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
  args.parent_pid = getpid();
  args.err_prefix = plan.err_prefix.c_str();
  args.err_prefix_len = plan.err_prefix.size();

  // Block every signal while the child shares our memory: a handler running in the child
  // before it resets dispositions would run on the parent's data. The child unblocks.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int pidfd = -1;
  char* stack_top = static_cast<char*>(worker->stack) + kChildStackSize;
  pid_t pid = clone(ChildMain, stack_top, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args, &pidfd);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return spawn_error("cannot start process: " + Errno(clone_errno));
  UniqueFd pidfd_owner(pidfd);
  r.pid = pid;
  log.Reset();  // the child has its own copy now

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

  if (guard_) guard_->Started(pid);

  // Wait for the leader to exit, a deadline, or a wake-up from Cancel/Shutdown.
  using Clock = std::chrono::steady_clock;
  enum class KilledFor { kNothing, kTimeout, kCancel };
  KilledFor killed_for = KilledFor::kNothing;
  std::optional<Clock::time_point> term_at;  // when the timeout SIGTERMs the group
  std::optional<Clock::time_point> kill_at;  // when the SIGTERM escalates to SIGKILL
  bool sigkilled = false;
  if (spec.timeout) term_at = Clock::now() + *spec.timeout;
  auto terminate = [&](KilledFor why, Millis grace, Clock::time_point now) {
    if (killed_for == KilledFor::kNothing) {
      killed_for = why;
      kill(-pid, SIGTERM);
      kill_at = now + grace;
    } else if (kill_at) {  // a later, shorter grace (Shutdown) wins
      kill_at = std::min(*kill_at, now + grace);
    }
  };
  for (;;) {
    std::optional<Clock::time_point> next;
    if (killed_for == KilledFor::kNothing) next = term_at;
    else if (!sigkilled) next = kill_at;
    int timeout_ms = -1;
    if (next) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left, 0, 24 * 3600 * 1000));
    }
    pollfd fds[2] = {{pidfd, POLLIN, 0}, {worker->wake_fd, POLLIN, 0}};
    int n = poll(fds, 2, timeout_ms);
    if (n < 0 && errno != EINTR) break;  // cannot happen with valid fds; fall back to wait4
    if (n > 0 && fds[0].revents != 0) break;  // the leader exited
    Clock::time_point now = Clock::now();
    if (n > 0 && (fds[1].revents & POLLIN) != 0) {
      uint64_t v;
      (void)!read(worker->wake_fd, &v, sizeof v);
      bool cancel;
      Millis grace;
      {
        std::lock_guard lock(mu_);
        cancel = attempt->cancel;
        grace = attempt->cancel_grace;
      }
      if (cancel) terminate(KilledFor::kCancel, grace, now);
    }
    if (killed_for == KilledFor::kNothing && term_at && now >= *term_at) {
      terminate(KilledFor::kTimeout, spec.kill_grace, now);
    }
    if (killed_for != KilledFor::kNothing && !sigkilled && kill_at && now >= *kill_at) {
      kill(-pid, SIGKILL);
      sigkilled = true;
    }
  }

  // The leader is a zombie, so the group id cannot have been reused: clear out what is
  // left of the group (background jobs; or everything after a timeout/cancel, where a
  // member may have survived the SIGTERM) before reaping.
  if (options_.kill_group_after_exit || killed_for != KilledFor::kNothing) kill(-pid, SIGKILL);
  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  if (guard_) guard_->Ended(pid);  // before the reap, while the group id cannot be reused
  while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  r.ended_at = Now();
  r.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  r.max_rss_kb = ru.ru_maxrss;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  switch (killed_for) {
    case KilledFor::kTimeout: r.end = AttemptEnd::kTimeout; break;
    case KilledFor::kCancel: r.end = AttemptEnd::kCancelled; break;
    case KilledFor::kNothing:
      r.end = (r.exit_code && *r.exit_code == 0) ? AttemptEnd::kSuccess : AttemptEnd::kFailed;
      break;
  }
  return r;
}

}  // namespace batchd::executor
