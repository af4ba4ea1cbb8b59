#include "metrics/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "batchd/version.h"

namespace batchd::metrics {

namespace prom = prometheus;

struct Metrics::Impl {
  engine::Engine& engine;
  scheduler::DagRegistry& registry;
  const Clock& clock;
  int workers;
  SysMillis started;
  std::shared_ptr<prom::Registry> reg = std::make_shared<prom::Registry>();
  prom::Family<prom::Counter>& runs_total =
      prom::BuildCounter().Name("batchd_runs_total").Help("Runs that reached a terminal state").Register(*reg);
  prom::Family<prom::Histogram>& run_duration =
      prom::BuildHistogram().Name("batchd_run_duration_seconds").Help("Run wall time").Register(*reg);
  prom::Family<prom::Gauge>& runs_active =
      prom::BuildGauge().Name("batchd_runs_active").Help("Runs in progress").Register(*reg);
  prom::Family<prom::Counter>& attempts_total =
      prom::BuildCounter().Name("batchd_task_attempts_total").Help("Finished attempts by outcome").Register(*reg);
  prom::Family<prom::Counter>& retries_total =
      prom::BuildCounter().Name("batchd_task_retries_total").Help("Attempts followed by a retry").Register(*reg);
  prom::Family<prom::Histogram>& task_duration =
      prom::BuildHistogram().Name("batchd_task_duration_seconds").Help("Attempt wall time").Register(*reg);
  prom::Family<prom::Counter>& task_cpu =
      prom::BuildCounter().Name("batchd_task_cpu_seconds_total").Help("CPU time of attempts").Register(*reg);
  prom::Family<prom::Counter>& partitions_total =
      prom::BuildCounter().Name("batchd_partitions_total").Help("Task instances that reached a terminal state").Register(*reg);
  prom::Family<prom::Counter>& idempotent_skips =
      prom::BuildCounter().Name("batchd_idempotent_skips_total").Help("Instances skipped as already_succeeded").Register(*reg);
  prom::Family<prom::Gauge>& tasks_running =
      prom::BuildGauge().Name("batchd_tasks_running").Help("Attempts running now").Register(*reg);
  prom::Family<prom::Gauge>& tasks_queued =
      prom::BuildGauge().Name("batchd_tasks_queued").Help("Instances waiting for a slot").Register(*reg);
  prom::Family<prom::Gauge>& executor_workers =
      prom::BuildGauge().Name("batchd_executor_workers").Help("Executor capacity").Register(*reg);
  prom::Family<prom::Gauge>& build_info =
      prom::BuildGauge().Name("batchd_build_info").Help("batchd version").Register(*reg);
  prom::Family<prom::Gauge>& resident =
      prom::BuildGauge().Name("process_resident_memory_bytes").Help("Resident memory").Register(*reg);
  prom::Family<prom::Counter>& cpu =
      prom::BuildCounter().Name("process_cpu_seconds_total").Help("CPU time of the daemon").Register(*reg);
  double cpu_reported = 0;
  prom::Family<prom::Gauge>& start_time =
      prom::BuildGauge().Name("process_start_time_seconds").Help("Start time, seconds since epoch").Register(*reg);

  static const prom::Histogram::BucketBoundaries& Buckets() {
    static const prom::Histogram::BucketBoundaries b{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600};
    return b;
  }
};

Metrics::Metrics(engine::Engine& engine, scheduler::DagRegistry& registry, const Clock& clock, int workers)
    : impl_(new Impl{engine, registry, clock, workers, clock.Now()}) {
  impl_->build_info.Add({{"version", kVersion}}).Set(1);
  impl_->executor_workers.Add({}).Set(workers);
  impl_->start_time.Add({}).Set(std::chrono::duration<double>(impl_->started.time_since_epoch()).count());
}

Metrics::~Metrics() = default;

void Metrics::OnRunFinished(const engine::RunPlan& plan) {
  const auto& run = plan.run();
  impl_->runs_total.Add({{"dag", run.dag}, {"trigger", run.trigger}, {"state", std::string(ToString(run.state))}})
      .Increment();
  if (run.started_at && run.ended_at) {
    impl_->run_duration.Add({{"dag", run.dag}}, Impl::Buckets())
        .Observe(std::chrono::duration<double>(*run.ended_at - *run.started_at).count());
  }
}

void Metrics::OnAttemptFinished(const engine::RunPlan& plan, const store::InstanceRecord& instance,
                                const store::AttemptRecord& attempt) {
  const std::string& dag = plan.run().dag;
  impl_->attempts_total.Add({{"dag", dag}, {"task", instance.task}, {"outcome", std::string(ToString(attempt.outcome))}})
      .Increment();
  if (instance.state == InstanceState::kRetryWait) impl_->retries_total.Add({{"dag", dag}, {"task", instance.task}}).Increment();
  if (attempt.ended_at) {
    impl_->task_duration.Add({{"dag", dag}, {"task", instance.task}}, Impl::Buckets())
        .Observe(std::chrono::duration<double>(*attempt.ended_at - attempt.started_at).count());
  }
  impl_->task_cpu.Add({{"dag", dag}, {"task", instance.task}}).Increment(attempt.cpu_seconds);
}

void Metrics::OnInstanceStateChanged(const engine::RunPlan& plan, const store::InstanceRecord& instance) {
  if (!IsTerminal(instance.state)) return;
  const std::string& dag = plan.run().dag;
  impl_->partitions_total.Add({{"dag", dag}, {"task", instance.task}, {"state", std::string(ToString(instance.state))}})
      .Increment();
  if (instance.state == InstanceState::kSkipped && instance.reason == "already_succeeded")
    impl_->idempotent_skips.Add({{"dag", dag}, {"task", instance.task}}).Increment();
}

std::string Metrics::Render() {
  Impl& m = *impl_;
  m.tasks_running.Add({}).Set(m.engine.RunningAttemptCount());
  m.tasks_queued.Add({}).Set(m.engine.QueuedInstanceCount());
  std::map<std::string, int> active;
  for (const auto& [name, _] : m.registry.all()) active[name] = 0;
  auto runs = m.engine.store().ListRunsInStates({RunState::kRunning});
  if (runs.ok())
    for (const auto& r : *runs) active[r.dag]++;
  for (const auto& [dag, n] : active) m.runs_active.Add({{"dag", dag}}).Set(n);
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) {
    double secs = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    if (secs > m.cpu_reported) m.cpu.Add({}).Increment(secs - m.cpu_reported);
    m.cpu_reported = std::max(secs, m.cpu_reported);
  }
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (statm >> pages_total >> pages_resident)
    m.resident.Add({}).Set(static_cast<double>(pages_resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)));
  return prom::TextSerializer().Serialize(m.reg->Collect());
}

}  // namespace batchd::metrics
