// Daemon-wide commands: reload (rescan the DAGs directory), pools and health.
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace batchd::cli {

namespace {

std::string NameList(const Json& names) {
  if (!names.is_array() || names.empty()) return "-";
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + Cell(n);
  return out;
}

// A broken file in the DAGs directory is skipped by the daemon; reload still exits 1 so the
// operator (or the deploy script) notices.
int RunReload(const GlobalOptions& global) {
  Api api(global);
  auto reply = api.Call("POST", "/v1/reload");
  if (!reply) return api.exit_code();
  const Json& errors = Field(*reply, "errors");
  bool has_errors = errors.is_array() && !errors.empty();
  if (global.json) {
    PrintJson(*reply);
    return has_errors ? kExitFailed : kExitOk;
  }
  std::cout << "loaded: " << NameList(Field(*reply, "loaded")) << "\n";
  std::cout << "unchanged: " << NameList(Field(*reply, "unchanged")) << "\n";
  const Json& removed = Field(*reply, "removed");
  if (removed.is_array() && !removed.empty()) std::cout << "removed: " << NameList(removed) << "\n";
  if (has_errors) {
    for (const auto& d : errors) std::cerr << DiagnosticLine(d) << "\n";
    std::cerr << "batchctl: " << Plural(static_cast<int64_t>(errors.size()), "error")
              << " in the DAGs directory; those files were skipped\n";
  }
  return has_errors ? kExitFailed : kExitOk;
}

int RunHealth(const GlobalOptions& global) {
  Api api(global);
  auto reply = api.Call("GET", "/v1/health");
  if (!reply) return api.exit_code();
  bool ok = Str(*reply, "status") == "ok";
  if (global.json) {
    PrintJson(*reply);
    return ok ? kExitOk : kExitFailed;
  }
  Details details;
  details.Add("status", Cell(*reply, "status"));
  if (Field(*reply, "store_error").is_string()) details.Add("store error", Cell(*reply, "store_error"));
  details.Add("version", Cell(*reply, "version"));
  const Json& uptime = Field(*reply, "uptime_seconds");
  details.Add("uptime", uptime.is_number()
                            ? HumanDuration(std::chrono::milliseconds(static_cast<int64_t>(uptime.get<double>() * 1000)))
                            : "-");
  details.Add("socket", api.socket_path());
  details.Add("dags", Cell(*reply, "dags"));
  details.Add("active runs", Cell(*reply, "active_runs"));
  details.Add("running tasks", Cell(*reply, "running_tasks"));
  details.Add("queued tasks", Cell(*reply, "queued_tasks"));
  details.Add("workers", Cell(*reply, "workers"));
  details.Print(std::cout);
  return ok ? kExitOk : kExitFailed;
}

// pools: the daemon's slot limits and how busy they are.
int RunPools(const GlobalOptions& global) {
  Api api(global);
  auto reply = api.Call("GET", "/v1/pools");
  if (!reply) return api.exit_code();
  if (global.json) {
    // Each pool's fields in the order the table shows them.
    OrderedJson out = OrderedJson::array();
    if (reply->is_array())
      for (const auto& p : *reply)
        out.push_back({{"pool", Field(p, "pool")}, {"slots", Field(p, "slots")}, {"used", Field(p, "used")},
                       {"queued", Field(p, "queued")}});
    PrintJson(out);
    return kExitOk;
  }
  if (!reply->is_array() || reply->empty()) {
    std::cerr << "no pools (the daemon config's pools: defines them)\n";
    return kExitOk;
  }
  Table table({"POOL", "SLOTS", "USED", "QUEUED"});
  for (const auto& p : *reply)
    table.AddRow({Str(p, "pool", "?"), Cell(p, "slots"), Cell(p, "used"), Cell(p, "queued")});
  table.Print(std::cout);
  return kExitOk;
}

}  // namespace

void AddAdminCommands(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto* reload = app.add_subcommand("reload", "rescan the DAGs directory (like SIGHUP); exit 1 if a file is broken");
  reload->callback([&global, &action] { action = [&global] { return RunReload(global); }; });

  auto* pools = app.add_subcommand("pools", "list the daemon's pools: slots, slots in use, instances waiting");
  pools->callback([&global, &action] { action = [&global] { return RunPools(global); }; });

  auto* health = app.add_subcommand("health", "check that the daemon is up and show its load");
  health->callback([&global, &action] { action = [&global] { return RunHealth(global); }; });
}

}  // namespace batchd::cli
