// What the counters that survive restarts cost (docs/observability.md, "Counters that
// survive restarts"), on a store with a long history:
//   1. the rebuild at start: the reads Metrics does at each scrape (the counts, dead
//      letters, last successes), on a store holding N attempts;
//   2. the upgrade of a version-4 store of that size to version 5 (counting its history
//      once, in aggregate SQL);
//   3. the write cost of the counting triggers: M instance state changes and attempt
//      endings in group commits, with and without the triggers.
//
//   cmake --build build --target bench_metrics_rebuild
//   build/bench_metrics_rebuild [attempts (default 1000000)] [changes (default 100000)]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "store/sqlite.h"
#include "store/store.h"

using namespace batchd;
using Steady = std::chrono::steady_clock;

namespace {

double MsSince(Steady::time_point t) { return std::chrono::duration<double, std::milli>(Steady::now() - t).count(); }

void Check(const Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, st.message().c_str());
    std::exit(1);
  }
}
template <typename T>
void Check(const Result<T>& r, const char* what) {
  if (!r.ok()) Check(r, what);
}

// N attempts, one per instance, in runs of 1,000 instances over 10 DAGs and 10 tasks each,
// written with plain SQL (as a long-lived daemon would have left them).
void Fill(const std::string& dir, int64_t attempts) {
  { auto store = store::Store::Open(dir); Check(store, "open"); }
  auto db = store::Database::Open(dir + "/batchd.db");
  Check(db, "open db");
  const int64_t runs = (attempts + 999) / 1000;
  const std::string n = std::to_string(attempts), r = std::to_string(runs);
  Check((*db)->Exec("PRAGMA synchronous=OFF; BEGIN;"
                    "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < " + r + ") "
                    "INSERT INTO runs (run_id, dag, dag_hash, run_key, trigger, state, logical_date, interval_start, "
                    "interval_end, params, force, created_at, started_at, ended_at) "
                    "SELECT printf('r%08d', i), 'dag' || (i % 10), 'h', 'k' || i, 'schedule', 'running', i, i, i, '{}', "
                    "0, i * 1000, i * 1000, NULL FROM k;"
                    "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < " + n + ") "
                    "INSERT INTO task_instances (id, run_id, task, partition, state, idempotency_key, attempts) "
                    "SELECT i + 1, printf('r%08d', i / 1000), 'task' || (i % 10), 'p' || i, "
                    "CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'success' END, 'key' || i, 1 FROM k;"
                    "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < " + n + ") "
                    "INSERT INTO attempts (instance_id, number, outcome, started_at, ended_at, cpu_seconds, log_path) "
                    "SELECT i + 1, 1, CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'success' END, i, i + 5, 0.01, '' FROM k;"
                    "UPDATE runs SET state = 'success', ended_at = created_at + 60000;"
                    "COMMIT;"),
        "fill");
}

void TimeRebuild(const std::string& dir, const char* label) {
  auto t = Steady::now();
  auto store = store::Store::Open(dir);
  Check(store, "open");
  const double open_ms = MsSince(t);
  t = Steady::now();
  auto counts = (*store)->ListMetricCounts();
  Check(counts, "counts");
  auto dead = (*store)->CountDeadLetters();
  Check(dead, "dead letters");
  auto last = (*store)->ListLastSuccesses();
  Check(last, "last successes");
  std::printf("%-34s open %8.1f ms   rebuild %6.2f ms (%zu counts, %zu dead-letter series, %zu DAGs)\n", label,
              open_ms, MsSince(t), counts->size(), dead->size(), last->size());
}

