#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

// An operator's changes to the instances of a run that has started: retry, mark, clear.
// Each edits the run's plan (the active one, or a finished run's planned again from the
// store), persists the run and the changed instances in one transaction, and makes the
// run active again once it commits; the engine's next pass decides what follows, and
// ends the run when nothing is left to do.

#include <set>

#include <spdlog/spdlog.h>

#include "common/logging.h"
#include "engine/engine.h"

namespace batchd::engine {

using store::RunRecord;

Result<Engine::RunEdit> Engine::OpenRunEdit(const std::string& run_id, const char* doing) {
  RunEdit edit;
  auto it = plans_.find(run_id);
  if (it != plans_.end()) {
    edit.plan = it->second.get();
    if (edit.plan->run().state == RunState::kCancelled)
      return Status::FailedPrecondition("run '" + run_id + "' is being cancelled");
    return edit;
  }
  auto run = store_.GetRun(run_id);
  if (!run.ok()) return run.status();
  if (!*run) return Status::NotFound("run '" + run_id + "' not found");
  if ((*run)->state == RunState::kQueued)
    return Status::FailedPrecondition("run '" + run_id + "' has not started yet: nothing to " + doing);
  auto dag = resolver_((*run)->dag, (*run)->dag_hash);
  if (!dag.ok()) return dag.status();
  auto instances = store_.ListInstances(run_id);
  if (!instances.ok()) return instances.status();
  edit.owned = std::make_unique<RunPlan>(*dag, **run, std::move(*instances));
  edit.plan = edit.owned.get();
  return edit;
}

void Engine::MoveEditToVersion(RunEdit& edit, const dag::DagPtr& version) {
  edit.new_version = version;
  if (!edit.owned) return;  // an active run is planned again after the commit
  RunRecord run = edit.owned->run();
  run.dag_hash = version->content_hash;
  std::vector<store::InstanceRecord> instances;
  instances.reserve(edit.owned->size());
  for (size_t i = 0; i < edit.owned->size(); ++i) instances.push_back(edit.owned->instance(i));
  edit.owned = std::make_unique<RunPlan>(version, std::move(run), std::move(instances));
  edit.plan = edit.owned.get();
}

Status Engine::CommitRunEdit(const std::string& run_id, RunEdit& edit, std::string what,
                             const std::function<Status()>& also) {
  RunPlan* plan = edit.plan;
  // A finished run that has work again waits for a free max_active_runs slot, queued
  // with its instances as edited; StartQueuedRuns resumes it (ResumeQueuedRetry). One
  // that has none ends in the next pass, without a slot.
  const bool wait_for_slot =
      edit.owned && !plan->AllTerminal() && ActiveRunsOf(plan->run().dag) >= plan->dag().max_active_runs;
  const RunState state = wait_for_slot ? RunState::kQueued : RunState::kRunning;
  plan->run().state = state;
  plan->run().ended_at.reset();
  Status st = store_.Begin();
  const bool began = st.ok();
  if (st.ok()) st = store_.UpdateRunState(run_id, state, std::nullopt, std::nullopt);
  if (st.ok() && edit.new_version) st = store_.UpdateRunDagHash(run_id, edit.new_version->content_hash);
  for (size_t i : plan->TakeChanged()) {
    if (!st.ok()) break;
    st = store_.UpdateInstance(plan->instance(i));
  }
  if (st.ok() && also) st = also();
  // An active run that moves to another version is planned again from the store, with
  // that version, once the transaction commits.
  const bool replan_active = edit.new_version && !edit.owned;
  // The plan is installed once the outermost transaction commits; if it rolls back, an
  // active run's plan, edited above, is planned again from the store.
  auto install = std::make_shared<std::unique_ptr<RunPlan>>(std::move(edit.owned));
  edit.plan = nullptr;
  auto after = [self = self_, run_id, what = std::move(what), wait_for_slot, install, replan_active](bool committed) {
    if (!*self) return;
    Engine& e = **self;
    if (!committed || replan_active) {
      if (!*install) e.ReloadPlan(run_id);
      if (!committed) return;
    }
    if (wait_for_slot) {
      LogEvent(spdlog::level::info, {.run_id = run_id}, "run {}: {}; it resumes once its DAG has a free run slot",
               run_id, what);
      e.may_start_queued_runs_ = true;
    } else {
      LogEvent(spdlog::level::info, {.run_id = run_id}, "run {}: {}", run_id, what);
      if (*install) e.plans_[run_id] = std::move(*install);
    }
    e.SchedulePump();
  };
  if (!began) {
    if (!*install) ReloadPlan(run_id);
    return st;
  }
  store_.AfterTransaction(std::move(after));
  if (!st.ok()) {
    store_.Rollback();  // `after` reloads the plan once the outermost transaction ends
    return st;
  }
  return store_.Commit();
}

Result<Engine::RetryOutcome> Engine::Retry(const std::string& run_id, const RetryRequest& request) {
  auto edit = OpenRunEdit(run_id, "retry");
  if (!edit.ok()) return edit.status();
  RetryOutcome outcome;
  outcome.previous_hash = edit->plan->run().dag_hash;
  if (request.current_version) {
    auto current = CurrentVersionFor(edit->plan->run(), edit->plan->dag(), &outcome.kept_version_why);
    if (!current.ok()) return current.status();
    if (*current) MoveEditToVersion(*edit, *current);
  }
  outcome.reset = edit->plan->ResetFailed(request.task, request.partition);
  if (outcome.reset == 0) {
    // Nothing changed; an active run's plan was not touched (the version moves only with
    // a commit).
    return Status::FailedPrecondition(NothingToRetry(run_id, request.task, request.partition));
  }
  outcome.dag_hash = edit->new_version ? edit->new_version->content_hash : outcome.previous_hash;
  if (Status st = CommitRunEdit(run_id, *edit, "retrying " + std::to_string(outcome.reset) + " instance(s)"); !st.ok())
    return st;
  return outcome;
}

Result<int> Engine::RetryRun(const std::string& run_id, const std::optional<std::string>& task,
                             const std::optional<std::string>& partition) {
  auto outcome = Retry(run_id, RetryRequest{.task = task, .partition = partition});
  if (!outcome.ok()) return outcome.status();
  return outcome->reset;
}

Result<std::vector<size_t>> Engine::SelectInstances(const RunPlan& plan, const std::string& task,
                                                    const std::optional<std::string>& partition) const {
  const std::string& run_id = plan.run().run_id;
  std::vector<size_t> selected = plan.InstancesOf(task, std::nullopt);
  if (selected.empty()) return Status::NotFound("run '" + run_id + "' has no task '" + task + "'");
  if (partition) {
    selected = plan.InstancesOf(task, partition);
    if (selected.empty())
      return Status::NotFound("task '" + task + "' of run '" + run_id + "' has no partition '" + *partition + "'");
  }
  return selected;
}

Result<Engine::EditOutcome> Engine::Mark(const std::string& run_id, const MarkRequest& request) {
  if (request.state != InstanceState::kSuccess && request.state != InstanceState::kFailed &&
      request.state != InstanceState::kSkipped)
    return Status::InvalidArgument("an instance can be marked success, failed or skipped, not " +
                                   std::string(ToString(request.state)));
  auto edit = OpenRunEdit(run_id, "mark");
  if (!edit.ok()) return edit.status();
  RunPlan& plan = *edit->plan;
  auto selected = SelectInstances(plan, request.task, request.partition);
  if (!selected.ok()) return selected.status();
  // A running attempt's result would overwrite the mark: the operator waits for it or
  // cancels the run first. Checked before anything changes.
  for (size_t i : *selected) {
    const auto& inst = plan.instance(i);
    if (inst.state == InstanceState::kRunning)
      return Status::FailedPrecondition("task '" + inst.task + "' partition '" + inst.partition + "' of run '" +
                                        run_id + "' is running (attempt " + std::to_string(inst.attempts) +
                                        "): wait for it to end, or cancel the run, then mark it");
  }
  const std::string state_name(ToString(request.state));
  const std::string reason = "marked " + state_name + ": " + request.reason;
  const SysMillis now = clock_.Now();
  EditOutcome outcome;
  std::vector<std::string> keys;  // keys a mark of success records
  for (size_t i : *selected) {
    plan.Mark(i, request.state, reason, now);
    ++outcome.changed;
    if (request.state == InstanceState::kSuccess) keys.push_back(plan.instance(i).idempotency_key);
  }
  const std::string dag = plan.run().dag;
  // Marked success means the work is done: like a successful attempt, it records the
  // instance's idempotency key, so that no other run does the same work again.
  auto record_keys = [this, dag, run_id, keys, now]() -> Status {
    for (const auto& key : keys)
      if (Status st = store_.RecordKeySuccess(dag, key, run_id, now); !st.ok()) return st;
    return Status::Ok();
  };
  const std::string what = "marked " + std::to_string(outcome.changed) + " instance(s) of task " + request.task + " " +
                           state_name + " (" + request.reason + ")";
  if (Status st = CommitRunEdit(run_id, *edit, what, record_keys); !st.ok()) return st;
  return outcome;
}

Result<Engine::EditOutcome> Engine::Clear(const std::string& run_id, const ClearRequest& request) {
  auto edit = OpenRunEdit(run_id, "clear");
  if (!edit.ok()) return edit.status();
  RunPlan& plan = *edit->plan;
  auto selected = SelectInstances(plan, request.task, request.partition);
  if (!selected.ok()) return selected.status();
  std::vector<size_t> targets = *selected;
  if (request.downstream) {
    // Everything downstream of the selection, each once, in index order.
    std::set<size_t> seen(targets.begin(), targets.end());
    std::vector<size_t> stack = targets;
    while (!stack.empty()) {
      size_t i = stack.back();
      stack.pop_back();
      for (size_t d : plan.downstream_of(i))
        if (seen.insert(d).second) stack.push_back(d);
    }
    targets.assign(seen.begin(), seen.end());
  }
  // Pending, queued, running and retry_wait instances will run anyway: only finished ones
  // are cleared. Everything is read before the plan changes.
  std::erase_if(targets, [&plan](size_t i) { return !IsTerminal(plan.instance(i).state); });
  EditOutcome outcome;
  if (!request.force && !plan.run().force) {
    for (size_t i : targets) {
      auto done = store_.KeySucceeded(plan.run().dag, plan.instance(i).idempotency_key);
      if (!done.ok()) return done.status();
      if (*done) ++outcome.keys_succeeded;
    }
  }
  for (size_t i : targets) plan.Clear(i, request.force);
  outcome.changed = static_cast<int>(targets.size());
  if (outcome.changed == 0) {
    std::string what = "task '" + request.task + "'";
    if (request.partition) what += " partition '" + *request.partition + "'";
    return Status::FailedPrecondition(what + " of run '" + run_id +
                                      "' has no finished instance to clear: it has not ended yet");
  }
  const std::string what = "cleared " + std::to_string(outcome.changed) + " instance(s) from task " + request.task +
                           (request.force ? ", forced" : "");
  if (Status st = CommitRunEdit(run_id, *edit, what); !st.ok()) return st;
  return outcome;
}

Result<dag::DagPtr> Engine::CurrentVersionFor(const store::RunRecord& run, const dag::Dag& own, std::string* why) {
  auto entry = store_.GetDag(run.dag);
  if (!entry.ok()) return entry.status();
  if (!*entry || (*entry)->deleted) {
    *why = "DAG '" + run.dag + "' is deleted";
    return dag::DagPtr();
  }
  if ((*entry)->current_hash == run.dag_hash) return dag::DagPtr();  // already the current one
  auto current = resolver_(run.dag, (*entry)->current_hash);
  if (!current.ok()) return current.status();
  // A run's instances are those of its own version's tasks: a version with other task
  // ids would leave instances without a task, or tasks without instances.
  std::set<std::string> own_tasks, current_tasks;
  for (const auto& t : own.tasks) own_tasks.insert(t.id);
  for (const auto& t : (*current)->tasks) current_tasks.insert(t.id);
  for (const auto& t : own_tasks)
    if (!current_tasks.count(t)) {
      *why = "the current version " + (*entry)->current_hash.substr(0, 12) + " has no task '" + t + "'";
      return dag::DagPtr();
    }
  for (const auto& t : current_tasks)
    if (!own_tasks.count(t)) {
      *why = "the current version " + (*entry)->current_hash.substr(0, 12) + " adds task '" + t +
             "', which this run has no instances of";
      return dag::DagPtr();
    }
  return *current;
}

std::string Engine::NothingToRetry(const std::string& run_id, const std::optional<std::string>& task,
                                   const std::optional<std::string>& partition) {
  std::string what = "run '" + run_id + "' has no failed or upstream_failed instances";
  if (task) what += " of task '" + *task + "'";
  if (partition) what += " in partition '" + *partition + "'";
  return what;
}

}  // namespace batchd::engine
