#include "engine/policy.h"

#include <algorithm>
#include <cmath>

namespace batchd::engine {

Millis RetryDelay(const dag::RetryPolicy& policy, int n, std::mt19937_64& rng) {
  double base = static_cast<double>(policy.delay.count());
  double ms = base;
  if (policy.backoff == dag::Backoff::kExponential && n > 1) {
    ms = base * std::pow(policy.factor, n - 1);
  }
  double cap = static_cast<double>(policy.max_delay.count());
  if (policy.backoff == dag::Backoff::kExponential) ms = std::min(ms, cap);
  if (!std::isfinite(ms)) ms = cap;
  if (policy.jitter && ms > 0) {
    std::uniform_real_distribution<double> dist(ms / 2, ms);
    ms = dist(rng);
  }
  return Millis(static_cast<int64_t>(std::llround(ms)));
}

bool ShouldRetry(const dag::RetryPolicy& policy, int attempts_so_far, std::optional<int> exit_code,
                 bool exempt_from_exit_code_filter) {
  if (attempts_so_far >= 1 + policy.retries) return false;
  if (policy.retry_on_exit_codes.empty() || exempt_from_exit_code_filter) return true;
  if (!exit_code) return false;
  return std::find(policy.retry_on_exit_codes.begin(), policy.retry_on_exit_codes.end(), *exit_code) !=
         policy.retry_on_exit_codes.end();
}

RuleDecision EvaluateTriggerRule(dag::TriggerRule rule, const UpstreamCounts& c) {
  if (c.total == 0) return RuleDecision::kRun;  // a task without upstream always runs (Airflow)
  const bool all_done = c.Done() == c.total;
  const int any_failed = c.failed + c.upstream_failed + c.cancelled;
  using dag::TriggerRule;
  switch (rule) {
    case TriggerRule::kAllSuccess:
      if (any_failed) return RuleDecision::kUpstreamFailed;
      if (c.skipped) return RuleDecision::kSkip;
      return all_done ? RuleDecision::kRun : RuleDecision::kWait;
    case TriggerRule::kAllDone:
      return all_done ? RuleDecision::kRun : RuleDecision::kWait;
    case TriggerRule::kOneSuccess:
      if (c.succeeded > 0) return RuleDecision::kRun;
      if (!all_done) return RuleDecision::kWait;
      return any_failed ? RuleDecision::kUpstreamFailed : RuleDecision::kSkip;
    case TriggerRule::kOneFailed:
      if (any_failed) return RuleDecision::kRun;
      return all_done ? RuleDecision::kSkip : RuleDecision::kWait;
    case TriggerRule::kNoneFailed:
      if (any_failed) return RuleDecision::kUpstreamFailed;
      return all_done ? RuleDecision::kRun : RuleDecision::kWait;
    case TriggerRule::kAllFailed:
      if (c.succeeded || c.skipped) return RuleDecision::kSkip;
      return all_done ? RuleDecision::kRun : RuleDecision::kWait;
  }
  return RuleDecision::kWait;
}

}  // namespace batchd::engine
