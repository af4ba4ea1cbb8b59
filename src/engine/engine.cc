#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "engine/engine.h"

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <unistd.h>
#include <set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <date/tz.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/json_text.h"
#include "common/logging.h"
#include "dag/template.h"
#include "engine/partitions.h"
#include "engine/policy.h"

namespace batchd::engine {

namespace asio = boost::asio;
using executor::AttemptEnd;
using store::AttemptRecord;
using store::InstanceRecord;
using store::RunRecord;

struct Engine::Running {
  std::string run_id;
  int64_t instance_id = 0;
  std::string pool;
  AttemptRecord attempt;
};

struct Engine::Timers {
  explicit Timers(asio::io_context& io) : store_retry(io) {}
  // Retry timers by instance id.
  std::map<int64_t, std::unique_ptr<asio::steady_timer>> retry;
  // The next try of a pass the store did not take.
  asio::steady_timer store_retry;
};

namespace {

// Log file names must be safe whatever a partitions command printed.
std::string SafeFileName(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '_' || c == '-' || (c == '.' && !out.empty())) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out.empty() ? "_" : out;
}

AttemptOutcome OutcomeOf(AttemptEnd end) {
  switch (end) {
    case AttemptEnd::kSuccess: return AttemptOutcome::kSuccess;
    case AttemptEnd::kTimeout: return AttemptOutcome::kTimeout;
    case AttemptEnd::kCancelled: return AttemptOutcome::kCancelled;
    case AttemptEnd::kFailed:
    case AttemptEnd::kSpawnError: return AttemptOutcome::kFailed;
  }
  return AttemptOutcome::kFailed;
}

void ApplyResult(AttemptRecord& attempt, const executor::AttemptResult& result) {
  attempt.outcome = OutcomeOf(result.end);
  attempt.exit_code = result.exit_code;
  attempt.signal = result.signal;
  attempt.pid = result.pid;
  attempt.cpu_seconds = result.cpu_seconds;
  attempt.max_rss_kb = result.max_rss_kb;
  attempt.ended_at = result.ended_at;
  attempt.error = result.error;
}

// Processes of attempts lost with a previous batchd: the group leader died with it
// (PR_SET_PDEATHSIG), but background children of a task's shell can survive. They are
// found by the BATCHD_* variables every attempt's environment carries, which also makes
// a recycled pid harmless, and killed before anything is dispatched again.
void KillLeftoverProcesses(const std::set<std::tuple<std::string, std::string, std::string>>& lost) {
  if (lost.empty()) return;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid == ::getpid()) continue;
    std::ifstream in(entry.path() / "environ", std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string run, task, partition;
    size_t pos = 0;
    while (pos < env.size()) {
      size_t end = env.find('\0', pos);
      if (end == std::string::npos) end = env.size();
      std::string_view kv(env.data() + pos, end - pos);
      if (kv.starts_with("BATCHD_RUN_ID=")) run = kv.substr(14);
      else if (kv.starts_with("BATCHD_TASK=")) task = kv.substr(12);
      else if (kv.starts_with("BATCHD_PARTITION=")) partition = kv.substr(17);
      pos = end + 1;
    }
    if (!run.empty() && lost.count({run, task, partition})) {
      LogEvent(spdlog::level::warn, {.run_id = run, .task = task, .partition = partition},
               "killing pid {} left over from lost attempt of run {} task {}[{}]", pid, run, task, partition);
      ::kill(pid, SIGKILL);
    }
  }
}

}  // namespace

Engine::Engine(asio::io_context& io, store::Store& store, executor::TaskRunner& runner, const Clock& clock,
               EngineOptions options, DagResolver resolver)
    : io_(io),
      store_(store),
      runner_(runner),
      clock_(clock),
      options_(std::move(options)),
      resolver_(std::move(resolver)),
      rng_(options_.seed ? options_.seed : std::random_device{}()),
      timers_(std::make_unique<Timers>(io)),
      expander_(options_.background_partition_commands ? std::make_unique<PartitionExpander>(options_.orphan_guard) : nullptr),
      self_(std::make_shared<Engine*>(this)) {}

Engine::~Engine() {
  *self_ = nullptr;
  expander_.reset();  // kills a running partitions command before the rest goes
}

std::string Engine::LogPath(const std::string& run_id, const InstanceRecord& inst, int attempt) const {
  // Task ids cannot contain '@'.
  return store_.LogDir() + "/" + run_id + "/" + std::to_string(inst.id / kLogShardInstances) + "/" + inst.task + "@" +
         SafeFileName(inst.partition) + "." + std::to_string(attempt) + ".log";
}

void Engine::EnsureLogDir(const std::string& run_id, const std::string& log_path) {
  const std::string dir = log_path.substr(0, log_path.rfind('/'));
  if (log_dirs_.size() > 10000 && !log_dirs_.count(run_id)) log_dirs_.clear();  // a cache, bounded
  auto& made = log_dirs_[run_id];
  if (made.count(dir)) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {  // the spawn reports it
    LogEvent(spdlog::level::err, {.run_id = run_id}, "cannot create log directory {}: {}", dir, ec.message());
    return;
  }
  made.insert(dir);
}

void Engine::RemoveEmptyLogDirs(const std::string& run_id) {
  auto it = log_dirs_.find(run_id);
  if (it == log_dirs_.end()) return;
  // rmdir refuses a directory that holds anything: only empty ones go.
  for (const auto& dir : it->second) ::rmdir(dir.c_str());
  ::rmdir((store_.LogDir() + "/" + run_id).c_str());
  log_dirs_.erase(it);
}

const RunPlan* Engine::FindActiveRun(const std::string& run_id) const {
  auto it = plans_.find(run_id);
  return it == plans_.end() ? nullptr : it->second.get();
}

