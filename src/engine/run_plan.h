#pragma once
// RunPlan: one run's progress. It owns the run's task instances and their dependency
// edges and decides, purely, what becomes ready, skipped or upstream_failed and when a run
// is finished. It performs no I/O: the Engine persists every instance that Take Changed()
// returns and performs side effects after the commit.
//
// Thread rules: owned by the engine loop thread; not thread-safe.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "batchd/states.h"
#include "common/status.h"
#include "dag/dag.h"
#include "store/store.h"

namespace batchd::engine {

// Variables for templates of one run (without task, partition and attempt).
std::map<std::string, std::string> RunTemplateVars(const dag::Dag& dag, const store::RunRecord& run);

// `BATCHD_PARAM_<NAME>=value` for each param (`params` maps NAME to value, as the DAG's
// defaults merged with the run's overrides): NAME upper-cased, every byte outside
// [A-Z0-9_] written `_`; NUL bytes, which no environment can carry, dropped. When two
// names map to the same variable, the later name in byte order wins. Sorted by name.
std::vector<std::string> ParamEnvironment(const std::map<std::string, std::string>& params);

// The run's params (DAG defaults merged with its trigger-time overrides), by name.
std::map<std::string, std::string> RunParams(const dag::Dag& dag, const store::RunRecord& run);

// Creates the pending instances of a run. `partitions` maps each task id to its
// partition names (already expanded; "-" for an unpartitioned task).
std::vector<store::InstanceRecord> MakeInstances(const dag::Dag& dag, const store::RunRecord& run,
                                                 const std::map<std::string, std::vector<std::string>>& partitions);

class RunPlan {
 public:
  // Builds the instance graph. Instances must be exactly those MakeInstances made
  // (possibly with later states). `partitions: same` edges link equal partition names.
  RunPlan(dag::DagPtr dag, store::RunRecord run, std::vector<store::InstanceRecord> instances);

  const dag::Dag& dag() const { return *dag_; }
  const dag::DagPtr& dag_ptr() const { return dag_; }
  store::RunRecord& run() { return run_; }
  const store::RunRecord& run() const { return run_; }
  size_t size() const { return instances_.size(); }
  store::InstanceRecord& instance(size_t i) { return instances_[i]; }
  const store::InstanceRecord& instance(size_t i) const { return instances_[i]; }
  const dag::Task& task_of(size_t i) const { return dag_->tasks[task_index_[i]]; }
  std::optional<size_t> IndexOf(int64_t instance_id) const;

  // Every state change of an instance goes through here; records the change for
  // persistence and keeps the counters right.
  void Transition(size_t i, InstanceState to, std::string reason = "");

  // Re-evaluates every pending instance whose upstream is decided: moves it to queued
  // (REQUIRES: caller checks idempotency right after), skipped or upstream_failed,
  // cascading. Call after any instance reached a terminal state, and once at start.
  void Propagate();

  // Instances in state queued, in index order.
  std::vector<size_t> Queued() const;
  // Queued instances in dispatch order: (-priority, index), higher priority first.
  // Kept up to date by Transition, so picking work costs nothing per idle instance.
  using ReadySet = std::set<std::pair<int, size_t>>;
  const ReadySet& Ready() const { return ready_; }
  // Instances that became queued since the last call (each at most once per time it
  // became queued; check state and key_checked() before acting on one).
  std::vector<size_t> TakeNewlyQueued();

  // Indexes changed since the last call (each once), for persisting.
  std::vector<size_t> TakeChanged();

  // True when every instance is terminal.
  bool AllTerminal() const { return terminal_count_ == instances_.size(); }
  // The run's outcome once AllTerminal(): failed if any instance failed or is
  // upstream_failed, otherwise success.
  RunState Outcome() const;

  // Resets failed and upstream_failed instances (optionally only of `task` /
  // `partition`) to pending; returns how many. Downstream instances that were
  // upstream_failed because of them are reset as well.
  int ResetFailed(const std::optional<std::string>& task, const std::optional<std::string>& partition);

  // Instances of `task`, every partition or only `partition`, in index order.
  std::vector<size_t> InstancesOf(const std::string& task, const std::optional<std::string>& partition) const;

  // An operator's decision: instance i, which is not running, ends in the terminal state
  // `to` with `reason`. Downstream instances the trigger rules had decided
  // (upstream_failed, skipped by rule) are decided again.
  void Mark(size_t i, InstanceState to, std::string reason, SysMillis now);

  // Resets terminal instance i to pending for another attempt (the retry policy applies
  // afresh). `force`: it runs even when its idempotency key already succeeded. Downstream
  // instances the trigger rules had decided are decided again.
  void Clear(size_t i, bool force);

