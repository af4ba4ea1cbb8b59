// Pure engine decisions: RetryDelay (SPEC section 3 backoff), ShouldRetry (retries,
// retry_on_exit_codes, timeouts, lost attempts) and EvaluateTriggerRule (the six trigger
// rules over every combination of upstream outcomes).

#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "engine/policy.h"

namespace batchd::engine {
namespace {

using namespace std::chrono_literals;
using dag::Backoff;
using dag::RetryPolicy;
using dag::TriggerRule;

RetryPolicy Exponential(Millis delay, double factor, Millis max_delay, bool jitter = false) {
  RetryPolicy p;
  p.retries = 100;
  p.delay = delay;
  p.backoff = Backoff::kExponential;
  p.factor = factor;
  p.max_delay = max_delay;
  p.jitter = jitter;
  return p;
}

RetryPolicy Fixed(Millis delay, bool jitter = false) {
  RetryPolicy p;
  p.retries = 100;
  p.delay = delay;
  p.backoff = Backoff::kFixed;
  p.factor = 2.0;
  p.max_delay = 10min;
  p.jitter = jitter;
  return p;
}

// --- RetryDelay: fixed ---------------------------------------------------------------------

TEST(RetryDelayTest, FixedBackoffIsTheSameDelayForEveryRetry) {
  std::mt19937_64 rng(1);
  RetryPolicy p = Fixed(10s);
  for (int n = 1; n <= 20; ++n) EXPECT_EQ(RetryDelay(p, n, rng), Millis(10s)) << "n=" << n;
}

TEST(RetryDelayTest, FixedBackoffIgnoresFactorAndMaxDelay) {
  // SPEC: the delay is `delay` for fixed; max_delay only caps exponential growth.
  std::mt19937_64 rng(1);
  RetryPolicy p = Fixed(20min);
  p.factor = 7;
  p.max_delay = 1min;
  for (int n = 1; n <= 20; ++n) EXPECT_EQ(RetryDelay(p, n, rng), Millis(20min)) << "n=" << n;
}

TEST(RetryDelayTest, ZeroDelayIsZeroForBothBackoffs) {
  std::mt19937_64 rng(1);
  for (int n = 1; n <= 20; ++n) {
    EXPECT_EQ(RetryDelay(Fixed(0ms), n, rng), Millis(0));
    EXPECT_EQ(RetryDelay(Exponential(0ms, 2, 10min), n, rng), Millis(0));
  }
}

// --- RetryDelay: exponential --------------------------------------------------------------

TEST(RetryDelayTest, ExponentialDoublesFromTheBaseDelayUntilTheCap) {
  std::mt19937_64 rng(1);
  RetryPolicy p = Exponential(1s, 2, 10min);
  // n:   1  2  3  4   5   6   7    8    9    10 (=512s)  11 (1024s -> cap 600s) ...
  for (int n = 1; n <= 20; ++n) {
    int64_t uncapped = 1000LL << (n - 1);
    int64_t want = std::min<int64_t>(uncapped, 600'000);
    EXPECT_EQ(RetryDelay(p, n, rng).count(), want) << "n=" << n;
  }
  EXPECT_EQ(RetryDelay(p, 1, rng), Millis(1s));
  EXPECT_EQ(RetryDelay(p, 2, rng), Millis(2s));
  EXPECT_EQ(RetryDelay(p, 10, rng), Millis(512s));
  EXPECT_EQ(RetryDelay(p, 11, rng), Millis(10min));
}

TEST(RetryDelayTest, ExponentialUsesTheConfiguredFactor) {
  std::mt19937_64 rng(1);
  RetryPolicy p = Exponential(100ms, 3, 24h);
  int64_t want = 100;
  for (int n = 1; n <= 13; ++n) {  // 100ms * 3^12 = 53144100ms (14.8h) < 24h
    EXPECT_EQ(RetryDelay(p, n, rng).count(), want) << "n=" << n;
    want *= 3;
  }
  EXPECT_EQ(RetryDelay(p, 14, rng), Millis(24h));  // 100ms * 3^13 = 44.3h, capped
}

TEST(RetryDelayTest, ExponentialWithFractionalFactorRoundsToTheNearestMillisecond) {
  std::mt19937_64 rng(1);
  RetryPolicy p = Exponential(1s, 1.5, 24h);
  for (int n = 1; n <= 20; ++n) {
    int64_t want = std::llround(1000.0 * std::pow(1.5, n - 1));
    EXPECT_EQ(RetryDelay(p, n, rng).count(), want) << "n=" << n;
  }
  EXPECT_EQ(RetryDelay(p, 2, rng), Millis(1500));
  EXPECT_EQ(RetryDelay(p, 3, rng), Millis(2250));
}

TEST(RetryDelayTest, ExponentialWithFactorOneStaysAtTheBaseDelay) {
  std::mt19937_64 rng(1);
  RetryPolicy p = Exponential(7s, 1, 10min);
  for (int n = 1; n <= 20; ++n) EXPECT_EQ(RetryDelay(p, n, rng), Millis(7s)) << "n=" << n;
}

TEST(RetryDelayTest, MaxDelayCapsEveryRetryEvenTheFirst) {
  std::mt19937_64 rng(1);
  RetryPolicy p = Exponential(30s, 2, 45s);
  EXPECT_EQ(RetryDelay(p, 1, rng), Millis(30s));
  EXPECT_EQ(RetryDelay(p, 2, rng), Millis(45s));
  for (int n = 3; n <= 20; ++n) EXPECT_EQ(RetryDelay(p, n, rng), Millis(45s)) << "n=" << n;

  RetryPolicy small_cap = Exponential(30s, 2, 5s);
  for (int n = 1; n <= 20; ++n) EXPECT_EQ(RetryDelay(small_cap, n, rng), Millis(5s)) << "n=" << n;
}

TEST(RetryDelayTest, HugeRetryNumbersStayAtTheCapWithoutOverflow) {
  std::mt19937_64 rng(1);
  RetryPolicy p = Exponential(10s, 2, 10min);
  for (int n : {30, 63, 64, 65, 100, 1000, 1'000'000, INT_MAX}) {
    EXPECT_EQ(RetryDelay(p, n, rng), Millis(10min)) << "n=" << n;
  }
  // A factor whose power is infinite after a few steps.
  RetryPolicy steep = Exponential(1s, 1e300, 1h);
  EXPECT_EQ(RetryDelay(steep, 1, rng), Millis(1s));
  EXPECT_EQ(RetryDelay(steep, 2, rng), Millis(1h));
  EXPECT_EQ(RetryDelay(steep, 3, rng), Millis(1h));
  EXPECT_EQ(RetryDelay(steep, INT_MAX, rng), Millis(1h));
}

TEST(RetryDelayTest, HugeRetryNumbersWithJitterStayWithinHalfTheCapAndTheCap) {
  std::mt19937_64 rng(7);
  RetryPolicy p = Exponential(10s, 2, 10min, /*jitter=*/true);
  for (int n : {64, 1000, INT_MAX}) {
    for (int draw = 0; draw < 200; ++draw) {
      Millis d = RetryDelay(p, n, rng);
      EXPECT_GE(d, Millis(5min)) << "n=" << n;
      EXPECT_LE(d, Millis(10min)) << "n=" << n;
    }
  }
}

// --- RetryDelay: jitter -------------------------------------------------------------------

// Every jittered draw of retry n lies in [d/2, d] where d is the unjittered delay; the
// draws cover the interval (both halves are hit, the mean is near 3d/4).
void ExpectJitterWithinBounds(RetryPolicy jittered, const char* what) {
  RetryPolicy plain = jittered;
  plain.jitter = false;
  std::mt19937_64 rng(0x5eed);
  std::mt19937_64 unused(0);
  constexpr int kDraws = 2000;
  for (int n = 1; n <= 20; ++n) {
    const int64_t d = RetryDelay(plain, n, unused).count();
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    double sum = 0;
    for (int draw = 0; draw < kDraws; ++draw) {
      int64_t got = RetryDelay(jittered, n, rng).count();
      // got >= d/2 without integer division: 2*got >= d.
      ASSERT_GE(2 * got, d) << what << " n=" << n << " d=" << d;
      ASSERT_LE(got, d) << what << " n=" << n << " d=" << d;
      lo = std::min(lo, got);
      hi = std::max(hi, got);
      sum += static_cast<double>(got);
    }
    const double mean = sum / kDraws;
    EXPECT_LT(lo, d * 0.55) << what << " n=" << n << ": draws never came near d/2";
    EXPECT_GT(hi, d * 0.95) << what << " n=" << n << ": draws never came near d";
    EXPECT_NEAR(mean, d * 0.75, d * 0.03) << what << " n=" << n;
  }
}

TEST(RetryDelayTest, JitterDrawsUniformlyBetweenHalfAndFullExponentialDelay) {
  ExpectJitterWithinBounds(Exponential(1s, 2, 10min, true), "exponential x2");
  ExpectJitterWithinBounds(Exponential(333ms, 1.7, 1h, true), "exponential x1.7");
}

TEST(RetryDelayTest, JitterDrawsUniformlyBetweenHalfAndFullFixedDelay) {
  ExpectJitterWithinBounds(Fixed(10s, true), "fixed 10s");
  ExpectJitterWithinBounds(Fixed(15ms, true), "fixed 15ms");  // odd: d/2 is not whole
}

TEST(RetryDelayTest, JitterOfZeroDelayIsZero) {
  std::mt19937_64 rng(3);
  for (int n = 1; n <= 20; ++n) EXPECT_EQ(RetryDelay(Fixed(0ms, true), n, rng), Millis(0));
}

TEST(RetryDelayTest, JitterIsDeterministicForTheSameSeed) {
  RetryPolicy p = Exponential(1s, 2, 10min, true);
  std::mt19937_64 a(99), b(99);
  for (int n = 1; n <= 20; ++n) EXPECT_EQ(RetryDelay(p, n, a), RetryDelay(p, n, b)) << "n=" << n;
}

TEST(RetryDelayTest, WithoutJitterTheRandomSourceIsNotConsumed) {
  std::mt19937_64 rng(12345);
  const std::mt19937_64 before = rng;
  for (int n = 1; n <= 20; ++n) {
    RetryDelay(Exponential(1s, 2, 10min), n, rng);
    RetryDelay(Fixed(1s), n, rng);
  }
  EXPECT_TRUE(rng == before);
}

// --- ShouldRetry --------------------------------------------------------------------------

RetryPolicy Retries(int retries, std::vector<int> codes = {}) {
  RetryPolicy p;
  p.retries = retries;
  p.retry_on_exit_codes = std::move(codes);
  return p;
}

TEST(ShouldRetryTest, NoRetriesMeansTheFirstFailureIsFinal) {
  EXPECT_FALSE(ShouldRetry(Retries(0), 1, 1));
  EXPECT_FALSE(ShouldRetry(Retries(0), 1, std::nullopt));
  EXPECT_FALSE(ShouldRetry(Retries(0), 1, std::nullopt, /*lost=*/true));
}

TEST(ShouldRetryTest, RetriesCountsExtraAttemptsAfterTheFirst) {
  // retries: 3 -> up to 4 attempts; after attempts 1..3 a retry follows, after 4 none.
  const RetryPolicy p = Retries(3);
  EXPECT_TRUE(ShouldRetry(p, 1, 1));
  EXPECT_TRUE(ShouldRetry(p, 2, 1));
  EXPECT_TRUE(ShouldRetry(p, 3, 1));
  EXPECT_FALSE(ShouldRetry(p, 4, 1));
  EXPECT_FALSE(ShouldRetry(p, 5, 1));
  EXPECT_FALSE(ShouldRetry(p, 100, 1));
}

TEST(ShouldRetryTest, AnyExitCodeRetriesWithoutAnAllowList) {
  const RetryPolicy p = Retries(1);
  for (int code : {1, 2, 3, 42, 126, 127, 137, 255}) EXPECT_TRUE(ShouldRetry(p, 1, code)) << code;
}

TEST(ShouldRetryTest, RetriesOnlyListedExitCodes) {
  const RetryPolicy p = Retries(2, {3, 75});
  EXPECT_TRUE(ShouldRetry(p, 1, 3));
  EXPECT_TRUE(ShouldRetry(p, 1, 75));
  EXPECT_TRUE(ShouldRetry(p, 2, 75));
  EXPECT_FALSE(ShouldRetry(p, 1, 1));
  EXPECT_FALSE(ShouldRetry(p, 1, 4));
  EXPECT_FALSE(ShouldRetry(p, 1, 255));
  // A listed code after the last attempt does not retry.
  EXPECT_FALSE(ShouldRetry(p, 3, 3));
}

TEST(ShouldRetryTest, TimeoutWithoutExitCodeRetriesWhenNoListIsGiven) {
  EXPECT_TRUE(ShouldRetry(Retries(1), 1, std::nullopt));
  EXPECT_FALSE(ShouldRetry(Retries(1), 2, std::nullopt));
}

TEST(ShouldRetryTest, TimeoutWithoutExitCodeDoesNotRetryWhenAListIsGiven) {
  EXPECT_FALSE(ShouldRetry(Retries(5, {1}), 1, std::nullopt));
  EXPECT_FALSE(ShouldRetry(Retries(5, {1, 2, 3}), 2, std::nullopt));
}

TEST(ShouldRetryTest, LostAttemptsRetryRegardlessOfTheExitCodeList) {
  EXPECT_TRUE(ShouldRetry(Retries(2, {3}), 1, std::nullopt, /*exempt=*/true));
  EXPECT_TRUE(ShouldRetry(Retries(2, {3}), 2, 1, /*exempt=*/true));  // stale code of an earlier attempt
  EXPECT_TRUE(ShouldRetry(Retries(2), 1, std::nullopt, /*exempt=*/true));
}

TEST(ShouldRetryTest, LostAttemptsStillRespectTheRetryCount) {
  EXPECT_FALSE(ShouldRetry(Retries(2, {3}), 3, std::nullopt, /*exempt=*/true));
  EXPECT_FALSE(ShouldRetry(Retries(0), 1, std::nullopt, /*exempt=*/true));
}

// --- EvaluateTriggerRule ------------------------------------------------------------------

const char* DecisionName(RuleDecision d) {
  switch (d) {
    case RuleDecision::kWait: return "wait";
    case RuleDecision::kRun: return "run";
    case RuleDecision::kSkip: return "skip";
    case RuleDecision::kUpstreamFailed: return "upstream_failed";
  }
  return "?";
}

std::string Describe(TriggerRule rule, const UpstreamCounts& c) {
  std::ostringstream out;
  out << dag::TriggerRuleName(rule) << " total=" << c.total << " succeeded=" << c.succeeded
      << " skipped=" << c.skipped << " failed=" << c.failed << " upstream_failed=" << c.upstream_failed
      << " cancelled=" << c.cancelled;
  return out.str();
}

struct RuleCase {
  TriggerRule rule;
  // total, succeeded, skipped, failed, upstream_failed, cancelled
  int total, ok, skip, fail, upfail, cancel;
  RuleDecision want;
};

constexpr auto W = RuleDecision::kWait;
constexpr auto R = RuleDecision::kRun;
constexpr auto S = RuleDecision::kSkip;
constexpr auto U = RuleDecision::kUpstreamFailed;

// Hand-written cases, one group per rule: the behaviour an operator reads in the docs.
const RuleCase kCases[] = {
    // all_success: runs when every upstream succeeded; any failure -> upstream_failed at
    // once; a skip (and no failure) -> skipped at once.
    {TriggerRule::kAllSuccess, 0, 0, 0, 0, 0, 0, R},
    {TriggerRule::kAllSuccess, 3, 0, 0, 0, 0, 0, W},
    {TriggerRule::kAllSuccess, 3, 2, 0, 0, 0, 0, W},
    {TriggerRule::kAllSuccess, 3, 3, 0, 0, 0, 0, R},
    {TriggerRule::kAllSuccess, 3, 0, 0, 1, 0, 0, U},
    {TriggerRule::kAllSuccess, 3, 2, 0, 1, 0, 0, U},
    {TriggerRule::kAllSuccess, 3, 1, 0, 0, 1, 0, U},
    {TriggerRule::kAllSuccess, 3, 1, 0, 0, 0, 1, U},
    {TriggerRule::kAllSuccess, 3, 1, 1, 0, 0, 0, S},
    {TriggerRule::kAllSuccess, 3, 2, 1, 0, 0, 0, S},
    {TriggerRule::kAllSuccess, 3, 0, 1, 1, 0, 0, U},  // failure beats skip
    // all_done: runs once everything upstream is terminal, whatever the outcome.
    {TriggerRule::kAllDone, 0, 0, 0, 0, 0, 0, R},
    {TriggerRule::kAllDone, 3, 0, 0, 0, 0, 0, W},
    {TriggerRule::kAllDone, 3, 1, 0, 1, 0, 0, W},
    {TriggerRule::kAllDone, 3, 3, 0, 0, 0, 0, R},
    {TriggerRule::kAllDone, 3, 0, 0, 3, 0, 0, R},
    {TriggerRule::kAllDone, 3, 0, 3, 0, 0, 0, R},
    {TriggerRule::kAllDone, 3, 1, 1, 0, 0, 1, R},
    {TriggerRule::kAllDone, 3, 0, 0, 1, 1, 1, R},
    // one_success: runs as soon as one upstream succeeded; if all are done without a
    // success: upstream_failed when something failed, else skipped.
    {TriggerRule::kOneSuccess, 0, 0, 0, 0, 0, 0, R},
    {TriggerRule::kOneSuccess, 3, 0, 0, 0, 0, 0, W},
    {TriggerRule::kOneSuccess, 3, 1, 0, 0, 0, 0, R},
    {TriggerRule::kOneSuccess, 3, 1, 0, 2, 0, 0, R},
    {TriggerRule::kOneSuccess, 3, 0, 0, 2, 0, 0, W},
    {TriggerRule::kOneSuccess, 3, 0, 0, 3, 0, 0, U},
    {TriggerRule::kOneSuccess, 3, 0, 2, 1, 0, 0, U},
    {TriggerRule::kOneSuccess, 3, 0, 0, 0, 1, 2, U},
    {TriggerRule::kOneSuccess, 3, 0, 3, 0, 0, 0, S},
    // one_failed: runs as soon as one upstream failed (or is upstream_failed or
    // cancelled); if all are done without a failure it is skipped.
    {TriggerRule::kOneFailed, 3, 0, 0, 0, 0, 0, W},
    {TriggerRule::kOneFailed, 3, 0, 0, 1, 0, 0, R},
    {TriggerRule::kOneFailed, 3, 0, 0, 0, 1, 0, R},
    {TriggerRule::kOneFailed, 3, 0, 0, 0, 0, 1, R},
    {TriggerRule::kOneFailed, 3, 2, 0, 0, 0, 0, W},
    {TriggerRule::kOneFailed, 3, 3, 0, 0, 0, 0, S},
    {TriggerRule::kOneFailed, 3, 1, 2, 0, 0, 0, S},
    // Without upstream there is no failure to react to: a cleanup task is skipped.
    {TriggerRule::kOneFailed, 0, 0, 0, 0, 0, 0, R},  // no upstream: runs, as in Airflow
    // none_failed: runs when all are done and none failed (skips are fine).
    {TriggerRule::kNoneFailed, 0, 0, 0, 0, 0, 0, R},
    {TriggerRule::kNoneFailed, 3, 0, 0, 0, 0, 0, W},
    {TriggerRule::kNoneFailed, 3, 2, 0, 0, 0, 0, W},
    {TriggerRule::kNoneFailed, 3, 1, 2, 0, 0, 0, R},
    {TriggerRule::kNoneFailed, 3, 0, 3, 0, 0, 0, R},
    {TriggerRule::kNoneFailed, 3, 3, 0, 0, 0, 0, R},
    {TriggerRule::kNoneFailed, 3, 0, 0, 1, 0, 0, U},
    {TriggerRule::kNoneFailed, 3, 2, 0, 0, 1, 0, U},
    {TriggerRule::kNoneFailed, 3, 2, 0, 0, 0, 1, U},
    // all_failed: runs when all are done and every one failed; a success or skip ->
    // skipped at once.
    {TriggerRule::kAllFailed, 0, 0, 0, 0, 0, 0, R},
    {TriggerRule::kAllFailed, 3, 0, 0, 0, 0, 0, W},
    {TriggerRule::kAllFailed, 3, 0, 0, 2, 0, 0, W},
    {TriggerRule::kAllFailed, 3, 0, 0, 3, 0, 0, R},
    {TriggerRule::kAllFailed, 3, 0, 0, 1, 1, 1, R},
    {TriggerRule::kAllFailed, 3, 1, 0, 0, 0, 0, S},
    {TriggerRule::kAllFailed, 3, 0, 1, 0, 0, 0, S},
    {TriggerRule::kAllFailed, 3, 1, 0, 2, 0, 0, S},
};

TEST(TriggerRuleTest, DocumentedCasesForEveryRule) {
  for (const RuleCase& tc : kCases) {
    UpstreamCounts c;
    c.total = tc.total;
    c.succeeded = tc.ok;
    c.skipped = tc.skip;
    c.failed = tc.fail;
    c.upstream_failed = tc.upfail;
    c.cancelled = tc.cancel;
    EXPECT_STREQ(DecisionName(EvaluateTriggerRule(tc.rule, c)), DecisionName(tc.want)) << Describe(tc.rule, c);
  }
}

// An independent statement of the rules, used to check every count combination.
RuleDecision Oracle(TriggerRule rule, const UpstreamCounts& c) {
  const int failures = c.failed + c.upstream_failed + c.cancelled;
  const bool done = c.succeeded + c.skipped + failures == c.total;
  switch (rule) {
    case TriggerRule::kAllSuccess:
      if (failures > 0) return U;
      if (c.skipped > 0) return S;
      return done ? R : W;
    case TriggerRule::kAllDone:
      return done ? R : W;
    case TriggerRule::kOneSuccess:
      if (c.total == 0 || c.succeeded > 0) return R;
      if (!done) return W;
      return failures > 0 ? U : S;
    case TriggerRule::kOneFailed:
      if (c.total == 0 || failures > 0) return R;
      return done ? S : W;
    case TriggerRule::kNoneFailed:
      if (failures > 0) return U;
      return done ? R : W;
    case TriggerRule::kAllFailed:
      if (c.succeeded > 0 || c.skipped > 0) return S;
      return done ? R : W;
  }
  return W;
}

TEST(TriggerRuleTest, EveryCountCombinationUpToFourUpstreamsMatchesTheRules) {
  const TriggerRule rules[] = {TriggerRule::kAllSuccess, TriggerRule::kAllDone,    TriggerRule::kOneSuccess,
                               TriggerRule::kOneFailed,  TriggerRule::kNoneFailed, TriggerRule::kAllFailed};
  int checked = 0;
  for (int total = 0; total <= 4; ++total)
    for (int ok = 0; ok <= total; ++ok)
      for (int skip = 0; ok + skip <= total; ++skip)
        for (int fail = 0; ok + skip + fail <= total; ++fail)
          for (int upfail = 0; ok + skip + fail + upfail <= total; ++upfail)
            for (int cancel = 0; ok + skip + fail + upfail + cancel <= total; ++cancel) {
              UpstreamCounts c;
              c.total = total;
              c.succeeded = ok;
              c.skipped = skip;
              c.failed = fail;
              c.upstream_failed = upfail;
              c.cancelled = cancel;
              for (TriggerRule rule : rules) {
                EXPECT_STREQ(DecisionName(EvaluateTriggerRule(rule, c)), DecisionName(Oracle(rule, c)))
                    << Describe(rule, c);
                ++checked;
              }
            }
  EXPECT_EQ(checked, 6 * 210);  // sum over total=0..4 of C(total+5, 5) count vectors
}

TEST(TriggerRuleTest, DecisionsAreStableOnceMadeEarly) {
  // A decision other than wait must not change when the remaining upstreams finish in
  // any way (the engine acts on it immediately). Checked for three upstreams. The one
  // exception is all_success: a skip upstream skips it at once, while a failure arriving
  // first would have made it upstream_failed (Airflow does the same; the run fails
  // either way because of the failed instance).
  const TriggerRule rules[] = {TriggerRule::kAllSuccess, TriggerRule::kAllDone,    TriggerRule::kOneSuccess,
                               TriggerRule::kOneFailed,  TriggerRule::kNoneFailed, TriggerRule::kAllFailed};
  const int total = 3;
  for (TriggerRule rule : rules)
    for (int ok = 0; ok <= total; ++ok)
      for (int skip = 0; ok + skip <= total; ++skip)
        for (int fail = 0; ok + skip + fail <= total; ++fail) {
          UpstreamCounts c{total, ok, skip, fail, 0, 0};
          RuleDecision first = EvaluateTriggerRule(rule, c);
          if (first == W) continue;
          const int pending = total - c.Done();
          for (int more_ok = 0; more_ok <= pending; ++more_ok)
            for (int more_skip = 0; more_ok + more_skip <= pending; ++more_skip) {
              UpstreamCounts later = c;
              later.succeeded += more_ok;
              later.skipped += more_skip;
              later.failed += pending - more_ok - more_skip;
              RuleDecision now = EvaluateTriggerRule(rule, later);
              if (rule == TriggerRule::kAllSuccess && first == S && now == U) continue;
              EXPECT_STREQ(DecisionName(now), DecisionName(first))
                  << Describe(rule, c) << " then " << Describe(rule, later);
            }
        }
}

}  // namespace
}  // namespace batchd::engine