std::vector<int64_t> Engine::RunningInstanceIds(const std::string& run_id) const {
  std::vector<int64_t> ids;
  for (const auto& [_, r] : running_)
    if (r->run_id == run_id) ids.push_back(r->instance_id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

int Engine::QueuedInstanceCount() const {
  int n = 0;
  for (const auto& [_, plan] : plans_) n += plan->CountIn(InstanceState::kQueued);
  return n;
}

void Engine::StopForDamagedStore(const Status& st) {
  // Nothing can be recorded any more, so nothing may run: stop, and let the operator
  // restore the database (docs/reliability.md). Exit status 70 (EX_SOFTWARE).
  spdlog::critical("the store is damaged and can no longer be written; batchd stops: {}", st.message());
  spdlog::default_logger()->flush();
  std::_Exit(70);
}

void Engine::NoteFault(const std::string& run_id, const Status& st) {
  if (st.code() == StatusCode::kCorruption) StopForDamagedStore(st);
  // A constraint or a missing row belongs to the run that wrote it; anything else (disk
  // full, I/O error, a transaction SQLite rolled back) to the whole batch.
  const bool run_fault = !run_id.empty() &&
                         (st.code() == StatusCode::kAlreadyExists || st.code() == StatusCode::kNotFound ||
                          st.code() == StatusCode::kInvalidArgument || st.code() == StatusCode::kFailedPrecondition);
  if (run_fault) {
    faults_.runs.emplace(run_id, st.message());
  } else if (faults_.store_error.ok()) {
    faults_.store_error = st;
  }
}

void Engine::EnterStoreFault(const Status& st) {
  ++store_fault_passes_;
  if (!store_fault_) {
    spdlog::error("store write failed: {}. New work is refused and the engine retries until the store can be "
                  "written; nothing acknowledged is lost",
                  st.message());
    store_retry_delay_ = Millis(250);
  } else {
    store_retry_delay_ = std::min<Millis>(store_retry_delay_ * 2, std::chrono::seconds(5));
    if (store_fault_passes_ % 10 == 0)
      spdlog::warn("store still cannot be written after {} tries: {}", store_fault_passes_, st.message());
  }
  store_fault_ = st.message();
  timers_->store_retry.expires_after(store_retry_delay_);
  timers_->store_retry.async_wait([self = self_](const boost::system::error_code& ec) {
    if (ec || !*self) return;
    (*self)->store_retry_due_ = true;
    (*self)->SchedulePump();
  });
}

std::string Engine::EncodeParams(const std::map<std::string, std::string>& params) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : params) out[k] = BytesToJson(v);  // a file name may be any bytes
  return DumpJsonForDisplay(out);  // keys are param names ([A-Za-z0-9_]), always UTF-8
}

Result<CreatedRun> Engine::CreateRun(const RunRequest& request) {
  const dag::Dag& dag = *request.dag;
  auto zone = LookupZone(dag.timezone);
  if (!zone.ok()) return zone.status();
  RunRecord run;
  run.run_id = store::NewRunId();
  run.dag = dag.name;
  run.dag_hash = dag.content_hash;
  run.run_key = request.run_key.value_or(dag.name + "@" + FormatIso(request.logical_date, *zone));
  run.trigger = request.trigger;
  run.state = RunState::kQueued;
  run.logical_date = request.logical_date;
  run.interval_start = request.interval_start;
  run.interval_end = request.interval_end;
  run.params_json = EncodeParams(request.params);
  run.force = request.force;
  run.created_at = clock_.Now();
  run.scheduled_for = request.scheduled_for;

  if (Status st = store_.Begin(); !st.ok()) return st;
  Status st = store_.PutDagVersion({dag.name, dag.content_hash, dag.source, dag.source_path});
  Result<std::pair<RunRecord, bool>> created = st.ok() ? store_.CreateRun(run) : Result<std::pair<RunRecord, bool>>(st);
  if (!created.ok()) {
    store_.Rollback();
    return created.status();
  }
  CreatedRun out{created->first, created->second};
  if (out.created) {
    // Told once the caller's transaction (if any) has committed: a run rolled back
    // with it was never created.
    store_.AfterTransaction([self = self_, run = out.run](bool committed) {
      if (!committed || !*self) return;
      Engine& e = **self;
      LogEvent(spdlog::level::info, {.dag = run.dag, .run_id = run.run_id}, "run {} created: dag={} key={} trigger={}",
               run.run_id, run.dag, run.run_key, run.trigger);
      for (auto* o : e.observers_) o->OnRunCreated(run);
      e.may_start_queued_runs_ = true;
      e.SchedulePump();
    });
  }
  if (Status c = store_.Commit(); !c.ok()) return c;
  return out;
}

void Engine::SchedulePump() {
  if (pump_scheduled_) return;
  pump_scheduled_ = true;
  asio::post(io_, [self = self_] {
    if (*self) (*self)->Pump();
  });
}

Status Engine::Recover() {
  const SysMillis now = clock_.Now();
  if (Status st = store_.Begin(); !st.ok()) return st;
  auto lost = store_.MarkRunningAttemptsLost(now);
  if (!lost.ok()) {
    store_.Rollback();
    return lost.status();
  }
  std::set<int64_t> lost_instances(lost->begin(), lost->end());
  std::set<std::tuple<std::string, std::string, std::string>> lost_processes;
  auto runs = store_.ListRunsInStates({RunState::kRunning, RunState::kCancelled});  // queued: StartQueuedRuns
  if (!runs.ok()) {
    store_.Rollback();
    return runs.status();
  }
  for (auto& run : *runs) {
    if (options_.only_dag && run.dag != *options_.only_dag) continue;
    auto dag = resolver_(run.dag, run.dag_hash);
    auto instances = store_.ListInstances(run.run_id);
    if (!instances.ok()) {
      store_.Rollback();
      return instances.status();
    }
    if (!dag.ok()) {
      // Nothing can run without its DAG (a version this binary no longer accepts): end
      // the run failed, with the reason, rather than leave it running forever.
      const std::string why = "cannot load DAG version " + run.dag_hash + ": " + dag.status().message();
      LogEvent(spdlog::level::err, {.dag = run.dag, .run_id = run.run_id}, "run {}: {}", run.run_id, why);
      if (Status st = CancelStoredInstances(*instances, now, "dag_unavailable"); !st.ok()) {
        store_.Rollback();
        return st;
      }
      if (Status st = store_.UpdateRunState(run.run_id, RunState::kFailed, run.started_at, now, why); !st.ok()) {
        store_.Rollback();
        return st;
      }
      continue;
    }
    auto plan = PlanFromStore(run, *dag, std::move(*instances), &lost_processes);
    if (!plan) continue;
    LogEvent(spdlog::level::info, {.dag = run.dag, .run_id = run.run_id}, "run {} recovered ({} lost attempts)",
             run.run_id, lost_instances.size());
    plans_[run.run_id] = std::move(plan);
  }
  if (Status st = store_.Commit(); !st.ok()) return st;
  KillLeftoverProcesses(lost_processes);
  SchedulePump();
  return Status::Ok();
}

