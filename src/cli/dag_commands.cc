// DAG commands: submit, dags, show, delete, pause, unpause (one DAG or --all).
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include <CLI/CLI.hpp>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "dag/loader.h"

namespace batchd::cli {

namespace {

// "success 2026-03-01T02:30:00+01:00" for a {run_id, state, logical_date} summary.
std::string LastRunCell(const Json& last_run) {
  if (!last_run.is_object()) return "-";
  return Str(last_run, "state", "?") + " " + Str(last_run, "logical_date", "-");
}

// "3h12m / 26h": the age of the last success (or of the DAG, before one) against
// slo.freshness; "-" for a DAG without one (LAST SUCCESS says how old it is).
std::string FreshnessCell(const Json& dag) {
  const Json& slo = Field(dag, "slo");
  std::string age = Str(slo, "freshness_age"), limit = Str(slo, "freshness");
  if (limit.empty()) return "-";
  return (age.empty() ? "-" : age) + " / " + limit;
}

// "ok", "stale", "late" (a run is past max_duration), "-" without an slo: block; misses
// counted so far follow, e.g. "ok (misses: 2 duration, 1 freshness)".
std::string SloCell(const Json& dag) {
  const Json& slo = Field(dag, "slo");
  std::string state = Str(slo, "state", "none");
  if (state == "none") return "-";
  const Json& misses = Field(slo, "misses");
  std::string counted;
  for (const char* kind : {"duration", "freshness"}) {
    const Json& n = Field(misses, kind);
    if (n.is_number_integer() && n.get<int64_t>() > 0)
      counted += (counted.empty() ? "" : ", ") + std::to_string(n.get<int64_t>()) + " " + kind;
  }
  return counted.empty() ? state : state + " (misses: " + counted + ")";
}

std::string ScheduleCell(const Json& dag) {
  std::string schedule = Str(dag, "schedule");
  return schedule.empty() ? "(manual)" : schedule;
}

// Submits every file, or none: all are validated locally first, so an invalid file is
// reported with file:line:column before anything reaches the daemon.
int RunSubmit(const GlobalOptions& global, const std::vector<std::string>& files) {
  Json diagnostics = Json::array();
  std::vector<std::string> sources;
  for (const auto& file : files) {
    dag::LoadResult result = dag::LoadDagFile(file);
    for (const auto& d : result.errors) {
      diagnostics.push_back({{"file", d.file}, {"line", d.line}, {"column", d.column}, {"message", d.message}});
    }
    if (!result.ok()) continue;
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) {
      diagnostics.push_back({{"file", file}, {"line", 0}, {"column", 0}, {"message", "cannot read file"}});
      continue;
    }
    sources.push_back(text.str());
  }
  if (!diagnostics.empty()) {
    std::string message = Plural(static_cast<int64_t>(diagnostics.size()), "error") +
                          " found; nothing was submitted";
    if (global.json) {
      PrintJson({{"error", {{"code", "invalid_dag"}, {"message", message}, {"details", diagnostics}}}});
    } else {
      for (const auto& d : diagnostics) std::cerr << DiagnosticLine(d) << "\n";
      std::cerr << "batchctl: " << message << "\n";
    }
    return kExitFailed;
  }

  Api api(global);
  Json submitted = Json::array();
  for (size_t i = 0; i < files.size(); ++i) {
    auto reply = api.Call("POST", "/v1/dags", Json{{"source", sources[i]}, {"path", files[i]}});
    if (!reply) return api.exit_code();
    if (global.json) {
      Json entry = *reply;
      if (entry.is_object()) entry["file"] = files[i];
      submitted.push_back(std::move(entry));
      continue;
    }
    bool changed = Bool(*reply, "changed").value_or(true);
    std::cout << (changed ? "submitted " : "unchanged ") << Str(*reply, "dag", "?") << " version "
              << Str(*reply, "version", "?") << "\n";
  }
  if (global.json) PrintJson(submitted);
  return kExitOk;
}

int RunDags(const GlobalOptions& global) {
  Api api(global);
  auto reply = api.Call("GET", "/v1/dags");
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(*reply);
    return kExitOk;
  }
  if (!reply->is_array() || reply->empty()) {
    std::cerr << "no DAGs (add files to the DAGs directory or use batchctl submit)\n";
    return kExitOk;
  }
  Table table({"DAG", "SCHEDULE", "TZ", "PAUSED", "NEXT RUN", "LAST RUN", "LAST SUCCESS", "FRESHNESS", "SLO"});
  for (const auto& dag : *reply) {
    table.AddRow({Str(dag, "dag", "?"), ScheduleCell(dag), Cell(dag, "timezone"), Cell(dag, "paused"),
                  Cell(dag, "next_fire"), LastRunCell(Field(dag, "last_run")), Cell(dag, "last_success"),
                  FreshnessCell(dag), SloCell(dag)});
  }
  table.Print(std::cout);
  return kExitOk;
}