// `changes` instances of a fresh run go queued -> running -> success with an attempt each,
// 1,000 per group commit, as the engine writes them.
double TimeChanges(const std::string& dir, int64_t changes) {
  auto store = store::Store::Open(dir);
  Check(store, "open");
  store::Store& s = **store;
  store::RunRecord run;
  run.run_id = "bench" + std::to_string(Steady::now().time_since_epoch().count() % 1000000);
  run.dag = "bench";
  run.dag_hash = "h";
  run.run_key = run.run_id;
  run.trigger = "manual";
  run.state = RunState::kRunning;
  Check(s.CreateRun(run), "create run");
  std::vector<store::InstanceRecord> instances(changes);
  for (int64_t i = 0; i < changes; ++i) {
    instances[i].run_id = run.run_id;
    instances[i].task = "t";
    instances[i].partition = std::to_string(i);
    instances[i].idempotency_key = run.run_id + std::to_string(i);
  }
  Check(s.InsertInstances(instances), "insert");
  const auto t = Steady::now();
  for (int64_t i = 0; i < changes; i += 1000) {
    Check(s.Begin(store::Store::Durability::kProcessCrash), "begin");
    for (int64_t j = i; j < std::min(changes, i + 1000); ++j) {
      auto& inst = instances[j];
      inst.state = InstanceState::kRunning;
      inst.attempts = 1;
      Check(s.UpdateInstance(inst), "update");
      store::AttemptRecord a;
      a.instance_id = inst.id;
      a.number = 1;
      Check(s.InsertAttempt(a), "attempt");
      a.outcome = AttemptOutcome::kSuccess;
      a.cpu_seconds = 0.001;
      Check(s.FinishAttempt(a), "finish");
      inst.state = InstanceState::kSuccess;
      Check(s.UpdateInstance(inst), "update");
    }
    Check(s.Commit(), "commit");
  }
  return MsSince(t);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t attempts = argc > 1 ? std::atoll(argv[1]) : 1'000'000;
  const int64_t changes = argc > 2 ? std::atoll(argv[2]) : 100'000;
  const std::string dir = std::filesystem::temp_directory_path() / ("batchd-bench-metrics-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);

  auto t = Steady::now();
  Fill(dir, attempts);
  std::printf("store with %lld attempts, %lld instances, %lld runs: filled in %.1f s, %.0f MB\n", (long long)attempts,
              (long long)attempts, (long long)((attempts + 999) / 1000), MsSince(t) / 1000,
              std::filesystem::file_size(dir + "/batchd.db") / 1e6);
  TimeRebuild(dir, "start (schema 5):");

  // Back to version 4, then the upgrade counts the history.
  {
    auto db = store::Database::Open(dir + "/batchd.db");
    Check(db, "open db");
    Check((*db)->Exec("DROP TRIGGER count_run_endings; DROP TRIGGER count_instance_endings; DROP TRIGGER count_idempotent_skips; "
                      "DROP TRIGGER count_instances_born_ended; DROP TRIGGER count_attempt_endings; "
                      "DROP TRIGGER count_attempts_born_ended; DROP TRIGGER count_slo_misses; "
                      "DROP TABLE metric_counts; DROP TABLE dag_health; DROP TABLE slo_misses; "
                      "UPDATE schema_version SET version = 4"),
          "downgrade");
  }
  TimeRebuild(dir, "first start after upgrade 4 -> 5:");
  TimeRebuild(dir, "next start:");

  const double with = TimeChanges(dir, changes);
  auto drop = [&](const char* sql) {
    auto db = store::Database::Open(dir + "/batchd.db");
    Check(db, "open db");
    Check((*db)->Exec(sql), "drop triggers");
  };
  drop("DROP TRIGGER count_attempt_endings; DROP TRIGGER count_attempts_born_ended;");
  const double instances_only = TimeChanges(dir, changes);
  drop("DROP TRIGGER count_instance_endings; DROP TRIGGER count_idempotent_skips; DROP TRIGGER count_instances_born_ended;");
  const double without = TimeChanges(dir, changes);
  std::printf("%lld instances run (4 writes each, group commits of 1,000): %.0f ms with the counting triggers "
              "(%.0f ms with those of instances only), %.0f ms without: %.2f us per instance\n",
              (long long)changes, with, instances_only, without, (with - without) * 1000 / changes);
  std::filesystem::remove_all(dir);
}