std::unique_ptr<RunPlan> Engine::PlanFromStore(
    const RunRecord& run, const dag::DagPtr& dag, std::vector<InstanceRecord> instances,
    std::set<std::tuple<std::string, std::string, std::string>>* lost_processes) {
  bool has_unfinished = false;
  for (const auto& i : instances) has_unfinished |= !IsTerminal(i.state);
  if (run.state == RunState::kCancelled && !has_unfinished) return nullptr;
  std::set<int64_t> with_process;  // instances whose attempt runs in this daemon
  for (const auto& [_, r] : running_) with_process.insert(r->instance_id);
  const SysMillis now = clock_.Now();
  auto plan = std::make_unique<RunPlan>(dag, run, std::move(instances));
  for (size_t i = 0; i < plan->size(); ++i) {
    auto& inst = plan->instance(i);
    if (inst.state == InstanceState::kRunning && !with_process.count(inst.id)) {
      // Its attempt was lost with the previous process.
      lost_processes->insert({run.run_id, inst.task, inst.partition});
      AttemptRecord lost_attempt;
      lost_attempt.outcome = AttemptOutcome::kLost;
      FinishAttemptInPlan(*plan, i, lost_attempt, nullptr);
    } else if (inst.state == InstanceState::kRetryWait) {
      ArmRetryTimer(run.run_id, inst.id, inst.next_attempt_at.value_or(now));
    } else if (inst.state == InstanceState::kQueued) {
      plan->set_key_checked(i, true);  // checked before it was queued last time
    }
    if (run.state == RunState::kCancelled && !IsTerminal(inst.state) && inst.state != InstanceState::kRunning) {
      plan->Transition(i, InstanceState::kCancelled);
    }
  }
  return plan;
}

Status Engine::ReloadPlansFromStore() {
  std::vector<std::string> run_ids;
  for (const auto& [run_id, _] : plans_) run_ids.push_back(run_id);
  return ReloadPlans(run_ids);
}

Status Engine::ReloadPlans(const std::vector<std::string>& run_ids) {
  std::set<std::tuple<std::string, std::string, std::string>> lost;
  for (const std::string& run_id : run_ids) {
    auto run = store_.GetRun(run_id);
    if (!run.ok()) return run.status();
    // Gone (purged), back in the queue (started by the pass that failed), or finished
    // (a retry that rolled back): nothing to plan.
    if (!*run || (*run)->state == RunState::kQueued || (*run)->state == RunState::kSuccess ||
        (*run)->state == RunState::kFailed) {
      plans_.erase(run_id);
      continue;
    }
    auto dag = resolver_((*run)->dag, (*run)->dag_hash);
    if (!dag.ok()) return dag.status();
    auto instances = store_.ListInstances(run_id);
    if (!instances.ok()) return instances.status();
    auto plan = PlanFromStore(**run, *dag, std::move(*instances), &lost);
    if (plan) {
      plans_[run_id] = std::move(plan);
    } else {
      plans_.erase(run_id);
    }
  }
  for (const auto& [run_id, task, partition] : lost)
    LogEvent(spdlog::level::warn, {.run_id = run_id, .task = task, .partition = partition},
             "run {} task {}[{}]: stored as running with no process here; its attempt counts as lost", run_id, task,
             partition);
  started_runs_.clear();
  may_start_queued_runs_ = true;
  return Status::Ok();
}

void Engine::ArmRetryTimer(const std::string& run_id, int64_t instance_id, SysMillis at) {
  auto delay = std::max(Millis(0), std::chrono::duration_cast<Millis>(at - clock_.Now()));
  auto timer = std::make_unique<asio::steady_timer>(io_, delay);
  timer->async_wait([self = self_, run_id, instance_id](const boost::system::error_code& ec) {
    if (ec || !*self) return;
    Engine& e = **self;
    e.timers_->retry.erase(instance_id);
    auto it = e.plans_.find(run_id);
    if (it == e.plans_.end()) return;
    auto idx = it->second->IndexOf(instance_id);
    if (!idx || it->second->instance(*idx).state != InstanceState::kRetryWait) return;
    it->second->instance(*idx).next_attempt_at.reset();
    it->second->Transition(*idx, InstanceState::kQueued);
    it->second->set_key_checked(*idx, true);  // a retry of the same instance
    e.SchedulePump();
  });
  timers_->retry[instance_id] = std::move(timer);
}

void Engine::FinishAttemptInPlan(RunPlan& plan, size_t index, AttemptRecord& attempt,
                                 const executor::AttemptResult* result) {
  auto& inst = plan.instance(index);
  const dag::Task& task = plan.task_of(index);
  const SysMillis now = clock_.Now();
  if (result) {
    ApplyResult(attempt, *result);
    if (Status st = store_.FinishAttempt(attempt); !st.ok()) NoteFault(plan.run().run_id, st);
    inst.exit_code = result->exit_code;
  }
  const bool lost = attempt.outcome == AttemptOutcome::kLost;
  switch (attempt.outcome) {
    case AttemptOutcome::kSuccess:
      inst.ended_at = now;
      plan.Transition(index, InstanceState::kSuccess);
      if (Status st = store_.RecordKeySuccess(plan.run().dag, inst.idempotency_key, plan.run().run_id, now); !st.ok())
        NoteFault(plan.run().run_id, st);
      return;
    case AttemptOutcome::kCancelled:
      if (plan.run().state == RunState::kCancelled) {
        inst.ended_at = now;
        plan.Transition(index, InstanceState::kCancelled);
      } else {
        // Killed by shutdown: run it again on the next start.
        plan.Transition(index, InstanceState::kQueued);
        plan.set_key_checked(index, true);
      }
      return;
    default:
      break;
  }
  if (plan.run().state == RunState::kCancelled) {
    inst.ended_at = now;
    plan.Transition(index, InstanceState::kCancelled);
    return;
  }
  const int attempts_since_reset = inst.attempts - inst.retry_base;
  if (ShouldRetry(task.retry, attempts_since_reset, inst.exit_code, lost)) {
    Millis delay = RetryDelay(task.retry, attempts_since_reset, rng_);
    inst.next_attempt_at = now + delay;
    plan.Transition(index, InstanceState::kRetryWait);
    ArmRetryTimer(plan.run().run_id, inst.id, *inst.next_attempt_at);
    for (auto* o : observers_) (void)o;  // retries are reported via OnAttemptFinished
    LogEvent(spdlog::level::info,
             {.dag = plan.run().dag, .run_id = plan.run().run_id, .task = inst.task, .partition = inst.partition,
              .attempt = attempt.number},
             "run {} task {}[{}]: attempt {} {}, retry in {}", plan.run().run_id, inst.task, inst.partition,
             inst.attempts, ToString(attempt.outcome), FormatDuration(delay));
  } else {
    inst.ended_at = now;
    plan.Transition(index, InstanceState::kFailed);
    LogEvent(spdlog::level::warn,
             {.dag = plan.run().dag, .run_id = plan.run().run_id, .task = inst.task, .partition = inst.partition,
              .attempt = attempt.number},
             "run {} task {}[{}]: failed after {} attempt(s) ({})", plan.run().run_id, inst.task, inst.partition,
             inst.attempts, ToString(attempt.outcome));
  }
}

