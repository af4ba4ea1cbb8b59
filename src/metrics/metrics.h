#pragma once
// Metrics: every metric of SPEC section 7 in a prometheus-cpp registry, rendered in the
// text format for GET /metrics. Labels never include run ids or partitions (unbounded).
//
// Where the numbers come from (docs/observability.md):
// - counters that describe stored history (runs, attempts, retries, CPU, partitions,
//   idempotent skips, duplicate triggers, SLO misses) are the store's counts
//   (Store::ListMetricCounts), read at each scrape: a restart or a crash does not reset
//   them, and live and rebuilt values are the same numbers;
// - gauges of stored state (dead letters, last success) are read from the store too;
// - histograms are observed live, as the engine reports endings, and start empty;
// - the rest (active runs, queue, pools, process) is read from memory at each scrape.
//
// Thread rules: engine thread only (observer callbacks and Render both run there).

#include <memory>
#include <string>

#include "engine/engine.h"
#include "scheduler/dag_registry.h"

namespace batchd::metrics {

class Metrics final : public engine::EngineObserver {
 public:
  Metrics(engine::Engine& engine, scheduler::DagRegistry& registry, const Clock& clock, int workers);
  ~Metrics() override;

  void OnRunFinished(const engine::RunPlan& plan) override;
  void OnAttemptFinished(const engine::RunPlan& plan, const store::InstanceRecord& instance,
                         const store::AttemptRecord& attempt) override;
  void OnInstanceStateChanged(const engine::RunPlan& plan, const store::InstanceRecord& instance) override;

  // The Prometheus text exposition of every metric, refreshed from the store and the
  // engine first. A store that cannot be read leaves the stored values as last read.
  std::string Render();

  // Histogram buckets for batch work: 100 ms to 24 h.
  static const std::vector<double>& DurationBuckets();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace batchd::metrics
