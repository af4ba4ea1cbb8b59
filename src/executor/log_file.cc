#include "executor/log_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>

#include "executor/fd.h"

namespace batchd::executor {

namespace {

constexpr int kLogFlags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY;
constexpr mode_t kLogMode = 0640;

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Names the unnamed file `fd` as `path`. linkat(AT_EMPTY_PATH) is the direct way (~10 us
// cheaper than walking /proc/self/fd/N), but kernels before 6.10 allow it only with
// CAP_DAC_READ_SEARCH: after its first refusal, /proc is used.
bool Name(int fd, const std::string& path) {
  static std::atomic<bool> empty_path_refused{false};
  if (!empty_path_refused.load(std::memory_order_relaxed)) {
    if (linkat(fd, "", AT_FDCWD, path.c_str(), AT_EMPTY_PATH) == 0) return true;
    if (errno == EEXIST) return false;
    empty_path_refused.store(true, std::memory_order_relaxed);
  }
  char proc_path[64];
  std::snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
  return linkat(AT_FDCWD, proc_path, AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0;
}

}  // namespace

LogFileReserve::LogFileReserve(int spares, std::chrono::microseconds slow_create)
    : target_(spares), slow_create_(slow_create), active_(slow_create.count() == 0) {
  if (target_ > 0) thread_ = std::thread([this] { Refill(); });
}

LogFileReserve::~LogFileReserve() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (const Spare& s : spares_) close(s.fd);
  DropAllAhead();
}

bool LogFileReserve::CreateAhead(const std::string& path) {
  if (path.empty()) return false;
  {
    std::lock_guard lock(mu_);
    if (ahead_.size() >= kMaxAhead || ahead_.count(path)) return false;
  }
  // O_EXCL first: a file already there (left by a process that died, or a name taken some
  // other way) is used but never removed by DropAhead.
  bool created = true;
  int fd = AboveStdio(open(path.c_str(), kLogFlags | O_CREAT | O_EXCL, kLogMode));
  if (fd < 0 && errno == EEXIST) {
    created = false;
    fd = AboveStdio(open(path.c_str(), kLogFlags, kLogMode));
  }
  if (fd < 0) return false;
  std::lock_guard lock(mu_);
  if (ahead_.count(path)) {  // made ahead meanwhile by another thread: the file is theirs
    close(fd);
    return false;
  }
  Ahead ahead{fd, created, std::chrono::steady_clock::now()};
  if (ahead_.size() >= kMaxAhead) {
    Discard(path, ahead);
    return false;
  }
  ahead_.emplace(path, ahead);
  return true;
}

void LogFileReserve::Discard(const std::string& path, const Ahead& ahead) {
  close(ahead.fd);
  if (ahead.created) unlink(path.c_str());
}

void LogFileReserve::DropAhead(const std::string& path) {
  // Unlinked under the lock: a concurrent CreateAhead of the same name must not register
  // the file just before it goes.
  std::lock_guard lock(mu_);
  auto it = ahead_.find(path);
  if (it == ahead_.end()) return;
  Discard(path, it->second);
  ahead_.erase(it);
}

void LogFileReserve::DropAllAhead() {
  std::lock_guard lock(mu_);
  for (const auto& [path, ahead] : ahead_) Discard(path, ahead);
  ahead_.clear();
}

size_t LogFileReserve::AheadCount() {
  std::lock_guard lock(mu_);
  return ahead_.size();
}

int LogFileReserve::TakeAhead(const std::string& path) {
  Ahead ahead;
  {
    std::lock_guard lock(mu_);
    if (ahead_.empty()) return -1;
    auto it = ahead_.find(path);
    if (it == ahead_.end()) return -1;
    ahead = it->second;
    ahead_.erase(it);
  }
  // Made while the upstream ran: if that took a while, let the file's times say when the
  // attempt started (a chain of short tasks skips this syscall).
  if (std::chrono::steady_clock::now() - ahead.made > std::chrono::seconds(1)) futimens(ahead.fd, nullptr);
  return ahead.fd;
}

int LogFileReserve::SparesFor(const std::string& path) {
  const std::string dir = DirOf(path);
  std::lock_guard lock(mu_);
  int n = 0;
  for (const Spare& s : spares_) n += s.dir == dir ? 1 : 0;
  return n;
}

int LogFileReserve::SparesUsed() {
  std::lock_guard lock(mu_);
  return used_;
}

bool LogFileReserve::Active() {
  std::lock_guard lock(mu_);
  return active_;
}

void LogFileReserve::CloseSparesNotIn(const std::string& dir) {
  std::erase_if(spares_, [&](const Spare& s) {
    if (s.dir == dir) return false;
    close(s.fd);
    return true;
  });
}

int LogFileReserve::Open(const std::string& path) {
  if (path.empty()) return AboveStdio(open("/dev/null", O_WRONLY | O_CLOEXEC | O_NOCTTY));
  if (int fd = TakeAhead(path); fd >= 0) return fd;
  if (target_ == 0) return Create(path);
  int spare = -1;
  bool active;
  {
    std::lock_guard lock(mu_);
    active = active_;
    if (active) {
      std::string dir = DirOf(path);
      for (size_t i = 0; i < spares_.size(); ++i) {
        if (spares_[i].dir != dir) continue;
        spare = spares_[i].fd;
        spares_.erase(spares_.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
      if (dir == wanted_dir_) {
        candidate_dir_.clear();
      } else if (wanted_dir_.empty() || dir == candidate_dir_) {
        wanted_dir_ = std::move(dir);
        candidate_dir_.clear();
      } else {
        candidate_dir_ = std::move(dir);
      }
    }
  }
  if (!active) return CreateTimed(path);
  cv_.notify_one();
  if (spare >= 0) {
    if (Name(spare, path)) {
      futimens(spare, nullptr);  // its times say when the attempt started, not the spare
      std::lock_guard lock(mu_);
      ++used_;
      return spare;
    }
    close(spare);  // EEXIST: append to the existing file; anything else: create it
  }
  return Create(path);
}

int LogFileReserve::Create(const std::string& path) {
  return AboveStdio(open(path.c_str(), kLogFlags | O_CREAT, kLogMode));
}

int LogFileReserve::CreateTimed(const std::string& path) {
  const auto start = std::chrono::steady_clock::now();
  const int fd = Create(path);
  const int err = errno;
  if (fd >= 0 && std::chrono::steady_clock::now() - start > slow_create_) {
    {
      std::lock_guard lock(mu_);
      if (++slow_creates_ >= 3 && !active_) {
        active_ = true;
        wanted_dir_ = DirOf(path);
      }
    }
    cv_.notify_one();
  }
  errno = err;
  return fd;
}

void LogFileReserve::Refill() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] {
      if (stopping_) return true;
      if (!active_ || wanted_dir_.empty() || wanted_dir_ == unsupported_dir_) return false;
      int ready = 0;
      for (const Spare& s : spares_) ready += s.dir == wanted_dir_ ? 1 : 0;
      return ready < target_ || ready != static_cast<int>(spares_.size());
    });
    if (stopping_) return;
    CloseSparesNotIn(wanted_dir_);
    if (static_cast<int>(spares_.size()) >= target_) continue;
    std::string dir = wanted_dir_;
    lock.unlock();
    int fd = AboveStdio(open(dir.c_str(), O_TMPFILE | kLogFlags, kLogMode));
    int err = errno;
    lock.lock();
    if (fd < 0) {
      // No O_TMPFILE on this file system (EOPNOTSUPP; EISDIR/EINVAL on old kernels): do
      // not ask again for this directory. Anything else (the directory is gone, no
      // space): wait for the next Open to ask again.
      if (err == EOPNOTSUPP || err == EISDIR || err == EINVAL) unsupported_dir_ = dir;
      else if (wanted_dir_ == dir) wanted_dir_.clear();
      continue;
    }
    spares_.push_back({fd, std::move(dir)});
  }
}

}  // namespace batchd::executor