void Engine::ResolveQueued(RunPlan& plan) {
  // Newly queued instances whose idempotency key already succeeded are skipped; that
  // counts as success downstream, which may queue more, hence the loop.
  for (;;) {
    plan.Propagate();
    bool skipped_any = false;
    for (size_t i : plan.TakeNewlyQueued()) {
      if (plan.instance(i).state != InstanceState::kQueued || plan.key_checked(i)) continue;
      plan.set_key_checked(i, true);
      if (plan.run().force || plan.instance(i).force) continue;
      auto done = store_.KeySucceeded(plan.run().dag, plan.instance(i).idempotency_key);
      if (!done.ok()) {
        NoteFault(plan.run().run_id, done.status());
        return;
      }
      if (*done) {
        plan.instance(i).ended_at = clock_.Now();
        plan.Transition(i, InstanceState::kSkipped, "already_succeeded");
        skipped_any = true;
      }
    }
    if (!skipped_any) return;
  }
}

namespace {
// How a run executes a task's partitions command: rendered, in the task's working dir.
PartitionCommandKey CommandKeyOf(const dag::Task& task, const std::map<std::string, std::string>& run_vars) {
  return {dag::RenderShellCommand(task.partitions.command, run_vars), task.working_dir};
}
}  // namespace

std::vector<dag::Task> Engine::PartitionCommandsOf(const dag::Dag& dag, const RunRecord& run) const {
  std::vector<dag::Task> out;
  std::set<PartitionCommandKey> seen;
  std::map<std::string, std::string> vars;
  for (const auto& task : dag.tasks) {
    if (task.partitions.kind != dag::Partitions::Kind::kCommand) continue;
    if (vars.empty()) vars = RunTemplateVars(dag, run);
    PartitionCommandKey key = CommandKeyOf(task, vars);
    if (!seen.insert(key).second) continue;
    dag::Task rendered = task;
    rendered.partitions.command = std::move(key.first);
    out.push_back(std::move(rendered));
  }
  return out;
}

std::vector<std::string> Engine::PartitionCommandEnv(const dag::Dag& dag, const RunRecord& run) const {
  std::vector<std::string> env = options_.base_env;
  for (const auto& [k, v] : dag.env) env.push_back(k + "=" + v);
  for (auto& kv : ParamEnvironment(RunParams(dag, run))) env.push_back(std::move(kv));
  return env;
}

Status Engine::StartRun(RunRecord run, const PartitionCommandOutputs* outputs) {
  auto dag = resolver_(run.dag, run.dag_hash);
  const SysMillis now = clock_.Now();
  // A run that cannot start (its DAG version is unreadable, a partitions command
  // failed) ends failed through the normal finish path, so observers hear of it.
  auto fail_run = [&](const std::string& why) {
    LogEvent(spdlog::level::err, {.dag = run.dag, .run_id = run.run_id}, "run {}: {}", run.run_id, why);
    run.state = RunState::kFailed;
    run.started_at = now;
    run.ended_at = now;
    run.error = why;
    dag::DagPtr empty = std::make_shared<dag::Dag>();
    plans_[run.run_id] = std::make_unique<RunPlan>(dag.ok() ? *dag : empty, run, std::vector<store::InstanceRecord>{});
    return Status::Ok();
  };
  if (!dag.ok()) return fail_run("cannot load DAG version " + run.dag_hash + ": " + dag.status().message());
  std::map<std::string, std::vector<std::string>> partitions;
  PartitionCommandLimits limits;
  limits.timeout = options_.partition_command_timeout;
  // Each distinct partitions command runs once per run (normally on the expander's
  // thread, before this is called), so tasks sharing it, as `partitions: same`
  // requires, see exactly the same partitions.
  PartitionCommandOutputs inline_outputs;
  if (!outputs) {
    RunningCommand running(options_.orphan_guard);
    for (const dag::Task& task : PartitionCommandsOf(**dag, run))
      inline_outputs.emplace(PartitionCommandKey{task.partitions.command, task.working_dir},
                             ExpandPartitions(task, PartitionCommandEnv(**dag, run), limits, &running));
    outputs = &inline_outputs;
  }
  const auto vars = RunTemplateVars(**dag, run);
  for (const auto& task : (*dag)->tasks) {
    if (task.partitions.kind == dag::Partitions::Kind::kCommand) {
      auto it = outputs->find(CommandKeyOf(task, vars));
      if (it == outputs->end()) return fail_run("task '" + task.id + "': partitions command did not run");
      if (!it->second.ok()) return fail_run(it->second.status().message());
      partitions[task.id] = *it->second;
      continue;
    }
    auto names = ExpandPartitions(task, {}, limits);
    if (!names.ok()) return fail_run(names.status().message());
    partitions[task.id] = std::move(*names);
  }
  auto instances = MakeInstances(**dag, run, partitions);
  partitions.clear();  // the names are in the instances now: not held twice while the plan is built
  if (Status st = store_.InsertInstances(instances); !st.ok()) return st;
  run.state = RunState::kRunning;
  run.started_at = now;
  if (Status st = store_.UpdateRunState(run.run_id, RunState::kRunning, now, std::nullopt); !st.ok()) return st;
  auto plan = std::make_unique<RunPlan>(*dag, run, std::move(instances));
  LogEvent(spdlog::level::info, {.dag = run.dag, .run_id = run.run_id}, "run {} started: dag={} instances={}",
           run.run_id, run.dag, plan->size());
  started_runs_.push_back(run.run_id);
  plans_[run.run_id] = std::move(plan);
  return Status::Ok();
}

