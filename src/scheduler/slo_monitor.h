#pragma once
// SloMonitor: counts the misses of each DAG's `slo:` block (SPEC section 3; docs/
// observability.md, "SLOs") while they happen, not only when a run ends:
// - duration: a run still running (or ended) longer than `slo.max_duration` after its
//   start counts one miss, once per run;
// - freshness: when the DAG's last success becomes older than `slo.freshness` it counts
//   one miss, once per breach (a breach ends with the next success). Before a first
//   success, freshness counts from when the DAG's first version was stored.
// Each miss is stored (Store::RecordSloMiss, so a restart neither loses nor repeats it,
// and batchd_slo_misses_total is rebuilt from it) and logged as a warning.
//
// Thread rules: engine thread only; its timer runs on the engine's io_context.

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "engine/engine.h"
#include "scheduler/dag_registry.h"

namespace boost::asio { class io_context; }

namespace batchd::scheduler {

// What `batchctl dags` shows of a DAG's SLOs.
struct DagSloState {
  std::optional<SysMillis> last_success;     // end of the newest successful run
  std::optional<Millis> freshness;           // slo.freshness
  std::optional<Millis> max_duration;        // slo.max_duration
  std::optional<Millis> age;                 // now - (last success, or first version before one)
  bool stale = false;                        // age > freshness now
  int runs_over_duration = 0;                // active runs running longer than max_duration
};

class SloMonitor final : public engine::EngineObserver {
 public:
  SloMonitor(boost::asio::io_context& io, engine::Engine& engine, DagRegistry& registry, const Clock& clock,
             Millis period = std::chrono::seconds(1));
  ~SloMonitor() override;

  // Checks once and begins ticking.
  void Start();
  void Stop();
  // Checks every DAG and active run now.
  void Check();

  DagSloState StateOf(const std::string& dag) const;

  // engine::EngineObserver: a success ends a freshness breach; a run that ended past its
  // max_duration between two checks still counts.
  void OnRunFinished(const engine::RunPlan& plan) override;

 private:
  void Arm();
  // Reads the DAGs' last successes and first versions from the store, once.
  bool Load();
  void CheckDuration(const store::RunRecord& run, const dag::Dag& dag, SysMillis now);
  void CheckFreshness(const std::string& name, const dag::Dag& dag, SysMillis now);
  std::optional<SysMillis> FreshSince(const std::string& dag);
  void Record(const store::SloMiss& miss);

  boost::asio::io_context& io_;
  engine::Engine& engine_;
  DagRegistry& registry_;
  const Clock& clock_;
  Millis period_;
  struct TimerHolder;
  std::unique_ptr<TimerHolder> timer_;
  bool loaded_ = false;
  std::map<std::string, SysMillis> last_success_;   // per DAG
  std::map<std::string, SysMillis> first_version_;  // per DAG
  std::set<std::string> duration_checked_;          // active runs whose miss is stored
  std::set<std::pair<std::string, std::string>> freshness_checked_;  // (dag, subject) stored
};

}  // namespace batchd::scheduler
