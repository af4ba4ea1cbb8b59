#pragma once
// ControlApi: the routes of docs/http-api.md as a pure function of an HttpRequest. It
// validates input completely before changing anything, commits every mutation before
// returning (the server replies only afterwards) and records it in the audit trail.
//
// Thread rules: called on the engine thread (the daemon runs one io_context thread).

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "api/http.h"
#include "engine/engine.h"
#include "scheduler/dag_registry.h"
#include "scheduler/scheduler.h"
#include "scheduler/slo_monitor.h"

namespace date { class time_zone; }

namespace batchd::api {

struct ControlApiContext {
  engine::Engine* engine = nullptr;
  scheduler::DagRegistry* registry = nullptr;
  scheduler::Scheduler* scheduler = nullptr;
  // Each DAG's SLO state for `dags` and `show` (absent: shown as without SLOs).
  const scheduler::SloMonitor* slo = nullptr;
  const Clock* clock = nullptr;
  // Rescans the DAGs directory (as SIGHUP does).
  std::function<scheduler::ScanReport()> reload;
  SysMillis started_at{};
  int workers = 0;
  std::function<bool()> shutting_down;
  // Why the caller may not make this mutating request (api.mutation_uids/_groups), or
  // nullopt when it may; unset lets every caller of the socket mutate.
  std::function<std::optional<std::string>(const HttpRequest& request, const std::string& path)> deny_mutation;
};

class ControlApi {
 public:
  explicit ControlApi(ControlApiContext context) : ctx_(std::move(context)) {}
  HttpResponse Handle(const HttpRequest& request);

 private:
  struct Route;
  HttpResponse Health();
  HttpResponse ListDags();
  HttpResponse ShowDag(const std::string& name);
  HttpResponse SubmitDag(const HttpRequest& request);
  HttpResponse DeleteDag(const HttpRequest& request, const std::string& name, bool purge);
  HttpResponse PauseDag(const HttpRequest& request, const std::string& name, bool paused);
  HttpResponse Trigger(const HttpRequest& request, const std::string& name);
  HttpResponse Backfill(const HttpRequest& request, const std::string& name);
  HttpResponse DagGrid(const std::string& name, const std::string& query);
  // {"TASK": {"STATE": n}} of the whole run: the engine's while it is active, else one
  // aggregate query, kept for runs that ended (until they change again).
  nlohmann::json RunCounts(const store::RunRecord& run);
  HttpResponse ListRuns(const std::string& query);
  HttpResponse RunStatus(const std::string& run_id, const std::string& query);
  // One page of a run's instances for RunStatus: `filter.limit` of them, by id, after
  // `filter.after_id`; costs the page, also when asked for what needs attention.
  std::vector<store::InstanceRecord> InstancePage(const store::RunRecord& run, store::Store::InstanceFilter filter);
  HttpResponse RunAttempts(const std::string& run_id, const std::string& query);
  HttpResponse CancelRun(const HttpRequest& request, const std::string& run_id);
  HttpResponse RetryRun(const HttpRequest& request, const std::string& run_id);
  HttpResponse MarkInstances(const HttpRequest& request, const std::string& run_id);
  HttpResponse ClearInstances(const HttpRequest& request, const std::string& run_id);
  HttpResponse Logs(const std::string& run_id, const std::string& query);
  HttpResponse Failed(const std::string& query);
  HttpResponse Reload(const HttpRequest& request);
  HttpResponse Pools();
  HttpResponse PauseAll(const HttpRequest& request, bool paused);
  void AuthorizeMutation(const HttpRequest& request, const std::string& path);
  const date::time_zone* ZoneOfRun(const store::RunRecord& run);
  void Audit(const HttpRequest& request, const std::string& action, const std::string& target,
             const std::string& detail_json);

  ControlApiContext ctx_;
  struct EndedCounts {
    std::optional<SysMillis> ended_at;
    RunState state;
    nlohmann::json counts;
  };
  std::unordered_map<std::string, EndedCounts> ended_counts_;  // by run id
};

}  // namespace batchd::api