Status Engine::CancelStoredInstances(std::vector<InstanceRecord>& instances, SysMillis now, const std::string& reason) {
  for (auto& inst : instances) {
    if (IsTerminal(inst.state)) continue;
    inst.state = InstanceState::kCancelled;
    inst.reason = reason;
    inst.next_attempt_at.reset();
    inst.ended_at = now;
    if (Status st = store_.UpdateInstance(inst); !st.ok()) return st;
  }
  return Status::Ok();
}

int Engine::ActiveRunsOf(const std::string& dag) const {
  int n = 0;
  for (const auto& [_, plan] : plans_) n += plan->run().dag == dag;
  for (const auto& [_, name] : expanding_) n += name == dag;
  return n;
}

Status Engine::ResumeQueuedRetry(RunRecord run, const dag::DagPtr& dag, std::vector<InstanceRecord> instances) {
  run.state = RunState::kRunning;
  run.ended_at.reset();
  if (Status st = store_.UpdateRunState(run.run_id, RunState::kRunning, std::nullopt, std::nullopt); !st.ok()) return st;
  auto plan = std::make_unique<RunPlan>(dag, run, std::move(instances));
  LogEvent(spdlog::level::info, {.dag = run.dag, .run_id = run.run_id}, "run {} resumed for its retry: dag={}",
           run.run_id, run.dag);
  started_runs_.push_back(run.run_id);
  plans_[run.run_id] = std::move(plan);
  return Status::Ok();
}

void Engine::StartQueuedRuns() {
  // Only worth a query when something that lets a queued run start has happened. Each
  // pass costs an index seek per DAG with queued runs plus the runs it starts, however
  // long the queue (a backfill of thousands of runs).
  if (!may_start_queued_runs_) return;
  may_start_queued_runs_ = false;
  // Every planned run holds its DAG's slot until it is fully drained (a cancelled run
  // whose processes are still being killed included), and so does a run whose partitions
  // commands are running or are back.
  std::map<std::string, int> active;
  for (const auto& [_, plan] : plans_) active[plan->run().dag]++;
  for (const auto& [_, dag_name] : expanding_) active[dag_name]++;
  auto count_if_started = [&](const std::string& run_id, const std::string& dag_name) {
    auto started = plans_.find(run_id);  // a run that failed to start holds no slot
    if (started != plans_.end() && started->second->run().state == RunState::kRunning) active[dag_name]++;
  };
  // Runs whose partitions commands are back start first: they held their slot meanwhile.
  // Outputs of runs cancelled or deleted while their commands ran are dropped.
  std::map<std::string, PartitionCommandOutputs> expanded;
  expanded.swap(expanded_);
  for (auto& [run_id, outputs] : expanded) {
    auto run = store_.GetRun(run_id);
    if (!run.ok()) {
      NoteFault(run_id, run.status());
      expanded_.emplace(run_id, std::move(outputs));  // tried again on the next pass
      continue;
    }
    if (!*run || (*run)->state != RunState::kQueued) continue;
    const std::string dag_name = (*run)->dag;
    if (Status st = StartRun(std::move(**run), &outputs); !st.ok()) NoteFault(run_id, st);
    count_if_started(run_id, dag_name);
  }
  auto dags = store_.DagsWithQueuedRuns();
  if (!dags.ok()) {
    NoteFault("", dags.status());
    return;
  }
  for (const std::string& dag_name : *dags) {
    if (options_.only_dag && dag_name != *options_.only_dag) continue;
    // As many as the oldest queued run's version allows (each run is held to its own
    // version's limit below). Runs whose commands are running are in the queue too, so
    // ask for them as well.
    auto oldest = store_.ListQueuedRuns(dag_name, 1);
    if (!oldest.ok() || oldest->empty()) {
      if (!oldest.ok()) NoteFault("", oldest.status());
      continue;
    }
    auto oldest_dag = resolver_(dag_name, oldest->front().dag_hash);
    const int oldest_limit = oldest_dag.ok() ? (*oldest_dag)->max_active_runs : 1;
    int expanding_here = 0;
    for (const auto& [_, name] : expanding_) expanding_here += name == dag_name;
    const int wanted = std::max(oldest_limit - active[dag_name], 1) + expanding_here;
    auto queued = store_.ListQueuedRuns(dag_name, wanted);
    if (!queued.ok()) {
      NoteFault("", queued.status());
      continue;
    }
    for (auto& run : *queued) {
      if (expanding_.count(run.run_id)) continue;
      auto dag = resolver_(run.dag, run.dag_hash);
      const std::string run_id = run.run_id;
      int limit = dag.ok() ? (*dag)->max_active_runs : 1;
      if (dag.ok() && active[dag_name] >= limit) break;
      // A run that started before is a retry queued behind max_active_runs: it resumes
      // with its stored instances, and its partitions are never expanded again.
      if (dag.ok() && run.started_at) {
        auto instances = store_.ListInstances(run_id);
        if (!instances.ok()) {
          NoteFault(run_id, instances.status());
          continue;
        }
        if (!instances->empty()) {
          if (Status st = ResumeQueuedRetry(std::move(run), *dag, std::move(*instances)); !st.ok())
            NoteFault(run_id, st);
          active[dag_name]++;
          continue;
        }
      }
      if (dag.ok() && expander_) {
        std::vector<dag::Task> commands = PartitionCommandsOf(**dag, run);
        if (!commands.empty()) {
          // Run them off the loop; StartRun follows when the outputs are back.
          expanding_[run.run_id] = run.dag;
          active[run.dag]++;
          PartitionCommandLimits limits;
          limits.timeout = options_.partition_command_timeout;
          expander_->Submit({run.run_id, std::move(commands), PartitionCommandEnv(**dag, run), limits,
                             [self = self_, &io = io_](std::string run_id, PartitionCommandOutputs outputs) {
                               asio::post(io, [self, run_id = std::move(run_id), outputs = std::move(outputs)]() mutable {
                                 if (!*self) return;
                                 Engine& e = **self;
                                 e.expanding_.erase(run_id);
                                 e.expanded_[run_id] = std::move(outputs);
                                 e.may_start_queued_runs_ = true;
                                 e.SchedulePump();
                               });
                             }});
          continue;
        }
      }
      if (Status st = StartRun(std::move(run)); !st.ok()) NoteFault(run_id, st);
      count_if_started(run_id, dag_name);
    }
  }
}

