#pragma once
// Run, task-instance and attempt states, shared by the daemon, the store and batchctl.
// The names are part of the wire format and of the persisted schema: never rename.

#include <optional>
#include <string_view>

namespace batchd {

enum class RunState { kQueued, kRunning, kSuccess, kFailed, kCancelled };

enum class InstanceState {
  kPending,         // waiting for upstream instances
  kQueued,          // ready; waiting for a slot (worker, pool, max_active_tasks)
  kRunning,
  kRetryWait,       // failed, a retry is scheduled
  kSuccess,
  kFailed,          // failed after its last attempt: a dead letter until retried
  kSkipped,         // already_succeeded, or the trigger rule did not fire
  kUpstreamFailed,
  kCancelled,
};

enum class AttemptOutcome { kRunning, kSuccess, kFailed, kTimeout, kLost, kCancelled };

std::string_view ToString(RunState s);
std::string_view ToString(InstanceState s);
std::string_view ToString(AttemptOutcome s);
std::optional<RunState> ParseRunState(std::string_view s);
std::optional<InstanceState> ParseInstanceState(std::string_view s);
std::optional<AttemptOutcome> ParseAttemptOutcome(std::string_view s);

inline bool IsTerminal(RunState s) {
  return s == RunState::kSuccess || s == RunState::kFailed || s == RunState::kCancelled;
}
inline bool IsTerminal(InstanceState s) {
  return s == InstanceState::kSuccess || s == InstanceState::kFailed || s == InstanceState::kSkipped ||
         s == InstanceState::kUpstreamFailed || s == InstanceState::kCancelled;
}

}  // namespace batchd
