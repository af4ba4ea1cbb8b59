// Run commands: trigger, backfill, runs, status, attempts, retry, cancel, failed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <set>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/wait.h"

namespace batchd::cli {

namespace {

struct TriggerOptions {
  std::string dag;
  std::string date;
  std::vector<std::string> params;  // KEY=VALUE, checked by KeyValue at parse time
  std::string key;
  bool force = false;
  bool wait = false;
};

struct BackfillOptions {
  std::string dag;
  std::string from;
  std::string to;
  bool dry_run = false;
  bool yes = false;
  bool wait = false;
};

struct RunsOptions {
  std::string dag;
  std::string state;
  int limit = 0;  // 0: the daemon's default
};

struct RetryOptions {
  std::string run_id;
  std::string task;
  std::string partition;
  bool same_version = false;
};

// --param must be KEY=VALUE with a non-empty key; anything else is a usage error (exit 2).
const CLI::Validator& KeyValue() {
  static const CLI::Validator validator(
      [](std::string& value) -> std::string {
        size_t eq = value.find('=');
        if (eq == std::string::npos || eq == 0) return "expected KEY=VALUE, got '" + value + "'";
        return std::string();
      },
      "KEY=VALUE");
  return validator;
}

// The SPEC's `trigger --json` shape, exactly.
OrderedJson TriggerJson(const Json& reply, const std::string& state) {
  return {{"run_id", Field(reply, "run_id")},
          {"dag", Field(reply, "dag")},
          {"state", state},
          {"created", Field(reply, "created")}};
}

int RunTrigger(const GlobalOptions& global, const TriggerOptions& o) {
  Json body = Json::object();
  if (!o.date.empty()) body["date"] = o.date;
  if (!o.params.empty()) {
    Json params = Json::object();
    for (const auto& p : o.params) {
      size_t eq = p.find('=');
      params[p.substr(0, eq)] = p.substr(eq + 1);  // a repeated key: the last one wins
    }
    body["params"] = params;
  }
  if (!o.key.empty()) body["key"] = o.key;
  if (o.force) body["force"] = true;

  Api api(global);
  auto reply = api.Call("POST", DagPath(o.dag) + "/runs", body);
  if (!reply) return api.exit_code();
  const std::string run_id = Str(*reply, "run_id");
  const bool created = Bool(*reply, "created").value_or(true);
  if (!global.json) {
    if (created) {
      std::cout << "triggered " << Str(*reply, "dag", o.dag) << ": run " << run_id << " ("
                << Str(*reply, "state", "?") << ")\n";
    } else {
      std::cout << "run " << run_id << " of " << Str(*reply, "dag", o.dag)
                << " already exists for this run key (" << Str(*reply, "state", "?")
                << "); nothing was triggered\n";
    }
  }
  if (!o.wait) {
    if (global.json) PrintJson(TriggerJson(*reply, Str(*reply, "state")));
    return kExitOk;
  }

  auto run = WaitForRun(api, run_id);
  if (!run) return api.exit_code();
  const std::string state = Str(*run, "state");
  if (global.json) {
    PrintJson(TriggerJson(*reply, state));
  } else {
    PrintRunOutcome(*run);
  }
  return state == "success" ? kExitOk : kExitFailed;
}

int RunBackfill(const GlobalOptions& global, const BackfillOptions& o) {
  Json body{{"from", o.from}, {"to", o.to}};
  if (o.dry_run) body["dry_run"] = true;
  if (o.yes) body["yes"] = true;
  Api api(global);
  auto reply = api.Call("POST", DagPath(o.dag) + "/backfill", body);
  if (!reply) return api.exit_code();
  Json runs = Field(*reply, "runs");
  if (!runs.is_array()) runs = Json::array();
  if (!global.json) {
    // Dates outside the DAG's start_date/end_date, which the daemon skipped.
    const Json& left_out = Field(Field(*reply, "clipped"), "left_out");
    if (left_out.is_array())
      for (const auto& l : left_out)
        std::cout << "left out " << Str(l, "from", "?") << " .. " << Str(l, "to", "?") << ": " << Str(l, "reason", "?")
                  << "\n";
  }
  if (o.dry_run) {
    if (global.json) {
      PrintJson(*reply);
      return kExitOk;
    }
    int existing = 0;
    for (const auto& r : runs) {
      std::cout << Str(r, "logical_date", "?");
      if (Bool(r, "exists").value_or(false)) {
        ++existing;
        std::cout << "  exists: run " << Str(r, "run_id", "?") << " (" << Str(r, "state", "?") << ")";
      }
      std::cout << "\n";
    }
    std::cout << "dry run: backfill " << Str(*reply, "dag", o.dag) << " would cover "
              << Plural(static_cast<int64_t>(runs.size()), "run") << " (" << existing
              << (existing == 1 ? " already exists" : " already exist") << "); nothing was created\n";
    return kExitOk;
  }

  int created = 0;
  for (const auto& r : runs) created += Bool(r, "created").value_or(true) ? 1 : 0;
  if (!global.json) {
    std::cout << "backfill " << Str(*reply, "dag", o.dag) << ": " << Plural(static_cast<int64_t>(runs.size()), "run")
              << " (" << created << " created, " << (runs.size() - created) << " already existed)\n";
    if (!runs.empty() && !o.wait) {
      Table table({"RUN ID", "LOGICAL DATE", "STATE", "CREATED"});
      for (const auto& r : runs) {
        table.AddRow({Str(r, "run_id", "?"), Cell(r, "logical_date"), Cell(r, "state"), Cell(r, "created")});
      }
      table.Print(std::cout);
    }
  }
  if (!o.wait) {
    if (global.json) PrintJson(*reply);
    return kExitOk;
  }

  std::vector<std::string> ids;
  for (const auto& r : runs) ids.push_back(Str(r, "run_id"));
  auto finals = WaitForRuns(api, "backfill " + o.dag, ids);
  if (!finals) return api.exit_code();
  bool all_success = true;
  Table table({"RUN ID", "LOGICAL DATE", "STATE", "DURATION"});
  SysMillis now = Now();
  for (size_t i = 0; i < finals->size(); ++i) {
    const Json& run = (*finals)[i];
    std::string state = Str(run, "state");
    if (state != "success") all_success = false;
    runs[i]["state"] = state;
    table.AddRow({ids[i], Cell(run, "logical_date"), Cell(run, "state"), ElapsedCell(run, now)});
  }
  if (global.json) {
    Json out = *reply;
    out["runs"] = runs;
    PrintJson(out);
  } else {
    if (!table.empty()) table.Print(std::cout);
    std::cout << (all_success ? "all runs succeeded\n" : "some runs did not succeed (batchctl status RUN_ID)\n");
  }
  return all_success ? kExitOk : kExitFailed;
}

int RunRuns(const GlobalOptions& global, const RunsOptions& o) {
  Query query;
  query.Add("dag", o.dag).Add("state", o.state);
  if (o.limit > 0) query.Add("limit", std::to_string(o.limit));
  Api api(global);
  auto reply = api.Call("GET", query.Apply("/v1/runs"));
  if (!reply) return api.exit_code();
  Json runs = reply->is_array() ? *reply : Json::array();
  if (global.json) {
    OrderedJson out = OrderedJson::array();
    for (const auto& r : runs) {
      out.push_back({{"run_id", Field(r, "run_id")},
                     {"dag", Field(r, "dag")},
                     {"state", Field(r, "state")},
                     {"trigger", Field(r, "trigger")},
                     {"logical_date", Field(r, "logical_date")}});
    }
    PrintJson(out);
    return kExitOk;
  }
  if (runs.empty()) {
    std::cerr << "no runs\n";
    return kExitOk;
  }
  Table table({"RUN ID", "DAG", "STATE", "TRIGGER", "LOGICAL DATE", "STARTED", "DURATION"});
  SysMillis now = Now();
  for (const auto& r : runs) {
    table.AddRow({Str(r, "run_id", "?"), Cell(r, "dag"), Cell(r, "state"), Cell(r, "trigger"),
                  Cell(r, "logical_date"), Cell(r, "started_at"), ElapsedCell(r, now)});
  }
  table.Print(std::cout);
  return kExitOk;
}

struct StatusOptions {
  std::string run_id;
  std::string task;
  std::string state;
  int limit = 0;  // 0: kDefaultStatusLimit
  bool all = false;
};

constexpr int kDefaultStatusLimit = 1000;
constexpr int kAllStatusPage = 10000;

// The SPEC's `status --json` shape; each task also carries its last attempt and durations.
OrderedJson StatusJson(const Json& run) {
  OrderedJson tasks = OrderedJson::array();
  const Json& instances = Field(run, "tasks");
  if (instances.is_array()) {
    for (const auto& t : instances) {
      OrderedJson last = nullptr;
      if (const Json& a = Field(t, "last_attempt"); a.is_object()) {
        last = {{"number", Field(a, "number")},         {"outcome", Field(a, "outcome")},
                {"reason", Field(a, "reason")},         {"exit_code", Field(a, "exit_code")},
                {"signal", Field(a, "signal")},         {"error", Field(a, "error")},
                {"started_at", Field(a, "started_at")}, {"ended_at", Field(a, "ended_at")},
                {"duration_seconds", Field(a, "duration_seconds")}, {"dag_version", Field(a, "dag_version")}};
      }
      tasks.push_back({{"task", Field(t, "task")},
                       {"partition", Field(t, "partition")},
                       {"state", Field(t, "state")},
                       {"attempts", Field(t, "attempts")},
                       {"exit_code", Field(t, "exit_code")},
                       {"reason", Field(t, "reason")},
                       {"idempotency_key", Field(t, "idempotency_key")},
                       {"last_attempt", last},
                       {"duration_seconds", Field(t, "duration_seconds")},
                       {"total_seconds", Field(t, "total_seconds")}});
    }
  }
  // The SPEC's keys in its order, then the additions.
  return {{"run_id", Field(run, "run_id")},       {"dag", Field(run, "dag")},
          {"state", Field(run, "state")},         {"trigger", Field(run, "trigger")},
          {"logical_date", Field(run, "logical_date")}, {"started_at", Field(run, "started_at")},
          {"ended_at", Field(run, "ended_at")},   {"counts", Field(run, "counts")},
          {"tasks", tasks},                       {"more", Field(run, "more")},
          {"dag_version", Field(run, "dag_version")}};
}

std::string SecondsCell(const Json& obj, std::string_view key) {
  const Json& v = Field(obj, key);
  if (!v.is_number()) return "-";
  return HumanDuration(std::chrono::milliseconds(std::llround(v.get<double>() * 1000)));
}

// "14 success, 1 failed, 1 running": finished states first, then what is still to come.
std::string StateCounts(const Json& counts) {
  static const char* const kOrder[] = {"success", "skipped",    "failed", "upstream_failed", "cancelled",
                                       "running", "retry_wait", "queued", "pending"};
  std::string out;
  for (const char* state : kOrder) {
    if (auto n = Int(counts, state); n && *n > 0) out += (out.empty() ? "" : ", ") + std::to_string(*n) + " " + state;
  }
  for (const auto& [state, n] : counts.items()) {  // a state this batchctl does not know
    if (std::find_if(std::begin(kOrder), std::end(kOrder), [&](const char* k) { return state == k; }) ==
        std::end(kOrder))
      out += (out.empty() ? "" : ", ") + n.dump() + " " + state;
  }
  return out;
}

int64_t CountSum(const Json& counts) {
  int64_t n = 0;
  for (const auto& [_, v] : counts.items()) n += v.is_number_integer() ? v.get<int64_t>() : 0;
  return n;
}

// An instance of a grouped task worth its own row: it failed or is running.
bool NeedsAttention(const std::string& state) {
  return state == "failed" || state == "running" || state == "retry_wait";
}

void PrintStatus(const Json& run, const StatusOptions& o) {
  SysMillis now = Now();
  Details details;
  details.Add("run", Str(run, "run_id", "?"));
  details.Add("dag", Cell(run, "dag"));
  details.Add("state", Cell(run, "state"));
  details.Add("trigger", Cell(run, "trigger"));
  details.Add("logical date", Cell(run, "logical_date"));
  details.Add("dag version", Cell(run, "dag_version"));
  if (!Str(run, "data_interval_start").empty() &&
      Str(run, "data_interval_start") != Str(run, "data_interval_end")) {
    details.Add("data interval", Cell(run, "data_interval_start") + " .. " + Cell(run, "data_interval_end"));
  }
  if (!Str(run, "run_key").empty()) details.Add("run key", Cell(run, "run_key"));
  details.Add("started", Cell(run, "started_at"));
  details.Add("ended", Cell(run, "ended_at"));
  details.Add("duration", ElapsedCell(run, now));
  if (!Str(run, "error").empty()) details.Add("error", Str(run, "error"));
  details.Print(std::cout);

  const Json& tasks = Field(run, "tasks");
  if (!tasks.is_array() || tasks.empty()) return;

  // Without --all (or a filter), a task of several partitions is one line of counts, and
  // only its failed and running partitions get a row.
  const Json& counts = Field(run, "counts");
  const bool group = !o.all && o.task.empty() && o.state.empty() && counts.is_object();
  std::vector<std::string> grouped;
  if (group) {
    for (const auto& t : tasks) {
      std::string task = Str(t, "task");
      if (CountSum(Field(counts, task)) > 1 && std::find(grouped.begin(), grouped.end(), task) == grouped.end())
        grouped.push_back(task);
    }
    for (const auto& [task, c] : counts.items()) {  // tasks past the --limit
      if (CountSum(c) > 1 && std::find(grouped.begin(), grouped.end(), task) == grouped.end()) grouped.push_back(task);
    }
  }
  if (!grouped.empty()) {
    std::cout << "\n";
    size_t width = 0;
    for (const auto& task : grouped) width = std::max(width, DisplayWidth(task));
    for (const auto& task : grouped) {
      const Json& c = Field(counts, task);
      std::cout << task << std::string(width - DisplayWidth(task) + 2, ' ') << Plural(CountSum(c), "partition")
                << ": " << StateCounts(c) << "\n";
    }
  }

  Table table({"TASK", "PARTITION", "STATE", "ATTEMPTS", "LAST ATTEMPT", "DURATION", "TOTAL", "REASON"});
  int64_t hidden = 0;
  for (const auto& t : tasks) {
    const std::string task = Str(t, "task", "?");
    if (std::find(grouped.begin(), grouped.end(), task) != grouped.end() && !NeedsAttention(Str(t, "state"))) {
      ++hidden;
      continue;
    }
    const Json& last = Field(t, "last_attempt");
    std::string reason = Str(t, "reason");
    // The last attempt's column already says why it failed.
    if (last.is_object() && reason == Str(last, "reason")) reason.clear();
    // An attempt that ran another version of the DAG (before a retry moved the run to
    // its current version) names it.
    std::string last_cell = "-";
    if (last.is_object()) {
      last_cell = "#" + Cell(last, "number") + " " + Str(last, "reason");
      const std::string version = Str(last, "dag_version");
      if (!version.empty() && version != Str(run, "dag_version")) last_cell += " (version " + version + ")";
    }
    table.AddRow({task, Cell(t, "partition"), Cell(t, "state"), Cell(t, "attempts"), last_cell,
                  SecondsCell(t, "duration_seconds"), SecondsCell(t, "total_seconds"),
                  reason.empty() ? "-" : reason});
  }
  if (!table.empty()) {
    std::cout << "\n";
    table.Print(std::cout);
  }
  if (Bool(run, "more").value_or(false)) {
    // The page asked for; the failed and running instances past it are listed as well.
    std::cout << "(only the first " << (o.limit > 0 ? o.limit : kDefaultStatusLimit)
              << " instances were read; --all reads every one)\n";
  } else if (hidden > 0) {
    std::cout << "(" << Plural(hidden, "more instance") << " not listed: batchctl status " << Str(run, "run_id", o.run_id)
              << " --all)\n";
  }
}

int RunStatus(const GlobalOptions& global, const StatusOptions& o) {
  Api api(global);
  // --all reads every instance, a page at a time (each page costs the daemon only itself).
  const int page = o.all ? kAllStatusPage : (o.limit > 0 ? o.limit : kDefaultStatusLimit);
  std::optional<Json> reply;
  std::string after;
  while (true) {
    Query query;
    query.Add("task", o.task).Add("state", o.state).Add("limit", std::to_string(page)).Add("after", after);
    auto got = api.Call("GET", query.Apply(RunPath(o.run_id)));
    if (!got) return api.exit_code();
    if (!reply) {
      reply = std::move(got);
    } else {
      // Later pages add their instances; the run and its counts are the latest reply's.
      Json tasks = std::move((*reply)["tasks"]);
      for (auto& t : (*got)["tasks"]) tasks.push_back(std::move(t));
      reply = std::move(got);
      (*reply)["tasks"] = std::move(tasks);
    }
    const Json& next = Field(*reply, "next_after");
    if (!o.all || !next.is_number_integer()) break;
    after = std::to_string(next.get<int64_t>());
  }
  if (o.all) (*reply)["more"] = false;
  // The grouped view shows every failed and running instance, also those past the page.
  if (!o.all && !global.json && o.task.empty() && o.state.empty() && Bool(*reply, "more").value_or(false)) {
    Query query;
    query.Add("state", "failed,running,retry_wait").Add("limit", std::to_string(kDefaultStatusLimit));
    auto attention = api.Call("GET", query.Apply(RunPath(o.run_id)));
    if (!attention) return api.exit_code();
    std::set<std::pair<std::string, std::string>> listed;
    for (const auto& t : (*reply)["tasks"]) listed.insert({Str(t, "task"), Str(t, "partition")});
    for (auto& t : (*attention)["tasks"])
      if (!listed.count({Str(t, "task"), Str(t, "partition")})) (*reply)["tasks"].push_back(std::move(t));
  }
  if (global.json) {
    PrintJson(StatusJson(*reply));
  } else {
    PrintStatus(*reply, o);
  }
  return kExitOk;
}

struct AttemptsOptions {
  std::string run_id;
  std::string task;
  std::string partition;
};

// The SPEC's `attempts --json` shape, exactly.
OrderedJson AttemptsJson(const Json& attempts) {
  OrderedJson out = OrderedJson::array();
  if (!attempts.is_array()) return out;
  for (const auto& a : attempts) {
    out.push_back({{"task", Field(a, "task")},
                   {"partition", Field(a, "partition")},
                   {"attempt", Field(a, "attempt")},
                   {"outcome", Field(a, "outcome")},
                   {"reason", Field(a, "reason")},
                   {"exit_code", Field(a, "exit_code")},
                   {"signal", Field(a, "signal")},
                   {"started_at", Field(a, "started_at")},
                   {"ended_at", Field(a, "ended_at")},
                   {"cpu_seconds", Field(a, "cpu_seconds")},
                   {"max_rss_bytes", Field(a, "max_rss_bytes")},
                   {"dag_version", Field(a, "dag_version")},
                   {"log", Field(a, "log")}});
  }
  return out;
}

// "12.3 MiB" for a byte count; "-" when unknown.
std::string BytesCell(const Json& obj, std::string_view key) {
  auto n = Int(obj, key);
  if (!n || *n <= 0) return "-";
  char buf[32];
  if (*n >= 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(*n) / (1024.0 * 1024.0));
  else std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(*n) / 1024.0);
  return buf;
}

std::string CpuCell(const Json& obj) {
  const Json& v = Field(obj, "cpu_seconds");
  if (!v.is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fs", v.get<double>());
  return buf;
}

int RunAttempts(const GlobalOptions& global, const AttemptsOptions& o) {
  if (!o.partition.empty() && o.task.empty()) {
    std::cerr << "batchctl: --partition needs a TASK\n";
    return kExitUsage;
  }
  Query query;
  query.Add("task", o.task).Add("partition", o.partition);
  Api api(global);
  auto reply = api.Call("GET", query.Apply(RunPath(o.run_id) + "/attempts"));
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(AttemptsJson(*reply));
    return kExitOk;
  }
  if (!reply->is_array() || reply->empty()) {
    std::cerr << "no attempts yet\n";
    return kExitOk;
  }
  Table table({"TASK", "PARTITION", "ATTEMPT", "OUTCOME", "REASON", "STARTED", "DURATION", "CPU", "MAX RSS", "LOG"});
  for (const auto& a : *reply) {
    table.AddRow({Str(a, "task", "?"), Cell(a, "partition"), Cell(a, "attempt"), Cell(a, "outcome"), Cell(a, "reason"),
                  Cell(a, "started_at"), SecondsCell(a, "duration_seconds"), CpuCell(a), BytesCell(a, "max_rss_bytes"),
                  Cell(a, "log")});
  }
  table.Print(std::cout);
  return kExitOk;
}

int RunRetry(const GlobalOptions& global, const RetryOptions& o) {
  Json body = Json::object();
  if (!o.task.empty()) body["task"] = o.task;
  if (!o.partition.empty()) body["partition"] = o.partition;
  if (o.same_version) body["same_version"] = true;
  Api api(global);
  auto reply = api.Call("POST", RunPath(o.run_id) + "/retry", body);
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(*reply);
    return kExitOk;
  }
  const std::string version = Str(*reply, "dag_version"), previous = Str(*reply, "previous_dag_version");
  std::cout << "run " << Str(*reply, "run_id", o.run_id) << ": "
            << Plural(Int(*reply, "reset").value_or(0), "instance") << " reset for another attempt";
  if (version != previous) {
    std::cout << " with the DAG's current version " << version << " (was " << previous << ")\n";
  } else if (const std::string why = Str(*reply, "kept_version_because"); !why.empty()) {
    std::cout << " with the run's own version " << version << ": " << why << "\n";
  } else {
    std::cout << " with DAG version " << version << "\n";
  }
  return kExitOk;
}