std::vector<std::string> Engine::AttemptEnv(RunPlan& plan, size_t index, int attempt) const {
  const auto& inst = plan.instance(index);
  const auto& shared = plan.TaskEnvironment(plan.task_index_of(index), options_.base_env);
  std::vector<std::string> env;
  env.reserve(shared.size() + 7);
  env.insert(env.end(), shared.begin(), shared.end());
  env.push_back("BATCHD_DAG=" + plan.run().dag);
  env.push_back("BATCHD_RUN_ID=" + plan.run().run_id);
  env.push_back("BATCHD_TASK=" + inst.task);
  env.push_back("BATCHD_PARTITION=" + inst.partition);
  env.push_back("BATCHD_ATTEMPT=" + std::to_string(attempt));
  env.push_back("BATCHD_LOGICAL_DATE=" + plan.vars().at("logical_date"));
  env.push_back("BATCHD_IDEMPOTENCY_KEY=" + inst.idempotency_key);
  return env;
}

void Engine::Pump() {
  pump_scheduled_ = false;
  // While the store cannot be written only the retry timer starts a pass; results that
  // arrive meanwhile wait in the inbox.
  if (store_fault_ && !store_retry_due_) return;
  store_retry_due_ = false;
  faults_ = PassFaults{};
  Pass pass;
  pass.results.swap(inbox_);
  try {
    if (RunPass(pass)) return;
  } catch (const std::exception& e) {
    if (pass.committed) {
      spdlog::error("unexpected error after an engine pass committed: {}", e.what());
      return;
    }
    NoteFault("", Status::Internal(std::string("unexpected error in an engine pass: ") + e.what()));
  }
  AbandonPass(pass);
}

void Engine::AbandonPass(Pass& pass) {
  while (store_.InTransaction()) store_.Rollback();
  // Attempts entered in this pass were never spawned.
  for (uint64_t id : pass.dispatched) {
    auto it = running_.find(id);
    if (it == running_.end()) continue;
    if (!it->second->pool.empty()) pool_used_[it->second->pool]--;
    running_.erase(it);
  }
  // The results this pass applied wait for the next one, their attempts running again.
  for (auto& r : pass.finished) {
    if (!r->pool.empty()) pool_used_[r->pool]++;
    const auto id = static_cast<uint64_t>(r->attempt.id);
    running_[id] = std::move(r);
  }
  inbox_.insert(inbox_.begin(), std::make_move_iterator(pass.results.begin()),
                std::make_move_iterator(pass.results.end()));
  Status why = faults_.store_error.ok() ? Status::Internal("an engine pass did not commit") : faults_.store_error;
  if (Status st = ReloadPlansFromStore(); !st.ok()) {
    plans_stale_ = true;  // the next pass reloads first
    spdlog::warn("cannot reload run state from the store yet: {}", st.message());
  } else {
    plans_stale_ = false;
  }
  EnterStoreFault(why);
}

