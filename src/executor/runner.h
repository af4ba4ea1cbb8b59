#pragma once
// The process seam of the engine. A TaskRunner executes attempts; the engine decides
// what runs and when. SubprocessRunner (subprocess_runner.h) is the real one; engine unit
// tests use a fake.
//
// Thread rules are the implementation's (SubprocessRunner: everything on the io thread).
// Callbacks must be quick and only hand the result to the owner's loop (post it), never
// touch engine state directly: a fake may call them from a thread of its own.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/duration.h"
#include "common/time.h"

namespace batchd::executor {

struct AttemptSpec {
  uint64_t attempt_id = 0;           // caller's id; echoed back in AttemptResult
  std::string command;               // already rendered; run with /bin/sh -c (or exec'd
                                     // directly when it has no shell syntax)
  std::vector<std::string> env;      // the complete environment, "KEY=VALUE"
  std::string working_dir;           // empty: inherit
  std::string log_path;              // stdout+stderr appended here (created, mode 0640;
                                     // removed again if the attempt printed nothing)
  std::optional<Millis> timeout;     // SIGTERM to the group, SIGKILL after kill_grace
  Millis kill_grace = std::chrono::seconds(10);
};

enum class AttemptEnd {
  kSuccess,     // exit status 0
  kFailed,      // non-zero exit, or killed by a signal we did not send
  kTimeout,     // the timeout elapsed and we killed it
  kCancelled,   // Cancel() or Shutdown() killed it
  kSpawnError,  // could not start (working dir missing, log not writable, ...)
};
const char* AttemptEndName(AttemptEnd end);

struct AttemptResult {
  uint64_t attempt_id = 0;
  AttemptEnd end = AttemptEnd::kFailed;
  std::optional<int> exit_code;      // set when the process exited
  std::optional<int> signal;         // set when it was killed by a signal
  int pid = 0;
  SysMillis started_at{};
  SysMillis ended_at{};
  double cpu_seconds = 0;            // user + system, from wait4 (includes reaped children)
  int64_t max_rss_kb = 0;            // ru_maxrss from wait4
  std::string error;                 // for kSpawnError: what failed, for the operator
};

class TaskRunner {
 public:
  using DoneCallback = std::function<void(AttemptResult)>;
  virtual ~TaskRunner() = default;
  // Starts the attempt now (the caller keeps the number of running attempts within
  // Capacity()). `done` is called exactly once, never from inside Start.
  virtual void Start(AttemptSpec spec, DoneCallback done) = 0;
  // Kills the attempt's process group (SIGTERM, SIGKILL after its kill_grace); its
  // result arrives through `done` with kCancelled. Unknown ids are ignored.
  virtual void Cancel(uint64_t attempt_id) = 0;
  // How many attempts may run at once.
  virtual int Capacity() const = 0;
};

}  // namespace batchd::executor