void PrintDagDetails(const Json& dag) {
  Details details;
  details.Add("dag", Str(dag, "dag", "?"));
  if (std::string d = Str(dag, "description"); !d.empty()) details.Add("description", d);
  std::string version = Cell(dag, "version");
  std::string origin = Str(dag, "origin");
  std::string path = Str(dag, "source_path");
  if (!origin.empty() || !path.empty()) {
    version += " (" + (origin.empty() ? std::string() : origin) +
               (path.empty() ? "" : (origin.empty() ? "" : " ") + path) + ")";
  }
  details.Add("version", version);
  details.Add("schedule", ScheduleCell(dag));
  details.Add("timezone", Cell(dag, "timezone"));
  details.Add("paused", Cell(dag, "paused"));
  details.Add("catchup", Cell(dag, "catchup"));
  details.Add("max active runs", Cell(dag, "max_active_runs"));
  const Json& params = Field(dag, "params");
  if (params.is_object() && !params.empty()) details.Add("params", Cell(params));
  const Json& fires = Field(dag, "next_fires");
  std::string next;
  if (fires.is_array()) {
    for (const auto& f : fires) next += (next.empty() ? "" : "\n") + Cell(f);
  }
  details.Add("next fires", next.empty() ? "-" : next);
  details.Add("last run", LastRunCell(Field(dag, "last_run")));
  details.Add("last success", Cell(dag, "last_success"));
  const Json& slo = Field(dag, "slo");
  if (Str(slo, "state", "none") != "none") {
    details.Add("slo", SloCell(dag));
    if (!Str(slo, "max_duration").empty()) details.Add("max duration", Str(slo, "max_duration"));
    details.Add("freshness", FreshnessCell(dag));
    std::string recent;
    const Json& misses = Field(slo, "recent_misses");
    if (misses.is_array())
      for (const auto& m : misses)
        recent += (recent.empty() ? "" : "\n") + Str(m, "at", "?") + " " + Str(m, "kind", "?") + ": " + Str(m, "detail");
    if (!recent.empty()) details.Add("slo misses", recent);
  }
  details.Print(std::cout);

  const Json& tasks = Field(dag, "tasks");
  if (tasks.is_array() && !tasks.empty()) {
    std::cout << "\n";
    Table table({"TASK", "DEPENDS ON", "PARTITIONS", "POOL", "PRIORITY", "RETRIES", "COMMAND"});
    for (const auto& t : tasks) {
      table.AddRow({Str(t, "task", "?"), Cell(t, "depends_on"), Cell(t, "partitions"), Cell(t, "pool"),
                    Cell(t, "priority"), Cell(t, "retries"), Shorten(Str(t, "command"), 60)});
    }
    table.Print(std::cout);
  }

  const Json& runs = Field(dag, "recent_runs");
  if (runs.is_array() && !runs.empty()) {
    std::cout << "\nrecent runs:\n";
    Table table({"RUN ID", "STATE", "TRIGGER", "LOGICAL DATE", "STARTED", "DURATION"});
    SysMillis now = Now();
    for (const auto& r : runs) {
      table.AddRow({Str(r, "run_id", "?"), Cell(r, "state"), Cell(r, "trigger"), Cell(r, "logical_date"),
                    Cell(r, "started_at"), ElapsedCell(r, now)});
    }
    table.Print(std::cout);
  }
}

int RunShow(const GlobalOptions& global, const std::string& dag) {
  Api api(global);
  auto reply = api.Call("GET", DagPath(dag));
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(*reply);
  } else {
    PrintDagDetails(*reply);
  }
  return kExitOk;
}