bool Engine::RunPass(Pass& pass) {
  const SysMillis now = clock_.Now();
  if (plans_stale_) {
    if (Status st = ReloadPlansFromStore(); !st.ok()) {
      NoteFault("", st);
      return false;
    }
    plans_stale_ = false;
  }
  if (Status st = store_.Begin(options_.fsync_engine_commits ? store::Store::Durability::kFull
                                                             : store::Store::Durability::kProcessCrash);
      !st.ok()) {
    NoteFault("", st);
    return false;
  }

  // 1. Apply the attempt results that arrived since the last pass.
  std::vector<std::pair<RunPlan*, std::pair<InstanceRecord, AttemptRecord>>> finished_attempts;
  for (auto& result : pass.results) {
    auto it = running_.find(result.attempt_id);
    if (it == running_.end()) continue;
    std::unique_ptr<Running>& r = pass.finished.emplace_back(std::move(it->second));
    running_.erase(it);
    if (!r->pool.empty()) pool_used_[r->pool]--;
    auto plan_it = plans_.find(r->run_id);
    auto idx = plan_it == plans_.end() ? std::nullopt : plan_it->second->IndexOf(r->instance_id);
    if (!idx) {
      // Its run is no longer planned (it failed for a fault): record how the attempt
      // ended all the same. A purged run has no row left to record it in.
      ApplyResult(r->attempt, result);
      if (Status st = store_.FinishAttempt(r->attempt); !st.ok() && st.code() != StatusCode::kNotFound)
        NoteFault("", st);
      continue;
    }
    RunPlan& plan = *plan_it->second;
    FinishAttemptInPlan(plan, *idx, r->attempt, &result);
    finished_attempts.push_back({&plan, {plan.instance(*idx), r->attempt}});
  }

  // 2. Start queued runs that max_active_runs now allows.
  if (dispatching_) StartQueuedRuns();

  // 3. Decide what is ready in every active run.
  for (auto& [_, plan] : plans_) ResolveQueued(*plan);

  // 4. Pick instances to run: priority first, then older runs, within the limits. Each
  //    active run offers its queued instances in (priority, index) order; this merges
  //    those sequences, so a pass costs what it dispatches, not what is waiting.
  struct Head {
    RunPlan* plan;
    RunPlan::ReadySet::const_iterator next;
  };
  std::vector<Head> heads;
  if (dispatching_) {
    for (auto& [_, plan] : plans_)
      if (plan->run().state == RunState::kRunning && !plan->Ready().empty())
        heads.push_back({plan.get(), plan->Ready().begin()});
  }
  auto goes_first = [](const Head& a, const Head& b) {
    // Ready() keys are -priority: smaller goes first.
    if (a.next->first != b.next->first) return a.next->first < b.next->first;
    if (a.plan->run().created_at != b.plan->run().created_at) return a.plan->run().created_at < b.plan->run().created_at;
    return a.plan->run().logical_date < b.plan->run().logical_date;  // runs created together (backfill): oldest first
  };
  int free_slots = runner_.Capacity() - static_cast<int>(running_.size());
  std::vector<executor::AttemptSpec> to_start;
  std::vector<std::pair<RunPlan*, size_t>> started;
  while (free_slots > 0 && !heads.empty()) {
    size_t h = 0;
    for (size_t k = 1; k < heads.size(); ++k)
      if (goes_first(heads[k], heads[h])) h = k;
    RunPlan& plan = *heads[h].plan;
    const size_t index = heads[h].next->second;
    auto advance = [&] {
      ++heads[h].next;  // still valid: dispatching erases only the element before it
      if (heads[h].next == plan.Ready().end()) heads.erase(heads.begin() + static_cast<std::ptrdiff_t>(h));
    };
    if (plan.CountIn(InstanceState::kRunning) >= plan.dag().max_active_tasks) {
      heads.erase(heads.begin() + static_cast<std::ptrdiff_t>(h));
      continue;
    }
    const dag::Task& task = plan.task_of(index);
    if (!task.pool.empty()) {
      auto slots = options_.pools.find(task.pool);
      if (slots != options_.pools.end() && pool_used_[task.pool] >= slots->second) {
        advance();
        continue;
      }
    }
    auto& inst = plan.instance(index);
    inst.attempts += 1;
    if (!inst.started_at) inst.started_at = now;
    auto running = std::make_unique<Running>();
    running->run_id = plan.run().run_id;
    running->instance_id = inst.id;
    running->pool = task.pool;
    running->attempt.instance_id = inst.id;
    running->attempt.number = inst.attempts;
    running->attempt.outcome = AttemptOutcome::kRunning;
    running->attempt.started_at = now;
    running->attempt.log_path = LogPath(plan.run().run_id, inst, inst.attempts);
    running->attempt.dag_hash = plan.run().dag_hash;
    EnsureLogDir(plan.run().run_id, running->attempt.log_path);
    if (Status st = store_.InsertAttempt(running->attempt); !st.ok()) {
      NoteFault(plan.run().run_id, st);
      inst.attempts -= 1;
      advance();
      continue;
    }
    pass.dispatched.push_back(static_cast<uint64_t>(running->attempt.id));

    executor::AttemptSpec spec;
    spec.attempt_id = static_cast<uint64_t>(running->attempt.id);
    spec.command = dag::RenderShellCommand(task.command, plan.AttemptVars(index, inst.attempts));
    spec.env = AttemptEnv(plan, index, inst.attempts);
    spec.working_dir = task.working_dir;
    spec.log_path = running->attempt.log_path;
    spec.timeout = task.timeout;
    spec.kill_grace = task.kill_grace;
    to_start.push_back(std::move(spec));
    started.emplace_back(&plan, index);
    if (!task.pool.empty()) pool_used_[task.pool]++;
    running_[running->attempt.id] = std::move(running);
    --free_slots;
    advance();
    plan.Transition(index, InstanceState::kRunning);
  }

  // 5. Persist every instance change and finished runs, then commit: the store is
  //    ahead of every side effect below.
  struct Change {
    RunPlan* plan;
    std::vector<size_t> changed;
    RunState previous;
  };
  std::vector<Change> changes;
  std::vector<std::string> finished_runs;
  for (auto& [run_id, plan] : plans_) {
    Change change{plan.get(), plan->TakeChanged(), plan->run().state};
    for (size_t i : change.changed)
      if (Status st = store_.UpdateInstance(plan->instance(i)); !st.ok()) NoteFault(run_id, st);
    if (plan->AllTerminal() && plan->CountIn(InstanceState::kRunning) == 0) {
      if (plan->run().state == RunState::kRunning) plan->run().state = plan->Outcome();
      if (!plan->run().ended_at) plan->run().ended_at = now;
      if (Status st = store_.UpdateRunState(run_id, plan->run().state, plan->run().started_at, plan->run().ended_at,
                                            plan->run().error);
          !st.ok())
        NoteFault(run_id, st);
      finished_runs.push_back(run_id);
    }
    if (!change.changed.empty() || change.previous != plan->run().state) changes.push_back(std::move(change));
  }
  if (!faults_.store_error.ok()) return false;  // AbandonPass rolls back
  if (Status st = store_.Commit(); !st.ok()) {
    NoteFault("", st);
    return false;
  }
  pass.committed = true;
  if (store_fault_) {
    spdlog::info("the store can be written again after {} failed tries; resuming", store_fault_passes_);
    store_fault_.reset();
    store_fault_passes_ = 0;
  }

  // 6. Spawn first: the store is ahead of it, and the observers (progress, metrics,
  //    logs) need not delay the next process. A run that faulted spawns nothing.
  for (size_t k = 0; k < to_start.size(); ++k) {
    auto& spec = to_start[k];
    if (!faults_.runs.empty() && faults_.runs.count(started[k].first->run().run_id)) {
      auto it = running_.find(spec.attempt_id);
      if (it != running_.end()) {
        if (!it->second->pool.empty()) pool_used_[it->second->pool]--;
        running_.erase(it);
      }
      continue;
    }
    runner_.Start(std::move(spec), [self = self_, &io = io_](executor::AttemptResult result) {
      auto deliver = [self, result = std::move(result)]() mutable {
        if (!*self) return;
        (*self)->inbox_.push_back(std::move(result));
        (*self)->SchedulePump();
      };
      // SubprocessRunner reports on the loop's thread already; a fake may not.
      if (io.get_executor().running_in_this_thread()) {
        deliver();
      } else {
        asio::post(io, std::move(deliver));
      }
    });
  }
  // 7. Tell observers, now that it is committed.
  for (const auto& [plan, rec] : finished_attempts)
    for (auto* o : observers_) o->OnAttemptFinished(*plan, rec.first, rec.second);
  for (const auto& run_id : started_runs_) {
    auto it = plans_.find(run_id);
    if (it != plans_.end())
      for (auto* o : observers_) o->OnRunStateChanged(*it->second, RunState::kQueued);
  }
  started_runs_.clear();
  for (const auto& change : changes) {
    for (size_t i : change.changed)
      for (auto* o : observers_) o->OnInstanceStateChanged(*change.plan, change.plan->instance(i));
  }
  for (const auto& run_id : finished_runs) {
    auto it = plans_.find(run_id);
    LogEvent(spdlog::level::info, {.dag = it->second->run().dag, .run_id = run_id}, "run {} finished: {}", run_id,
             ToString(it->second->run().state));
    for (auto* o : observers_) o->OnRunStateChanged(*it->second, RunState::kRunning);
    for (auto* o : observers_) o->OnRunFinished(*it->second);
    plans_.erase(it);
    RemoveEmptyLogDirs(run_id);
  }

  if (!faults_.runs.empty()) FailFaultedRuns(faults_.runs);

  if (!finished_runs.empty()) {  // their slots are free: queued runs may start now
    may_start_queued_runs_ = true;
    SchedulePump();
  }
  return true;
}

