#include "dag/dag.h"

#include <algorithm>
#include <cmath>

namespace batchd::dag {

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  if (name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

const char* BackoffName(Backoff backoff) {
  switch (backoff) {
    case Backoff::kFixed: return "fixed";
    case Backoff::kExponential: return "exponential";
  }
  return "unknown";
}

Millis RetryDelay(const RetryPolicy& policy, int n, double unit) {
  if (n < 1) n = 1;
  double ms = static_cast<double>(policy.delay.count());
  if (policy.backoff == Backoff::kExponential) {
    ms *= std::pow(policy.factor, n - 1);  // may reach +inf; min() below caps it
    ms = std::min(ms, static_cast<double>(policy.max_delay.count()));
  }
  if (!std::isfinite(ms) || ms < 0) ms = static_cast<double>(policy.max_delay.count());
  if (policy.jitter) {
    unit = std::clamp(std::isfinite(unit) ? unit : 1.0, 0.0, 1.0);
    ms = ms / 2 + unit * (ms / 2);
  }
  return Millis(static_cast<int64_t>(std::llround(ms)));
}

const char* TriggerRuleName(TriggerRule rule) {
  switch (rule) {
    case TriggerRule::kAllSuccess: return "all_success";
    case TriggerRule::kAllDone: return "all_done";
    case TriggerRule::kOneSuccess: return "one_success";
    case TriggerRule::kOneFailed: return "one_failed";
    case TriggerRule::kNoneFailed: return "none_failed";
    case TriggerRule::kAllFailed: return "all_failed";
  }
  return "unknown";
}

std::optional<TriggerRule> ParseTriggerRule(std::string_view name) {
  for (TriggerRule rule : {TriggerRule::kAllSuccess, TriggerRule::kAllDone, TriggerRule::kOneSuccess,
                           TriggerRule::kOneFailed, TriggerRule::kNoneFailed, TriggerRule::kAllFailed}) {
    if (name == TriggerRuleName(rule)) return rule;
  }
  return std::nullopt;
}

std::vector<std::string> StaticPartitionNames(const Partitions& partitions) {
  switch (partitions.kind) {
    case Partitions::Kind::kNone: return {"-"};
    case Partitions::Kind::kValues: return partitions.values;
    case Partitions::Kind::kRange: {
      std::vector<std::string> names;
      for (int64_t i = partitions.range_begin; i < partitions.range_end; ++i) names.push_back(std::to_string(i));
      return names;
    }
    case Partitions::Kind::kCommand: return {};
  }
  return {};
}

const Task* Dag::FindTask(const std::string& id) const {
  for (const Task& task : tasks) {
    if (task.id == id) return &task;
  }
  return nullptr;
}

}  // namespace batchd::dag
