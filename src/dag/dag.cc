#include "dag/dag.h"

#include <algorithm>

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
