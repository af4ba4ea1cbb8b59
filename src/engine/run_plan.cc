#include "engine/run_plan.h"

#include <algorithm>

#include <date/tz.h>
#include <nlohmann/json.hpp>

#include "common/json_text.h"
#include "dag/template.h"
#include "engine/policy.h"

namespace batchd::engine {

namespace {
constexpr std::string_view kParamEnvPrefix = "BATCHD_PARAM_";
}  // namespace

std::map<std::string, std::string> RunParams(const dag::Dag& dag, const store::RunRecord& run) {
  std::map<std::string, std::string> params = dag.params;
  // Trigger-time overrides: a flat JSON object of strings, written by the engine.
  auto overrides = nlohmann::json::parse(run.params_json, nullptr, /*allow_exceptions=*/false);
  if (overrides.is_object()) {
    for (const auto& [k, v] : overrides.items()) {
      params[k] = BytesFromJson(v).value_or(DumpJsonForDisplay(v));  // Engine::EncodeParams
    }
  }
  return params;
}

std::vector<std::string> ParamEnvironment(const std::map<std::string, std::string>& params) {
  std::map<std::string, std::string> env;
  for (const auto& [name, value] : params) {
    std::string key(kParamEnvPrefix);
    for (char c : name) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
      key += ok ? c : '_';
    }
    std::string& v = env[key];
    v.clear();
    for (char c : value) {
      if (c != '\0') v += c;
    }
  }
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

std::map<std::string, std::string> RunTemplateVars(const dag::Dag& dag, const store::RunRecord& run) {
  const date::time_zone* zone = nullptr;
  if (auto z = LookupZone(dag.timezone); z.ok()) zone = *z;
  if (!zone) zone = *LookupZone("UTC");
  std::map<std::string, std::string> vars;
  vars["dag"] = dag.name;
  vars["run_id"] = run.run_id;
  vars["logical_date"] = FormatIso(run.logical_date, zone);
  vars["ds"] = FormatDate(run.logical_date, zone);
  vars["ts"] = FormatIsoUtc(run.logical_date);
  vars["data_interval_start"] = FormatIso(run.interval_start, zone);
  vars["data_interval_end"] = FormatIso(run.interval_end, zone);
  for (const auto& [k, v] : RunParams(dag, run)) vars["params." + k] = v;
  return vars;
}

std::vector<store::InstanceRecord> MakeInstances(const dag::Dag& dag, const store::RunRecord& run,
                                                 const std::map<std::string, std::vector<std::string>>& partitions) {
  auto vars = RunTemplateVars(dag, run);
  static const std::vector<std::string> kUnpartitioned{"-"};
  auto names_of = [&](const dag::Task& task) -> const std::vector<std::string>& {
    auto it = partitions.find(task.id);
    return it != partitions.end() ? it->second : kUnpartitioned;
  };
  size_t total = 0;
  for (const auto& task : dag.tasks) total += names_of(task).size();
  std::vector<store::InstanceRecord> out;
  out.reserve(total);  // a run of a million instances must not pass through a copy of itself
  for (const auto& task : dag.tasks) {
    const std::vector<std::string>& names = names_of(task);
    vars["task"] = task.id;
    vars["attempt"] = "1";
    for (const auto& p : names) {
      vars["partition"] = p;
      store::InstanceRecord rec;
      rec.run_id = run.run_id;
      rec.task = task.id;
      rec.partition = p;
      rec.state = InstanceState::kPending;
      rec.idempotency_key = dag::RenderTemplate(task.idempotency_key, vars);
      // Files seen in the same second share a logical date: the default key of a
      // file-triggered run also names its file (the run key), so that no two files share
      // one. A key the DAG spells out is its author's (docs/dag-format.md, "File triggers").
      static const std::string kDefaultKey = dag::Task().idempotency_key;
      if (run.trigger == "file" && task.idempotency_key == kDefaultKey) rec.idempotency_key += "/" + run.run_key;
      out.push_back(std::move(rec));
    }
  }
  return out;
}

RunPlan::RunPlan(dag::DagPtr dag, store::RunRecord run, std::vector<store::InstanceRecord> instances)
    : dag_(std::move(dag)), run_(std::move(run)), instances_(std::move(instances)) {
  const size_t n = instances_.size();
  task_index_.resize(n, 0);
  changed_flag_.assign(n, 0);
  key_checked_.assign(n, 0);
  vars_ = RunTemplateVars(*dag_, run_);
  std::map<std::string_view, size_t> task_pos;  // task id -> index into dag_->tasks
  for (size_t t = 0; t < dag_->tasks.size(); ++t) task_pos[dag_->tasks[t].id] = t;
  task_counts_.assign(dag_->tasks.size(), StateCounts{});
  by_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto& rec = instances_[i];
    auto pos = task_pos.find(rec.task);
    task_index_[i] = pos != task_pos.end() ? static_cast<int>(pos->second) : 0;
    by_id_.emplace_back(rec.id, static_cast<uint32_t>(i));
    counts_[static_cast<int>(rec.state)]++;
    task_counts_[task_index_[i]][static_cast<int>(rec.state)]++;
    if (IsTerminal(rec.state)) ++terminal_count_;
  }
  std::sort(by_id_.begin(), by_id_.end());
  for (size_t i = 0; i < n; ++i) {
    if (instances_[i].state != InstanceState::kQueued) continue;
    ready_.insert({-task_of(i).priority, i});
    newly_queued_.push_back(i);
  }
  attempt_vars_ = vars_;
  task_env_.resize(dag_->tasks.size());
  BuildEdges(task_pos);
  upstream_kinds_.assign(n, {});
  for (size_t i = 0; i < n; ++i)
    for (uint32_t j : upstream_.of(i)) ++upstream_kinds_[i][KindOf(j)];
  for (size_t i = n; i-- > 0;) dirty_.push_back(i);
}

