#pragma once
// Pure decision functions of the engine: retry backoff and trigger rules. No I/O, no
// state; tested exhaustively in tests/engine/policy_test.cc.

#include <optional>
#include <random>

#include "batchd/states.h"
#include "dag/dag.h"

namespace batchd::engine {

// Delay before retry `n` (n >= 1): min(max_delay, delay * factor^(n-1)) for exponential,
// `delay` for fixed; with jitter drawn uniformly from [d/2, d]. `rng` is only used when
// jitter is on.
Millis RetryDelay(const dag::RetryPolicy& policy, int n, std::mt19937_64& rng);

// Whether a failed attempt may be retried: attempts are left and, when the policy lists
// retry_on_exit_codes, the exit code is one of them. A timeout has no exit code, so
// with a list it does not retry. A lost attempt (the daemon died, not the task) passes
// `exempt_from_exit_code_filter` and retries whenever attempts are left.
bool ShouldRetry(const dag::RetryPolicy& policy, int attempts_so_far, std::optional<int> exit_code,
                 bool exempt_from_exit_code_filter = false);

// Counts of an instance's upstream instances by outcome.
struct UpstreamCounts {
  int total = 0;
  int succeeded = 0;        // success, or skipped as already_succeeded
  int skipped = 0;          // skipped for any other reason
  int failed = 0;           // failed
  int upstream_failed = 0;  // upstream_failed
  int cancelled = 0;
  int Done() const { return succeeded + skipped + failed + upstream_failed + cancelled; }
};

enum class RuleDecision { kWait, kRun, kSkip, kUpstreamFailed };

// Applies a trigger rule (Airflow semantics): all_success, all_done, one_success,
// one_failed, none_failed, all_failed. Decides as early as the outcome is certain.
RuleDecision EvaluateTriggerRule(dag::TriggerRule rule, const UpstreamCounts& c);

}  // namespace batchd::engine
