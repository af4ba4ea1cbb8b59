#pragma once
// LogFileReserve: opens attempt log files with their inodes allocated ahead of time.
//
// Why: creating a file costs an inode allocation. On a quiet ext4 that is ~25 us, but for
// minutes after many files were deleted nearby (a log purge, a test suite's temp dirs)
// ext4 skips every recently freed inode while allocating, and one creation takes
// 0.3-1 ms: more than spawning the task. So a thread of its own keeps a few unnamed
// inodes (O_TMPFILE) ready in the directory the last log file went to; opening the next
// log file there names one (linkat) instead of creating a file, and pays only for the
// directory entry. Every attempt still gets its own named file. Unused spares are
// unnamed, so nothing is left behind if batchd dies.
//
// Spares follow the directory the last log files went to: the second open in a row in a
// new directory moves them there. Runs interleaving attempt by attempt do not make them
// churn (each move frees the old directory's spares); the run that does not have them
// creates its files as before.
//
// Spares start only once creating files has proven slow: on a healthy file system a plain
// creation (~30 us) is as cheap as naming a spare, and the spare thread and its wake-ups
// cost CPU for nothing. Three creations slower than `slow_create` switch them on for the
// rest of the reserve's life.
//
// Falls back to a plain open when no spare can be used (none ready yet, another
// directory, a file system without O_TMPFILE, no /proc, the name already taken: the
// attempt then appends to the existing file, as a plain open would).
//
// Files made ahead (CreateAhead): a chain of short tasks spends 40-50 us per step creating
// the next attempt's log file, on the critical path between one task's exit and the next
// spawn. The engine instead asks for the log files of the instances that the running
// attempts' success would make ready, while those attempts run; starting them then only
// takes the open descriptor. A file made ahead that no attempt takes is removed again
// (DropAhead, or the destructor). If the process dies in between, an empty file is left
// for an attempt that has not started: the attempt appends to it if it starts later.
//
// Thread-safe. Owns one thread, stopped by the destructor.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace batchd::executor {

class LogFileReserve {
 public:
  // Keeps up to `spares` inodes ready (0: no thread, every Open creates its file), from
  // the start if `slow_create` is zero, else once three plain creations took longer.
  explicit LogFileReserve(int spares, std::chrono::microseconds slow_create = kDefaultSlowCreate);
  static constexpr std::chrono::microseconds kDefaultSlowCreate{250};
  ~LogFileReserve();
  LogFileReserve(const LogFileReserve&) = delete;
  LogFileReserve& operator=(const LogFileReserve&) = delete;

  // Opens `path` for appending, creating it (mode 0640 before umask) if needed; "" opens
  // /dev/null. Returns an O_CLOEXEC descriptor >= 3, or -1 with errno set. Asks for
  // spares in `path`'s directory for the next calls.
  int Open(const std::string& path);

  // Creates `path` now for an attempt expected to start soon; the next Open(path) returns
  // this descriptor. Keeps at most kMaxAhead; false if not kept (limit, already made ahead,
  // or the open failed: Open will then try again and report the error).
  bool CreateAhead(const std::string& path);
  static constexpr size_t kMaxAhead = 1024;
  // Forgets a file made ahead that will not be used: closed, and removed if CreateAhead
  // created it (rather than finding it there). Paths not made ahead are ignored.
  void DropAhead(const std::string& path);
  // Drops every file made ahead and not yet taken (a process about to exit; the destructor).
  void DropAllAhead();
  size_t AheadCount();

  // Spares ready in `path`'s directory, how many opens named a spare, and whether spares
  // are kept at all yet (for tests).
  int SparesFor(const std::string& path);
  int SparesUsed();
  bool Active();

 private:
  struct Spare {
    int fd;
    std::string dir;
  };
  struct Ahead {
    int fd;
    bool created;                                // by CreateAhead: DropAhead removes it
    std::chrono::steady_clock::time_point made;  // Open refreshes the times of old ones
  };
  // Takes the file made ahead for `path`: its descriptor, or -1.
  int TakeAhead(const std::string& path);
  // Closes a file made ahead, and removes it if CreateAhead created it.
  static void Discard(const std::string& path, const Ahead& ahead);
  void Refill();
  // A plain creation; timed: the third slow one switches spares on.
  static int Create(const std::string& path);
  int CreateTimed(const std::string& path);
  void CloseSparesNotIn(const std::string& dir);  // REQUIRES: mu_ held

  const int target_;
  const std::chrono::microseconds slow_create_;
  std::mutex mu_;
  std::condition_variable cv_;     // wanted_dir_ changed, a spare was taken, or stopping_
  std::vector<Spare> spares_;      // GUARDED_BY(mu_)
  std::unordered_map<std::string, Ahead> ahead_;  // GUARDED_BY(mu_): by path
  std::string wanted_dir_;         // GUARDED_BY(mu_): where spares are kept
  std::string candidate_dir_;      // GUARDED_BY(mu_): another directory just opened in, once
  std::string unsupported_dir_;    // GUARDED_BY(mu_): last directory refusing O_TMPFILE
  bool stopping_ = false;          // GUARDED_BY(mu_)
  bool active_ = false;            // GUARDED_BY(mu_): spares are kept
  int slow_creates_ = 0;           // GUARDED_BY(mu_): plain creations slower than slow_create_
  int used_ = 0;                   // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace batchd::executor