void RunPlan::BuildEdges(const std::map<std::string_view, size_t>& task_pos) {
  const size_t n = instances_.size();
  // Per task, its instances sorted by partition name: an upstream's instances are found by
  // a binary search (`partitions: same`) or taken all, in partition order.
  using ByPartition = std::vector<std::pair<std::string_view, uint32_t>>;
  std::vector<ByPartition> of_task(dag_->tasks.size());
  std::vector<char> is_upstream(dag_->tasks.size(), 0);
  for (const auto& task : dag_->tasks)
    for (const auto& dep : task.depends_on)
      if (auto it = task_pos.find(dep.task); it != task_pos.end()) is_upstream[it->second] = 1;
  for (size_t i = 0; i < n; ++i)
    if (is_upstream[task_index_[i]] && instances_[i].task == dag_->tasks[task_index_[i]].id)
      of_task[task_index_[i]].emplace_back(instances_[i].partition, static_cast<uint32_t>(i));
  for (auto& instances : of_task) std::sort(instances.begin(), instances.end());

  upstream_.start.assign(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    const dag::Task& task = dag_->tasks[task_index_[i]];
    for (const auto& dep : task.depends_on) {
      auto pos = task_pos.find(dep.task);
      if (pos == task_pos.end()) continue;
      const ByPartition& up = of_task[pos->second];
      if (dep.same_partition) {
        const std::string_view partition = instances_[i].partition;
        auto same = std::lower_bound(up.begin(), up.end(), std::pair<std::string_view, uint32_t>{partition, 0});
        if (same != up.end() && same->first == partition) {
          upstream_.edges.push_back(same->second);
          continue;
        }
        // `partitions: same` without a matching upstream partition (a partitions command
        // changed its output) waits for all of them rather than for none.
      }
      for (const auto& [_, j] : up) upstream_.edges.push_back(j);
    }
    upstream_.start[i + 1] = static_cast<uint32_t>(upstream_.edges.size());
  }
  upstream_.edges.shrink_to_fit();

  // Downstream: the same edges reversed, counted first so that each instance's run of the
  // flat array is sized exactly.
  downstream_.start.assign(n + 1, 0);
  for (uint32_t j : upstream_.edges) ++downstream_.start[j + 1];
  for (size_t i = 0; i < n; ++i) downstream_.start[i + 1] += downstream_.start[i];
  downstream_.edges.resize(upstream_.edges.size());
  std::vector<uint32_t> next(downstream_.start.begin(), downstream_.start.end() - 1);
  for (size_t i = 0; i < n; ++i)
    for (uint32_t j : upstream_.of(i)) downstream_.edges[next[j]++] = static_cast<uint32_t>(i);
}

std::optional<size_t> RunPlan::IndexOf(int64_t instance_id) const {
  auto it = std::lower_bound(by_id_.begin(), by_id_.end(), std::pair<int64_t, uint32_t>{instance_id, 0});
  if (it == by_id_.end() || it->first != instance_id) return std::nullopt;
  return it->second;
}

