#pragma once
// The size cap of an attempt's log file (docs/logs.md).
//
// A task's stdout and stderr go straight to its log file (the child writes to the file
// itself: no pipe, no copy through batchd, nothing added to a spawn). So the cap is
// enforced from outside, in two places:
//
// * While the task runs, the runner looks at each running attempt's log size every
//   second (one fstat) and, past the cap, cuts the middle out of the file: it keeps the
//   head and the last TailBytes(), and drops what lies between with
//   fallocate(FALLOC_FL_COLLAPSE_RANGE), which the kernel does atomically against the
//   task's own O_APPEND writes (ext4, XFS). Where the file system cannot collapse a range
//   (tmpfs, btrfs, NFS), the file is truncated back to its head instead, losing what was
//   written since the last check. Between two checks a log may outgrow its cap by what
//   the task writes in a second.
// * When the attempt has ended, its log is cut exactly: the head (HeadBytes()), a line
//   saying how much was dropped there, the last TailBytes() of output, and a closing
//   marker line (TruncationMarker). A log under its cap from which nothing was dropped is
//   left untouched.
//
// Both run on the runner's io thread; the second reads at most TailBytes() into memory.

#include <cstdint>
#include <string>

namespace batchd::executor {

class LogCap {
 public:
  // `max_bytes` 0: unlimited.
  explicit LogCap(uint64_t max_bytes) : max_(max_bytes) {}
  bool Unlimited() const { return max_ == 0; }
  uint64_t MaxBytes() const { return max_; }
  // What is kept of a capped log: its first HeadBytes() and last TailBytes() (together the
  // cap), plus the two marker lines. The tail is 1 MiB, or half of a smaller cap.
  uint64_t TailBytes() const;
  uint64_t HeadBytes() const { return max_ - TailBytes(); }
  static constexpr uint64_t kMaxTailBytes = 1 << 20;

  // Bytes dropped from one attempt's log so far.
  struct State {
    uint64_t dropped = 0;
  };
  // While the task runs: if the log behind `fd` (open for appending) is past the cap,
  // drops its middle. Cheap when it is not (one fstat).
  void TrimRunning(int fd, State* state) const;
  // After the task ended: leaves the log at most the cap plus the two marker lines.
  // `path` is the log's name, opened again for reading its tail. Errors leave the file as
  // it is (the log is best effort; the attempt's result does not depend on it).
  void Finish(int fd, const std::string& path, State* state) const;

  // The last line of a capped log: "[batchd: output truncated at 64 MiB; 123 bytes dropped]".
  static std::string TruncationMarker(uint64_t max_bytes, uint64_t dropped);
  // The line where the head ends: "[batchd: 123 bytes dropped here]".
  static std::string GapMarker(uint64_t dropped);
  // "64 MiB", "512 KiB", "1000 bytes": exact, in the largest unit that divides the size.
  static std::string FormatSize(uint64_t bytes);

 private:
  uint64_t max_;
};

}  // namespace batchd::executor