int RunCancel(const GlobalOptions& global, const std::string& run_id) {
  Api api(global);
  auto reply = api.Call("POST", RunPath(run_id) + "/cancel");
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(*reply);
  } else {
    std::string state = Str(*reply, "state", "?");
    std::cout << "run " << Str(*reply, "run_id", run_id)
              << (state == "cancelled" ? " cancelled" : ": cancel requested (now " + state + ")") << "\n";
  }
  return kExitOk;
}

int RunFailed(const GlobalOptions& global, const std::string& dag) {
  Query query;
  query.Add("dag", dag);
  Api api(global);
  auto reply = api.Call("GET", query.Apply("/v1/failed"));
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(*reply);
    return kExitOk;
  }
  if (!reply->is_array() || reply->empty()) {
    std::cerr << "no dead letters\n";
    return kExitOk;
  }
  Table table({"RUN ID", "DAG", "TASK", "PARTITION", "ATTEMPTS", "EXIT", "ENDED", "IDEMPOTENCY KEY", "REASON"});
  for (const auto& f : *reply) {
    table.AddRow({Str(f, "run_id", "?"), Cell(f, "dag"), Cell(f, "task"), Cell(f, "partition"),
                  Cell(f, "attempts"), Cell(f, "exit_code"), Cell(f, "ended_at"), Cell(f, "idempotency_key"),
                  Cell(f, "reason")});
  }
  table.Print(std::cout);
  return kExitOk;
}

}  // namespace