void RunPlan::Transition(size_t i, InstanceState to, std::string reason) {
  auto& rec = instances_[i];
  if (rec.state == to && rec.reason == reason) return;
  const Kind was = KindOf(i);
  if (IsTerminal(rec.state)) --terminal_count_;
  const bool was_queued = rec.state == InstanceState::kQueued, now_queued = to == InstanceState::kQueued;
  if (was_queued && !now_queued) ready_.erase({-task_of(i).priority, i});
  if (!was_queued && now_queued) {
    ready_.insert({-task_of(i).priority, i});
    newly_queued_.push_back(i);
  }
  counts_[static_cast<int>(rec.state)]--;
  task_counts_[task_index_[i]][static_cast<int>(rec.state)]--;
  rec.state = to;
  rec.reason = std::move(reason);
  counts_[static_cast<int>(to)]++;
  task_counts_[task_index_[i]][static_cast<int>(to)]++;
  if (const Kind now = KindOf(i); now != was) {
    for (uint32_t d : downstream_.of(i)) {
      --upstream_kinds_[d][was];
      ++upstream_kinds_[d][now];
    }
  }
  if (IsTerminal(to)) {
    ++terminal_count_;
    for (uint32_t d : downstream_.of(i)) dirty_.push_back(d);
  }
  if (to == InstanceState::kPending) dirty_.push_back(i);
  if (!changed_flag_[i]) {
    changed_flag_[i] = 1;
    changed_.push_back(i);
  }
}

namespace {
// The reason of an upstream_failed instance: the failed instance upstream of it, found
// through an upstream_failed one's own reason.
std::string UpstreamFailure(const store::InstanceRecord* up) {
  if (!up) return "";
  if (up->state == InstanceState::kUpstreamFailed) return up->reason;
  return "upstream " + up->task + (up->partition == "-" ? "" : "[" + up->partition + "]") + " failed";
}
}  // namespace

RunPlan::Kind RunPlan::KindOf(size_t i) const {
  const auto& r = instances_[i];
  switch (r.state) {
    case InstanceState::kSuccess: return kSucceeded;
    case InstanceState::kSkipped: return r.reason == "already_succeeded" ? kSucceeded : kSkipped;
    case InstanceState::kFailed: return kFailed;
    case InstanceState::kUpstreamFailed: return kUpstreamFailed;
    case InstanceState::kCancelled: return kCancelled;
    default: return kUndecided;
  }
}

void RunPlan::Propagate() {
  // Worklist of pending instances whose upstream changed; at construction (and after a
  // reset) every instance is on it. Each evaluation is O(1): upstream_kinds_ holds the
  // counts.
  while (!dirty_.empty()) {
    size_t i = dirty_.back();
    dirty_.pop_back();
    if (instances_[i].state != InstanceState::kPending) continue;
    const auto& k = upstream_kinds_[i];
    UpstreamCounts c;
    c.total = static_cast<int>(upstream_.of(i).size());
    c.succeeded = k[kSucceeded];
    c.skipped = k[kSkipped];
    c.failed = k[kFailed];
    c.upstream_failed = k[kUpstreamFailed];
    c.cancelled = k[kCancelled];
    switch (EvaluateTriggerRule(task_of(i).trigger_rule, c)) {
      case RuleDecision::kWait: break;
      case RuleDecision::kRun: Transition(i, InstanceState::kQueued); break;
      case RuleDecision::kSkip: Transition(i, InstanceState::kSkipped, "trigger_rule"); break;
      case RuleDecision::kUpstreamFailed: {
        // Named after the first failure upstream; scanned once, when decided.
        const store::InstanceRecord* first_failed = nullptr;
        for (uint32_t j : upstream_.of(i)) {
          const Kind kind = KindOf(j);
          if (kind == kFailed || kind == kUpstreamFailed) {
            first_failed = &instances_[j];
            break;
          }
        }
        Transition(i, InstanceState::kUpstreamFailed, UpstreamFailure(first_failed));
        break;
      }
    }
  }
}

