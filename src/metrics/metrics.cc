#include "metrics/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <type_traits>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include "batchd/version.h"

namespace batchd::metrics {

namespace prom = prometheus;

namespace {

double Seconds(Millis d) { return std::chrono::duration<double>(d).count(); }
double EpochSeconds(SysMillis t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

// A family whose series are all set again at each scrape: EndRefresh() removes the
// series the refresh did not set (a purged DAG, a pool no longer configured).
template <typename Metric>
class RefreshedFamily {
 public:
  explicit RefreshedFamily(prom::Family<Metric>& family) : family_(family) {}

  // Gauges take the value; counters (the store's counts) move up to it, and a count that
  // went down (its DAG was purged and used again) starts its series again.
  void Set(const prom::Labels& labels, double value) {
    seen_.insert(labels);
    Metric* metric = &family_.Add(labels);
    if constexpr (std::is_same_v<Metric, prom::Gauge>) {
      metric->Set(value);
    } else {
      if (value < metric->Value()) {
        family_.Remove(metric);
        metric = &family_.Add(labels);
      }
      metric->Increment(value - metric->Value());
    }
  }
  void EndRefresh() {
    for (const auto& labels : previous_)
      if (!seen_.count(labels)) family_.Remove(&family_.Add(labels));
    previous_.swap(seen_);
    seen_.clear();
  }

 private:
  prom::Family<Metric>& family_;
  std::set<prom::Labels> previous_, seen_;
};
using StoredCounterFamily = RefreshedFamily<prom::Counter>;
using SnapshotGaugeFamily = RefreshedFamily<prom::Gauge>;

}  // namespace

struct Metrics::Impl {
  engine::Engine& engine;
  scheduler::DagRegistry& registry;
  const Clock& clock;
  int workers;
  SysMillis started;
  std::shared_ptr<prom::Registry> reg = std::make_shared<prom::Registry>();

  // Stored history.
  prom::Family<prom::Counter>& runs_total = prom::BuildCounter()
      .Name("batchd_runs_total").Help("Times a run reached a terminal state, by trigger and state").Register(*reg);
  prom::Family<prom::Counter>& attempts_total = prom::BuildCounter()
      .Name("batchd_task_attempts_total").Help("Finished attempts by outcome").Register(*reg);
  prom::Family<prom::Counter>& retries_total = prom::BuildCounter()
      .Name("batchd_task_retries_total").Help("Attempts followed by an automatic retry").Register(*reg);
  prom::Family<prom::Counter>& task_cpu = prom::BuildCounter()
      .Name("batchd_task_cpu_seconds_total").Help("CPU time (user + system) of finished attempts").Register(*reg);
  prom::Family<prom::Counter>& partitions_total = prom::BuildCounter()
      .Name("batchd_partitions_total").Help("Times a task instance reached a terminal state, by state").Register(*reg);
  prom::Family<prom::Counter>& idempotent_skips = prom::BuildCounter()
      .Name("batchd_idempotent_skips_total").Help("Instances skipped because their idempotency key succeeded before")
      .Register(*reg);
  prom::Family<prom::Counter>& duplicate_triggers = prom::BuildCounter()
      .Name("batchd_duplicate_triggers_total").Help("Triggers that found their run already there (not run twice)")
      .Register(*reg);
  prom::Family<prom::Counter>& slo_misses = prom::BuildCounter()
      .Name("batchd_slo_misses_total").Help("SLO misses by kind (duration, freshness)").Register(*reg);
  StoredCounterFamily stored_runs{runs_total}, stored_attempts{attempts_total}, stored_retries{retries_total},
      stored_cpu{task_cpu}, stored_partitions{partitions_total}, stored_skips{idempotent_skips},
      stored_duplicates{duplicate_triggers}, stored_slo_misses{slo_misses};
  prom::Family<prom::Gauge>& dead_letters = prom::BuildGauge()
      .Name("batchd_dead_letters").Help("Instances failed after their last retry and not retried since").Register(*reg);
  prom::Family<prom::Gauge>& last_success = prom::BuildGauge()
      .Name("batchd_dag_last_success_timestamp_seconds").Help("End of the DAG's newest successful run").Register(*reg);
  SnapshotGaugeFamily dead_letter_gauges{dead_letters}, last_success_gauges{last_success};

