#include "api/control_api.h"

#include <date/tz.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <string.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <filesystem>
#include <regex>

#include "batchd/version.h"
#include "common/duration.h"
#include "common/json_text.h"
#include "dag/loader.h"

namespace batchd::api {
namespace {

using nlohmann::json;

constexpr size_t kMaxLogChunk = 1024 * 1024;
// A backfill of more than kConfirmBackfillRuns runs needs "yes": true (a mistyped range
// should not queue years of runs); more than kMaxBackfillRuns is refused even then.
constexpr size_t kConfirmBackfillRuns = 100;
constexpr size_t kMaxBackfillRuns = 10000;

// An error raised while handling a request; turned into an error response by Handle.
struct ApiError {
  int status;
  std::string code;
  std::string message;
  json details;
};

[[noreturn]] void Throw(int status, const std::string& code, const std::string& message, json details = nullptr) {
  throw ApiError{status, code, message, std::move(details)};
}

[[noreturn]] void ThrowStatus(const Status& st) {
  switch (st.code()) {
    case StatusCode::kNotFound: Throw(404, "not_found", st.message());
    case StatusCode::kInvalidArgument: Throw(400, "bad_request", st.message());
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAlreadyExists: Throw(409, "conflict", st.message());
    // The disk is full or failing: nothing was written, and trying again later may work.
    case StatusCode::kIoError: Throw(503, "store_unavailable", st.message());
    default: Throw(500, "internal", st.message());
  }
}

void Check(const Status& st) {
  if (!st.ok()) ThrowStatus(st);
}
template <typename T>
T Unwrap(Result<T> r) {
  if (!r.ok()) ThrowStatus(r.status());
  return std::move(r).value();
}

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (unsigned char c : s)
    if (!std::isalnum(c) && c != '_' && c != '.' && c != '-') return false;
  return s != "." && s != "..";
}

void RequireName(const std::string& kind, const std::string& s) {
  if (!ValidName(s)) {
    std::string shown = s.size() > 64 ? s.substr(0, 64) + "..." : s;
    Throw(400, "bad_request", "invalid " + kind + " '" + shown + "': names are 1-128 characters of [A-Za-z0-9_.-]");
  }
}

// A true/false query parameter: absent, "false" or "0" is false; "true", "1" or empty true.
bool ParseBool(const std::string& name, std::map<std::string, std::string>& q) {
  auto it = q.find(name);
  if (it == q.end() || it->second == "false" || it->second == "0") return false;
  if (it->second == "true" || it->second == "1" || it->second.empty()) return true;
  Throw(400, "bad_request", "query parameter '" + name + "' must be true or false, not '" + it->second + "'");
}

void RequireRunId(const std::string& s) {
  static const std::regex kRunId("^[0-9a-f]{12}$");
  if (!std::regex_match(s, kRunId)) {
    std::string shown = s.size() > 64 ? s.substr(0, 64) + "..." : s;
    Throw(400, "bad_request", "invalid run id '" + shown + "': expected 12 lowercase hex characters");
  }
}

std::string UrlDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(const std::string& query) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos < query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    std::string kv = query.substr(pos, amp - pos);
    size_t eq = kv.find('=');
    if (!kv.empty()) {
      if (eq == std::string::npos) out[UrlDecode(kv)] = "";
      else out[UrlDecode(kv.substr(0, eq))] = UrlDecode(kv.substr(eq + 1));
    }
    pos = amp + 1;
  }
  return out;
}

void AllowQuery(const std::map<std::string, std::string>& q, std::initializer_list<const char*> allowed) {
  for (const auto& [k, _] : q) {
    bool ok = false;
    for (const char* a : allowed) ok |= k == a;
    if (!ok) Throw(400, "bad_request", "unknown query parameter '" + k + "'");
  }
}

int ParseInt(const std::string& what, const std::string& s, int min, int max) {
  try {
    size_t used = 0;
    long v = std::stol(s, &used);
    if (used == s.size() && v >= min && v <= max) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  Throw(400, "bad_request", what + " must be an integer between " + std::to_string(min) + " and " +
                                std::to_string(max) + ", got '" + s + "'");
}

int64_t ParseInt64(const std::string& what, const std::string& s, int64_t min, int64_t max) {
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used == s.size() && v >= min && v <= max) return v;
  } catch (const std::exception&) {
  }
  Throw(400, "bad_request", what + " must be an integer between " + std::to_string(min) + " and " +
                                std::to_string(max) + ", got '" + s + "'");
}

// Instances per status page unless `limit` says otherwise.
constexpr int kDefaultStatusPage = 1000;

json ParseBody(const HttpRequest& request, std::initializer_list<const char*> allowed) {
  if (request.body.empty()) return json::object();
  json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    try {
      json reparsed = json::parse(request.body);  // only for the parser's message
      (void)reparsed;
    } catch (const json::parse_error& e) {
      Throw(400, "bad_request", std::string("malformed JSON body: ") + e.what());
    }
    Throw(400, "bad_request", "malformed JSON body");
  }
  if (!body.is_object()) Throw(400, "bad_request", "the request body must be a JSON object");
  for (const auto& [k, _] : body.items()) {
    bool ok = false;
    for (const char* a : allowed) ok |= k == a;
    if (!ok) Throw(400, "bad_request", "unknown field '" + k + "' in request body");
  }
  return body;
}

// An operator's reason for a mark: a sentence, kept on every instance it marks.
constexpr size_t kMaxMarkReasonBytes = 500;

std::optional<std::string> OptString(const json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return std::nullopt;
  if (!body[key].is_string()) Throw(400, "bad_request", std::string("field '") + key + "' must be a string");
  return body[key].get<std::string>();
}

bool OptBool(const json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return false;
  if (!body[key].is_boolean()) Throw(400, "bad_request", std::string("field '") + key + "' must be a boolean");
  return body[key].get<bool>();
}

json MillisJson(const std::optional<SysMillis>& t) {
  if (!t) return nullptr;
  auto ms = std::chrono::floor<std::chrono::milliseconds>(*t);
  return date::format("%FT%TZ", ms);
}

const date::time_zone* ZoneOf(const dag::Dag* dag) {
  if (dag) {
    if (auto z = LookupZone(dag->timezone); z.ok()) return *z;
  }
  return *LookupZone("UTC");
}

json RunSummaryJson(const store::RunRecord& run, const date::time_zone* zone) {
  return json{{"run_id", run.run_id},
              {"dag", run.dag},
              {"state", ToString(run.state)},
              {"trigger", run.trigger},
              {"logical_date", FormatIso(run.logical_date, zone)},
              {"run_key", run.run_key},
              {"dag_version", run.dag_hash.substr(0, 12)},
              {"started_at", MillisJson(run.started_at)},
              {"ended_at", MillisJson(run.ended_at)}};
}

// Rolls the store back unless Commit() was reached, whatever was thrown in between.
class Transaction {
 public:
  explicit Transaction(store::Store& store) : store_(store) { Check(store_.Begin()); }
  ~Transaction() {
    if (!done_) store_.Rollback();
  }
  void Commit() {
    done_ = true;
    Check(store_.Commit());
  }

 private:
  store::Store& store_;
  bool done_ = false;
};

