#pragma once
// Metrics: an engine observer feeding a prometheus-cpp registry, rendered in the text
// format for GET /metrics. Labels never include run ids or partitions (unbounded).
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

  // The Prometheus text exposition of every metric, gauges refreshed first.
  std::string Render();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace batchd::metrics