void Engine::FailFaultedRuns(const std::map<std::string, std::string>& faulted) {
  const SysMillis now = clock_.Now();
  for (const auto& [run_id, why] : faulted) {
    const std::string error = "internal error: " + why;
    LogEvent(spdlog::level::err, {.run_id = run_id}, "run {}: {}; the run fails and batchd goes on", run_id, error);
    auto it = plans_.find(run_id);
    std::vector<InstanceRecord> instances;
    if (it != plans_.end()) {
      for (size_t i = 0; i < it->second->size(); ++i) instances.push_back(it->second->instance(i));
    } else if (auto stored = store_.ListInstances(run_id); stored.ok()) {
      instances = std::move(*stored);
    }
    // Its processes are killed; their results find no plan and are recorded as they end.
    for (const auto& [attempt_id, r] : running_)
      if (r->run_id == run_id) runner_.Cancel(attempt_id);
    Status st = store_.Begin();
    for (auto& inst : instances) {
      timers_->retry.erase(inst.id);
      if (IsTerminal(inst.state) || !st.ok()) continue;
      inst.state = InstanceState::kFailed;
      inst.reason = "internal_error";
      inst.next_attempt_at.reset();
      inst.ended_at = now;
      st = store_.UpdateInstance(inst);
      if (st.code() == StatusCode::kNotFound) st = Status::Ok();  // purged meanwhile
    }
    if (st.ok()) st = store_.UpdateRunState(run_id, RunState::kFailed, std::nullopt, now, error);
    if (st.code() == StatusCode::kNotFound) st = Status::Ok();
    if (st.ok()) {
      st = store_.Commit();
    } else {
      store_.Rollback();
    }
    if (!st.ok())
      LogEvent(spdlog::level::err, {.run_id = run_id}, "run {}: cannot record that it failed: {}", run_id,
               st.message());
    if (it != plans_.end()) {
      RunPlan& plan = *it->second;
      const RunState from = plan.run().state;
      plan.run().state = RunState::kFailed;
      plan.run().error = error;
      plan.run().ended_at = now;
      for (auto* o : observers_) o->OnRunStateChanged(plan, from);
      for (auto* o : observers_) o->OnRunFinished(plan);
      plans_.erase(it);
    }
  }
  may_start_queued_runs_ = true;
  SchedulePump();
}

Status Engine::CancelRun(const std::string& run_id) {
  const SysMillis now = clock_.Now();
  auto it = plans_.find(run_id);
  if (it == plans_.end()) {
    auto run = store_.GetRun(run_id);
    if (!run.ok()) return run.status();
    if (!*run) return Status::NotFound("run '" + run_id + "' not found");
    if ((*run)->state != RunState::kQueued)
      return Status::FailedPrecondition("run '" + run_id + "' is already " + std::string(ToString((*run)->state)));
    auto instances = store_.ListInstances(run_id);  // a retry queued behind max_active_runs has some
    if (!instances.ok()) return instances.status();
    if (Status st = store_.Begin(); !st.ok()) return st;
    Status st = store_.UpdateRunState(run_id, RunState::kCancelled, std::nullopt, now);
    if (st.ok()) st = CancelStoredInstances(*instances, now, "");
    if (!st.ok()) {
      store_.Rollback();
      return st;
    }
    if (Status c = store_.Commit(); !c.ok()) return c;
    LogEvent(spdlog::level::info, {.dag = (*run)->dag, .run_id = run_id}, "run {} cancelled while queued", run_id);
    if (expander_) expander_->Cancel(run_id);  // its partitions commands, if they are running
    return Status::Ok();
  }
  if (it->second->run().state == RunState::kCancelled) return Status::Ok();
  if (Status st = store_.Begin(); !st.ok()) return st;
  Status st = store_.UpdateRunState(run_id, RunState::kCancelled, std::nullopt, now);
  // Instance rows are written by the next Pump in the same way as any other change; the
  // run row is enough for recovery to cancel whatever is left.
  if (!st.ok()) {
    store_.Rollback();
    return st;
  }
  // The plan changes and the processes die once the outermost transaction commits (the
  // API's, with its audit row): a rollback leaves the run running, in memory and stored.
  store_.AfterTransaction([self = self_, run_id, now](bool committed) {
    if (committed && *self) (*self)->ApplyCancel(run_id, now);
  });
  return store_.Commit();
}

void Engine::ApplyCancel(const std::string& run_id, SysMillis now) {
  auto it = plans_.find(run_id);
  if (it == plans_.end() || it->second->run().state == RunState::kCancelled) return;
  RunPlan& plan = *it->second;
  plan.run().state = RunState::kCancelled;
  plan.run().ended_at = now;
  for (size_t i = 0; i < plan.size(); ++i) {
    auto& inst = plan.instance(i);
    if (IsTerminal(inst.state)) continue;
    if (inst.state == InstanceState::kRunning) continue;  // ends cancelled when its result arrives
    timers_->retry.erase(inst.id);
    inst.ended_at = now;
    plan.Transition(i, InstanceState::kCancelled);
  }
  std::vector<uint64_t> to_kill;
  for (const auto& [attempt_id, r] : running_)
    if (r->run_id == run_id) to_kill.push_back(attempt_id);
  LogEvent(spdlog::level::info, {.dag = plan.run().dag, .run_id = run_id},
           "run {} cancelled; killing {} running attempt(s)", run_id, to_kill.size());
  for (uint64_t id : to_kill) runner_.Cancel(id);
  SchedulePump();
}

void Engine::ReloadPlan(const std::string& run_id) {
  if (!plans_.count(run_id)) return;
  if (Status st = ReloadPlans({run_id}); !st.ok()) {
    plans_stale_ = true;  // the next pass reloads every plan
    LogEvent(spdlog::level::warn, {.run_id = run_id}, "run {}: cannot reload it from the store yet: {}", run_id,
             st.message());
  }
}

}  // namespace batchd::engine