void AddRunCommands(CLI::App& app, const GlobalOptions& global, Action& action) {
  static const std::vector<std::string> kRunStates = {"queued", "running", "success", "failed", "cancelled"};

  auto trigger = std::make_shared<TriggerOptions>();
  auto* trig = app.add_subcommand("trigger", "start a manual run of a DAG (an existing run key creates nothing)");
  trig->add_option("DAG", trigger->dag, "DAG name")->required();
  trig->add_option("--date", trigger->date,
                   "logical date: YYYY-MM-DD (midnight in the DAG's zone) or ISO-8601; default now");
  trig->add_option("--param", trigger->params, "override a DAG param (repeatable)")
      ->check(KeyValue())
      ->allow_extra_args(false);
  trig->add_option("--key", trigger->key, "run key (default <dag>@<logical date>)");
  trig->add_flag("--force", trigger->force, "run task instances even if their idempotency key already succeeded");
  trig->add_flag("--wait", trigger->wait, "follow the run until it ends; exit 1 unless it succeeds");
  trig->callback([&global, &action, trigger] { action = [&global, trigger] { return RunTrigger(global, *trigger); }; });

  auto backfill = std::make_shared<BackfillOptions>();
  auto* back = app.add_subcommand("backfill", "create one run per fire time in a date range, within the DAG's start_date/end_date");
  back->add_option("DAG", backfill->dag, "DAG name")->required();
  back->add_option("--from", backfill->from, "first date (inclusive): YYYY-MM-DD or ISO-8601")->required();
  back->add_option("--to", backfill->to, "last date (inclusive): YYYY-MM-DD or ISO-8601")->required();
  auto* dry_run = back->add_flag("--dry-run", backfill->dry_run,
                                 "list the logical dates it would create runs for; create nothing");
  back->add_flag("--yes", backfill->yes, "confirm a backfill of more than 100 runs");
  back->add_flag("--wait", backfill->wait, "follow the runs until all end; exit 1 unless all succeed")
      ->excludes(dry_run);
  back->callback([&global, &action, backfill] { action = [&global, backfill] { return RunBackfill(global, *backfill); }; });

  auto runs = std::make_shared<RunsOptions>();
  auto* list = app.add_subcommand("runs", "list runs, newest first");
  list->add_option("DAG", runs->dag, "only runs of this DAG");
  list->add_option("--state", runs->state, "only runs in this state")->check(CLI::IsMember(kRunStates));
  list->add_option("--limit", runs->limit, "at most N runs (daemon default 50)")->check(CLI::Range(1, 10000));
  list->callback([&global, &action, runs] { action = [&global, runs] { return RunRuns(global, *runs); }; });

  static const std::vector<std::string> kInstanceStates = {"pending", "queued",  "running", "retry_wait", "success",
                                                           "failed",  "skipped", "upstream_failed", "cancelled"};
  auto status_options = std::make_shared<StatusOptions>();
  auto* status = app.add_subcommand(
      "status", "show a run and its task instances (a task of several partitions as counts, unless --all)");
  status->add_option("RUN_ID", status_options->run_id, "run id")->required();
  status->add_option("--task", status_options->task, "only this task's instances");
  status->add_option("--state", status_options->state, "only instances in this state")
      ->check(CLI::IsMember(kInstanceStates));
  status->add_option("--limit", status_options->limit, "at most N instances (default 1000)")
      ->check(CLI::Range(1, 100000));
  status->add_flag("--all", status_options->all, "every instance, one row each");
  status->callback([&global, &action, status_options] {
    action = [&global, status_options] { return RunStatus(global, *status_options); };
  });

  auto attempts = std::make_shared<AttemptsOptions>();
  auto* att = app.add_subcommand("attempts", "list a run's attempts: outcome, reason, duration, CPU, memory, log");
  att->add_option("RUN_ID", attempts->run_id, "run id")->required();
  att->add_option("TASK", attempts->task, "only this task's attempts");
  att->add_option("--partition", attempts->partition, "only this partition's attempts (needs TASK)");
  att->callback([&global, &action, attempts] { action = [&global, attempts] { return RunAttempts(global, *attempts); }; });

  auto run_id = std::make_shared<std::string>();

  auto retry = std::make_shared<RetryOptions>();
  auto* ret = app.add_subcommand("retry", "re-run the failed and upstream_failed instances of a run");
  ret->add_option("RUN_ID", retry->run_id, "run id")->required();
  ret->add_option("--task", retry->task, "only this task");
  ret->add_option("--partition", retry->partition, "only this partition");
  ret->add_flag("--same-version", retry->same_version,
                "run the run's own DAG version, not the current one (the default when the current version has the same tasks)");
  ret->callback([&global, &action, retry] { action = [&global, retry] { return RunRetry(global, *retry); }; });

  auto* cancel = app.add_subcommand("cancel", "cancel a queued or running run");
  cancel->add_option("RUN_ID", *run_id, "run id")->required();
  cancel->callback([&global, &action, run_id] { action = [&global, run_id] { return RunCancel(global, *run_id); }; });

  auto failed_dag = std::make_shared<std::string>();
  auto* failed = app.add_subcommand("failed", "list dead letters: instances failed after their last retry");
  failed->add_option("DAG", *failed_dag, "only this DAG");
  failed->callback([&global, &action, failed_dag] {
    action = [&global, failed_dag] { return RunFailed(global, *failed_dag); };
  });
}

}  // namespace batchd::cli