std::vector<size_t> RunPlan::Queued() const {
  std::vector<size_t> out;
  out.reserve(ready_.size());
  for (const auto& [_, i] : ready_) out.push_back(i);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<size_t> RunPlan::TakeNewlyQueued() {
  std::vector<size_t> out;
  out.swap(newly_queued_);
  return out;
}

const std::map<std::string, std::string>& RunPlan::AttemptVars(size_t i, int attempt) {
  attempt_vars_["task"] = instances_[i].task;
  attempt_vars_["partition"] = instances_[i].partition;
  attempt_vars_["attempt"] = std::to_string(attempt);
  return attempt_vars_;
}

const std::vector<std::string>& RunPlan::TaskEnvironment(size_t task_index, const std::vector<std::string>& base) {
  auto& cached = task_env_[task_index];
  if (cached) return *cached;
  // Computed once per run: in a chain every step is another task, and rebuilding the
  // whole inherited environment per task was a measurable part of a step.
  auto to_vector = [](const std::map<std::string, std::string>& env) {
    auto out = std::make_shared<std::vector<std::string>>();
    out->reserve(env.size());
    for (const auto& [k, v] : env) out->push_back(k + "=" + v);
    return out;
  };
  static constexpr const char* kPerAttempt[] = {"BATCHD_DAG", "BATCHD_RUN_ID", "BATCHD_TASK", "BATCHD_PARTITION",
                                                "BATCHD_ATTEMPT", "BATCHD_LOGICAL_DATE", "BATCHD_IDEMPOTENCY_KEY"};
  if (!dag_env_) {
    for (const auto& kv : base) {
      auto eq = kv.find('=');
      if (eq != std::string::npos) dag_env_map_[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [k, v] : dag_->env) dag_env_map_[k] = v;
    for (const char* name : kPerAttempt) dag_env_map_.erase(name);
    // Params reach scripts as variables too, which need no quoting at all; ones the
    // daemon itself inherited are not this run's.
    std::erase_if(dag_env_map_, [](const auto& kv) { return kv.first.starts_with(kParamEnvPrefix); });
    for (const std::string& kv : ParamEnvironment(RunParams(*dag_, run_))) {
      auto eq = kv.find('=');
      dag_env_map_[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    dag_env_ = to_vector(dag_env_map_);
  }
  const auto& task_env = dag_->tasks[task_index].env;
  if (task_env.empty()) {
    cached = dag_env_;
  } else {
    std::map<std::string, std::string> env = dag_env_map_;
    for (const auto& [k, v] : task_env) env[k] = v;  // the loader refuses BATCHD_* names here
    cached = to_vector(env);
  }
  return *cached;
}

std::vector<size_t> RunPlan::TakeChanged() {
  std::vector<size_t> out;
  out.swap(changed_);
  for (size_t i : out) changed_flag_[i] = 0;
  return out;
}

RunState RunPlan::Outcome() const {
  if (CountIn(InstanceState::kFailed) || CountIn(InstanceState::kUpstreamFailed)) return RunState::kFailed;
  if (CountIn(InstanceState::kCancelled)) return RunState::kCancelled;
  return RunState::kSuccess;
}

int RunPlan::ResetFailed(const std::optional<std::string>& task, const std::optional<std::string>& partition) {
  int reset = 0;
  std::vector<size_t> stack;
  for (size_t i = 0; i < instances_.size(); ++i) {
    const auto& r = instances_[i];
    if (r.state != InstanceState::kFailed && r.state != InstanceState::kUpstreamFailed) continue;
    if (task && r.task != *task) continue;
    if (partition && r.partition != *partition) continue;
    stack.push_back(i);
  }
  while (!stack.empty()) {
    size_t i = stack.back();
    stack.pop_back();
    auto& r = instances_[i];
    if (r.state != InstanceState::kFailed && r.state != InstanceState::kUpstreamFailed) continue;
    r.next_attempt_at.reset();
    r.ended_at.reset();
    r.retry_base = r.attempts;  // the retry policy applies afresh
    key_checked_[i] = 0;        // its key is looked up again when it is queued
    Transition(i, InstanceState::kPending);
    ++reset;
    for (uint32_t d : downstream_.of(i))
      if (instances_[d].state == InstanceState::kUpstreamFailed) stack.push_back(d);
  }
  return reset;
}

std::vector<size_t> RunPlan::InstancesOf(const std::string& task, const std::optional<std::string>& partition) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < instances_.size(); ++i) {
    const auto& r = instances_[i];
    if (r.task == task && (!partition || r.partition == *partition)) out.push_back(i);
  }
  return out;
}

void RunPlan::ReopenRuleDecidedDownstream(size_t i) {
  const auto first = downstream_.of(i);
  std::vector<size_t> stack(first.begin(), first.end());
  while (!stack.empty()) {
    size_t d = stack.back();
    stack.pop_back();
    auto& r = instances_[d];
    const bool decided_by_rule = r.state == InstanceState::kUpstreamFailed ||
                                 (r.state == InstanceState::kSkipped && r.reason == "trigger_rule");
    if (!decided_by_rule) continue;
    r.ended_at.reset();
    key_checked_[d] = 0;
    Transition(d, InstanceState::kPending);
    for (uint32_t next : downstream_.of(d)) stack.push_back(next);
  }
}

void RunPlan::Mark(size_t i, InstanceState to, std::string reason, SysMillis now) {
  auto& r = instances_[i];
  r.next_attempt_at.reset();
  r.ended_at = now;
  Transition(i, to, std::move(reason));
  ReopenRuleDecidedDownstream(i);
}

void RunPlan::Clear(size_t i, bool force) {
  auto& r = instances_[i];
  r.next_attempt_at.reset();
  r.ended_at.reset();
  r.retry_base = r.attempts;
  r.force = force;
  key_checked_[i] = 0;
  Transition(i, InstanceState::kPending);
  ReopenRuleDecidedDownstream(i);
}

}  // namespace batchd::engine
