#pragma once
// File triggers (docs/dag-format.md, "File triggers"): which files a glob matches, when a
// file is settled enough to fire, and the run key that names it. The Scheduler owns one
// FileWatch per DAG; firing and the ledger (Store::RecordTriggerFile) are its business.
//
// A file is identified by (path, size, mtime in nanoseconds): the same path with another
// size or mtime is another version of it, which fires again; the path is kept as its exact
// bytes, which need not be UTF-8.
//
// Thread rules: none of its own; the Scheduler uses it on the engine thread.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"
#include "common/time.h"

namespace batchd::scheduler {

struct FileVersion {
  std::string path;      // as glob(3) returned it: exact bytes
  int64_t size = 0;      // bytes
  int64_t mtime_ns = 0;  // nanoseconds since the epoch
  bool operator==(const FileVersion&) const = default;
};

// The regular files (or symlinks to them) that `pattern` matches, by glob(3) rules:
// `*`, `?` and `[...]` never match a `/`, nor a `.` at the start of a name, so hidden
// files (a writer's `.part` file) are matched only by a pattern that spells the dot.
// Directories, and files that vanish or cannot be stat'ed while matching, are left out.
std::vector<FileVersion> MatchFiles(const std::string& pattern);

// Percent-encodes what is not printable UTF-8: `%`, control characters and every byte
// that is not part of a valid UTF-8 sequence become `%XX`. One-to-one, so distinct paths
// keep distinct keys, and the result is always safe for JSON, logs and the environment.
std::string EscapeKeyBytes(std::string_view bytes);

// The run key of the run a file version starts: "<dag>@file:<path>:<size>:<mtime_ns>",
// the path through EscapeKeyBytes.
std::string FileRunKey(const std::string& dag, const FileVersion& file);

// What one DAG's file triggers saw, poll after poll. A version is due at the first poll
// that sees it unchanged at least `settle` after it was first seen (so a file still being
// written fires once, when complete), and is due only once while it stays unchanged.
// Paths no longer matched are forgotten. Only a hint in memory: the Store's ledger is what
// decides whether a version has fired.
class FileWatch {
 public:
  // Takes one poll's matches (any order, each path once); returns the versions due now,
  // oldest mtime first (then by path).
  std::vector<FileVersion> Observe(const std::vector<FileVersion>& matched, SysMillis now, Millis settle);
  // The version has started its run (or had started one before): not due again.
  void MarkHandled(const FileVersion& file);

 private:
  struct Seen {
    FileVersion version;
    SysMillis since{};      // when this version was first seen
    bool handled = false;
  };
  std::map<std::string, Seen> files_;  // by path
};

}  // namespace batchd::scheduler
