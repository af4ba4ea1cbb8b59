#include "batchd/states.h"

#include <array>
#include <utility>

namespace batchd {
namespace {

template <typename E, size_t N>
std::string_view NameOf(const std::array<std::pair<E, std::string_view>, N>& table, E value) {
  for (const auto& [e, name] : table)
    if (e == value) return name;
  return "unknown";
}

template <typename E, size_t N>
std::optional<E> Lookup(const std::array<std::pair<E, std::string_view>, N>& table, std::string_view name) {
  for (const auto& [e, n] : table)
    if (n == name) return e;
  return std::nullopt;
}

constexpr std::array<std::pair<RunState, std::string_view>, 5> kRunStates{{
    {RunState::kQueued, "queued"},
    {RunState::kRunning, "running"},
    {RunState::kSuccess, "success"},
    {RunState::kFailed, "failed"},
    {RunState::kCancelled, "cancelled"},
}};

constexpr std::array<std::pair<InstanceState, std::string_view>, 9> kInstanceStates{{
    {InstanceState::kPending, "pending"},
    {InstanceState::kQueued, "queued"},
    {InstanceState::kRunning, "running"},
    {InstanceState::kRetryWait, "retry_wait"},
    {InstanceState::kSuccess, "success"},
    {InstanceState::kFailed, "failed"},
    {InstanceState::kSkipped, "skipped"},
    {InstanceState::kUpstreamFailed, "upstream_failed"},
    {InstanceState::kCancelled, "cancelled"},
}};

constexpr std::array<std::pair<AttemptOutcome, std::string_view>, 6> kAttemptOutcomes{{
    {AttemptOutcome::kRunning, "running"},
    {AttemptOutcome::kSuccess, "success"},
    {AttemptOutcome::kFailed, "failed"},
    {AttemptOutcome::kTimeout, "timeout"},
    {AttemptOutcome::kLost, "lost"},
    {AttemptOutcome::kCancelled, "cancelled"},
}};

}  // namespace

std::string_view ToString(RunState s) { return NameOf(kRunStates, s); }
std::string_view ToString(InstanceState s) { return NameOf(kInstanceStates, s); }
std::string_view ToString(AttemptOutcome s) { return NameOf(kAttemptOutcomes, s); }
std::optional<RunState> ParseRunState(std::string_view s) { return Lookup(kRunStates, s); }
std::optional<InstanceState> ParseInstanceState(std::string_view s) { return Lookup(kInstanceStates, s); }
std::optional<AttemptOutcome> ParseAttemptOutcome(std::string_view s) { return Lookup(kAttemptOutcomes, s); }

}  // namespace batchd
