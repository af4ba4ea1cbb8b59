#include "executor/log_cap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace batchd::executor {

namespace {

uint64_t RoundUp(uint64_t v, uint64_t unit) { return (v + unit - 1) / unit * unit; }
uint64_t RoundDown(uint64_t v, uint64_t unit) { return v / unit * unit; }

bool WriteAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t w = write(fd, s.data() + done, s.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
  }
  return true;
}

bool ReadAt(int fd, uint64_t offset, std::string* out) {
  size_t done = 0;
  while (done < out->size()) {
    ssize_t r = pread(fd, out->data() + done, out->size() - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

// A regular file's size, or -1 (not a regular file: /dev/null for an attempt without log).
int64_t RegularFileSize(int fd, uint64_t* block_size = nullptr) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  if (block_size) *block_size = st.st_blksize > 0 ? static_cast<uint64_t>(st.st_blksize) : 4096;
  return st.st_size;
}

}  // namespace

uint64_t LogCap::TailBytes() const { return std::min(kMaxTailBytes, max_ / 2); }

void LogCap::TrimRunning(int fd, State* state) const {
  if (Unlimited()) return;
  uint64_t block = 0;
  const int64_t size = RegularFileSize(fd, &block);
  if (size < 0 || static_cast<uint64_t>(size) <= max_) return;
  const uint64_t end = static_cast<uint64_t>(size);
  // Collapsing works on whole blocks: keep the head up to the next block boundary (Finish
  // cuts it exactly) and at least the tail after the removed range.
  const uint64_t from = RoundUp(HeadBytes(), block);
  if (end < from + TailBytes() + block) return;  // less than a block to drop yet
  const uint64_t len = RoundDown(end - TailBytes() - from, block);
  if (fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, static_cast<off_t>(from), static_cast<off_t>(len)) == 0) {
    state->dropped += len;
    return;
  }
  // No range collapsing here: drop everything after the head, including the latest output.
  // Whatever the task writes between the fstat and the truncation is dropped uncounted.
  if (ftruncate(fd, static_cast<off_t>(HeadBytes())) == 0) state->dropped += end - HeadBytes();
}

void LogCap::Finish(int fd, const std::string& path, State* state) const {
  if (Unlimited()) return;
  const int64_t size = RegularFileSize(fd);
  if (size < 0) return;
  const uint64_t end = static_cast<uint64_t>(size);
  if (end <= max_ && state->dropped == 0) return;
  const uint64_t head = std::min(HeadBytes(), end);
  const uint64_t tail = std::min(TailBytes(), end - head);
  const uint64_t dropped = state->dropped + (end - head - tail);

  const int rfd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (rfd < 0) return;
  std::string last_head_byte(head > 0 ? 1 : 0, '\n');
  std::string text(tail, '\0');
  const bool read = ReadAt(rfd, head - last_head_byte.size(), &last_head_byte) && ReadAt(rfd, end - tail, &text);
  close(rfd);
  if (!read) return;
  // Head and tail may end mid-line: the markers always start a line of their own.
  std::string out = last_head_byte == "\n" || last_head_byte.empty() ? "" : "\n";
  out += GapMarker(dropped) + "\n";
  out += text;
  if (!text.empty() && text.back() != '\n') out += '\n';
  out += TruncationMarker(max_, dropped) + "\n";
  if (ftruncate(fd, static_cast<off_t>(head)) != 0) return;
  WriteAll(fd, out);  // the descriptor appends
  state->dropped = dropped;
}

std::string LogCap::FormatSize(uint64_t bytes) {
  constexpr uint64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;
  if (bytes >= kGiB && bytes % kGiB == 0) return std::to_string(bytes / kGiB) + " GiB";
  if (bytes >= kMiB && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + " MiB";
  if (bytes >= kKiB && bytes % kKiB == 0) return std::to_string(bytes / kKiB) + " KiB";
  return std::to_string(bytes) + " bytes";
}

std::string LogCap::TruncationMarker(uint64_t max_bytes, uint64_t dropped) {
  return "[batchd: output truncated at " + FormatSize(max_bytes) + "; " + std::to_string(dropped) + " bytes dropped]";
}

std::string LogCap::GapMarker(uint64_t dropped) {
  return "[batchd: " + std::to_string(dropped) + " bytes dropped here]";
}

}  // namespace batchd::executor