  int CountIn(InstanceState s) const { return counts_[static_cast<int>(s)]; }
  // Instances of the DAG's task `task_index` in each state (indexed by InstanceState).
  using StateCounts = std::array<int, 9>;
  const StateCounts& TaskCounts(size_t task_index) const { return task_counts_[task_index]; }

  // Template variables of this run (without task, partition, attempt); computed once.
  const std::map<std::string, std::string>& vars() const { return vars_; }
  // Template variables of one attempt of instance i: vars() plus task, partition and
  // attempt. The reference is valid until the next call.
  const std::map<std::string, std::string>& AttemptVars(size_t i, int attempt);
  // The environment shared by every attempt of task `task_index` in this run: `base`,
  // then the DAG's env, then the task's env, minus the per-attempt BATCHD_* variables
  // and inherited BATCHD_PARAM_* ones, plus BATCHD_PARAM_<NAME> for each of the run's
  // params (ParamEnvironment).
  // Computed once per run for the DAG-wide part and once per task with env of its own
  // (attempts of a partitioned task share it). `base` must be the same on every call.
  const std::vector<std::string>& TaskEnvironment(size_t task_index, const std::vector<std::string>& base);
  std::span<const uint32_t> upstream_of(size_t i) const { return upstream_.of(i); }
  std::span<const uint32_t> downstream_of(size_t i) const { return downstream_.of(i); }
  size_t task_index_of(size_t i) const { return static_cast<size_t>(task_index_[i]); }

  // Whether instance i's idempotency key was checked since it last became queued.
  bool key_checked(size_t i) const { return key_checked_[i] != 0; }
  void set_key_checked(size_t i, bool v) { key_checked_[i] = v ? 1 : 0; }

 private:
  // What instance i counts as for its downstream's trigger rules (UpstreamCounts).
  enum Kind : uint8_t { kUndecided, kSucceeded, kSkipped, kFailed, kUpstreamFailed, kCancelled, kKinds };
  Kind KindOf(size_t i) const;
  // Puts the downstream instances of i whose state a trigger rule decided back to pending,
  // transitively, so that Propagate decides them from their upstream's present states.
  void ReopenRuleDecidedDownstream(size_t i);

  // Instance -> its neighbours, for every instance at once: one flat array of edges and
  // where each instance's run of it starts (compressed sparse rows). A vector per instance
  // would cost 24 bytes and an allocation each, most of them for one edge or none.
  struct Adjacency {
    std::vector<uint32_t> start;  // size() + 1 entries; instance i's edges: [start[i], start[i + 1])
    std::vector<uint32_t> edges;
    std::span<const uint32_t> of(size_t i) const { return {edges.data() + start[i], edges.data() + start[i + 1]}; }
  };
  // Fills upstream_ and downstream_; `task_pos` maps each task id to its index.
  void BuildEdges(const std::map<std::string_view, size_t>& task_pos);

  dag::DagPtr dag_;
  store::RunRecord run_;
  std::vector<store::InstanceRecord> instances_;
  std::vector<int> task_index_;                 // instance -> index into dag_->tasks
  Adjacency upstream_;                          // instance -> its upstream instances
  Adjacency downstream_;
  // Per instance, how many of its upstream instances are of each Kind. Transition keeps
  // them, so deciding an instance costs O(1) whatever its fan-in, and a run's whole
  // scheduling work stays linear in its edges.
  std::vector<std::array<int32_t, kKinds>> upstream_kinds_;
  std::vector<std::pair<int64_t, uint32_t>> by_id_;  // (instance id, index), sorted by id
  std::map<std::string, std::string> vars_;
  std::map<std::string, std::string> attempt_vars_;
  // TaskEnvironment's caches: the DAG-wide part (inherited + DAG env), and per task
  // (null until computed; tasks without env of their own share the DAG-wide vector).
  std::map<std::string, std::string> dag_env_map_;
  std::shared_ptr<const std::vector<std::string>> dag_env_;
  std::vector<std::shared_ptr<const std::vector<std::string>>> task_env_;  // by task index
  std::vector<char> key_checked_;
  ReadySet ready_;
  std::vector<size_t> newly_queued_;
  std::vector<size_t> dirty_;                   // pending instances to re-evaluate
  std::vector<char> changed_flag_;
  std::vector<size_t> changed_;
  size_t terminal_count_ = 0;
  int counts_[9] = {0};
  std::vector<StateCounts> task_counts_;        // by task index
};

}  // namespace batchd::engine