HttpResponse JsonResponse(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.body = DumpJsonForDisplay(body) + "\n";  // names and partitions may hold any bytes
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------

HttpResponse ControlApi::Handle(const HttpRequest& request) {
  try {
    std::string path = request.target;
    std::string query;
    if (auto q = path.find('?'); q != std::string::npos) {
      query = path.substr(q + 1);
      path = path.substr(0, q);
    }
    std::vector<std::string> parts;
    size_t pos = 1;
    if (path.empty() || path[0] != '/') Throw(400, "bad_request", "request target must start with '/'");
    while (pos <= path.size()) {
      size_t slash = path.find('/', pos);
      if (slash == std::string::npos) slash = path.size();
      parts.push_back(UrlDecode(path.substr(pos, slash - pos)));
      pos = slash + 1;
    }
    if (!parts.empty() && parts.back().empty()) parts.pop_back();
    const std::string& m = request.method;
    auto method = [&](std::initializer_list<const char*> allowed) {
      for (const char* a : allowed)
        if (m == a) return;
      Throw(405, "method_not_allowed", "method " + m + " is not allowed on " + path);
    };
    const bool mutation = m != "GET" && m != "HEAD";
    if (mutation && ctx_.shutting_down && ctx_.shutting_down())
      Throw(503, "unavailable", "batchd is shutting down");
    if (mutation && ctx_.engine->store_fault())
      Throw(503, "store_unavailable",
            "the store cannot be written (" + *ctx_.engine->store_fault() +
                "); new work is refused until it can, and nothing acknowledged is lost");
    if (mutation) AuthorizeMutation(request, path);

    if (parts.size() < 2 || parts[0] != "v1") Throw(404, "not_found", "no route for " + path);
    const std::string& area = parts[1];
    if (area == "health" && parts.size() == 2) { method({"GET"}); return Health(); }
    if (area == "reload" && parts.size() == 2) { method({"POST"}); return Reload(request); }
    if (area == "failed" && parts.size() == 2) { method({"GET"}); return Failed(query); }
    if (area == "pools" && parts.size() == 2) { method({"GET"}); return Pools(); }
    if ((area == "pause" || area == "unpause") && parts.size() == 2) {
      method({"POST"});
      return PauseAll(request, area == "pause");
    }
    if (area == "dags") {
      if (parts.size() == 2) {
        method({"GET", "POST"});
        return m == "GET" ? ListDags() : SubmitDag(request);
      }
      const std::string& name = parts[2];
      RequireName("DAG name", name);
      if (parts.size() == 3) {
        method({"GET", "DELETE"});
        if (m == "GET") return ShowDag(name);
        auto q = ParseQuery(query);
        AllowQuery(q, {"purge"});
        bool purge = q.count("purge") && (q["purge"] == "true" || q["purge"] == "1" || q["purge"].empty());
        return DeleteDag(request, name, purge);
      }
      if (parts.size() == 4) {
        const std::string& action = parts[3];
        if (action == "pause" || action == "unpause") { method({"POST"}); return PauseDag(request, name, action == "pause"); }
        if (action == "runs") { method({"POST"}); return Trigger(request, name); }
        if (action == "backfill") { method({"POST"}); return Backfill(request, name); }
        if (action == "grid") { method({"GET"}); return DagGrid(name, query); }
      }
    }
    if (area == "runs") {
      if (parts.size() == 2) { method({"GET"}); return ListRuns(query); }
      const std::string& run_id = parts[2];
      RequireRunId(run_id);
      if (parts.size() == 3) { method({"GET"}); return RunStatus(run_id, query); }
      if (parts.size() == 4) {
        const std::string& action = parts[3];
        if (action == "cancel") { method({"POST"}); return CancelRun(request, run_id); }
        if (action == "retry") { method({"POST"}); return RetryRun(request, run_id); }
        if (action == "mark") { method({"POST"}); return MarkInstances(request, run_id); }
        if (action == "clear") { method({"POST"}); return ClearInstances(request, run_id); }
        if (action == "logs") { method({"GET"}); return Logs(run_id, query); }
        if (action == "attempts") { method({"GET"}); return RunAttempts(run_id, query); }
      }
    }
    Throw(404, "not_found", "no route for " + path);
  } catch (const ApiError& e) {
    HttpResponse r = ErrorResponse(e.status, e.code, e.message);
    if (!e.details.is_null()) {
      json body = json::parse(r.body);
      body["error"]["details"] = e.details;
      r.body = DumpJsonForDisplay(body) + "\n";
    }
    if (e.status >= 500) spdlog::error("{} {}: {}", request.method, request.target, e.message);
    return r;
  }
}

// Before routing: a caller outside the allow-list learns nothing about which routes exist.
void ControlApi::AuthorizeMutation(const HttpRequest& request, const std::string& path) {
  if (!ctx_.deny_mutation) return;
  if (auto reason = ctx_.deny_mutation(request, path)) Throw(403, "forbidden", *reason);
}

void ControlApi::Audit(const HttpRequest& request, const std::string& action, const std::string& target,
                       const std::string& detail_json) {
  Check(ctx_.engine->store().Audit(request.uid, action, target, detail_json, ctx_.clock->Now()));
}

HttpResponse ControlApi::Health() {
  auto uptime = std::chrono::duration<double>(ctx_.clock->Now() - ctx_.started_at).count();
  // A store that cannot be written makes the daemon degraded: it refuses new work
  // (batchctl health exits 1; /healthz on the HTTP listener answers 503).
  const auto& fault = ctx_.engine->store_fault();
  return JsonResponse(200,
                      {{"status", fault ? "degraded" : "ok"},
                            {"store_error", fault ? json(*fault) : json(nullptr)},
                            {"version", kVersion},
                            {"uptime_seconds", uptime},
                            {"dags", ctx_.registry->all().size()},
                            {"active_runs", ctx_.engine->ActiveRunCount()},
                            {"running_tasks", ctx_.engine->RunningAttemptCount()},
                            {"queued_tasks", ctx_.engine->QueuedInstanceCount()},
                            {"workers", ctx_.workers}});
}

namespace {

// The DAG's last success, freshness and SLO state (docs/http-api.md, "DAGs").
// `misses`: kind -> stored count.
json SloSummary(const scheduler::DagSloState& state, const std::map<std::string, int64_t>& misses) {
  auto duration = [](const std::optional<Millis>& d) { return d ? json(FormatDuration(*d)) : json(nullptr); };
  std::string verdict;
  if (!state.freshness && !state.max_duration) verdict = "none";
  else if (state.stale && state.runs_over_duration > 0) verdict = "stale,late";
  else if (state.stale) verdict = "stale";
  else if (state.runs_over_duration > 0) verdict = "late";
  else verdict = "ok";
  auto count = [&](const char* kind) {
    auto it = misses.find(kind);
    return it == misses.end() ? int64_t{0} : it->second;
  };
  return json{{"max_duration", duration(state.max_duration)},
              {"freshness", duration(state.freshness)},
              {"freshness_age", duration(state.age)},
              {"freshness_age_seconds", state.age ? json(state.age->count() / 1000) : json(nullptr)},
              {"state", verdict},
              {"runs_over_duration", state.runs_over_duration},
              {"misses", {{"duration", count("duration")}, {"freshness", count("freshness")}}}};
}

json DagSummary(const scheduler::RegisteredDag& reg, store::Store& store, SysSeconds now,
                const scheduler::SloMonitor* slo, const std::map<std::string, int64_t>& misses) {
  const dag::Dag& dag = *reg.dag;
  const date::time_zone* zone = ZoneOf(&dag);
  json next = nullptr;
  if (reg.schedule && !reg.entry.paused)
    if (auto n = reg.schedule->NextAfter(now)) next = FormatIso(*n, zone);
  const scheduler::DagSloState state = slo ? slo->StateOf(dag.name) : scheduler::DagSloState{};
  json last = nullptr;
  auto runs = store.ListRuns({dag.name, std::nullopt, 1});
  if (runs.ok() && !runs->empty()) {
    const auto& r = runs->front();
    last = {{"run_id", r.run_id}, {"state", ToString(r.state)}, {"logical_date", FormatIso(r.logical_date, zone)}};
  }
  return json{{"dag", dag.name},
              {"version", dag.content_hash.substr(0, 12)},
              {"origin", reg.entry.origin},
              {"source_path", reg.entry.source_path},
              {"paused", reg.entry.paused},
              {"schedule", dag.schedule ? json(*dag.schedule) : json(nullptr)},
              {"timezone", dag.timezone},
              {"tasks", dag.tasks.size()},
              {"next_fire", next},
              {"last_run", last},
              {"last_success", state.last_success ? json(FormatIso(std::chrono::floor<std::chrono::seconds>(
                                                                      *state.last_success), zone))
                                                  : json(nullptr)},
              {"slo", SloSummary(state, misses)}};
}

// DAG -> kind -> stored SLO misses.
std::map<std::string, std::map<std::string, int64_t>> SloMissCounts(store::Store& store) {
  std::map<std::string, std::map<std::string, int64_t>> out;
  auto counts = store.ListMetricCounts();
  if (!counts.ok()) ThrowStatus(counts.status());
  for (const auto& c : *counts)
    if (c.metric == "slo_misses") out[c.dag][c.label] = static_cast<int64_t>(c.value);
  return out;
}

}  // namespace

HttpResponse ControlApi::ListDags() {
  json out = json::array();
  const SysSeconds now = std::chrono::floor<std::chrono::seconds>(ctx_.clock->Now());
  const auto misses = SloMissCounts(ctx_.engine->store());
  static const std::map<std::string, int64_t> kNone;
  for (const auto& [name, reg] : ctx_.registry->all()) {
    auto it = misses.find(name);
    out.push_back(DagSummary(reg, ctx_.engine->store(), now, ctx_.slo, it == misses.end() ? kNone : it->second));
  }
  return JsonResponse(200, out);
}

HttpResponse ControlApi::ShowDag(const std::string& name) {
  const auto* reg = ctx_.registry->Find(name);
  if (!reg) Throw(404, "not_found", "DAG '" + name + "' not found");
  const SysSeconds now = std::chrono::floor<std::chrono::seconds>(ctx_.clock->Now());
  const auto misses = SloMissCounts(ctx_.engine->store());
  auto it = misses.find(name);
  json out = DagSummary(*reg, ctx_.engine->store(), now, ctx_.slo,
                        it == misses.end() ? std::map<std::string, int64_t>{} : it->second);
  const dag::Dag& dag = *reg->dag;
  const date::time_zone* zone = ZoneOf(&dag);
  out["description"] = dag.description;
  out["hash"] = dag.content_hash;
  out["catchup"] = dag.catchup;
  out["max_active_runs"] = dag.max_active_runs;
  out["max_active_tasks"] = dag.max_active_tasks;
  out["params"] = dag.params;
  json fires = json::array();
  if (reg->schedule) {
    SysSeconds t = now;
    for (int i = 0; i < 5; ++i) {
      auto n = reg->schedule->NextAfter(t);
      if (!n) break;
      fires.push_back(FormatIso(*n, zone));
      t = *n;
    }
  }
  out["next_fires"] = fires;
  auto recent_misses = ctx_.engine->store().ListSloMisses(name, 10);
  if (!recent_misses.ok()) ThrowStatus(recent_misses.status());
  json slo_misses = json::array();
  for (const auto& m : *recent_misses)
    slo_misses.push_back({{"kind", m.kind}, {"at", FormatIso(std::chrono::floor<std::chrono::seconds>(m.at), zone)},
                          {"detail", m.detail}});
  out["slo"]["recent_misses"] = slo_misses;
  json tasks = json::array();
  for (const auto& t : dag.tasks) {
    json deps = json::array();
    for (const auto& d : t.depends_on) deps.push_back(d.same_partition ? d.task + " (same partitions)" : d.task);
    json partitions = nullptr;
    switch (t.partitions.kind) {
      case dag::Partitions::Kind::kNone: break;
      case dag::Partitions::Kind::kValues: partitions = {{"values", t.partitions.values}}; break;
      case dag::Partitions::Kind::kRange:
        partitions = {{"range", {t.partitions.range_begin, t.partitions.range_end}}};
        break;
      case dag::Partitions::Kind::kCommand: partitions = {{"command", t.partitions.command}}; break;
    }
    tasks.push_back({{"task", t.id},
                     {"command", t.command},
                     {"depends_on", deps},
                     {"trigger_rule", dag::TriggerRuleName(t.trigger_rule)},
                     {"partitions", partitions},
                     {"pool", t.pool},
                     {"priority", t.priority},
                     {"retries", t.retry.retries}});
  }
  out["tasks"] = tasks;
  json recent = json::array();
  for (const auto& r : Unwrap(ctx_.engine->store().ListRuns({name, std::nullopt, 10})))
    recent.push_back(RunSummaryJson(r, zone));
  out["recent_runs"] = recent;
  return JsonResponse(200, out);
}

HttpResponse ControlApi::SubmitDag(const HttpRequest& request) {
  json body = ParseBody(request, {"source", "path"});
  auto source = OptString(body, "source");
  if (!source) Throw(400, "bad_request", "field 'source' (the DAG's YAML text) is required");
  std::string path = OptString(body, "path").value_or("<submitted>");
  dag::LoadResult loaded = dag::LoadDagString(*source, path);
  if (loaded.ok()) loaded.errors = ctx_.registry->UndefinedPools(*loaded.dag);
  if (!loaded.ok()) {
    json details = json::array();
    for (const auto& d : loaded.errors)
      details.push_back({{"file", d.file}, {"line", d.line}, {"column", d.column}, {"message", d.message}});
    Throw(400, "invalid_dag",
          loaded.errors.front().ToString() +
              (loaded.errors.size() > 1 ? " (and " + std::to_string(loaded.errors.size() - 1) + " more)" : ""),
          details);
  }
  store::Store& store = ctx_.engine->store();
  Transaction txn(store);
  auto result = ctx_.registry->Register(loaded.dag, "submit");
  if (!result.ok()) {
    ThrowStatus(result.status());
  }
  Audit(request, "submit", result->dag, json{{"version", result->hash}, {"path", path}, {"changed", result->changed}}.dump());
  txn.Commit();
  if (result->changed && ctx_.scheduler) ctx_.scheduler->Poke();
  return JsonResponse(result->changed ? 201 : 200,
                      {{"dag", result->dag}, {"version", result->hash.substr(0, 12)}, {"changed", result->changed}});
}

HttpResponse ControlApi::DeleteDag(const HttpRequest& request, const std::string& name, bool purge) {
  ParseBody(request, {});  // a body is refused like any unknown field: nothing changes
  store::Store& store = ctx_.engine->store();
  if (purge) {
    // A cancelled run still draining has processes whose results need their rows.
    if (ctx_.engine->HasActiveRuns(name))
      Throw(409, "conflict", "DAG '" + name + "' has a run that is still ending; wait for it before purging");
    for (auto state : {RunState::kQueued, RunState::kRunning}) {
      auto active = Unwrap(store.ListRuns({name, state, 1}));
      if (!active.empty())
        Throw(409, "conflict", "DAG '" + name + "' has " + std::string(ToString(state)) + " run " +
                                   active.front().run_id + "; cancel it before purging");
    }
  }
  Transaction txn(store);
  Status st = ctx_.registry->Delete(name, purge);
  if (!st.ok()) {
    ThrowStatus(st);
  }
  Audit(request, purge ? "purge" : "delete", name, "{}");
  txn.Commit();
  return JsonResponse(200, {{"dag", name}, {"deleted", true}, {"purged", purge}});
}

HttpResponse ControlApi::PauseDag(const HttpRequest& request, const std::string& name, bool paused) {
  ParseBody(request, {});
  store::Store& store = ctx_.engine->store();
  Transaction txn(store);
  Status st = ctx_.registry->SetPaused(name, paused);
  if (!st.ok()) {
    ThrowStatus(st);
  }
  Audit(request, paused ? "pause" : "unpause", name, "{}");
  txn.Commit();
  if (!paused && ctx_.scheduler) ctx_.scheduler->Poke();  // catch up what was missed
  return JsonResponse(200, {{"dag", name}, {"paused", paused}});
}

HttpResponse ControlApi::Trigger(const HttpRequest& request, const std::string& name) {
  json body = ParseBody(request, {"date", "params", "key", "force"});
  const auto* reg = ctx_.registry->Find(name);
  if (!reg) Throw(404, "not_found", "DAG '" + name + "' not found");
  const date::time_zone* zone = ZoneOf(reg->dag.get());
  engine::RunRequest run;
  run.dag = reg->dag;
  run.trigger = "manual";
  run.logical_date = std::chrono::floor<std::chrono::seconds>(ctx_.clock->Now());
  if (auto date = OptString(body, "date")) {
    auto parsed = ParseInstant(*date, zone);
    if (!parsed.ok()) Throw(400, "bad_request", "field 'date': " + parsed.status().message());
    run.logical_date = *parsed;
  }
  run.interval_start = run.interval_end = run.logical_date;
  if (body.contains("params") && !body["params"].is_null()) {
    if (!body["params"].is_object()) Throw(400, "bad_request", "field 'params' must be an object of strings");
    for (const auto& [k, v] : body["params"].items()) {
      if (!v.is_string()) Throw(400, "bad_request", "parameter '" + k + "' must be a string");
      if (!reg->dag->params.count(k)) Throw(400, "bad_request", "DAG '" + name + "' has no parameter '" + k + "'");
      run.params[k] = v.get<std::string>();
    }
  }
  if (auto key = OptString(body, "key")) {
    if (key->empty() || key->size() > 512) Throw(400, "bad_request", "field 'key' must be 1-512 characters");
    run.run_key = *key;
  }
  run.force = OptBool(body, "force");
  store::Store& store = ctx_.engine->store();
  Transaction txn(store);
  auto created = ctx_.engine->CreateRun(run);
  if (!created.ok()) {
    ThrowStatus(created.status());
  }
  Audit(request, "trigger", name,
        json{{"run_id", created->run.run_id}, {"run_key", created->run.run_key}, {"created", created->created}}.dump());
  txn.Commit();
  return JsonResponse(created->created ? 201 : 200, {{"run_id", created->run.run_id},
                                                      {"dag", name},
                                                      {"state", ToString(created->run.state)},
                                                      {"created", created->created}});
}

HttpResponse ControlApi::Backfill(const HttpRequest& request, const std::string& name) {
  json body = ParseBody(request, {"from", "to", "dry_run", "yes"});
  const bool dry_run = OptBool(body, "dry_run");
  const bool confirmed = OptBool(body, "yes");
  const auto* reg = ctx_.registry->Find(name);
  if (!reg) Throw(404, "not_found", "DAG '" + name + "' not found");
  const dag::Dag& dag = *reg->dag;
  const date::time_zone* zone = ZoneOf(&dag);
  auto from_s = OptString(body, "from");
  auto to_s = OptString(body, "to");
  if (!from_s || !to_s) Throw(400, "bad_request", "fields 'from' and 'to' are required");
  auto from = ParseInstant(*from_s, zone);
  if (!from.ok()) Throw(400, "bad_request", "field 'from': " + from.status().message());
  auto to = ParseInstant(*to_s, zone);
  if (!to.ok()) Throw(400, "bad_request", "field 'to': " + to.status().message());
  SysSeconds to_end = *to;
  if (to_s->size() == 10) {  // a date alone covers that whole day
    auto next_day = ParseInstant(FormatDate(*to + std::chrono::hours(36), zone), zone);
    if (next_day.ok()) to_end = *next_day - std::chrono::seconds(1);
  }
  if (to_end < *from) Throw(400, "bad_request", "'to' is before 'from'");
  // Runs only for logical dates within the DAG's [start_date, end_date]: the range is
  // clipped to it, and the reply says which part was left out.
  const SysSeconds first = dag.start_date ? std::max(*from, *dag.start_date) : *from;
  const SysSeconds last = dag.end_date ? std::min(to_end, *dag.end_date) : to_end;
  const std::string start_text = dag.start_date ? "start_date " + FormatIso(*dag.start_date, zone) : "";
  const std::string end_text = dag.end_date ? "end_date " + FormatIso(*dag.end_date, zone) : "";
  if (last < first) {
    std::string window = !dag.end_date ? "from " + start_text
                         : !dag.start_date ? "until " + end_text
                                           : "from " + start_text + " to " + end_text;
    Throw(400, "bad_request", "DAG '" + name + "' runs only " + window + "; the range " + *from_s + " to " + *to_s +
                                  " is entirely outside it, nothing was created");
  }
  json left_out = json::array();
  if (first > *from)
    left_out.push_back({{"from", FormatIso(*from, zone)},
                        {"to", FormatIso(first - std::chrono::seconds(1), zone)},
                        {"reason", "before " + start_text}});
  if (last < to_end)
    left_out.push_back({{"from", FormatIso(last + std::chrono::seconds(1), zone)},
                        {"to", FormatIso(to_end, zone)},
                        {"reason", "after " + end_text}});
  std::vector<scheduler::Fire> fires;
  if (reg->schedule) {
    fires = reg->schedule->Between(first, last, kMaxBackfillRuns + 1);
  } else {
    for (SysSeconds day = first; day <= last && fires.size() <= kMaxBackfillRuns;) {
      fires.push_back({day, day, day});
      auto next = ParseInstant(FormatDate(day + std::chrono::hours(36), zone), zone);
      if (!next.ok()) break;
      day = *next;
    }
  }
  if (fires.size() > kMaxBackfillRuns)
    Throw(400, "bad_request", "the range covers more than " + std::to_string(kMaxBackfillRuns) + " runs; split it");
  if (fires.size() > kConfirmBackfillRuns && !dry_run && !confirmed)
    Throw(400, "bad_request", "the range covers " + std::to_string(fires.size()) + " runs, more than " +
                                  std::to_string(kConfirmBackfillRuns) +
                                  ": pass --yes (\"yes\": true) to create them, or narrow the range");
  json reply{{"dag", name}};
  if (!left_out.empty())
    reply["clipped"] = {{"from", FormatIso(first, zone)}, {"to", FormatIso(last, zone)}, {"left_out", left_out}};
  store::Store& store = ctx_.engine->store();
  json runs = json::array();
  if (dry_run) {
    // Creates nothing and audits nothing. A date whose run key (the default one, as
    // backfill runs have) is taken names the run that would be returned instead.
    std::map<std::string, store::RunRecord> by_key;
    for (auto& r : Unwrap(store.ListRuns({name, std::nullopt, -1}))) by_key.emplace(r.run_key, std::move(r));
    for (const auto& fire : fires) {
      const std::string logical_date = FormatIso(fire.fire_time, zone);
      auto existing = by_key.find(name + "@" + logical_date);
      const bool exists = existing != by_key.end();
      runs.push_back({{"logical_date", logical_date},
                      {"exists", exists},
                      {"run_id", exists ? json(existing->second.run_id) : json(nullptr)},
                      {"state", exists ? json(ToString(existing->second.state)) : json(nullptr)}});
    }
    reply["dry_run"] = true;
    reply["runs"] = runs;
    return JsonResponse(200, reply);
  }
  Transaction txn(store);
  for (const auto& fire : fires) {
    engine::RunRequest run;
    run.dag = reg->dag;
    run.trigger = "backfill";
    run.logical_date = fire.fire_time;
    run.interval_start = fire.interval_start;
    run.interval_end = fire.interval_end;
    run.scheduled_for = SysMillis(fire.fire_time);
    auto created = ctx_.engine->CreateRun(run);
    if (!created.ok()) {
      ThrowStatus(created.status());
    }
    runs.push_back({{"run_id", created->run.run_id},
                    {"logical_date", FormatIso(fire.fire_time, zone)},
                    {"state", ToString(created->run.state)},
                    {"created", created->created}});
  }
  Audit(request, "backfill", name,
        json{{"from", *from_s}, {"to", *to_s}, {"runs", runs.size()}, {"clipped", !left_out.empty()}}.dump());
  txn.Commit();
  reply["runs"] = runs;
  return JsonResponse(201, reply);
}

const date::time_zone* ControlApi::ZoneOfRun(const store::RunRecord& run) {
  // The run's own DAG version: the DAG may have changed zone, or been deleted, since.
  auto dag = ctx_.engine->ResolveDag(run.dag, run.dag_hash);
  return ZoneOf(dag.ok() ? dag->get() : nullptr);
}

json ControlApi::RunCounts(const store::RunRecord& run) {
  json counts = json::object();
  if (const engine::RunPlan* plan = ctx_.engine->FindActiveRun(run.run_id)) {
    for (size_t t = 0; t < plan->dag().tasks.size(); ++t) {
      const auto& by_state = plan->TaskCounts(t);
      for (size_t k = 0; k < by_state.size(); ++k)
        if (by_state[k] > 0)
          counts[plan->dag().tasks[t].id][std::string(ToString(static_cast<InstanceState>(k)))] = by_state[k];
    }
    return counts;
  }
  // A run that ended changes only when an operator retries, marks or clears it, and then it
  // ends again with a new end time or state: those two say whether the kept counts hold.
  const bool ended = IsTerminal(run.state);
  if (ended) {
    auto it = ended_counts_.find(run.run_id);
    if (it != ended_counts_.end() && it->second.ended_at == run.ended_at && it->second.state == run.state)
      return it->second.counts;
  }
  for (const auto& [task, by_state] : Unwrap(ctx_.engine->store().CountInstances(run.run_id)))
    for (const auto& [state, n] : by_state) counts[task][std::string(ToString(state))] = n;
  if (ended) {
    constexpr size_t kMaxKeptCounts = 4096;  // a few grids' worth; rebuilt on demand
    if (ended_counts_.size() >= kMaxKeptCounts) ended_counts_.clear();
    ended_counts_[run.run_id] = EndedCounts{run.ended_at, run.state, counts};
  }
  return counts;
}

HttpResponse ControlApi::DagGrid(const std::string& name, const std::string& query) {
  auto q = ParseQuery(query);
  AllowQuery(q, {"runs"});
  const int runs = q.count("runs") ? ParseInt("runs", q["runs"], 1, 100) : 25;
  const auto* reg = ctx_.registry->Find(name);
  if (!reg) Throw(404, "not_found", "DAG '" + name + "' not found");
  const date::time_zone* zone = ZoneOf(reg->dag.get());
  json tasks = json::array();
  for (const auto& t : reg->dag->tasks) tasks.push_back(t.id);
  json out_runs = json::array();
  for (const auto& r : Unwrap(ctx_.engine->store().ListRuns({name, std::nullopt, runs}))) {
    json entry = RunSummaryJson(r, zone);
    entry["counts"] = RunCounts(r);
    out_runs.push_back(std::move(entry));
  }
  return JsonResponse(200, json{{"dag", name}, {"timezone", reg->dag->timezone}, {"tasks", tasks}, {"runs", out_runs}});
}

HttpResponse ControlApi::ListRuns(const std::string& query) {
  auto q = ParseQuery(query);
  AllowQuery(q, {"dag", "state", "limit"});
  store::RunFilter filter;
  if (q.count("dag") && !q["dag"].empty()) {
    RequireName("DAG name", q["dag"]);
    filter.dag = q["dag"];
  }
  if (q.count("state") && !q["state"].empty()) {
    auto s = ParseRunState(q["state"]);
    if (!s) Throw(400, "bad_request", "unknown run state '" + q["state"] + "': expected queued, running, success, failed or cancelled");
    filter.state = *s;
  }
  if (q.count("limit")) filter.limit = ParseInt("limit", q["limit"], 1, 10000);
  json out = json::array();
  for (const auto& r : Unwrap(ctx_.engine->store().ListRuns(filter))) out.push_back(RunSummaryJson(r, ZoneOfRun(r)));
  return JsonResponse(200, out);
}

namespace {

// "SIGKILL" for 9; "signal N" names only the number of one without a name.
std::string SignalName(int sig) {
  if (const char* abbrev = sigabbrev_np(sig)) return std::string("SIG") + abbrev;
  return std::to_string(sig);
}

// Why an attempt ended, in the words `status`, `attempts` and `logs` show: "exit code 1",
// "signal SIGKILL", "timeout", "lost", "cancelled", a spawn error's text, or "running".
std::string AttemptReason(const store::AttemptRecord& a) {
  switch (a.outcome) {
    case AttemptOutcome::kRunning: return "running";
    case AttemptOutcome::kTimeout: return "timeout";
    case AttemptOutcome::kLost: return "lost";
    case AttemptOutcome::kCancelled: return "cancelled";
    case AttemptOutcome::kSuccess:
    case AttemptOutcome::kFailed: break;
  }
  std::string reason;
  if (a.signal) reason = "signal " + SignalName(*a.signal);
  else if (a.exit_code) reason = "exit code " + std::to_string(*a.exit_code);
  if (a.error.empty()) return reason.empty() ? std::string(ToString(a.outcome)) : reason;
  return reason.empty() ? a.error : reason + " (" + a.error + ")";
}

// Seconds from an attempt's start to its end, or to `now` while it runs.
double AttemptSeconds(const store::AttemptRecord& a, SysMillis now) {
  const SysMillis end = a.ended_at.value_or(now);
  return std::max<double>(0, static_cast<double>((end - a.started_at).count()) / 1000.0);
}

// One attempt in an instance's `history` (status with history=true).
json HistoryEntryJson(const store::AttemptRecord& a, SysMillis now) {
  return json{{"number", a.number},
              {"outcome", ToString(a.outcome)},
              {"reason", AttemptReason(a)},
              {"exit_code", a.exit_code ? json(*a.exit_code) : json(nullptr)},
              {"started_at", MillisJson(a.started_at)},
              {"ended_at", MillisJson(a.ended_at)},
              {"duration_seconds", AttemptSeconds(a, now)}};
}

json LastAttemptJson(const store::AttemptRecord& a, SysMillis now) {
  return json{{"number", a.number},
              {"outcome", ToString(a.outcome)},
              {"reason", AttemptReason(a)},
              {"exit_code", a.exit_code ? json(*a.exit_code) : json(nullptr)},
              {"signal", a.signal ? json(SignalName(*a.signal)) : json(nullptr)},
              {"error", a.error},
              {"started_at", MillisJson(a.started_at)},
              {"ended_at", MillisJson(a.ended_at)},
              {"duration_seconds", AttemptSeconds(a, now)},
              {"dag_version", a.dag_hash.empty() ? json(nullptr) : json(a.dag_hash.substr(0, 12))}};
}

// `run_version`: the run's DAG version, for attempts stored before each recorded its own.
json AttemptJson(const store::RunAttempt& r, const std::string& run_version, SysMillis now) {
  const store::AttemptRecord& a = r.attempt;
  const std::string dag_version = a.dag_hash.empty() ? run_version : a.dag_hash.substr(0, 12);
  return json{{"task", r.task},
              {"partition", r.partition},
              {"attempt", a.number},
              {"outcome", ToString(a.outcome)},
              {"reason", AttemptReason(a)},
              {"exit_code", a.exit_code ? json(*a.exit_code) : json(nullptr)},
              {"signal", a.signal ? json(SignalName(*a.signal)) : json(nullptr)},
              {"started_at", MillisJson(a.started_at)},
              {"ended_at", MillisJson(a.ended_at)},
              {"duration_seconds", AttemptSeconds(a, now)},
              {"cpu_seconds", a.cpu_seconds},
              {"max_rss_bytes", a.max_rss_kb * 1024},
              {"dag_version", dag_version},
              {"log", a.log_path},
              {"error", a.error}};
}

}  // namespace

std::vector<store::InstanceRecord> ControlApi::InstancePage(const store::RunRecord& run,
                                                            store::Store::InstanceFilter filter) {
  store::Store& store = ctx_.engine->store();
  const auto running = std::find(filter.states.begin(), filter.states.end(), InstanceState::kRunning);
  const bool attention_only =
      running != filter.states.end() && std::all_of(filter.states.begin(), filter.states.end(), [](InstanceState s) {
        return s == InstanceState::kRunning || s == InstanceState::kFailed || s == InstanceState::kRetryWait;
      });
  const engine::RunPlan* plan = ctx_.engine->FindActiveRun(run.run_id);
  // Asked for what needs attention (running, failed, retrying): no index holds the running
  // instances (every attempt would write it), but the engine knows them, at most one per
  // worker; a run that ended has none. Failed and retrying ones come from their index.
  if (!attention_only || (!plan && !IsTerminal(run.state))) return Unwrap(store.ListInstancePage(run.run_id, filter));
  filter.states.erase(running);
  std::vector<store::InstanceRecord> page;
  if (!filter.states.empty()) page = Unwrap(store.ListInstancePage(run.run_id, filter));
  if (plan) {
    for (int64_t id : ctx_.engine->RunningInstanceIds(run.run_id)) {
      auto index = plan->IndexOf(id);
      if (id <= filter.after_id || !index) continue;
      const store::InstanceRecord& instance = plan->instance(*index);
      if ((filter.task && instance.task != *filter.task) || (filter.partition && instance.partition != *filter.partition))
        continue;
      page.push_back(instance);
    }
  }
  std::sort(page.begin(), page.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  if (page.size() > static_cast<size_t>(filter.limit)) page.resize(static_cast<size_t>(filter.limit));
  return page;
}

HttpResponse ControlApi::RunStatus(const std::string& run_id, const std::string& query) {
  // Costs a page, not the run: counts come from the engine's plan while the run is active
  // (one aggregate query once it ended), instances from an index seek to the cursor, and
  // attempts only for the page's instances. Pollers (`trigger --wait`) ask for limit=0.
  auto q = ParseQuery(query);
  AllowQuery(q, {"task", "partition", "state", "limit", "after", "history"});
  const bool with_history = ParseBool("history", q);
  store::Store::InstanceFilter filter;
  if (q.count("task") && !q["task"].empty()) {
    RequireName("task id", q["task"]);
    filter.task = q["task"];
  }
  if (q.count("partition")) {
    if (!filter.task) Throw(400, "bad_request", "query parameter 'partition' needs 'task'");
    filter.partition = q["partition"];
  }
  if (q.count("state") && !q["state"].empty()) {
    for (size_t start = 0; start <= q["state"].size();) {
      size_t comma = std::min(q["state"].find(',', start), q["state"].size());
      const std::string name = q["state"].substr(start, comma - start);
      auto state = ParseInstanceState(name);
      if (!state)
        Throw(400, "bad_request", "unknown task state '" + name +
                                      "': expected pending, queued, running, retry_wait, success, failed, skipped, "
                                      "upstream_failed or cancelled");
      filter.states.push_back(*state);
      start = comma + 1;
    }
  }
  filter.limit = q.count("limit") ? ParseInt("limit", q["limit"], 0, 100000) : kDefaultStatusPage;
  if (q.count("after")) filter.after_id = ParseInt64("after", q["after"], 0, INT64_MAX);

  store::Store& store = ctx_.engine->store();
  auto run = Unwrap(store.GetRun(run_id));
  if (!run) Throw(404, "not_found", "run '" + run_id + "' not found");
  const date::time_zone* zone = ZoneOfRun(*run);
  json out = RunSummaryJson(*run, zone);
  out["error"] = run->error;
  out["data_interval_start"] = FormatIso(run->interval_start, zone);
  out["data_interval_end"] = FormatIso(run->interval_end, zone);
  const SysMillis now = std::chrono::floor<std::chrono::milliseconds>(ctx_.clock->Now());

  const json counts = RunCounts(*run);  // the whole run's, whatever the filters
  if (filter.task && !counts.contains(*filter.task))
    Throw(404, "not_found", "run '" + run_id + "' has no task '" + *filter.task + "'");

  // One more than the page says whether there is more.
  const int page_size = filter.limit;
  filter.limit = page_size + 1;
  auto instances = InstancePage(*run, filter);
  const bool more = static_cast<int>(instances.size()) > page_size;
  if (more) instances.resize(static_cast<size_t>(page_size));
  // Where the next page starts: after this page's last instance (an empty page, limit=0,
  // starts where it was asked to).
  const int64_t next_after = instances.empty() ? filter.after_id : instances.back().id;
  if (filter.partition && instances.empty() && filter.states.empty() && filter.after_id == 0)
    Throw(404, "not_found", "run '" + run_id + "' has no task '" + *filter.task + "' partition '" +
                                *filter.partition + "'");
  // Per instance: its attempts' total time and its last attempt.
  std::map<int64_t, std::pair<double, store::AttemptRecord>> last;
  std::map<int64_t, json> history;  // with history=true: every attempt, oldest first
  auto add_attempts = [&](int64_t first_id, int64_t last_id) {
    for (auto& a : Unwrap(store.ListAttemptsOfInstances(first_id, last_id))) {
      if (with_history) history[a.instance_id].push_back(HistoryEntryJson(a, now));
      auto& [total, attempt] = last[a.instance_id];
      total += AttemptSeconds(a, now);
      attempt = std::move(a);
    }
  };
  // A page of consecutive instances reads their attempts in one range; a sparse one (the
  // failed and running instances of a wide run) instance by instance, not the range between.
  if (!instances.empty() && instances.back().id - instances.front().id < 2 * static_cast<int64_t>(instances.size())) {
    add_attempts(instances.front().id, instances.back().id);
  } else {
    for (const auto& i : instances) add_attempts(i.id, i.id);
  }
  json tasks = json::array();
  for (const auto& i : instances) {
    auto it = last.find(i.id);
    std::string reason = i.reason;
    // A failed instance says why its last attempt failed unless it has a reason of its own.
    if (reason.empty() && it != last.end() &&
        (i.state == InstanceState::kFailed || i.state == InstanceState::kRetryWait))
      reason = AttemptReason(it->second.second);
    json entry = {{"id", i.id},
                  {"task", i.task},
                  {"partition", i.partition},
                  {"state", ToString(i.state)},
                  {"attempts", i.attempts},
                  {"exit_code", i.exit_code ? json(*i.exit_code) : json(nullptr)},
                  {"reason", reason},
                  {"idempotency_key", i.idempotency_key},
                  {"started_at", MillisJson(i.started_at)},
                  {"ended_at", MillisJson(i.ended_at)},
                  {"last_attempt", it != last.end() ? LastAttemptJson(it->second.second, now) : json(nullptr)},
                  {"duration_seconds", it != last.end() ? json(AttemptSeconds(it->second.second, now)) : json(nullptr)},
                  {"total_seconds", it != last.end() ? json(it->second.first) : json(nullptr)}};
    if (with_history) {
      auto h = history.find(i.id);
      entry["history"] = h != history.end() ? std::move(h->second) : json::array();
    }
    tasks.push_back(std::move(entry));
  }
  out["counts"] = counts;
  out["tasks"] = tasks;
  out["more"] = more;
  out["next_after"] = more ? json(next_after) : json(nullptr);
  return JsonResponse(200, out);
}

HttpResponse ControlApi::RunAttempts(const std::string& run_id, const std::string& query) {
  auto q = ParseQuery(query);
  AllowQuery(q, {"task", "partition"});
  std::optional<std::string> task, partition;
  if (q.count("task") && !q["task"].empty()) {
    RequireName("task id", q["task"]);
    task = q["task"];
  }
  if (q.count("partition")) {
    if (!task) Throw(400, "bad_request", "query parameter 'partition' needs 'task'");
    if (q["partition"].empty()) Throw(400, "bad_request", "query parameter 'partition' must not be empty");
    partition = q["partition"];
  }
  store::Store& store = ctx_.engine->store();
  auto run = Unwrap(store.GetRun(run_id));
  if (!run) Throw(404, "not_found", "run '" + run_id + "' not found");
  if (task) {
    // An unknown task or partition is an error; a known one without attempts an empty list.
    // One index seek each, whatever the size of the run.
    store::Store::InstanceFilter probe;
    probe.task = task;
    probe.limit = 1;
    const bool has_task = !Unwrap(store.ListInstancePage(run_id, probe)).empty();
    probe.partition = partition;
    const bool has_partition = partition && has_task && !Unwrap(store.ListInstancePage(run_id, probe)).empty();
    if (!has_task) Throw(404, "not_found", "run '" + run_id + "' has no task '" + *task + "'");
    if (partition && !has_partition)
      Throw(404, "not_found", "task '" + *task + "' of run '" + run_id + "' has no partition '" + *partition + "'");
  }
  const SysMillis now = std::chrono::floor<std::chrono::milliseconds>(ctx_.clock->Now());
  const std::string version = run->dag_hash.substr(0, 12);
  json out = json::array();
  for (const auto& r : Unwrap(store.ListRunAttempts(run_id, task, partition)))
    out.push_back(AttemptJson(r, version, now));
  return JsonResponse(200, out);
}

HttpResponse ControlApi::CancelRun(const HttpRequest& request, const std::string& run_id) {
  ParseBody(request, {});
  store::Store& store = ctx_.engine->store();
  Transaction txn(store);
  Status st = ctx_.engine->CancelRun(run_id);
  if (!st.ok()) {
    ThrowStatus(st);
  }
  Audit(request, "cancel", run_id, "{}");
  txn.Commit();
  return JsonResponse(200, {{"run_id", run_id}, {"state", "cancelled"}});
}

HttpResponse ControlApi::RetryRun(const HttpRequest& request, const std::string& run_id) {
  json body = ParseBody(request, {"task", "partition", "same_version"});
  engine::Engine::RetryRequest retry;
  retry.task = OptString(body, "task");
  retry.partition = OptString(body, "partition");
  retry.current_version = !OptBool(body, "same_version");
  if (retry.task) RequireName("task id", *retry.task);
  if (retry.partition && retry.partition->empty()) Throw(400, "bad_request", "field 'partition' must not be empty");
  store::Store& store = ctx_.engine->store();
  Transaction txn(store);
  auto outcome = ctx_.engine->Retry(run_id, retry);
  if (!outcome.ok()) ThrowStatus(outcome.status());
  const std::string version = outcome->dag_hash.substr(0, 12);
  const std::string previous = outcome->previous_hash.substr(0, 12);
  json reply{{"run_id", run_id},
             {"reset", outcome->reset},
             {"dag_version", version},
             {"previous_dag_version", previous},
             {"kept_version_because", outcome->kept_version_why.empty() ? json(nullptr) : json(outcome->kept_version_why)}};
  Audit(request, "retry", run_id,
        json{{"task", retry.task ? json(*retry.task) : json(nullptr)},
             {"partition", retry.partition ? json(*retry.partition) : json(nullptr)},
             {"reset", outcome->reset},
             {"dag_version", outcome->dag_hash},
             {"previous_dag_version", outcome->previous_hash}}
            .dump());
  txn.Commit();
  return JsonResponse(200, reply);
}

namespace {
// The instances a mark or clear names: a required task, an optional partition.
void ReadInstanceSelection(const json& body, std::string* task, std::optional<std::string>* partition) {
  auto named = OptString(body, "task");
  if (!named) Throw(400, "bad_request", "field 'task' is required");
  RequireName("task id", *named);
  *task = *named;
  *partition = OptString(body, "partition");
  if (*partition && (*partition)->empty()) Throw(400, "bad_request", "field 'partition' must not be empty");
}
}  // namespace

HttpResponse ControlApi::MarkInstances(const HttpRequest& request, const std::string& run_id) {
  json body = ParseBody(request, {"task", "partition", "state", "reason"});
  engine::Engine::MarkRequest mark;
  ReadInstanceSelection(body, &mark.task, &mark.partition);
  auto state = OptString(body, "state");
  if (!state) Throw(400, "bad_request", "field 'state' is required: success, failed or skipped");
  auto parsed = ParseInstanceState(*state);
  if (!parsed || (*parsed != InstanceState::kSuccess && *parsed != InstanceState::kFailed &&
                  *parsed != InstanceState::kSkipped))
    Throw(400, "bad_request", "field 'state' must be success, failed or skipped, not '" + *state + "'");
  mark.state = *parsed;
  auto reason = OptString(body, "reason");
  if (!reason || reason->empty())
    Throw(400, "bad_request", "field 'reason' is required: say why, it stays on the instance and in the audit log");
  if (reason->size() > kMaxMarkReasonBytes)
    Throw(400, "bad_request", "field 'reason' is too long: " + std::to_string(reason->size()) + " bytes (the limit is " +
                                  std::to_string(kMaxMarkReasonBytes) + ")");
  for (unsigned char c : *reason)
    if (c < 0x20 || c == 0x7f) Throw(400, "bad_request", "field 'reason' must not hold control characters");
  mark.reason = *reason;
  store::Store& store = ctx_.engine->store();
  Transaction txn(store);
  auto outcome = ctx_.engine->Mark(run_id, mark);
  if (!outcome.ok()) ThrowStatus(outcome.status());
  Audit(request, "mark", run_id,
        json{{"task", mark.task},
             {"partition", mark.partition ? json(*mark.partition) : json(nullptr)},
             {"state", *state},
             {"reason", mark.reason},
             {"marked", outcome->changed}}
            .dump());
  txn.Commit();
  return JsonResponse(200, {{"run_id", run_id}, {"task", mark.task}, {"state", *state}, {"marked", outcome->changed}});
}

HttpResponse ControlApi::ClearInstances(const HttpRequest& request, const std::string& run_id) {
  json body = ParseBody(request, {"task", "partition", "downstream", "force"});
  engine::Engine::ClearRequest clear;
  ReadInstanceSelection(body, &clear.task, &clear.partition);
  clear.downstream = OptBool(body, "downstream");
  clear.force = OptBool(body, "force");
  store::Store& store = ctx_.engine->store();
  Transaction txn(store);
  auto outcome = ctx_.engine->Clear(run_id, clear);
  if (!outcome.ok()) ThrowStatus(outcome.status());
  Audit(request, "clear", run_id,
        json{{"task", clear.task},
             {"partition", clear.partition ? json(*clear.partition) : json(nullptr)},
             {"downstream", clear.downstream},
             {"force", clear.force},
             {"cleared", outcome->changed}}
            .dump());
  txn.Commit();
  return JsonResponse(200, {{"run_id", run_id},
                            {"task", clear.task},
                            {"cleared", outcome->changed},
                            {"skipped_for_key", outcome->keys_succeeded}});
}

HttpResponse ControlApi::Logs(const std::string& run_id, const std::string& query) {
  auto q = ParseQuery(query);
  AllowQuery(q, {"task", "partition", "attempt", "offset"});
  if (!q.count("task")) Throw(400, "bad_request", "query parameter 'task' is required");
  RequireName("task id", q["task"]);
  std::string partition = q.count("partition") ? q["partition"] : "-";
  store::Store& store = ctx_.engine->store();
  auto run = Unwrap(store.GetRun(run_id));
  if (!run) Throw(404, "not_found", "run '" + run_id + "' not found");
  std::optional<store::InstanceRecord> instance = Unwrap(store.GetInstance(run_id, q["task"], partition));
  if (!instance)
    Throw(404, "not_found", "run '" + run_id + "' has no task '" + q["task"] + "' partition '" + partition + "'");
  auto attempts = Unwrap(store.ListAttempts(instance->id));
  if (attempts.empty())
    Throw(404, "not_found", "task '" + q["task"] + "' partition '" + partition + "' of run '" + run_id +
                                "' has no attempts yet (state " + std::string(ToString(instance->state)) + ")");
  const store::AttemptRecord* attempt = &attempts.back();
  if (q.count("attempt")) {
    int n = ParseInt("attempt", q["attempt"], 1, 1000000);
    attempt = nullptr;
    for (const auto& a : attempts)
      if (a.number == n) attempt = &a;
    if (!attempt)
      Throw(404, "not_found", "task '" + q["task"] + "' partition '" + partition + "' of run '" + run_id +
                                  "' has no attempt " + std::to_string(n) + " (attempts: 1-" +
                                  std::to_string(attempts.back().number) + ")");
  }
  // 64-bit: an attempt log without a size cap can pass 2 GiB.
  long long offset = 0;
  if (q.count("offset")) {
    try {
      size_t used = 0;
      offset = std::stoll(q["offset"], &used);
      if (used != q["offset"].size()) offset = -1;
    } catch (const std::exception&) {
      offset = -1;
    }
    if (offset < 0)
      Throw(400, "bad_request", "offset must be an integer between 0 and " + std::to_string(INT64_MAX) + ", got '" +
                                    q["offset"] + "'");
  }
  HttpResponse r;
  r.content_type = "text/plain; charset=utf-8";
  std::ifstream in(attempt->log_path, std::ios::binary);
  if (in) {
    in.seekg(0, std::ios::end);
    long long size = in.tellg();
    if (offset < size) {
      in.seekg(offset);
      size_t n = static_cast<size_t>(std::min<long long>(size - offset, kMaxLogChunk));
      r.body.resize(n);
      in.read(r.body.data(), static_cast<std::streamsize>(n));
      r.body.resize(static_cast<size_t>(in.gcount()));
    }
  }
  const bool complete = attempt->outcome != AttemptOutcome::kRunning;
  long long next = offset + static_cast<long long>(r.body.size());
  r.headers.push_back({"X-Batchd-Attempt", std::to_string(attempt->number)});
  r.headers.push_back({"X-Batchd-Next-Offset", std::to_string(next)});
  // Complete only once the attempt ended and everything was read.
  std::error_code ec;
  auto size = std::filesystem::file_size(attempt->log_path, ec);
  bool all_read = ec || static_cast<long long>(size) <= next;
  r.headers.push_back({"X-Batchd-Complete", complete && all_read ? "true" : "false"});
  // The log's size now, so that a reader can start near the end (the web UI's tail).
  r.headers.push_back({"X-Batchd-Size", std::to_string(ec ? 0 : static_cast<long long>(size))});
  return r;
}

HttpResponse ControlApi::Failed(const std::string& query) {
  auto q = ParseQuery(query);
  AllowQuery(q, {"dag"});
  std::optional<std::string> dag;
  if (q.count("dag") && !q["dag"].empty()) {
    RequireName("DAG name", q["dag"]);
    dag = q["dag"];
  }
  store::Store& store = ctx_.engine->store();
  json out = json::array();
  std::map<std::string, std::string> run_dag;
  for (const auto& i : Unwrap(store.ListDeadLetters(dag))) {
    if (!run_dag.count(i.run_id)) {
      auto run = Unwrap(store.GetRun(i.run_id));
      run_dag[i.run_id] = run ? run->dag : "";
    }
    std::string reason = i.reason;
    if (reason.empty()) {
      auto attempts = Unwrap(store.ListAttemptsOfInstances(i.id, i.id));
      if (!attempts.empty()) reason = AttemptReason(attempts.back());
    }
    out.push_back({{"run_id", i.run_id},
                   {"dag", run_dag[i.run_id]},
                   {"task", i.task},
                   {"partition", i.partition},
                   {"attempts", i.attempts},
                   {"exit_code", i.exit_code ? json(*i.exit_code) : json(nullptr)},
                   {"reason", reason},
                   {"ended_at", MillisJson(i.ended_at)},
                   {"idempotency_key", i.idempotency_key}});
  }
  return JsonResponse(200, out);
}

// Every defined pool with its slots, the slots in use and the instances ready to run
// that wait for it; a pool still in use after the config dropped it is listed too.
HttpResponse ControlApi::Pools() {
  std::map<std::string, int> queued;
  for (const auto& [_, plan] : ctx_.engine->active_plans())
    for (const auto& [priority, index] : plan->Ready())
      if (const std::string& pool = plan->task_of(index).pool; !pool.empty()) queued[pool]++;
  const auto& used = ctx_.engine->PoolUsage();
  json out = json::array();
  for (const auto& [pool, slots] : ctx_.engine->options().pools) {
    auto u = used.find(pool);
    auto q = queued.find(pool);
    out.push_back({{"pool", pool},
                   {"slots", slots},
                   {"used", u == used.end() ? 0 : u->second},
                   {"queued", q == queued.end() ? 0 : q->second}});
  }
  return JsonResponse(200, out);
}

// Pauses (or unpauses) every DAG not already so, in one transaction with one audit row.
HttpResponse ControlApi::PauseAll(const HttpRequest& request, bool paused) {
  ParseBody(request, {});
  std::vector<std::string> changed;
  for (const auto& [name, reg] : ctx_.registry->all())
    if (reg.entry.paused != paused) changed.push_back(name);
  store::Store& store = ctx_.engine->store();
  Transaction txn(store);
  for (const auto& name : changed) {
    if (Status st = ctx_.registry->SetPaused(name, paused); !st.ok()) ThrowStatus(st);
  }
  Audit(request, paused ? "pause_all" : "unpause_all", "", json{{"dags", changed}}.dump());
  txn.Commit();
  if (!paused && ctx_.scheduler) ctx_.scheduler->Poke();  // catch up what was missed
  return JsonResponse(200, {{"paused", paused}, {"changed", changed}});
}

HttpResponse ControlApi::Reload(const HttpRequest& request) {
  ParseBody(request, {});
  scheduler::ScanReport report = ctx_.reload();
  json errors = json::array();
  for (const auto& d : report.errors)
    errors.push_back({{"file", d.file}, {"line", d.line}, {"column", d.column}, {"message", d.message}});
  Audit(request, "reload", "",
        json{{"loaded", report.loaded}, {"removed", report.removed}, {"errors", errors.size()}}.dump());
  return JsonResponse(200, {{"loaded", report.loaded},
                            {"unchanged", report.unchanged},
                            {"removed", report.removed},
                            {"errors", errors}});
}

}  // namespace batchd::api