int RunDelete(const GlobalOptions& global, const std::string& dag, bool purge) {
  Api api(global);
  Query query;
  if (purge) query.Add("purge", "true");
  auto reply = api.Call("DELETE", query.Apply(DagPath(dag)));
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(*reply);
  } else if (Bool(*reply, "purged").value_or(purge)) {
    std::cout << "deleted " << dag << " and purged its history\n";
  } else {
    std::cout << "deleted " << dag << " (no longer scheduled; its history is kept, --purge removes it)\n";
  }
  return kExitOk;
}

int RunPause(const GlobalOptions& global, const std::string& dag, bool pause) {
  Api api(global);
  auto reply = api.Call("POST", DagPath(dag) + (pause ? "/pause" : "/unpause"));
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(*reply);
  } else {
    std::cout << (Bool(*reply, "paused").value_or(pause) ? "paused " : "unpaused ") << dag << "\n";
  }
  return kExitOk;
}

// pause --all / unpause --all: "paused 5 DAGs" names how many changed.
int RunPauseAll(const GlobalOptions& global, bool pause) {
  Api api(global);
  auto reply = api.Call("POST", pause ? "/v1/pause" : "/v1/unpause");
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(*reply);
    return kExitOk;
  }
  const Json& changed = Field(*reply, "changed");
  int64_t n = changed.is_array() ? static_cast<int64_t>(changed.size()) : 0;
  std::cout << (pause ? "paused " : "unpaused ") << Plural(n, "DAG");
  if (n == 0) std::cout << (pause ? " (none was unpaused)" : " (none was paused)");
  std::cout << "\n";
  return kExitOk;
}

// The work of `pause`/`unpause`: one DAG or, with --all, every DAG; both or neither is a
// usage error.
int RunPauseCommand(const GlobalOptions& global, const std::string& dag, bool all, bool pause) {
  const char* command = pause ? "pause" : "unpause";
  if (all == !dag.empty()) {
    std::cerr << "batchctl: " << command
              << (all ? " takes a DAG or --all, not both" : " needs a DAG name, or --all for every DAG") << "\n";
    return kExitUsage;
  }
  return all ? RunPauseAll(global, pause) : RunPause(global, dag, pause);
}

}  // namespace

void AddDagCommands(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto* submit = app.add_subcommand("submit", "validate DAG files locally, then submit them to the daemon");
  submit->add_option("FILE", *files, "DAG files (YAML)")->required();
  submit->callback([&global, &action, files] { action = [&global, files] { return RunSubmit(global, *files); }; });

  auto* dags = app.add_subcommand("dags", "list DAGs with schedule, next and last run");
  dags->callback([&global, &action] { action = [&global] { return RunDags(global); }; });

  auto dag = std::make_shared<std::string>();
  auto* show = app.add_subcommand("show", "show one DAG: settings, next five fire times, tasks, recent runs");
  show->add_option("DAG", *dag, "DAG name")->required();
  show->callback([&global, &action, dag] { action = [&global, dag] { return RunShow(global, *dag); }; });

  auto purge = std::make_shared<bool>(false);
  auto* del = app.add_subcommand("delete", "stop scheduling a DAG (history kept unless --purge)");
  del->add_option("DAG", *dag, "DAG name")->required();
  del->add_flag("--purge", *purge, "also remove its runs, attempts, idempotency keys and logs");
  del->callback([&global, &action, dag, purge] {
    action = [&global, dag, purge] { return RunDelete(global, *dag, *purge); };
  });

  auto all = std::make_shared<bool>(false);
  auto* pause = app.add_subcommand("pause", "stop creating scheduled runs of a DAG (--all: of every DAG)");
  pause->add_option("DAG", *dag, "DAG name");
  pause->add_flag("--all", *all, "pause every DAG (maintenance); runs in progress finish");
  pause->callback([&global, &action, dag, all] {
    action = [&global, dag, all] { return RunPauseCommand(global, *dag, *all, true); };
  });

  auto* unpause = app.add_subcommand("unpause", "resume scheduling a DAG (with catchup, creates missed runs)");
  unpause->add_option("DAG", *dag, "DAG name");
  unpause->add_flag("--all", *all, "unpause every paused DAG");
  unpause->callback([&global, &action, dag, all] {
    action = [&global, dag, all] { return RunPauseCommand(global, *dag, *all, false); };
  });
}

}  // namespace batchd::cli