  // Observed live.
  prom::Family<prom::Histogram>& run_duration = prom::BuildHistogram()
      .Name("batchd_run_duration_seconds").Help("Run wall time, start to end").Register(*reg);
  prom::Family<prom::Histogram>& schedule_delay = prom::BuildHistogram()
      .Name("batchd_run_schedule_delay_seconds").Help("Fire time (creation for unscheduled runs) to first attempt start")
      .Register(*reg);
  prom::Family<prom::Histogram>& task_duration = prom::BuildHistogram()
      .Name("batchd_task_duration_seconds").Help("Attempt wall time").Register(*reg);

  // Read from memory at each scrape.
  prom::Family<prom::Gauge>& runs_active = prom::BuildGauge()
      .Name("batchd_runs_active").Help("Runs in progress").Register(*reg);
  prom::Family<prom::Gauge>& freshness_slo = prom::BuildGauge()
      .Name("batchd_dag_freshness_slo_seconds").Help("The DAG's slo.freshness").Register(*reg);
  SnapshotGaugeFamily runs_active_gauges{runs_active}, freshness_gauges{freshness_slo};
  prom::Family<prom::Gauge>& tasks_running = prom::BuildGauge()
      .Name("batchd_tasks_running").Help("Attempts running now").Register(*reg);
  prom::Family<prom::Gauge>& tasks_queued = prom::BuildGauge()
      .Name("batchd_tasks_queued").Help("Instances ready and waiting for a slot").Register(*reg);
  prom::Family<prom::Gauge>& executor_workers = prom::BuildGauge()
      .Name("batchd_executor_workers").Help("Executor capacity").Register(*reg);
  prom::Family<prom::Gauge>& pool_slots = prom::BuildGauge()
      .Name("batchd_pool_slots").Help("Slots of a pool").Register(*reg);
  prom::Family<prom::Gauge>& pool_slots_used = prom::BuildGauge()
      .Name("batchd_pool_slots_used").Help("Slots of a pool in use").Register(*reg);
  SnapshotGaugeFamily pool_slot_gauges{pool_slots}, pool_used_gauges{pool_slots_used};
  prom::Family<prom::Gauge>& build_info = prom::BuildGauge()
      .Name("batchd_build_info").Help("batchd version").Register(*reg);
  prom::Family<prom::Gauge>& resident = prom::BuildGauge()
      .Name("process_resident_memory_bytes").Help("Resident memory").Register(*reg);
  prom::Family<prom::Counter>& cpu = prom::BuildCounter()
      .Name("process_cpu_seconds_total").Help("CPU time of the daemon").Register(*reg);
  double cpu_reported = 0;
  prom::Family<prom::Gauge>& start_time = prom::BuildGauge()
      .Name("process_start_time_seconds").Help("Start time, seconds since epoch").Register(*reg);

  // Runs whose first attempt start this process has observed (schedule delay).
  std::set<std::string> delay_observed;

  void RefreshStored();
  void RefreshLive();
};

const std::vector<double>& Metrics::DurationBuckets() {
  static const std::vector<double> b{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400};
  return b;
}

Metrics::Metrics(engine::Engine& engine, scheduler::DagRegistry& registry, const Clock& clock, int workers)
    : impl_(new Impl{engine, registry, clock, workers, clock.Now()}) {
  impl_->build_info.Add({{"version", kVersion}}).Set(1);
  impl_->executor_workers.Add({}).Set(workers);
  impl_->start_time.Add({}).Set(EpochSeconds(impl_->started));
  impl_->RefreshStored();  // the rebuild: from here on a scrape shows what the store holds
}

Metrics::~Metrics() = default;

void Metrics::OnRunFinished(const engine::RunPlan& plan) {
  const auto& run = plan.run();
  impl_->delay_observed.erase(run.run_id);
  if (run.started_at && run.ended_at)
    impl_->run_duration.Add({{"dag", run.dag}}, DurationBuckets()).Observe(Seconds(*run.ended_at - *run.started_at));
}

void Metrics::OnAttemptFinished(const engine::RunPlan& plan, const store::InstanceRecord& instance,
                                const store::AttemptRecord& attempt) {
  if (attempt.ended_at)
    impl_->task_duration.Add({{"dag", plan.run().dag}, {"task", instance.task}}, DurationBuckets())
        .Observe(Seconds(*attempt.ended_at - attempt.started_at));
}

void Metrics::OnInstanceStateChanged(const engine::RunPlan& plan, const store::InstanceRecord& instance) {
  // The first attempt of a run that started in this process: a run resumed after a restart
  // started before it, and its delay was observed (or lost) then.
  const auto& run = plan.run();
  if (instance.state != InstanceState::kRunning || !run.started_at || *run.started_at < impl_->started) return;
  if (!impl_->delay_observed.insert(run.run_id).second) return;
  const SysMillis fired = run.trigger == "schedule" && run.scheduled_for ? *run.scheduled_for : run.created_at;
  const SysMillis began = instance.started_at.value_or(impl_->clock.Now());
  impl_->schedule_delay.Add({{"dag", run.dag}}, DurationBuckets()).Observe(std::max(0.0, Seconds(began - fired)));
}

void Metrics::Impl::RefreshStored() {
  store::Store& store = engine.store();
  auto counts = store.ListMetricCounts();
  if (!counts.ok()) {
    spdlog::warn("metrics: {}; the stored counts are shown as last read", counts.status().message());
    return;
  }
  std::map<std::pair<std::string, std::string>, double> cpu_by_task;  // summed over outcomes
  for (const auto& c : *counts) {
    if (c.metric == "attempts") cpu_by_task[{c.dag, c.task}] += c.total;
    if (c.metric == "runs") stored_runs.Set({{"dag", c.dag}, {"trigger", c.trigger}, {"state", c.label}}, c.value);
    else if (c.metric == "attempts") stored_attempts.Set({{"dag", c.dag}, {"task", c.task}, {"outcome", c.label}}, c.value);
    else if (c.metric == "retries") stored_retries.Set({{"dag", c.dag}, {"task", c.task}}, c.value);
    else if (c.metric == "partitions") stored_partitions.Set({{"dag", c.dag}, {"task", c.task}, {"state", c.label}}, c.value);
    else if (c.metric == "idempotent_skips") stored_skips.Set({{"dag", c.dag}, {"task", c.task}}, c.value);
    else if (c.metric == "duplicate_triggers") stored_duplicates.Set({{"dag", c.dag}}, c.value);
    else if (c.metric == "slo_misses") stored_slo_misses.Set({{"dag", c.dag}, {"kind", c.label}}, c.value);
  }
  for (const auto& [key, seconds] : cpu_by_task) stored_cpu.Set({{"dag", key.first}, {"task", key.second}}, seconds);
  for (StoredCounterFamily* f : {&stored_runs, &stored_attempts, &stored_retries, &stored_cpu, &stored_partitions,
                                 &stored_skips, &stored_duplicates, &stored_slo_misses})
    f->EndRefresh();

  if (auto dead = store.CountDeadLetters(); dead.ok()) {
    for (const auto& d : *dead) dead_letter_gauges.Set({{"dag", d.dag}, {"task", d.task}}, static_cast<double>(d.count));
    dead_letter_gauges.EndRefresh();
  } else {
    spdlog::warn("metrics: {}", dead.status().message());
  }
  if (auto last = store.ListLastSuccesses(); last.ok()) {
    for (const auto& [dag, at] : *last) last_success_gauges.Set({{"dag", dag}}, EpochSeconds(at));
    last_success_gauges.EndRefresh();
  } else {
    spdlog::warn("metrics: {}", last.status().message());
  }
}

void Metrics::Impl::RefreshLive() {
  tasks_running.Add({}).Set(engine.RunningAttemptCount());
  tasks_queued.Add({}).Set(engine.QueuedInstanceCount());
  std::map<std::string, int> active;
  for (const auto& [name, reg] : registry.all()) {
    active[name] = 0;
    if (reg.dag->slo.freshness) freshness_gauges.Set({{"dag", name}}, Seconds(*reg.dag->slo.freshness));
  }
  freshness_gauges.EndRefresh();
  for (const auto& [_, plan] : engine.active_plans())
    if (plan->run().state == RunState::kRunning) active[plan->run().dag]++;
  for (const auto& [dag, n] : active) runs_active_gauges.Set({{"dag", dag}}, n);
  runs_active_gauges.EndRefresh();
  const auto& used = engine.PoolUsage();
  for (const auto& [pool, slots] : engine.options().pools) {
    pool_slot_gauges.Set({{"pool", pool}}, slots);
    auto it = used.find(pool);
    pool_used_gauges.Set({{"pool", pool}}, it == used.end() ? 0 : it->second);
  }
  pool_slot_gauges.EndRefresh();
  pool_used_gauges.EndRefresh();

  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) {
    double secs = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    if (secs > cpu_reported) cpu.Add({}).Increment(secs - cpu_reported);
    cpu_reported = std::max(secs, cpu_reported);
  }
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (statm >> pages_total >> pages_resident)
    resident.Add({}).Set(static_cast<double>(pages_resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)));
}

std::string Metrics::Render() {
  impl_->RefreshStored();
  impl_->RefreshLive();
  return prom::TextSerializer().Serialize(impl_->reg->Collect());
}

}  // namespace batchd::metrics
